//! The heads of ordered sequences that are due, in an index of their own:
//! the claim takes them from here, and unordered deliveries by the plain
//! due-time scan (see `queue::claim_due`). Only open deliveries of ordered
//! webhooks enter it; building it reads only those.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("deliveries_ordered_due")
                    .table(Deliveries::Table)
                    .col(Deliveries::NextAttemptAt)
                    .and_where(Expr::col(Deliveries::OrderingKey).is_not_null())
                    .and_where(Expr::col(Deliveries::Status).is_in(["PENDING", "RETRYING"]))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("deliveries_ordered_due")
                    .table(Deliveries::Table)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Deliveries {
    Table,
    NextAttemptAt,
    OrderingKey,
    Status,
}
