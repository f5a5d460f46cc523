//! Business rules and queries, free of HTTP and GraphQL. Every function that
//! reads or writes tenant data takes the tenant explicitly.

pub mod address;
pub mod catalog;
pub mod deliveries;
pub mod endpoint_health;
mod endpoints;
pub mod event_types;
pub mod events;
pub mod facts;
pub mod feeds;
pub mod health;
pub mod instances;
pub mod intake;
pub mod labels;
pub mod live;
pub mod log_search;
pub mod operational;
pub mod pagination;
pub mod patterns;
pub mod payload;
pub mod publish;
pub mod publish_check;
pub mod publish_limit;
pub mod queue;
pub mod recovery;
pub mod replay;
pub mod retention;
pub mod retry;
pub mod schema_cost;
pub mod targets;
pub mod tenant_config;
pub mod throttle;
pub mod validate;
mod webhook_delete;
pub mod webhook_input;
mod webhook_secret;
pub mod webhooks;
