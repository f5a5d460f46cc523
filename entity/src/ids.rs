//! Public ids: a type prefix and a lowercase ULID, e.g. `wh_01jf3w9k…`, one
//! type per kind so that a webhook id cannot be passed where a delivery id is
//! meant.
//!
//! ULIDs start with their creation time, so ids of one kind sort by age and
//! "newest first" is simply `ORDER BY id DESC`, which also makes the id a
//! stable pagination cursor.
//!
//! Each type is stored as the plain text it has always been (no migration)
//! and serialized as a plain string. [`parse`](EventId::parse) is for
//! untrusted text; rows read back from the database are taken as they are.

use std::{fmt, sync::Mutex};

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};
use ulid::Generator;

/// Length of the ULID after the prefix.
const ULID_LEN: usize = 26;

static GENERATOR: Mutex<Option<Generator>> = Mutex::new(None);

/// A new id with `prefix`. Ids made by one process are strictly increasing.
fn generate(prefix: &str) -> String {
    let ulid = {
        let mut guard = GENERATOR
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let generator = guard.get_or_insert_with(Generator::new);
        // The monotonic generator only fails when 2^80 ids are made in one
        // millisecond; a fresh random ULID is then still unique.
        generator.generate().unwrap_or_else(|_| ulid::Ulid::new())
    };
    let mut id = String::with_capacity(prefix.len() + ULID_LEN);
    id.push_str(prefix);
    id.push_str(&ulid.to_string().to_ascii_lowercase());
    id
}

/// Whether `id` has the shape of an id with `prefix`. Lookups skip the
/// database for anything else: it cannot exist.
fn has_shape(prefix: &str, id: &str) -> bool {
    id.strip_prefix(prefix).is_some_and(|rest| {
        rest.len() == ULID_LEN && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// What every id type offers, for code that works on any kind of id.
pub trait PublicId: Clone + fmt::Display + Sized {
    /// What an id of this kind names, as "delivery" in "delivery not found".
    const NOUN: &'static str;

    /// The id `text` stands for, if it has this kind's prefix and shape.
    fn parse(text: &str) -> Option<Self>;
    fn as_str(&self) -> &str;
}

/// Why a string was refused as an id (deserializing one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidId {
    pub kind: &'static str,
}

impl fmt::Display for InvalidId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a valid {}", self.kind)
    }
}

impl std::error::Error for InvalidId {}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $noun:literal) => {
        $(#[$doc])*
        #[derive(
            Clone, PartialEq, Eq, Hash, PartialOrd, Ord, DeriveValueType, Serialize, Deserialize,
        )]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A fresh id, greater than every id of this kind made before it
            /// by this process.
            #[expect(
                clippy::new_without_default,
                reason = "a default that is a fresh random id would hide where ids are made"
            )]
            pub fn new() -> Self {
                Self(generate($prefix))
            }

            /// The id `text` stands for, if it has this kind's prefix and shape.
            pub fn parse(text: &str) -> Option<Self> {
                has_shape($prefix, text).then(|| Self(text.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl PublicId for $name {
            const NOUN: &'static str = $noun;

            fn parse(text: &str) -> Option<Self> {
                $name::parse(text)
            }

            fn as_str(&self) -> &str {
                $name::as_str(self)
            }
        }

        // As the plain string, so that logs and messages which print ids
        // with `?` read as they did when ids were strings.
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;

            fn try_from(text: String) -> Result<Self, InvalidId> {
                if has_shape($prefix, &text) {
                    Ok(Self(text))
                } else {
                    Err(InvalidId { kind: stringify!($name) })
                }
            }
        }

        // Primary keys must say how to read a driver's auto-increment value;
        // these ids are made by hookline, never by the database.
        impl sea_orm::TryFromU64 for $name {
            fn try_from_u64(_: u64) -> Result<Self, DbErr> {
                Err(DbErr::ConvertFromU64(stringify!($name)))
            }
        }
    };
}

prefixed_id!(
    /// A tenant's own event type (`et_…`).
    EventTypeId,
    "et_",
    "event type"
);
prefixed_id!(
    /// A webhook (`wh_…`).
    WebhookId,
    "wh_",
    "webhook"
);
prefixed_id!(
    /// One of a webhook's endpoints (`ep_…`).
    EndpointId,
    "ep_",
    "endpoint"
);
prefixed_id!(
    /// A published event (`evt_…`); also the `webhook-id` header receivers see.
    EventId,
    "evt_",
    "event"
);
prefixed_id!(
    /// One event to one endpoint (`dlv_…`).
    DeliveryId,
    "dlv_",
    "delivery"
);
prefixed_id!(
    /// One request made for a delivery (`att_…`).
    AttemptId,
    "att_",
    "attempt"
);
prefixed_id!(
    /// A running hookline process (`ins_…`).
    InstanceId,
    "ins_",
    "instance"
);
prefixed_id!(
    /// A pull link for a webhook's events (`fl_…`).
    FeedLinkId,
    "fl_",
    "feed link"
);
prefixed_id!(
    /// A background job re-queueing a window's deliveries (`rcv_…`).
    RecoveryJobId,
    "rcv_",
    "recovery job"
);

impl DeliveryId {
    /// The least id a delivery made at `ms` or later can have: where a scan
    /// of ids in order starts for a time window (ids begin with the time
    /// they were made).
    pub fn floor_at(ms: i64) -> String {
        let ulid = ulid::Ulid::from_parts(u64::try_from(ms).unwrap_or(0), 0);
        format!("{}{}", Self::PREFIX, ulid.to_string().to_ascii_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::sea_query::ValueType;

    use super::*;

    #[test]
    fn ids_are_prefixed_and_increasing() {
        let a = WebhookId::new();
        let b = WebhookId::new();
        assert!(a.as_str().starts_with("wh_"));
        assert_eq!(a.as_str().len(), 29);
        assert!(b > a);
        assert_eq!(WebhookId::parse(a.as_str()), Some(a.clone()));
        assert_eq!(EventId::parse(a.as_str()), None);
        assert_eq!(WebhookId::parse("wh_'; drop table webhooks"), None);
    }

    #[test]
    fn a_floor_sorts_before_every_id_made_from_its_time_on() {
        let made = DeliveryId::new();
        let now = chrono_free_now_ms();
        assert!(DeliveryId::floor_at(now - 1_000).as_str() < made.as_str());
        assert!(DeliveryId::floor_at(now + 1_000).as_str() > made.as_str());
        assert_eq!(DeliveryId::floor_at(-5).len(), made.as_str().len());
    }

    fn chrono_free_now_ms() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_millis() as i64
    }

    #[test]
    fn parse_wants_the_prefix_and_26_alphanumerics() {
        let ulid = "01jf3w9k0000000000000000aa";
        assert!(DeliveryId::parse(&format!("dlv_{ulid}")).is_some());
        assert!(DeliveryId::parse(&format!("DLV_{ulid}")).is_none());
        assert!(DeliveryId::parse(&format!("dlv_{ulid}a")).is_none());
        assert!(DeliveryId::parse(&format!("dlv_{}", &ulid[1..])).is_none());
        assert!(DeliveryId::parse(&format!("dlv_{}-", &ulid[1..])).is_none());
        assert!(DeliveryId::parse("dlv_").is_none());
    }

    #[test]
    fn an_id_is_stored_and_serialized_as_its_plain_text() {
        let id = EventId::new();
        let value: Value = id.clone().into();
        assert_eq!(value, Value::from(id.as_str().to_owned()));
        assert_eq!(
            <EventId as ValueType>::try_from(value).ok(),
            Some(id.clone())
        );
        let json = serde_json::to_string(&id).expect("serialize");
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<EventId>(&json).ok(), Some(id));
        assert!(serde_json::from_str::<EventId>("\"wh_01jf3w9k0000000000000000aa\"").is_err());
    }
}
