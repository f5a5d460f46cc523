//! A position for each event that follows commit order, for readers that
//! promise "everything after this cursor" (pull feeds).
//!
//! Event ids are taken before their transaction commits, so a transaction that
//! commits later can hold smaller ids than one a reader has already passed.
//! `commit_seq` orders events by transaction instead:
//! - PostgreSQL: the inserting transaction's id (`pg_current_xact_id()`), by
//!   default. Readers serve only events below the oldest transaction still
//!   open, so nothing can commit behind them.
//! - SQLite: one writer at a time, so hookline numbers each committing
//!   transaction from the `counters` table created here.
//!
//! Existing events get 0 and keep their id order ahead of newer ones. Adding
//! a column with a constant default does not rewrite the table; building the
//! index blocks writes to `events` while it runs (seconds per million rows).

use sea_orm_migration::{prelude::*, schema::*, sea_orm::DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Events::Table)
                    .add_column(big_integer(Events::CommitSeq).default(0))
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    "ALTER TABLE events ALTER COLUMN commit_seq \
                     SET DEFAULT (pg_current_xact_id()::text::bigint)",
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("events_tenant_commit_seq")
                    .table(Events::Table)
                    .col(Events::TenantId)
                    .col(Events::CommitSeq)
                    .col(Events::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Counters::Table)
                    .col(text(Counters::Name).primary_key())
                    .col(big_integer(Counters::Value))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Counters::Table).to_owned())
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("events_tenant_commit_seq")
                    .table(Events::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Events::Table)
                    .drop_column(Events::CommitSeq)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Events {
    Table,
    TenantId,
    Id,
    CommitSeq,
}

#[derive(DeriveIden)]
enum Counters {
    Table,
    Name,
    Value,
}
