//! SeaORM entities for hookline, one module per table.
//!
//! Every timestamp column holds Unix epoch **milliseconds** (`BIGINT`): the same
//! representation on SQLite and PostgreSQL, so the delivery queue's raw SQL
//! compares integers on both and never depends on a driver's date format.

pub mod delivery;
pub mod delivery_attempt;
pub mod endpoint;
pub mod event;
pub mod event_type;
pub mod feed_link;
pub mod ids;
pub mod instance;
pub mod recovery_job;
pub mod webhook;

pub mod prelude {
    pub use super::delivery::{DeliveryStatus, Entity as Delivery};
    pub use super::delivery_attempt::{
        AttemptErrorKind, AttemptOutcome, Entity as DeliveryAttempt,
    };
    pub use super::endpoint::Entity as Endpoint;
    pub use super::event::Entity as Event;
    pub use super::event_type::Entity as EventType;
    pub use super::webhook::{Entity as Webhook, WebhookStatus};
}
