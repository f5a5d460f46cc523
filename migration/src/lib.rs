//! Database migrations, one concern per file. Never edit a migration that has
//! been released: add a new one.
//!
//! Everything here must run on SQLite and PostgreSQL alike. sea-query panics on
//! SQLite for ALTERs with several options and for foreign keys added to existing
//! tables, so foreign keys live inside `create_table` and each ALTER does one
//! thing. Timestamps are `BIGINT` epoch milliseconds (see the `entity` crate).

pub use sea_orm_migration::prelude::*;

mod m20261125_000001_create_event_types;
mod m20261125_000002_create_webhooks;
mod m20261125_000003_create_events;
mod m20261125_000004_create_deliveries;
mod m20261125_000005_create_instances;
mod m20261125_000006_index_attempts_by_time;
mod m20261125_000007_create_feed_links;
mod m20261125_000008_create_tenant_versions;
mod m20261125_000009_drop_claimed_by_index;
mod m20261202_000010_order_events_by_commit;
mod m20261204_000011_add_event_trace_context;
mod m20261204_000012_endpoint_health;
mod m20261205_000013_recovery_jobs;
mod m20261205_000014_endpoint_rate_limit;
mod m20261205_000015_delivery_ordering;
mod m20261205_000016_ed25519_signatures;
mod m20261206_000017_payload_shapes;
mod m20261206_000018_content_filters;
mod m20261206_000019_partner_webhooks;
mod m20261207_000020_partition_history;
mod m20261208_000021_delivery_queue;
mod m20261208_000022_settle_in_place;
mod m20261209_000023_deliveries_unlocked;
pub mod partitioning;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_create_event_types::Migration),
            Box::new(m20261125_000002_create_webhooks::Migration),
            Box::new(m20261125_000003_create_events::Migration),
            Box::new(m20261125_000004_create_deliveries::Migration),
            Box::new(m20261125_000005_create_instances::Migration),
            Box::new(m20261125_000006_index_attempts_by_time::Migration),
            Box::new(m20261125_000007_create_feed_links::Migration),
            Box::new(m20261125_000008_create_tenant_versions::Migration),
            Box::new(m20261125_000009_drop_claimed_by_index::Migration),
            Box::new(m20261202_000010_order_events_by_commit::Migration),
            Box::new(m20261204_000011_add_event_trace_context::Migration),
            Box::new(m20261204_000012_endpoint_health::Migration),
            Box::new(m20261205_000013_recovery_jobs::Migration),
            Box::new(m20261205_000014_endpoint_rate_limit::Migration),
            Box::new(m20261205_000015_delivery_ordering::Migration),
            Box::new(m20261205_000016_ed25519_signatures::Migration),
            Box::new(m20261206_000017_payload_shapes::Migration),
            Box::new(m20261206_000018_content_filters::Migration),
            Box::new(m20261206_000019_partner_webhooks::Migration),
            Box::new(m20261207_000020_partition_history::Migration),
            Box::new(m20261208_000021_delivery_queue::Migration),
            Box::new(m20261208_000022_settle_in_place::Migration),
            Box::new(m20261209_000023_deliveries_unlocked::Migration),
        ]
    }
}
