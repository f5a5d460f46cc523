//! Storing a webhook's endpoints.

use std::collections::HashMap;

use entity::{endpoint, webhook};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder,
};
use serde_json::Value;

use super::{
    removal::{self, Removed},
    webhooks::{EndpointSpec, WebhookRecord},
};
use crate::{
    error::AppResult,
    ids::{EndpointId, WebhookId},
};

pub(super) async fn endpoints_of<C: ConnectionTrait>(
    db: &C,
    webhook_ids: &[WebhookId],
) -> AppResult<Vec<endpoint::Model>> {
    if webhook_ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(endpoint::Entity::find()
        .filter(endpoint::Column::WebhookId.is_in(webhook_ids.iter().map(WebhookId::as_str)))
        .order_by_asc(endpoint::Column::Position)
        .all(db)
        .await?)
}

pub(super) fn attach(
    webhooks: Vec<webhook::Model>,
    endpoints: Vec<endpoint::Model>,
) -> Vec<WebhookRecord> {
    let mut by_webhook: HashMap<WebhookId, Vec<endpoint::Model>> = HashMap::new();
    for endpoint in endpoints {
        by_webhook
            .entry(endpoint.webhook_id.clone())
            .or_default()
            .push(endpoint);
    }
    webhooks
        .into_iter()
        .map(|webhook| {
            let endpoints = by_webhook.remove(&webhook.id).unwrap_or_default();
            WebhookRecord { webhook, endpoints }
        })
        .collect()
}

fn headers_json(headers: &[(String, String)]) -> Value {
    Value::from(
        headers
            .iter()
            .map(|(name, value)| Value::from(vec![name.clone(), value.clone()]))
            .collect::<Vec<_>>(),
    )
}

/// Inserts endpoints for `specs`, reusing the ids in `keep` (url -> id).
pub(super) async fn insert_endpoints<C: ConnectionTrait>(
    db: &C,
    webhook: &webhook::Model,
    specs: &[EndpointSpec],
    keep: &[endpoint::Model],
) -> AppResult<Vec<endpoint::Model>> {
    let mut saved = Vec::with_capacity(specs.len());
    for (position, spec) in specs.iter().enumerate() {
        let existing = keep.iter().find(|e| e.url == spec.url);
        let model = endpoint::ActiveModel {
            id: Set(existing.map_or_else(EndpointId::new, |e| e.id.clone())),
            webhook_id: Set(webhook.id.clone()),
            tenant_id: Set(webhook.tenant_id.clone()),
            url: Set(spec.url.clone()),
            headers: Set(headers_json(&spec.headers)),
            position: Set(position as i32),
            created_at: Set(existing.map_or(webhook.updated_at, |e| e.created_at)),
            rate_limit_per_second: Set(spec.rate_limit_per_second.map(|n| n as i32)),
            // Health starts at the columns' defaults (active, no streak) and
            // is `endpoint_health`'s to change. The throttle's next slot
            // likewise starts at its default (free at once) and is
            // `throttle`'s alone: left out here, an endpoint that stays
            // keeps its place in the schedule.
            ..Default::default()
        };
        saved.push(if existing.is_some() {
            model.update(db).await?
        } else {
            model.insert(db).await?
        });
    }
    Ok(saved)
}

/// Replaces a webhook's endpoints. An endpoint whose URL is still listed keeps
/// its id (and its deliveries); one that is gone is deleted with its history,
/// and named in the answer for [`removal::sweep_later`] once the caller commits.
pub(super) async fn replace_endpoints<C: ConnectionTrait>(
    db: &C,
    webhook: &webhook::Model,
    specs: &[EndpointSpec],
) -> AppResult<(Vec<endpoint::Model>, Removed)> {
    let current = endpoints_of(db, std::slice::from_ref(&webhook.id)).await?;
    let removed: Vec<String> = current
        .iter()
        .filter(|e| !specs.iter().any(|s| s.url == e.url))
        .map(|e| e.id.as_str().to_owned())
        .collect();
    if !removed.is_empty() {
        removal::forget(db, &Removed::Endpoints(removed.clone())).await?;
        endpoint::Entity::delete_many()
            .filter(endpoint::Column::WebhookId.eq(webhook.id.as_str()))
            .filter(endpoint::Column::Id.is_in(removed.iter().map(String::as_str)))
            .exec(db)
            .await?;
    }
    let endpoints = insert_endpoints(db, webhook, specs, &current).await?;
    Ok((endpoints, Removed::Endpoints(removed)))
}
