//! Changing a webhook's settings (a partial update; pausing and activating
//! are updates of its status).

use entity::webhook::{self, WebhookStatus};
use sea_orm::{ActiveValue::Set, TransactionTrait};

use super::{
    endpoints::{endpoints_of, replace_endpoints},
    event_types::KnownTypes,
    payload::check_payload,
    removal::{self, Removed},
    validate,
    webhook_input::{
        check_data_filter, check_label_filter, check_ordering, check_patterns, check_policy,
        check_settable_status, check_timeout,
    },
    webhooks::{WebhookPatch, WebhookRecord, WebhookService, lock_in_tenant, save_change},
};
use anyhow::anyhow;

use crate::{
    error::{AppError, AppResult},
    ids::WebhookId,
    time::now_ms,
};

impl WebhookService {
    /// Applies `patch`. It is checked first against the row as read without
    /// a lock, so bad input is refused before any endpoint's address is
    /// resolved and before a transaction begins. The change written is then
    /// made again from the row read locked in the writing transaction: the
    /// payload settings are checked as a whole with the fields a patch leaves
    /// alone, and activating a disabled webhook enables its endpoints, both
    /// of which depend on what the row holds when written, not when first
    /// read (a change committed in between would otherwise be undone).
    pub async fn update(
        &self,
        tenant: &str,
        id: &WebhookId,
        patch: WebhookPatch,
    ) -> AppResult<WebhookRecord> {
        let read = Self::find_in_tenant(&self.db, tenant, id).await?;
        let known = match &patch.event_types {
            Some(_) => Some(self.event_types.known(tenant).await?),
            None => None,
        };
        patched(&read, &patch, known.as_ref())?;
        let endpoints = match &patch.endpoints {
            Some(specs) => Some(self.check_endpoints(specs).await?),
            None => None,
        };
        let txn = self.db.begin().await?;
        let existing = lock_in_tenant(&txn, tenant, id).await?;
        let model = patched(&existing, &patch, known.as_ref())?;
        if existing.status == WebhookStatus::Disabled && patch.status == Some(WebhookStatus::Active)
        {
            // Set active again by an admin: its endpoints are too.
            super::endpoint_health::enable(&txn, &existing.id, None, now_ms()).await?;
        }
        let webhook = save_change(&txn, &existing, model).await?;
        let (endpoints, removed) = match endpoints {
            Some(specs) => replace_endpoints(&txn, &webhook, &specs).await?,
            None => (
                endpoints_of(&txn, std::slice::from_ref(&webhook.id)).await?,
                Removed::Endpoints(Vec::new()),
            ),
        };
        txn.commit().await?;
        // What a publish running meanwhile left for a removed endpoint goes too.
        removal::sweep_later(&self.db, removed);
        Ok(WebhookRecord { webhook, endpoints })
    }
}

/// `existing` with `patch` applied, every field checked; `known` holds the
/// tenant's event types when the patch sets event types. Only the fields the
/// patch sets (and those they imply) are marked to be written.
fn patched(
    existing: &webhook::Model,
    patch: &WebhookPatch,
    known: Option<&KnownTypes>,
) -> AppResult<webhook::ActiveModel> {
    let mut model: webhook::ActiveModel = existing.clone().into();
    if let Some(name) = &patch.name {
        model.name = Set(validate::text("name", name, 1, 100)?);
    }
    if let Some(description) = &patch.description {
        model.description = Set(
            validate::optional_text("description", Some(description), 1000)?.unwrap_or_default(),
        );
    }
    if let Some(status) = patch.status {
        model.status = Set(check_settable_status(status)?);
        if status == WebhookStatus::Active {
            // Re-enabling starts afresh: the failure streak is forgotten.
            model.disabled_reason = Set(None);
            model.failing_since = Set(None);
        }
    }
    if let Some(event_types) = &patch.event_types {
        let known = known.ok_or_else(|| AppError::internal(anyhow!("event types not loaded")))?;
        model.event_types = Set(check_patterns(known, event_types)?);
    }
    if let Some(filter) = &patch.label_filter {
        model.label_filter = Set(check_label_filter(filter.as_ref())?);
    }
    if let Some(filter) = &patch.data_filter {
        model.data_filter = Set(check_data_filter(filter.as_ref())?);
    }
    if let Some(ordering) = &patch.ordering {
        model.ordering = Set(check_ordering(ordering.as_ref())?);
    }
    if !patch.payload.is_empty() {
        let payload = check_payload(Some(existing), &patch.payload)?;
        model.payload_format = Set(payload.payload_format);
        model.body_template = Set(payload.body_template);
        model.http_method = Set(payload.http_method);
    }
    if let Some(team) = &patch.team {
        model.team = Set(validate::optional_text("team", team.as_deref(), 100)?);
    }
    if let Some(raw) = patch.retry_policy {
        let policy = check_policy(raw)?;
        model.max_attempts = Set(policy.max_attempts as i32);
        model.initial_interval_ms = Set(policy.initial_interval.as_millis() as i64);
        model.max_interval_ms = Set(policy.max_interval.as_millis() as i64);
    }
    if let Some(timeout) = patch.timeout_ms {
        model.timeout_ms = Set(check_timeout(timeout)?);
    }
    Ok(model)
}
