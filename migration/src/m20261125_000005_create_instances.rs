//! Worker instances and their heartbeats, so the claims of an instance that
//! died are handed back within seconds instead of when their lease runs out;
//! deliveries record who holds them and attempts who made them.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Instances::Table)
                    .col(text(Instances::Id).primary_key())
                    .col(text(Instances::Host))
                    .col(big_integer(Instances::StartedAt))
                    .col(big_integer(Instances::HeartbeatAt))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Deliveries::Table)
                    .add_column(text_null(Deliveries::ClaimedBy))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(DeliveryAttempts::Table)
                    .add_column(text_null(DeliveryAttempts::InstanceId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("deliveries_claimed_by")
                    .table(Deliveries::Table)
                    .col(Deliveries::ClaimedBy)
                    .and_where(Expr::col(Deliveries::ClaimedBy).is_not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("deliveries_claimed_by")
                    .table(Deliveries::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Deliveries::Table)
                    .drop_column(Deliveries::ClaimedBy)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(Instances::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Instances {
    Table,
    Id,
    Host,
    StartedAt,
    HeartbeatAt,
}

#[derive(DeriveIden)]
enum DeliveryAttempts {
    Table,
    InstanceId,
}

#[derive(DeriveIden)]
enum Deliveries {
    Table,
    ClaimedBy,
}
