//! Attempts by tenant and time, for the metrics behind the dashboard's chart
//! and for retention.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("delivery_attempts_tenant_started_at")
                    .table(DeliveryAttempts::Table)
                    .col(DeliveryAttempts::TenantId)
                    .col(DeliveryAttempts::StartedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("delivery_attempts_tenant_started_at")
                    .table(DeliveryAttempts::Table)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum DeliveryAttempts {
    Table,
    TenantId,
    StartedAt,
}
