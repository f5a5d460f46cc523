//! The queue moves out of the deliveries table into a table of its own.
//!
//! `delivery_queue` holds one row per open delivery (PENDING or RETRYING)
//! and nothing else: when it is due (`due_at`, NULL while parked behind an
//! earlier delivery of its sequence), who holds it and under which claim,
//! and what a claim must answer without reading `deliveries`. Claims and
//! retries rewrite these rows, whose indexes stay as small as the backlog;
//! a delivery's own row is written when it is made and when an attempt
//! settles it, and never by a claim. Before, each claim rewrote a row of
//! `deliveries` and added an entry to each of its eight indexes, as deep as
//! the current week of history is large.
//!
//! The open deliveries are copied over, claims included; the two partial
//! indexes of open deliveries and the claim columns leave `deliveries`.
//! Dropping a column is a change of the catalogue on PostgreSQL (nothing is
//! rewritten); the copy reads the open deliveries through their index, so
//! the tables are locked about as long as the backlog takes to read.

use sea_orm_migration::{prelude::*, sea_orm::DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let postgres = manager.get_database_backend() == DbBackend::Postgres;
        // On PostgreSQL a delivery's place in its sequence is the inserting
        // transaction's id (see the migration that added ordering); the
        // queue row, inserted by the same transaction, gets the same one.
        let seq_default = if postgres {
            "(pg_current_xact_id()::text::bigint)"
        } else {
            "0"
        };
        let db = manager.get_connection();
        db.execute_unprepared(&format!(
            "CREATE TABLE delivery_queue (\
               id text NOT NULL PRIMARY KEY, \
               tenant_id text NOT NULL, \
               event_id text NOT NULL, \
               webhook_id text NOT NULL, \
               endpoint_id text NOT NULL \
                 CONSTRAINT delivery_queue_endpoint REFERENCES endpoints (id) ON DELETE CASCADE, \
               attempt_count integer NOT NULL, \
               due_at bigint NULL, \
               claim_token bigint NULL, \
               claimed_by text NULL, \
               ordering_key text NULL, \
               ordering_seq bigint NOT NULL DEFAULT {seq_default})"
        ))
        .await?;
        db.execute_unprepared(
            "CREATE INDEX delivery_queue_due ON delivery_queue (due_at) \
             WHERE due_at IS NOT NULL",
        )
        .await?;
        db.execute_unprepared(
            "CREATE INDEX delivery_queue_ordered ON delivery_queue \
             (endpoint_id, ordering_key, ordering_seq, id) WHERE ordering_key IS NOT NULL",
        )
        .await?;
        db.execute_unprepared(
            "INSERT INTO delivery_queue (id, tenant_id, event_id, webhook_id, endpoint_id, \
               attempt_count, due_at, claim_token, claimed_by, ordering_key, ordering_seq) \
             SELECT id, tenant_id, event_id, webhook_id, endpoint_id, attempt_count, \
               next_attempt_at, claim_token, claimed_by, ordering_key, ordering_seq \
             FROM deliveries WHERE status IN ('PENDING', 'RETRYING')",
        )
        .await?;
        for index in ["deliveries_due", "deliveries_ordered_open"] {
            db.execute_unprepared(&format!("DROP INDEX IF EXISTS {index}"))
                .await?;
        }
        for column in [Deliveries::ClaimToken, Deliveries::ClaimedBy] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Deliveries::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Err(DbErr::Migration(
            "the delivery queue cannot be folded back into the deliveries table".into(),
        ))
    }
}

#[derive(DeriveIden)]
enum Deliveries {
    Table,
    ClaimToken,
    ClaimedBy,
}
