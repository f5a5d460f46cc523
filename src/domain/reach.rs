//! How far a caller reaches within its tenant: the network's staff reach
//! everything; a partner (an affiliate or advertiser, seed 002's "For
//! Login") reaches only the webhooks that belong to its login, and the
//! deliveries and attempts of those. Whatever a partner cannot reach is
//! answered as if it did not exist (`NOT_FOUND`), as another tenant's is.

use entity::delivery;
use entity::webhook;
use sea_orm::{
    ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter,
    sea_query::{Query, SelectStatement},
};

use super::{deliveries::DeliveryService, webhooks::WebhookService};
use crate::{
    error::{AppError, AppResult},
    ids::{DeliveryId, EndpointId, WebhookId},
};

/// The label an event carries its partner's login in: a partner's webhook
/// receives only events whose `login` label is its own login.
pub const PARTNER_LABEL: &str = "login";

/// The longest partner login, as token subjects are.
pub const MAX_LOGIN_LEN: usize = 256;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reach {
    /// Everything in the tenant.
    Tenant,
    /// The webhooks of this partner login, and what hangs off them.
    Partner(String),
}

impl Reach {
    /// The partner login, when the caller is one.
    pub fn login(&self) -> Option<&str> {
        match self {
            Self::Tenant => None,
            Self::Partner(login) => Some(login),
        }
    }

    pub fn owns(&self, webhook: &webhook::Model) -> bool {
        match self {
            Self::Tenant => true,
            Self::Partner(login) => webhook.for_login.as_deref() == Some(login.as_str()),
        }
    }

    /// `NOT_FOUND` for a webhook out of reach, as for one that does not exist.
    pub fn check(&self, webhook: &webhook::Model) -> AppResult<()> {
        if self.owns(webhook) {
            Ok(())
        } else {
            Err(AppError::NotFound("webhook"))
        }
    }
}

/// The ids of the webhooks of partner `login` in `tenant`, for narrowing a
/// query on deliveries or attempts to them.
pub fn partner_webhooks(tenant: &str, login: &str) -> SelectStatement {
    Query::select()
        .column(webhook::Column::Id)
        .from(webhook::Entity)
        .and_where(webhook::Column::TenantId.eq(tenant))
        .and_where(webhook::Column::ForLogin.eq(login))
        .to_owned()
}

impl WebhookService {
    /// `CONFLICT` when partner `login` already holds as many webhooks as
    /// one partner may: a partner cannot use up its network's allowance.
    pub(super) async fn check_partner_room(
        &self,
        tenant: &str,
        login: Option<&str>,
    ) -> AppResult<()> {
        let Some(login) = login else {
            return Ok(());
        };
        let held = webhook::Entity::find()
            .filter(webhook::Column::TenantId.eq(tenant))
            .filter(webhook::Column::ForLogin.eq(login))
            .count(&self.db)
            .await?;
        if held >= self.rules.max_webhooks_per_partner {
            return Err(AppError::Conflict(format!(
                "partner `{login}` has reached its limit of {} webhooks",
                self.rules.max_webhooks_per_partner
            )));
        }
        Ok(())
    }

    /// The webhook, when `reach` extends to it; `NOT_FOUND` otherwise. The
    /// staff's reach costs no query: what they act on is checked where
    /// they act.
    pub async fn reachable(&self, tenant: &str, reach: &Reach, id: &WebhookId) -> AppResult<()> {
        if *reach == Reach::Tenant {
            return Ok(());
        }
        reach.check(&Self::find_in_tenant(&self.db, tenant, id).await?)
    }
}

impl WebhookService {
    /// `NOT_FOUND` unless `reach` extends to the endpoint's webhook.
    pub async fn endpoint_reachable(
        &self,
        tenant: &str,
        reach: &Reach,
        id: &EndpointId,
    ) -> AppResult<()> {
        if *reach == Reach::Tenant {
            return Ok(());
        }
        let endpoint = entity::endpoint::Entity::find_by_id(id.clone())
            .filter(entity::endpoint::Column::TenantId.eq(tenant))
            .one(&self.db)
            .await?
            .ok_or(AppError::NotFound("endpoint"))?;
        self.reachable(tenant, reach, &endpoint.webhook_id)
            .await
            .map_err(|_| AppError::NotFound("endpoint"))
    }
}

impl DeliveryService {
    /// The delivery, when `reach` extends to its webhook; `NOT_FOUND`
    /// otherwise.
    pub async fn find_reachable(
        &self,
        tenant: &str,
        reach: &Reach,
        id: &DeliveryId,
    ) -> AppResult<delivery::Model> {
        let found = self.find_in_tenant(tenant, id).await?;
        if let Reach::Partner(_) = reach {
            let webhook = WebhookService::find_in_tenant(&self.read, tenant, &found.webhook_id)
                .await
                .map_err(|_| AppError::NotFound("delivery"))?;
            if !reach.owns(&webhook) {
                return Err(AppError::NotFound("delivery"));
            }
        }
        Ok(found)
    }
}
