//! What publishing needs to know about a tenant — its active webhooks with
//! their endpoints, and its own event types — cached in memory and checked
//! against a per-tenant version number that every change bumps. One key
//! lookup per publish replaces three queries, and instances sharing one
//! database never publish with a stale copy.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use entity::event_type;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Value};

use super::targets::{ActiveSet, load_active};
use crate::{db::statement, error::AppResult, ids::WebhookId};

/// A tenant's configuration as of one version.
pub struct TenantConfig {
    pub version: i64,
    pub active: ActiveSet,
    /// Custom event types by name, archived ones included.
    pub custom_types: HashMap<String, event_type::Model>,
}

#[derive(Default)]
pub struct TenantConfigCache {
    entries: Mutex<HashMap<String, Arc<TenantConfig>>>,
}

impl TenantConfigCache {
    /// The tenant's configuration, read through `db` (use the publishing
    /// transaction, so the version and the rows agree).
    pub async fn get<C: ConnectionTrait>(
        &self,
        db: &C,
        tenant: &str,
    ) -> AppResult<Arc<TenantConfig>> {
        let version = current(db, tenant).await?;
        if let Some(cached) = self.lock().get(tenant).filter(|c| c.version == version) {
            return Ok(cached.clone());
        }
        let custom_types = event_type::Entity::find()
            .filter(event_type::Column::TenantId.eq(tenant))
            .all(db)
            .await?
            .into_iter()
            .map(|t| (t.name.clone(), t))
            .collect();
        let config = Arc::new(TenantConfig {
            version,
            active: load_active(db, tenant).await?,
            custom_types,
        });
        self.lock().insert(tenant.to_owned(), config.clone());
        Ok(config)
    }

    /// The configuration last read, of whatever version, without asking the
    /// database: what publishing checks inputs against before its
    /// transaction, which then tells whether it was still current.
    pub fn cached(&self, tenant: &str) -> Option<Arc<TenantConfig>> {
        self.lock().get(tenant).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<TenantConfig>>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The tenant's configuration version (0 before any change).
pub async fn current<C: ConnectionTrait>(db: &C, tenant: &str) -> Result<i64, DbErr> {
    let row = db
        .query_one_raw(statement(
            db.get_database_backend(),
            "SELECT version FROM tenant_versions WHERE tenant_id = $1",
            vec![Value::from(tenant)],
        ))
        .await?;
    Ok(row
        .map(|r| r.try_get::<i64>("", "version"))
        .transpose()?
        .unwrap_or(0))
}

/// Marks the tenant's webhooks or event types as changed. Call it in the
/// transaction that makes the change.
pub async fn bump<C: ConnectionTrait>(db: &C, tenant: &str) -> Result<(), DbErr> {
    db.execute_raw(statement(
        db.get_database_backend(),
        "INSERT INTO tenant_versions (tenant_id, version) VALUES ($1, 1) \
         ON CONFLICT (tenant_id) DO UPDATE SET version = tenant_versions.version + 1",
        vec![Value::from(tenant)],
    ))
    .await?;
    Ok(())
}

/// [`bump`] for the tenant owning a webhook.
pub async fn bump_for_webhook<C: ConnectionTrait>(
    db: &C,
    webhook_id: &WebhookId,
) -> Result<(), DbErr> {
    db.execute_raw(statement(
        db.get_database_backend(),
        "INSERT INTO tenant_versions (tenant_id, version) \
         SELECT tenant_id, 1 FROM webhooks WHERE id = $1 \
         ON CONFLICT (tenant_id) DO UPDATE SET version = tenant_versions.version + 1",
        vec![Value::from(webhook_id.as_str())],
    ))
    .await?;
    Ok(())
}
