//! Health per endpoint rather than per webhook: each endpoint has its own
//! status (`ACTIVE`, or `DISABLED` with a reason and a time), its own
//! failure streak and its last success and failure; and every attempt
//! names the endpoint it went to, so an endpoint's attempts over the last
//! hour or day are one index range.
//!
//! The new endpoint columns are nullable or have a constant default, so
//! adding them rewrites nothing. The attempts' `endpoint_id` is filled from
//! their deliveries: one `UPDATE` over every stored attempt, which on
//! PostgreSQL takes row locks only (nothing else ever updates an attempt),
//! so publishing and delivering go on meanwhile.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per ALTER: SQLite takes one change at a time.
        let columns = [
            text(Endpoints::Status).default("ACTIVE").to_owned(),
            text_null(Endpoints::DisabledReason),
            big_integer_null(Endpoints::DisabledAt),
            big_integer_null(Endpoints::FailingSince),
            integer(Endpoints::ConsecutiveFailures)
                .default(0)
                .to_owned(),
            big_integer_null(Endpoints::LastSuccessAt),
            big_integer_null(Endpoints::LastFailureAt),
        ];
        for column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(Endpoints::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(DeliveryAttempts::Table)
                    .add_column(text_null(DeliveryAttempts::EndpointId))
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE delivery_attempts SET endpoint_id = \
                 (SELECT endpoint_id FROM deliveries WHERE deliveries.id = delivery_attempts.delivery_id)",
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("delivery_attempts_endpoint_started_at")
                    .table(DeliveryAttempts::Table)
                    .col(DeliveryAttempts::EndpointId)
                    .col(DeliveryAttempts::StartedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("delivery_attempts_endpoint_started_at")
                    .table(DeliveryAttempts::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(DeliveryAttempts::Table)
                    .drop_column(DeliveryAttempts::EndpointId)
                    .to_owned(),
            )
            .await?;
        for column in [
            Endpoints::Status,
            Endpoints::DisabledReason,
            Endpoints::DisabledAt,
            Endpoints::FailingSince,
            Endpoints::ConsecutiveFailures,
            Endpoints::LastSuccessAt,
            Endpoints::LastFailureAt,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Endpoints::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Endpoints {
    Table,
    Status,
    DisabledReason,
    DisabledAt,
    FailingSince,
    ConsecutiveFailures,
    LastSuccessAt,
    LastFailureAt,
}

#[derive(DeriveIden)]
enum DeliveryAttempts {
    Table,
    EndpointId,
    StartedAt,
}
