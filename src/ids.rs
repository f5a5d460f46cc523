//! Public ids: a type prefix and a lowercase ULID, e.g. `wh_01jf3w9k…`.
//!
//! ULIDs start with their creation time, so ids of one kind sort by age and
//! "newest first" is simply `ORDER BY id DESC`, which also makes the id a
//! stable pagination cursor.

use std::sync::Mutex;

use ulid::Generator;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdKind {
    EventType,
    Webhook,
    Endpoint,
    Event,
    Delivery,
    Attempt,
    Instance,
    FeedLink,
}

impl IdKind {
    pub fn prefix(self) -> &'static str {
        match self {
            Self::EventType => "et_",
            Self::Webhook => "wh_",
            Self::Endpoint => "ep_",
            Self::Event => "evt_",
            Self::Delivery => "dlv_",
            Self::Attempt => "att_",
            Self::Instance => "ins_",
            Self::FeedLink => "fl_",
        }
    }
}

static GENERATOR: Mutex<Option<Generator>> = Mutex::new(None);

/// A new id of the given kind. Ids made by one process are strictly increasing.
pub fn new_id(kind: IdKind) -> String {
    let ulid = {
        let mut guard = GENERATOR
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let generator = guard.get_or_insert_with(Generator::new);
        // The monotonic generator only fails when 2^80 ids are made in one
        // millisecond; a fresh random ULID is then still unique.
        generator.generate().unwrap_or_else(|_| ulid::Ulid::new())
    };
    let mut id = String::with_capacity(kind.prefix().len() + 26);
    id.push_str(kind.prefix());
    id.push_str(&ulid.to_string().to_ascii_lowercase());
    id
}

/// Whether `id` has the shape of an id of this kind. Lookups skip the
/// database for anything else: it cannot exist.
pub fn is_valid(kind: IdKind, id: &str) -> bool {
    id.strip_prefix(kind.prefix())
        .is_some_and(|rest| rest.len() == 26 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_prefixed_and_increasing() {
        let a = new_id(IdKind::Webhook);
        let b = new_id(IdKind::Webhook);
        assert!(a.starts_with("wh_"));
        assert_eq!(a.len(), 29);
        assert!(b > a);
        assert!(is_valid(IdKind::Webhook, &a));
        assert!(!is_valid(IdKind::Event, &a));
        assert!(!is_valid(IdKind::Webhook, "wh_'; drop table webhooks"));
    }
}
