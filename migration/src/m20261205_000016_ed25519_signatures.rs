//! Asymmetric signatures (Standard Webhooks `v1a`): a webhook signing with
//! an ed25519 key keeps its private key sealed in `secret` like any secret,
//! and its public key here, in the clear, for receivers to fetch. NULL: the
//! webhook signs with a shared HMAC secret. Nullable, so adding it rewrites
//! nothing.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Webhooks::Table)
                    .add_column(text_null(Webhooks::PublicKey))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Webhooks::Table)
                    .drop_column(Webhooks::PublicKey)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Webhooks {
    Table,
    PublicKey,
}
