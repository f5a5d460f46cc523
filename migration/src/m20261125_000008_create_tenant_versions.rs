//! A version number per tenant, bumped whenever its webhooks or event types
//! change, so every instance can cache what publishing needs and know, with
//! one key lookup, when its copy is stale.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(TenantVersions::Table)
                    .col(text(TenantVersions::TenantId).primary_key())
                    .col(big_integer(TenantVersions::Version))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(TenantVersions::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum TenantVersions {
    Table,
    TenantId,
    Version,
}
