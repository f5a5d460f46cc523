//! Recovery after an outage: a job that re-queues, in the background and a
//! chunk at a time, the settled deliveries of a window. The job row holds
//! its filter, its cursor and its counts, so it goes on from where it was
//! after a restart, on whichever instance holds its lease.
//!
//! Each delivery a job re-queues is stamped with the job's id
//! (`deliveries.recovery_job_id`), so the job can say how many of its
//! deliveries have since arrived or failed again, and how many are still
//! open. The column is nullable without a default (adding it rewrites
//! nothing) and its index is partial: deliveries never recovered, the
//! great majority, are not in it.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RecoveryJobs::Table)
                    .col(text(RecoveryJobs::Id).primary_key())
                    .col(text(RecoveryJobs::TenantId))
                    .col(text(RecoveryJobs::WebhookId))
                    .col(text_null(RecoveryJobs::EndpointId))
                    .col(big_integer(RecoveryJobs::Since))
                    .col(big_integer_null(RecoveryJobs::Until))
                    .col(text(RecoveryJobs::Statuses))
                    .col(text(RecoveryJobs::State))
                    .col(text_null(RecoveryJobs::Cursor))
                    .col(big_integer(RecoveryJobs::Total))
                    .col(big_integer(RecoveryJobs::Queued))
                    .col(text_null(RecoveryJobs::LeasedBy))
                    .col(big_integer_null(RecoveryJobs::LeaseUntil))
                    .col(big_integer(RecoveryJobs::CreatedAt))
                    .col(big_integer(RecoveryJobs::UpdatedAt))
                    .col(big_integer_null(RecoveryJobs::FinishedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("recovery_jobs_webhook")
                            .from(RecoveryJobs::Table, RecoveryJobs::WebhookId)
                            .to(Webhooks::Table, Webhooks::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("recovery_jobs_tenant_id")
                    .table(RecoveryJobs::Table)
                    .col(RecoveryJobs::TenantId)
                    .col(RecoveryJobs::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Deliveries::Table)
                    .add_column(text_null(Deliveries::RecoveryJobId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("deliveries_recovery_job_id")
                    .table(Deliveries::Table)
                    .col(Deliveries::RecoveryJobId)
                    .col(Deliveries::Status)
                    .and_where(Expr::col(Deliveries::RecoveryJobId).is_not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("deliveries_recovery_job_id")
                    .table(Deliveries::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Deliveries::Table)
                    .drop_column(Deliveries::RecoveryJobId)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(RecoveryJobs::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum RecoveryJobs {
    Table,
    Id,
    TenantId,
    WebhookId,
    EndpointId,
    Since,
    Until,
    Statuses,
    State,
    Cursor,
    Total,
    Queued,
    LeasedBy,
    LeaseUntil,
    CreatedAt,
    UpdatedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum Webhooks {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Deliveries {
    Table,
    RecoveryJobId,
    Status,
}
