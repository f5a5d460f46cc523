//! Webhooks and their endpoints: validation, storage, secrets.

use std::{sync::Arc, time::Duration};

use entity::{
    endpoint,
    webhook::{self, WebhookStatus},
};
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
    sea_query::{Expr, Func, LikeExpr},
};
use serde_json::Value;

use super::{
    endpoints::{attach, endpoints_of, insert_endpoints},
    event_types::EventTypeService,
    facts::Facts,
    labels::{self, LabelFilter},
    pagination::{Page, PageRequest},
    patterns::{self},
    payload::{PayloadPatch, check_endpoint_url, check_payload},
    retry::{self, RetryPolicy},
    tenant_config, validate,
    webhook_input::{
        OrderingSpec, check_data_filter, check_headers, check_label_filter, check_ordering,
        check_patterns, check_policy, check_rate_limit, check_settable_status, check_timeout,
    },
};
use crate::{
    crypto::{SecretBox, SignatureScheme, generate_secret, public_key},
    db::Db,
    domain::address,
    error::{AppError, AppResult},
    ids::WebhookId,
    time::now_ms,
};

use super::{reach::MAX_LOGIN_LEN, webhook_input::MAX_ENDPOINTS};

#[derive(Clone, Debug)]
pub struct EndpointSpec {
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// Requests a second at most, over all instances; `None` for no limit.
    pub rate_limit_per_second: Option<i64>,
}

/// Retry settings as the API takes them, checked by [`RetryPolicy::from_millis`].
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicyInput {
    pub max_attempts: i64,
    pub initial_interval_ms: i64,
    pub max_interval_ms: i64,
}

#[derive(Clone, Debug)]
pub struct NewWebhook {
    pub name: String,
    pub description: Option<String>,
    /// `Active` or `Paused`; `Disabled` is the system's to set.
    pub status: WebhookStatus,
    pub event_types: Vec<String>,
    pub endpoints: Vec<EndpointSpec>,
    pub label_filter: Option<Value>,
    /// Conditions on `data` (see `data_filter`).
    pub data_filter: Option<Value>,
    pub ordering: Option<OrderingSpec>,
    pub signature_scheme: SignatureScheme,
    /// Body format, template and method (see `payload`).
    pub payload: PayloadPatch,
    pub team: Option<String>,
    /// The partner login it belongs to; `None` for the network's own.
    pub for_login: Option<String>,
    pub retry_policy: Option<RetryPolicyInput>,
    pub timeout_ms: Option<i64>,
}

/// A partial update: `None` leaves a field alone; for nullable fields,
/// `Some(None)` clears it.
#[derive(Clone, Debug, Default)]
pub struct WebhookPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub status: Option<WebhookStatus>,
    pub event_types: Option<Vec<String>>,
    /// Replaces the list. Endpoints whose URL stays keep their id and history.
    pub endpoints: Option<Vec<EndpointSpec>>,
    pub label_filter: Option<Option<Value>>,
    pub data_filter: Option<Option<Value>>,
    /// Applies to deliveries made from then on.
    pub ordering: Option<Option<OrderingSpec>>,
    pub payload: PayloadPatch,
    pub team: Option<Option<String>>,
    pub retry_policy: Option<RetryPolicyInput>,
    pub timeout_ms: Option<i64>,
}

#[derive(Clone, Debug, Default)]
pub struct WebhookFilter {
    pub status: Option<WebhookStatus>,
    /// Webhooks that receive this event type (exactly, by `object.*` or `*`).
    pub event_type: Option<String>,
    /// Case-insensitive substring of the name or description.
    pub search: Option<String>,
    pub team: Option<String>,
    /// Only the webhooks of this partner login.
    pub for_login: Option<String>,
}

/// A webhook with its endpoints, in order.
#[derive(Clone, Debug)]
pub struct WebhookRecord {
    pub webhook: webhook::Model,
    pub endpoints: Vec<endpoint::Model>,
}

impl WebhookRecord {
    pub fn retry_policy(&self) -> RetryPolicy {
        policy_of(&self.webhook)
    }

    pub fn patterns(&self) -> Vec<String> {
        string_list(&self.webhook.event_types)
    }

    pub fn label_filter(&self) -> Option<LabelFilter> {
        self.webhook
            .label_filter
            .as_ref()
            .map(labels::filter_from_json)
    }
}

pub use super::webhook_rows::{header_pairs, policy_of, string_list};

/// Operator settings that shape what admins may save.
#[derive(Clone, Debug)]
pub struct WebhookRules {
    pub allow_private_endpoints: bool,
    pub max_webhooks_per_tenant: u64,
    /// How many of a tenant's webhooks one partner login may hold.
    pub max_webhooks_per_partner: u64,
    pub secret_rotation_grace: Duration,
}

#[derive(Clone)]
pub struct WebhookService {
    pub(super) db: DatabaseConnection,
    pub(super) read: DatabaseConnection,
    pub(super) event_types: EventTypeService,
    pub(super) secrets: SecretBox,
    pub(super) rules: WebhookRules,
    /// Told of the operational events an admin's change publishes.
    pub(super) facts: Arc<dyn Facts>,
}

impl WebhookService {
    pub fn new(
        databases: &Db,
        (event_types, secrets): (EventTypeService, SecretBox),
        rules: WebhookRules,
        facts: Arc<dyn Facts>,
    ) -> Self {
        Self {
            db: databases.write.clone(),
            read: databases.read.clone(),
            event_types,
            secrets,
            rules,
            facts,
        }
    }

    /// The webhook with this id in this tenant; `NOT_FOUND` for any other
    /// tenant's webhook, so ids never reveal that they exist elsewhere.
    pub async fn find_in_tenant<C: ConnectionTrait>(
        db: &C,
        tenant: &str,
        id: &WebhookId,
    ) -> AppResult<webhook::Model> {
        webhook::Entity::find_by_id(id.clone())
            .filter(webhook::Column::TenantId.eq(tenant))
            .one(db)
            .await?
            .ok_or(AppError::NotFound("webhook"))
    }

    pub async fn get(&self, tenant: &str, id: &WebhookId) -> AppResult<WebhookRecord> {
        let webhook = Self::find_in_tenant(&self.read, tenant, id).await?;
        let endpoints = endpoints_of(&self.read, std::slice::from_ref(&webhook.id)).await?;
        Ok(attach(vec![webhook], endpoints).remove(0))
    }

    pub async fn list(
        &self,
        tenant: &str,
        filter: &WebhookFilter,
        page: &PageRequest,
    ) -> AppResult<Page<WebhookRecord>> {
        // Scoped here: its blanket `max`/`min` would shadow `Ord`'s elsewhere.
        use sea_orm::sea_query::ExprTrait;
        let mut query = webhook::Entity::find()
            .filter(webhook::Column::TenantId.eq(tenant))
            .order_by_desc(webhook::Column::Id)
            .limit(page.fetch_limit());
        if let Some(after) = &page.after {
            query = query.filter(webhook::Column::Id.lt(after.as_str()));
        }
        if let Some(status) = filter.status {
            query = query.filter(webhook::Column::Status.eq(status));
        }
        if let Some(team) = &filter.team {
            query = query.filter(webhook::Column::Team.eq(team.as_str()));
        }
        if let Some(login) = &filter.for_login {
            query = query.filter(webhook::Column::ForLogin.eq(login.as_str()));
        }
        if let Some(search) = filter.search.as_deref().filter(|s| !s.trim().is_empty()) {
            let like = LikeExpr::new(format!("%{}%", escape_like(&search.trim().to_lowercase())))
                .escape('\\');
            query = query.filter(
                Condition::any()
                    .add(
                        Expr::expr(Func::lower(Expr::col(webhook::Column::Name)))
                            .like(like.clone()),
                    )
                    .add(
                        Expr::expr(Func::lower(Expr::col(webhook::Column::Description))).like(like),
                    ),
            );
        }
        if let Some(event_type) = &filter.event_type {
            patterns::check_type_name(event_type)
                .map_err(|m| AppError::bad_input("filter.eventType", m))?;
            // Patterns are stored as a JSON array of strings; its text form
            // contains `"pattern"` for each, on SQLite and PostgreSQL alike.
            let mut any = Condition::any();
            for pattern in patterns::patterns_selecting(event_type) {
                let like = LikeExpr::new(format!("%\"{}\"%", escape_like(&pattern))).escape('\\');
                any = any.add(
                    Expr::expr(Func::cast_as(
                        Expr::col(webhook::Column::EventTypes),
                        "TEXT",
                    ))
                    .like(like),
                );
            }
            query = query.filter(any);
        }
        let rows = query.all(&self.read).await?;
        let ids: Vec<WebhookId> = rows.iter().map(|w| w.id.clone()).collect();
        let endpoints = endpoints_of(&self.read, &ids).await?;
        Ok(Page::from_rows(attach(rows, endpoints), page))
    }

    pub async fn create(
        &self,
        tenant: &str,
        login: &str,
        input: NewWebhook,
    ) -> AppResult<(WebhookRecord, String)> {
        let name = validate::text("name", &input.name, 1, 100)?;
        let description =
            validate::optional_text("description", input.description.as_deref(), 1000)?;
        let status = check_settable_status(input.status)?;
        let known = self.event_types.known(tenant).await?;
        let patterns = check_patterns(&known, &input.event_types)?;
        let endpoints = self.check_endpoints(&input.endpoints).await?;
        let label_filter = check_label_filter(input.label_filter.as_ref())?;
        let data_filter = check_data_filter(input.data_filter.as_ref())?;
        let ordering = check_ordering(input.ordering.as_ref())?;
        let payload = check_payload(None, &input.payload)?;
        let team = validate::optional_text("team", input.team.as_deref(), 100)?;
        let for_login =
            validate::optional_text("forLogin", input.for_login.as_deref(), MAX_LOGIN_LEN)?;
        let policy = match input.retry_policy {
            Some(raw) => check_policy(raw)?,
            None => RetryPolicy::DEFAULT,
        };
        let timeout_ms =
            check_timeout(input.timeout_ms.unwrap_or(retry::DEFAULT_TIMEOUT_MS.into()))?;

        let count = webhook::Entity::find()
            .filter(webhook::Column::TenantId.eq(tenant))
            .count(&self.db)
            .await?;
        if count >= self.rules.max_webhooks_per_tenant {
            return Err(AppError::Conflict(format!(
                "this tenant has reached its limit of {} webhooks",
                self.rules.max_webhooks_per_tenant
            )));
        }
        self.check_partner_room(tenant, for_login.as_deref())
            .await?;

        let secret = generate_secret(input.signature_scheme);
        let now = now_ms();
        let model = webhook::ActiveModel {
            id: Set(WebhookId::new()),
            tenant_id: Set(tenant.to_owned()),
            name: Set(name),
            description: Set(description.unwrap_or_default()),
            status: Set(status),
            disabled_reason: Set(None),
            event_types: Set(patterns),
            label_filter: Set(label_filter),
            data_filter: Set(data_filter),
            ordering: Set(ordering),
            team: Set(team),
            created_by: Set(login.to_owned()),
            for_login: Set(for_login),
            secret: Set(self.secrets.seal(&secret)),
            previous_secret: Set(None),
            previous_secret_expires_at: Set(None),
            public_key: Set(public_key(&secret).map_err(AppError::internal)?),
            payload_format: Set(payload.payload_format),
            body_template: Set(payload.body_template),
            http_method: Set(payload.http_method),
            max_attempts: Set(policy.max_attempts as i32),
            initial_interval_ms: Set(policy.initial_interval.as_millis() as i64),
            max_interval_ms: Set(policy.max_interval.as_millis() as i64),
            timeout_ms: Set(timeout_ms),
            failing_since: Set(None),
            last_sent_at: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        };
        let txn = self.db.begin().await?;
        let webhook = model.insert(&txn).await?;
        let endpoints = insert_endpoints(&txn, &webhook, &endpoints, &[]).await?;
        tenant_config::bump(&txn, tenant).await?;
        txn.commit().await?;
        let verify_with = webhook.public_key.clone().unwrap_or(secret);
        Ok((WebhookRecord { webhook, endpoints }, verify_with))
    }

    /// Checks URLs and headers; refuses private addresses unless allowed.
    pub(super) async fn check_endpoints(
        &self,
        specs: &[EndpointSpec],
    ) -> AppResult<Vec<EndpointSpec>> {
        if specs.is_empty() || specs.len() > MAX_ENDPOINTS {
            return Err(AppError::bad_input(
                "endpoints",
                format!("must list between 1 and {MAX_ENDPOINTS} endpoints"),
            ));
        }
        let mut checked: Vec<EndpointSpec> = Vec::with_capacity(specs.len());
        for (index, spec) in specs.iter().enumerate() {
            let field = validate::item("endpoints", index, "url");
            // A URL with macros is checked with `x` for each (its host is fixed).
            let (url, sample) =
                check_endpoint_url(spec.url.trim()).map_err(|m| AppError::bad_input(&field, m))?;
            if !self.rules.allow_private_endpoints {
                address::check_public(&sample)
                    .await
                    .map_err(|m| AppError::bad_input(&field, m))?;
            }
            if let Some(first) = checked.iter().position(|c| c.url == url) {
                return Err(AppError::bad_input(
                    field,
                    format!("duplicates endpoints[{first}].url"),
                ));
            }
            let headers = check_headers(index, &spec.headers)?;
            let limit = check_rate_limit(index, spec.rate_limit_per_second)?;
            checked.push(EndpointSpec {
                url,
                headers,
                rate_limit_per_second: limit.map(i64::from),
            });
        }
        Ok(checked)
    }
}

/// A webhook row read by [`lock_in_tenant`], so no other change to it can
/// commit before the transaction that read it ends. [`save_change`] takes
/// only this: a change computed from a row read any other way could undo
/// one committed in between (two rotations both keeping the same previous
/// secret, an update writing back fields another had just changed).
pub(super) struct Locked(webhook::Model);

impl std::ops::Deref for Locked {
    type Target = webhook::Model;

    fn deref(&self) -> &webhook::Model {
        &self.0
    }
}

/// The webhook with this id in this tenant (`NOT_FOUND` otherwise), read in
/// `txn` with its row locked until `txn` ends: a change made from it waits
/// for, and then sees, any other change to the row. PostgreSQL locks the row
/// (`FOR UPDATE`; a concurrent change waits at its own lock). SQLite has no
/// row locks and needs none: its one writer connection (see `db`) runs the
/// write pool's transactions one at a time, so nothing else writes between
/// this read and `txn`'s commit.
pub(super) async fn lock_in_tenant(
    txn: &DatabaseTransaction,
    tenant: &str,
    id: &WebhookId,
) -> AppResult<Locked> {
    webhook::Entity::find_by_id(id.clone())
        .filter(webhook::Column::TenantId.eq(tenant))
        .lock_exclusive()
        .one(txn)
        .await?
        .map(Locked)
        .ok_or(AppError::NotFound("webhook"))
}

/// The one way a stored webhook changes (update, pause, rotation): the row
/// is saved with an `updated_at` later than the one it had, and the tenant's
/// configuration version is bumped in the same transaction. Every cache of a
/// webhook keys on one or the other (publishing's tenant configuration on the
/// version, which each instance reads from the database in its publishing
/// transaction; the worker's decrypted targets on `updated_at`), so a change
/// reaches every instance on its next publish or claim. `existing` is the
/// row as locked in `txn`, which `model` was made from.
pub(super) async fn save_change(
    txn: &DatabaseTransaction,
    existing: &Locked,
    mut model: webhook::ActiveModel,
) -> AppResult<webhook::Model> {
    // Strictly later, even for two changes within one millisecond: an equal
    // stamp would let a cache keep the older copy.
    model.updated_at = Set(now_ms().max(existing.updated_at + 1));
    let webhook = model.update(txn).await?;
    tenant_config::bump(txn, &existing.tenant_id).await?;
    Ok(webhook)
}

fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}
