//! Deleting a webhook, with its endpoints, deliveries and attempts.

use std::time::Duration;

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
        let mut tries = 0;
        loop {
            match self.delete_once(tenant, &webhook.id).await {
                Err(err) if tries < 4 && crate::db::is_transaction_conflict(&err) => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(10 * tries)).await;
                }
                Err(err) => return Err(err.into()),
                Ok(()) => break,
            }
        }
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
