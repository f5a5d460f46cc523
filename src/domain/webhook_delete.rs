//! Deleting a webhook, with its endpoints, deliveries and attempts.

use entity::webhook;
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, TransactionTrait};

use super::{
    removal::{self, Removed},
    tenant_config,
    webhooks::WebhookService,
};
use crate::{error::AppResult, ids::WebhookId};

impl WebhookService {
    /// Deletes the webhook with its endpoints, deliveries and attempts.
    pub async fn delete(&self, tenant: &str, id: &WebhookId) -> AppResult<()> {
        let webhook = Self::find_in_tenant(&self.db, tenant, id).await?;
        // The delete reaches attempts, endpoints and deliveries, which the
        // recorder locks in another order: PostgreSQL may abort one of the
        // two as a deadlock, and running it again succeeds.
        crate::db::retry_conflicts(|| self.delete_once(tenant, &webhook.id)).await?;
        // Deleted: what a publish running meanwhile left goes too.
        removal::sweep_later(&self.db, Removed::Webhook(webhook.id));
        Ok(())
    }

    async fn delete_once(&self, tenant: &str, id: &WebhookId) -> Result<(), DbErr> {
        let txn = self.db.begin().await?;
        removal::forget(&txn, &Removed::Webhook(id.clone())).await?;
        webhook::Entity::delete_by_id(id.clone())
            .filter(webhook::Column::TenantId.eq(tenant))
            .exec(&txn)
            .await?;
        tenant_config::bump(&txn, tenant).await?;
        txn.commit().await
    }
}
