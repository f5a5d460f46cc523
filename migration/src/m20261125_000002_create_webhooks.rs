use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Webhooks::Table)
                    .col(text(Webhooks::Id).primary_key())
                    .col(text(Webhooks::TenantId))
                    .col(text(Webhooks::Name))
                    .col(text(Webhooks::Description))
                    .col(text(Webhooks::Status))
                    .col(text_null(Webhooks::DisabledReason))
                    .col(json_binary(Webhooks::EventTypes))
                    .col(json_binary_null(Webhooks::LabelFilter))
                    .col(text_null(Webhooks::Team))
                    .col(text(Webhooks::CreatedBy))
                    .col(text(Webhooks::Secret))
                    .col(text_null(Webhooks::PreviousSecret))
                    .col(big_integer_null(Webhooks::PreviousSecretExpiresAt))
                    .col(integer(Webhooks::MaxAttempts))
                    .col(big_integer(Webhooks::InitialIntervalMs))
                    .col(big_integer(Webhooks::MaxIntervalMs))
                    .col(integer(Webhooks::TimeoutMs))
                    .col(big_integer_null(Webhooks::FailingSince))
                    .col(big_integer_null(Webhooks::LastSentAt))
                    .col(big_integer(Webhooks::CreatedAt))
                    .col(big_integer(Webhooks::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        // Listing is "newest first" per tenant, and ids sort by creation time.
        manager
            .create_index(
                Index::create()
                    .name("webhooks_tenant_id")
                    .table(Webhooks::Table)
                    .col(Webhooks::TenantId)
                    .col(Webhooks::Id)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Endpoints::Table)
                    .col(text(Endpoints::Id).primary_key())
                    .col(text(Endpoints::WebhookId))
                    .col(text(Endpoints::TenantId))
                    .col(text(Endpoints::Url))
                    .col(json_binary(Endpoints::Headers))
                    .col(integer(Endpoints::Position))
                    .col(big_integer(Endpoints::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("endpoints_webhook")
                            .from(Endpoints::Table, Endpoints::WebhookId)
                            .to(Webhooks::Table, Webhooks::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("endpoints_webhook_id")
                    .table(Endpoints::Table)
                    .col(Endpoints::WebhookId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Endpoints::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Webhooks::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Webhooks {
    Table,
    Id,
    TenantId,
    Name,
    Description,
    Status,
    DisabledReason,
    EventTypes,
    LabelFilter,
    Team,
    CreatedBy,
    Secret,
    PreviousSecret,
    PreviousSecretExpiresAt,
    MaxAttempts,
    InitialIntervalMs,
    MaxIntervalMs,
    TimeoutMs,
    FailingSince,
    LastSentAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Endpoints {
    Table,
    Id,
    WebhookId,
    TenantId,
    Url,
    Headers,
    Position,
    CreatedAt,
}
