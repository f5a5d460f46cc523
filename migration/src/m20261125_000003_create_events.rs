use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Events::Table)
                    .col(text(Events::Id).primary_key())
                    .col(text(Events::TenantId))
                    .col(text(Events::EventType))
                    .col(big_integer(Events::OccurredAt))
                    // Text, not JSON: these are the exact bytes that get signed.
                    .col(text(Events::Body))
                    .col(json_binary(Events::Labels))
                    .col(text_null(Events::IdempotencyKey))
                    .col(big_integer(Events::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("events_tenant_id")
                    .table(Events::Table)
                    .col(Events::TenantId)
                    .col(Events::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("events_tenant_idempotency_key")
                    .table(Events::Table)
                    .col(Events::TenantId)
                    .col(Events::IdempotencyKey)
                    .unique()
                    .and_where(Expr::col(Events::IdempotencyKey).is_not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("events_created_at")
                    .table(Events::Table)
                    .col(Events::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Events::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Events {
    Table,
    Id,
    TenantId,
    EventType,
    OccurredAt,
    Body,
    Labels,
    IdempotencyKey,
    CreatedAt,
}
