//! A group commit's rows, gathered submission by submission: each
//! submission's events (those its idempotency keys do not answer with an
//! earlier one) and their deliveries to the tenant's matching webhooks.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use bytes::Bytes;
use entity::{delivery, event};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, Value};

use super::IDEMPOTENCY_WINDOW_MS;
use crate::{
    db::statement,
    domain::{
        events::Published,
        intake::{Queued, Reservation},
        publish_check::Checked,
        queue,
        tenant_config::{TenantConfig, TenantConfigCache},
    },
    error::AppResult,
    ids::DeliveryId,
};

/// What a group commit writes, gathered submission by submission.
#[derive(Default)]
pub(super) struct Rows {
    pub(super) configs: HashMap<String, Arc<TenantConfig>>,
    /// Events by (tenant, idempotency key), for keys repeated in the group.
    pub(super) keys: HashMap<(String, String), Published>,
    pub(super) events: Vec<event::Model>,
    pub(super) deliveries: Vec<delivery::Model>,
    /// The deliveries the intake took, written held by its claim.
    pub(super) held: HashSet<DeliveryId>,
}

impl Rows {
    /// The tenant's current configuration, read once per transaction.
    pub(super) async fn config<C: ConnectionTrait>(
        &mut self,
        cache: &TenantConfigCache,
        db: &C,
        tenant: &str,
    ) -> AppResult<Arc<TenantConfig>> {
        if let Some(config) = self.configs.get(tenant) {
            return Ok(config.clone());
        }
        let config = cache.get(db, tenant).await?;
        self.configs.insert(tenant.to_owned(), config.clone());
        Ok(config)
    }

    pub(super) fn add(&mut self, staged: Staged) -> Vec<Published> {
        self.keys.extend(staged.keys);
        self.events.extend(staged.events);
        self.deliveries.extend(staged.deliveries);
        staged.published
    }

    /// Drops the rows of tenants not in `kept` (a commit wrote only those).
    pub(super) fn keep_tenants(&mut self, kept: &HashSet<String>) {
        self.events.retain(|e| kept.contains(&e.tenant_id));
        self.deliveries.retain(|d| kept.contains(&d.tenant_id));
    }

    /// Marks the deliveries `reservation` takes, to be written held by its
    /// claim.
    pub(super) fn hold(&mut self, reservation: &Reservation) {
        self.held = self
            .deliveries
            .iter()
            .zip(&reservation.taken)
            .filter(|(_, taken)| **taken)
            .map(|(delivery, _)| delivery.id.clone())
            .collect();
    }

    /// How the deliveries marked by [`Self::hold`] are queued: held by
    /// `reservation`'s claim.
    pub(super) fn holding<'a>(&'a self, reservation: &'a Reservation) -> queue::Holding<'a> {
        queue::Holding {
            stamp: reservation.stamp(),
            ids: &self.held,
        }
    }

    /// The committed deliveries held under claim `token`, with what sending
    /// them needs, for the intake to start without reading anything back.
    pub(super) fn queued(&self, token: i64) -> Vec<Queued> {
        type Sendable = (Arc<str>, Bytes, Option<Arc<str>>);
        let bodies: HashMap<&str, Sendable> = self
            .events
            .iter()
            .map(|e| {
                (
                    e.id.as_str(),
                    (
                        Arc::from(e.event_type.as_str()),
                        Bytes::copy_from_slice(e.body.as_bytes()),
                        e.trace_context.as_deref().map(Arc::from),
                    ),
                )
            })
            .collect();
        self.deliveries
            .iter()
            .filter(|delivery| self.held.contains(&delivery.id))
            .filter_map(|delivery| {
                let config = self.configs.get(delivery.tenant_id.as_str())?;
                let (event_type, body, trace_context) =
                    bodies.get(delivery.event_id.as_str())?.clone();
                Some(Queued {
                    webhook: config.active.webhooks.get(&delivery.webhook_id)?.clone(),
                    endpoint: config.active.endpoints.get(&delivery.endpoint_id)?.clone(),
                    event_type,
                    body,
                    trace_context,
                    delivery: delivery.clone(),
                    claim_token: token,
                })
            })
            .collect()
    }
}

/// One submission's rows: its events (those its idempotency keys do not
/// answer with an earlier one) and their deliveries to the tenant's
/// matching webhooks as `config` has them.
pub(super) struct Staged {
    pub(super) published: Vec<Published>,
    pub(super) events: Vec<event::Model>,
    pub(super) deliveries: Vec<delivery::Model>,
    keys: Vec<((String, String), Published)>,
}

pub(super) async fn stage<C: ConnectionTrait>(
    txn: &C,
    checked: &Checked,
    config: &TenantConfig,
    earlier: &HashMap<(String, String), Published>,
) -> AppResult<Staged> {
    let tenant = checked.tenant.as_str();
    let mut staged = Staged {
        published: Vec::with_capacity(checked.items.len()),
        events: Vec::with_capacity(checked.items.len()),
        deliveries: Vec::new(),
        keys: Vec::new(),
    };
    let mut own_keys: HashMap<(String, String), Published> = HashMap::new();
    for item in &checked.items {
        let model = &item.model;
        if let Some(key) = &model.idempotency_key {
            let id = (tenant.to_owned(), key.clone());
            if let Some(first) = own_keys.get(&id).or_else(|| earlier.get(&id)) {
                staged.published.push(Published {
                    duplicate: true,
                    ..first.clone()
                });
                continue;
            }
            if let Some(existing) = take_idempotent(txn, tenant, key, model.created_at).await? {
                own_keys.insert(id, existing.clone());
                staged.published.push(existing);
                continue;
            }
        }
        let before = staged.deliveries.len();
        let data = &checked.inputs[item.input].data;
        for target in config
            .active
            .matching(&model.event_type, &item.labels, data)
        {
            for endpoint_id in &target.endpoint_ids {
                staged.deliveries.push(target.delivery(
                    &model.tenant_id,
                    &model.id,
                    &item.labels,
                    endpoint_id,
                    model.created_at,
                ));
            }
        }
        let entry = Published {
            event: model.clone(),
            delivery_count: (staged.deliveries.len() - before) as u64,
            duplicate: false,
        };
        if let Some(key) = &model.idempotency_key {
            own_keys.insert((tenant.to_owned(), key.clone()), entry.clone());
        }
        staged.published.push(entry);
        staged.events.push(model.clone());
    }
    staged.keys = own_keys.into_iter().collect();
    Ok(staged)
}

/// The event already published with this key in the last 24 hours, if any.
/// An older holder of the key (or one retention took) gives it up, so the
/// key can be used again. Two commits taking the same key at once both find
/// it free; the second one's key row is a unique violation, and it checks
/// again (see `insert::insert_events`).
async fn take_idempotent<C: ConnectionTrait>(
    txn: &C,
    tenant: &str,
    key: &str,
    now: i64,
) -> AppResult<Option<Published>> {
    let backend = txn.get_database_backend();
    let sql = "SELECT event_id, created_at FROM event_keys \
               WHERE tenant_id = $1 AND idempotency_key = $2";
    let values: Vec<Value> = vec![tenant.into(), key.into()];
    let Some(row) = txn.query_one_raw(statement(backend, sql, values)).await? else {
        return Ok(None);
    };
    let (event_id, created_at): (String, i64) =
        (row.try_get("", "event_id")?, row.try_get("", "created_at")?);
    if created_at > now - IDEMPOTENCY_WINDOW_MS
        && let Some(existing) = event::Entity::find()
            .filter(event::Column::Id.eq(event_id.as_str()))
            .one(txn)
            .await?
    {
        let delivery_count = delivery::Entity::find()
            .filter(delivery::Column::EventId.eq(existing.id.as_str()))
            .count(txn)
            .await?;
        return Ok(Some(Published {
            event: existing,
            delivery_count,
            duplicate: true,
        }));
    }
    let sql = "DELETE FROM event_keys \
               WHERE tenant_id = $1 AND idempotency_key = $2 AND event_id = $3";
    let values: Vec<Value> = vec![tenant.into(), key.into(), event_id.into()];
    txn.execute_raw(statement(backend, sql, values)).await?;
    Ok(None)
}
