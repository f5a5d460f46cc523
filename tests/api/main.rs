//! Integration tests: the real server over HTTP, on SQLite, and on PostgreSQL
//! when `HOOKLINE_TEST_DATABASE_URL` is set.

mod support;

mod auth;
mod crash;
mod delivery;
mod event_types;
mod feeds;
mod hostile;
mod http_surface;
mod instances;
mod logs;
mod nul_text;
mod operations;
mod operator;
mod publishing;
mod recording;
mod replay;
mod schema;
mod socket_expiry;
mod subscriptions;
mod tenancy;
mod webhook_changes;
mod webhooks;
