//! Ordered delivery, opt-in per webhook: `webhooks.ordering` is NULL for
//! today's concurrency, `''` for one sequence per endpoint, or the name of
//! the label whose value keys the sequences (`affiliateId`).
//!
//! Each delivery of an ordered webhook carries its key (`ordering_key`, the
//! label's value, `''` without one) and its place (`ordering_seq`, then its
//! id). On PostgreSQL the place is the inserting transaction's id, which a
//! publish acknowledged before another began is always below (several
//! instances make ids that no clock orders); within one transaction the
//! delivery ids, made in publish order, decide. SQLite has one writer and
//! one instance, whose ids follow publish order: `ordering_seq` stays 0.
//!
//! The partial index holds only the open deliveries of ordered webhooks, so
//! "is an earlier one of this key still open?" is one short index probe and
//! unordered deliveries never enter it. Every new column is nullable or has
//! a constant default (PostgreSQL's `pg_current_xact_id()` default applies
//! to new rows only), so adding them rewrites nothing.

use sea_orm_migration::{prelude::*, schema::*, sea_orm::DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Webhooks::Table)
                    .add_column(text_null(Webhooks::Ordering))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Deliveries::Table)
                    .add_column(text_null(Deliveries::OrderingKey))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Deliveries::Table)
                    .add_column(big_integer(Deliveries::OrderingSeq).default(0))
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    "ALTER TABLE deliveries ALTER COLUMN ordering_seq \
                     SET DEFAULT (pg_current_xact_id()::text::bigint)",
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("deliveries_ordered_open")
                    .table(Deliveries::Table)
                    .col(Deliveries::EndpointId)
                    .col(Deliveries::OrderingKey)
                    .col(Deliveries::OrderingSeq)
                    .col(Deliveries::Id)
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
                    .name("deliveries_ordered_open")
                    .table(Deliveries::Table)
                    .to_owned(),
            )
            .await?;
        for column in [Deliveries::OrderingSeq, Deliveries::OrderingKey] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Deliveries::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Webhooks::Table)
                    .drop_column(Webhooks::Ordering)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Webhooks {
    Table,
    Ordering,
}

#[derive(DeriveIden)]
enum Deliveries {
    Table,
    Id,
    EndpointId,
    Status,
    OrderingKey,
    OrderingSeq,
}
