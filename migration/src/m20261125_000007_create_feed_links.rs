//! Pull feeds: links a third party uses to read a webhook's events instead of
//! receiving POSTs. Only a hash of each link's token is stored.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(FeedLinks::Table)
                    .col(text(FeedLinks::Id).primary_key())
                    .col(text(FeedLinks::TenantId))
                    .col(text(FeedLinks::WebhookId))
                    .col(text(FeedLinks::TokenHash))
                    .col(text(FeedLinks::CreatedBy))
                    .col(big_integer(FeedLinks::CreatedAt))
                    .col(big_integer_null(FeedLinks::RevokedAt))
                    .col(big_integer_null(FeedLinks::LastUsedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("feed_links_webhook")
                            .from(FeedLinks::Table, FeedLinks::WebhookId)
                            .to(Webhooks::Table, Webhooks::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("feed_links_token_hash")
                    .table(FeedLinks::Table)
                    .col(FeedLinks::TokenHash)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("feed_links_webhook_id")
                    .table(FeedLinks::Table)
                    .col(FeedLinks::WebhookId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(FeedLinks::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum FeedLinks {
    Table,
    Id,
    TenantId,
    WebhookId,
    TokenHash,
    CreatedBy,
    CreatedAt,
    RevokedAt,
    LastUsedAt,
}

#[derive(DeriveIden)]
enum Webhooks {
    Table,
    Id,
}
