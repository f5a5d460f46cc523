//! Integration tests: the real server over HTTP, on SQLite, and on PostgreSQL
//! when `HOOKLINE_TEST_DATABASE_URL` is set.

#[path = "../support/mod.rs"]
mod support;

mod auth;
mod concurrent_changes;
mod content_filters;
mod crash;
mod delivery;
mod disk_full;
mod endpoint_health;
mod event_types;
mod feeds;
mod history;
mod hostile;
mod http_surface;
mod instances;
mod isolation;
mod listen;
mod log_search;
mod logs;
mod memory;
mod nul_text;
mod operational;
mod operations;
mod operator;
mod ordering;
mod otel;
mod partitions;
mod partners;
mod payload;
mod provider_tokens;
mod publishing;
mod queue;
mod readme;
mod reads;
mod recording;
mod recovery;
mod relay_outage;
mod removal;
mod replay;
mod schema;
mod signatures;
mod socket_expiry;
mod startup;
mod subscriptions;
mod tenancy;
mod throttling;
mod webhook_changes;
mod webhooks;
