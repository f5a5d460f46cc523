//! The index on `deliveries.claimed_by` cost an index entry on every claim
//! and was only read when an instance died; the reaper now finds a dead
//! instance's rows through the open-deliveries index instead.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("deliveries_claimed_by")
                    .table(Deliveries::Table)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
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
}

#[derive(DeriveIden)]
enum Deliveries {
    Table,
    ClaimedBy,
}
