use sea_orm::entity::prelude::*;

use crate::ids::{AttemptId, DeliveryId, EndpointId, InstanceId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum AttemptOutcome {
    #[sea_orm(string_value = "SUCCEEDED")]
    Succeeded,
    #[sea_orm(string_value = "FAILED")]
    Failed,
}

/// Why an attempt failed: made by the delivery client and the outcome rules,
/// stored in `error_kind`, served as GraphQL's `AttemptErrorKind` and counted
/// under the metric label [`Self::as_label`]. The stored strings are the ones
/// the column has always held, so rows written before this type still read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum AttemptErrorKind {
    #[sea_orm(string_value = "TIMEOUT")]
    Timeout,
    #[sea_orm(string_value = "CONNECTION")]
    Connection,
    #[sea_orm(string_value = "TLS")]
    Tls,
    #[sea_orm(string_value = "DNS")]
    Dns,
    #[sea_orm(string_value = "BLOCKED_ADDRESS")]
    BlockedAddress,
    /// The only kind with a response: its status was outside 2xx.
    #[sea_orm(string_value = "NON_2XX")]
    Non2xx,
    /// No request was made: the webhook's template or URL macros could not
    /// be rendered for this event.
    #[sea_orm(string_value = "RENDER")]
    Render,
}

impl AttemptErrorKind {
    /// The `error_kind` label of `hookline_delivery_attempts_total`. Spelled
    /// out rather than derived from the stored string: dashboards and alerts
    /// query these, so a renamed column value must not move them silently.
    pub fn as_label(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connection => "connection",
            Self::Tls => "tls",
            Self::Dns => "dns",
            Self::BlockedAddress => "blocked_address",
            Self::Non2xx => "non_2xx",
            Self::Render => "render",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "delivery_attempts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: AttemptId,
    pub tenant_id: String,
    pub delivery_id: DeliveryId,
    pub attempt_number: i32,
    /// The URL the request went to, as it was at the time.
    pub endpoint_url: String,
    pub outcome: AttemptOutcome,
    pub started_at: i64,
    pub duration_ms: i32,
    pub response_status: Option<i32>,
    /// The first 4 KiB of the response body, lossily decoded as UTF-8, NUL
    /// as U+FFFD.
    pub response_body: Option<String>,
    /// Set exactly when the attempt failed.
    pub error_kind: Option<AttemptErrorKind>,
    pub error_message: Option<String>,
    pub next_attempt_at: Option<i64>,
    /// The hookline instance that made the attempt.
    pub instance_id: Option<InstanceId>,
    /// The endpoint the request went to (NULL only if that endpoint was
    /// deleted before this column existed).
    pub endpoint_id: Option<EndpointId>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use sea_orm::Iterable;

    use super::*;

    /// Every kind with the string stored for it and its metric label. Both
    /// are contracts (existing rows, existing dashboards): changing a line
    /// here is a migration, not a refactor.
    const KINDS: &[(AttemptErrorKind, &str, &str)] = &[
        (AttemptErrorKind::Timeout, "TIMEOUT", "timeout"),
        (AttemptErrorKind::Connection, "CONNECTION", "connection"),
        (AttemptErrorKind::Tls, "TLS", "tls"),
        (AttemptErrorKind::Dns, "DNS", "dns"),
        (
            AttemptErrorKind::BlockedAddress,
            "BLOCKED_ADDRESS",
            "blocked_address",
        ),
        (AttemptErrorKind::Non2xx, "NON_2XX", "non_2xx"),
    ];

    #[test]
    fn the_table_lists_every_kind_once() {
        let listed: Vec<_> = KINDS.iter().map(|(kind, _, _)| *kind).collect();
        let all: Vec<_> = AttemptErrorKind::iter().collect();
        assert_eq!(listed, all);
    }

    #[test]
    fn each_kind_is_stored_as_its_column_string_and_read_back() {
        for (kind, stored, _) in KINDS {
            assert_eq!(kind.to_value(), *stored);
            assert_eq!(
                AttemptErrorKind::try_from_value(&(*stored).to_owned()).ok(),
                Some(*kind)
            );
        }
    }

    #[test]
    fn an_unknown_column_string_is_refused() {
        assert!(AttemptErrorKind::try_from_value(&"non_2xx".to_owned()).is_err());
        assert!(AttemptErrorKind::try_from_value(&String::new()).is_err());
    }

    #[test]
    fn each_kind_has_its_own_metric_label_the_lower_cased_column_string() {
        for (kind, stored, label) in KINDS {
            assert_eq!(kind.as_label(), *label);
            assert_eq!(*label, stored.to_ascii_lowercase());
        }
        let labels: HashSet<_> = AttemptErrorKind::iter()
            .map(AttemptErrorKind::as_label)
            .collect();
        assert_eq!(labels.len(), KINDS.len());
    }
}
