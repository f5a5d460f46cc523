//! PostgreSQL: a delivery no longer locks its webhook's and endpoint's rows.
//!
//! A foreign key is checked by locking the row it names (`FOR KEY SHARE`)
//! for as long as the inserting transaction runs. Every new delivery took
//! three such locks (`deliveries` → webhook and → endpoint, `delivery_queue`
//! → endpoint), on rows that every other publish of the webhook locks too
//! and that the recorder updates (`lastSentAt`, the endpoint's health): a
//! row lock is a write to the row's page, logged, and when two
//! transactions hold one PostgreSQL makes a multixact for them. The three
//! keys go; what they did, hookline does itself (`domain::removal`):
//! removing an endpoint or a webhook deletes its deliveries and queue rows
//! explicitly, then waits for the transactions that were running at its
//! commit (a publish that read the configuration before it) and deletes
//! what they left; a worker that claims a delivery whose webhook or
//! endpoint no longer exists deletes it unsent. Builds from before this
//! migration count on the keys' cascades: stop every instance of them
//! before it runs (as for any migration), or their removals leave rows.
//!
//! SQLite keeps its keys: it has one writer at a time, so a check locks
//! nothing another transaction waits for.
//!
//! Lock: dropping a key changes the catalogue only, under an exclusive lock
//! on `deliveries`, `delivery_queue`, `webhooks` and `endpoints`: it waits
//! for the transactions using them to end, and holds up new ones until then.

use sea_orm_migration::{prelude::*, sea_orm::DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared(
            "ALTER TABLE deliveries DROP CONSTRAINT IF EXISTS deliveries_endpoint, \
             DROP CONSTRAINT IF EXISTS deliveries_webhook",
        )
        .await?;
        db.execute_unprepared(
            "ALTER TABLE delivery_queue DROP CONSTRAINT IF EXISTS delivery_queue_endpoint",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        // Rows a key would refuse are those of removed webhooks and
        // endpoints: what the keys' cascades would have deleted (and the
        // attempts of those deliveries).
        for sql in [
            "DELETE FROM delivery_attempts a WHERE a.delivery_id IN (SELECT d.id FROM deliveries d \
             WHERE NOT EXISTS (SELECT 1 FROM endpoints e WHERE e.id = d.endpoint_id) \
             OR NOT EXISTS (SELECT 1 FROM webhooks w WHERE w.id = d.webhook_id))",
            "DELETE FROM delivery_queue q WHERE NOT EXISTS \
             (SELECT 1 FROM endpoints e WHERE e.id = q.endpoint_id)",
            "DELETE FROM deliveries d WHERE NOT EXISTS \
             (SELECT 1 FROM endpoints e WHERE e.id = d.endpoint_id) \
             OR NOT EXISTS (SELECT 1 FROM webhooks w WHERE w.id = d.webhook_id)",
            "ALTER TABLE deliveries \
             ADD CONSTRAINT deliveries_endpoint FOREIGN KEY (endpoint_id) \
               REFERENCES endpoints (id) ON DELETE CASCADE, \
             ADD CONSTRAINT deliveries_webhook FOREIGN KEY (webhook_id) \
               REFERENCES webhooks (id) ON DELETE CASCADE",
            "ALTER TABLE delivery_queue ADD CONSTRAINT delivery_queue_endpoint \
             FOREIGN KEY (endpoint_id) REFERENCES endpoints (id) ON DELETE CASCADE",
        ] {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}
