//! Which webhooks want an event: their event type patterns, label filters
//! and filters on `data`, and the endpoints they deliver to.

use std::{collections::HashMap, sync::Arc};

use entity::{
    endpoint::{self, EndpointStatus},
    event,
    webhook::{self, WebhookStatus},
};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};

use serde_json::Value;

use super::{
    data_filter::{self, DataFilter},
    labels::{self, LabelFilter, Labels},
    patterns::Pattern,
    payload, queue,
    reach::PARTNER_LABEL,
    target_index::TargetIndex,
    webhooks::string_list,
};
use crate::{
    error::AppResult,
    ids::{EndpointId, EventId, WebhookId},
};

/// A webhook that may receive events, with its endpoints.
pub struct Target {
    pub webhook_id: WebhookId,
    pub patterns: Vec<Pattern>,
    pub filter: LabelFilter,
    /// Conditions on the event's `data`, checked last.
    pub data_filter: Option<DataFilter>,
    pub endpoint_ids: Vec<EndpointId>,
    /// Ordered delivery (see `webhook::Model::ordering`).
    pub ordering: Option<String>,
    /// A partner's webhook takes only events labelled with its login.
    pub for_login: Option<String>,
}

impl Target {
    /// What a webhook subscribes to, whatever its status.
    pub fn of(webhook: &webhook::Model, endpoint_ids: Vec<EndpointId>) -> Self {
        Self {
            webhook_id: webhook.id.clone(),
            patterns: string_list(&webhook.event_types)
                .iter()
                .filter_map(|p| Pattern::parse(p).ok())
                .collect(),
            filter: webhook
                .label_filter
                .as_ref()
                .map(labels::filter_from_json)
                .unwrap_or_default(),
            data_filter: webhook.data_filter.as_ref().map(data_filter::from_json),
            endpoint_ids,
            ordering: webhook.ordering.clone(),
            for_login: webhook.for_login.clone(),
        }
    }

    /// The sequence a delivery of an event with `labels` joins, when the
    /// webhook delivers in order: the value of its ordering label (`''`
    /// without one, or when it orders per endpoint only).
    pub fn ordering_key(&self, labels: &Labels) -> Option<String> {
        let label = self.ordering.as_deref()?;
        Some(labels.get(label).cloned().unwrap_or_default())
    }

    /// A new delivery of the event `event_id` of `tenant`, labelled
    /// `labels`, to `endpoint_id`, in its sequence when the webhook
    /// delivers in order.
    pub fn delivery(
        &self,
        tenant: &str,
        event_id: &EventId,
        labels: &Labels,
        endpoint_id: &EndpointId,
        now: i64,
    ) -> entity::delivery::Model {
        let mut delivery =
            queue::new_delivery_of(tenant, event_id, &self.webhook_id, endpoint_id, now);
        if let Some(key) = self.ordering_key(labels) {
            queue::in_sequence(&mut delivery, key);
        }
        delivery
    }

    /// Whether this webhook subscribes to an event: its type, its labels
    /// and then its `data`.
    pub fn wants(&self, event_type: &str, labels: &Labels, data: &Value) -> bool {
        self.wants_labelled(event_type, labels)
            && self.data_filter.as_ref().is_none_or(|f| f.matches(data))
    }

    /// Whether this webhook subscribes to events of `event_type` with
    /// `labels`, whatever their `data`.
    pub fn wants_labelled(&self, event_type: &str, labels: &Labels) -> bool {
        self.patterns.iter().any(|p| p.matches(event_type))
            && labels::filter_matches(&self.filter, labels)
            && self
                .for_login
                .as_ref()
                .is_none_or(|login| labels.get(PARTNER_LABEL) == Some(login))
    }

    /// Whether a stored event is one this webhook subscribes to. Its `data`
    /// is read from its body only when there is a filter on it.
    pub fn wants_stored(&self, event: &event::Model) -> bool {
        self.wants_labelled(&event.event_type, &labels::from_json(&event.labels))
            && self.wants_body(&event.body)
    }

    /// Whether choosing events needs their bodies: only a filter on `data`
    /// reads them.
    pub fn reads_bodies(&self) -> bool {
        self.data_filter.is_some()
    }

    /// Whether a stored event's body passes the filter on `data` (every
    /// body does when there is none).
    pub fn wants_body(&self, body: &str) -> bool {
        let Some(filter) = &self.data_filter else {
            return true;
        };
        payload::data_slice(body.as_bytes())
            .and_then(|data| serde_json::from_slice::<Value>(data).ok())
            .is_some_and(|data| filter.matches(&data))
    }
}

/// A tenant's active webhooks, their active endpoints, and what they
/// subscribe to.
pub struct ActiveSet {
    pub targets: Vec<Target>,
    /// Finds the targets that may want an event without a scan.
    pub index: TargetIndex,
    pub webhooks: HashMap<WebhookId, Arc<webhook::Model>>,
    pub endpoints: HashMap<EndpointId, Arc<endpoint::Model>>,
}

impl ActiveSet {
    /// The targets that want an event: candidates from the index, checked
    /// in full (the filter on `data` only runs on them).
    pub fn matching<'a>(
        &'a self,
        event_type: &'a str,
        labels: &'a Labels,
        data: &'a Value,
    ) -> impl Iterator<Item = &'a Target> + 'a {
        self.index
            .candidates(event_type, labels)
            .into_iter()
            .map(|i| &self.targets[i])
            .filter(move |t| t.wants(event_type, labels, data))
    }
}

pub(crate) async fn load_active<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
) -> Result<ActiveSet, DbErr> {
    let webhooks = webhook::Entity::find()
        .filter(webhook::Column::TenantId.eq(tenant))
        .filter(webhook::Column::Status.eq(WebhookStatus::Active))
        .all(db)
        .await?;
    let endpoints = if webhooks.is_empty() {
        Vec::new()
    } else {
        endpoint::Entity::find()
            .filter(endpoint::Column::TenantId.eq(tenant))
            .filter(endpoint::Column::WebhookId.is_in(webhooks.iter().map(|w| w.id.as_str())))
            .filter(endpoint::Column::Status.eq(EndpointStatus::Active))
            .order_by_asc(endpoint::Column::Position)
            .all(db)
            .await?
    };
    let targets: Vec<Target> = webhooks
        .iter()
        .map(|webhook| {
            let endpoint_ids = endpoints
                .iter()
                .filter(|e| e.webhook_id == webhook.id)
                .map(|e| e.id.clone())
                .collect();
            Target::of(webhook, endpoint_ids)
        })
        .collect();
    Ok(ActiveSet {
        index: TargetIndex::build(&targets),
        targets,
        webhooks: webhooks
            .into_iter()
            .map(|w| (w.id.clone(), Arc::new(w)))
            .collect(),
        endpoints: endpoints
            .into_iter()
            .map(|e| (e.id.clone(), Arc::new(e)))
            .collect(),
    })
}

/// The tenant's active webhooks with their active endpoints.
pub(crate) async fn active_targets<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
) -> AppResult<Vec<Target>> {
    Ok(load_active(db, tenant).await?.targets)
}
