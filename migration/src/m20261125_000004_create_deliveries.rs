use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create_deliveries(manager).await?;
        create_attempts(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(DeliveryAttempts::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Deliveries::Table).to_owned())
            .await
    }
}

async fn create_deliveries(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(Deliveries::Table)
                .col(text(Deliveries::Id).primary_key())
                .col(text(Deliveries::TenantId))
                .col(text(Deliveries::EventId))
                .col(text(Deliveries::WebhookId))
                .col(text(Deliveries::EndpointId))
                .col(text(Deliveries::Status))
                .col(integer(Deliveries::AttemptCount))
                .col(big_integer_null(Deliveries::NextAttemptAt))
                .col(big_integer_null(Deliveries::ClaimToken))
                .col(big_integer_null(Deliveries::LastAttemptAt))
                .col(integer_null(Deliveries::LastResponseStatus))
                .col(big_integer(Deliveries::CreatedAt))
                .col(big_integer(Deliveries::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("deliveries_event")
                        .from(Deliveries::Table, Deliveries::EventId)
                        .to(Events::Table, Events::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("deliveries_webhook")
                        .from(Deliveries::Table, Deliveries::WebhookId)
                        .to(Webhooks::Table, Webhooks::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("deliveries_endpoint")
                        .from(Deliveries::Table, Deliveries::EndpointId)
                        .to(Endpoints::Table, Endpoints::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
    // The queue: only open deliveries are indexed by due time, so the claim
    // query never walks settled history.
    manager
        .create_index(
            Index::create()
                .name("deliveries_due")
                .table(Deliveries::Table)
                .col(Deliveries::NextAttemptAt)
                .and_where(Expr::col(Deliveries::Status).is_in(["PENDING", "RETRYING"]))
                .to_owned(),
        )
        .await?;
    for (name, col) in [
        ("deliveries_tenant_id", Deliveries::TenantId),
        ("deliveries_event_id", Deliveries::EventId),
        ("deliveries_webhook_id", Deliveries::WebhookId),
        ("deliveries_endpoint_id", Deliveries::EndpointId),
    ] {
        manager
            .create_index(
                Index::create()
                    .name(name)
                    .table(Deliveries::Table)
                    .col(col)
                    .col(Deliveries::Id)
                    .to_owned(),
            )
            .await?;
    }
    Ok(())
}

async fn create_attempts(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(DeliveryAttempts::Table)
                .col(text(DeliveryAttempts::Id).primary_key())
                .col(text(DeliveryAttempts::TenantId))
                .col(text(DeliveryAttempts::DeliveryId))
                .col(integer(DeliveryAttempts::AttemptNumber))
                .col(text(DeliveryAttempts::EndpointUrl))
                .col(text(DeliveryAttempts::Outcome))
                .col(big_integer(DeliveryAttempts::StartedAt))
                .col(integer(DeliveryAttempts::DurationMs))
                .col(integer_null(DeliveryAttempts::ResponseStatus))
                .col(text_null(DeliveryAttempts::ResponseBody))
                .col(text_null(DeliveryAttempts::ErrorKind))
                .col(text_null(DeliveryAttempts::ErrorMessage))
                .col(big_integer_null(DeliveryAttempts::NextAttemptAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("delivery_attempts_delivery")
                        .from(DeliveryAttempts::Table, DeliveryAttempts::DeliveryId)
                        .to(Deliveries::Table, Deliveries::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name("delivery_attempts_delivery_id")
                .table(DeliveryAttempts::Table)
                .col(DeliveryAttempts::DeliveryId)
                .col(DeliveryAttempts::AttemptNumber)
                .to_owned(),
        )
        .await
}

#[derive(DeriveIden)]
enum Events {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Webhooks {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Endpoints {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Deliveries {
    Table,
    Id,
    TenantId,
    EventId,
    WebhookId,
    EndpointId,
    Status,
    AttemptCount,
    NextAttemptAt,
    ClaimToken,
    LastAttemptAt,
    LastResponseStatus,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum DeliveryAttempts {
    Table,
    Id,
    TenantId,
    DeliveryId,
    AttemptNumber,
    EndpointUrl,
    Outcome,
    StartedAt,
    DurationMs,
    ResponseStatus,
    ResponseBody,
    ErrorKind,
    ErrorMessage,
    NextAttemptAt,
}
