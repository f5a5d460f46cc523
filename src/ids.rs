//! Public ids, one type per kind (`WebhookId`, `DeliveryId`, …), defined with
//! the entities that store them and re-exported here so that modules which
//! must not depend on `entity` (the GraphQL resolvers) can still name them.

pub use entity::ids::{
    AttemptId, DeliveryId, EndpointId, EventId, EventTypeId, FeedLinkId, InstanceId, PublicId,
    RecoveryJobId, WebhookId,
};

/// A client's filter on one id. Text that cannot be an id of the kind asked
/// for is not refused: such a filter has always simply matched nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdFilter<T> {
    Is(T),
    MatchesNothing,
}

impl<T: PublicId + PartialEq> IdFilter<T> {
    pub fn parse(text: &str) -> Self {
        T::parse(text).map_or(Self::MatchesNothing, Self::Is)
    }

    pub fn matches(&self, id: &T) -> bool {
        matches!(self, Self::Is(wanted) if wanted == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_on_text_that_is_no_such_id_matches_nothing() {
        let id = WebhookId::new();
        assert!(IdFilter::parse(id.as_str()).matches(&id));
        assert!(!IdFilter::parse(id.as_str()).matches(&WebhookId::new()));
        let wrong_kind: IdFilter<WebhookId> = IdFilter::parse(EventId::new().as_str());
        assert_eq!(wrong_kind, IdFilter::MatchesNothing);
        assert!(!wrong_kind.matches(&id));
    }
}
