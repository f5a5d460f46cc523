//! Throttling per endpoint: an optional limit in requests per second, and
//! the time its next request may go, shared by every instance.
//!
//! `rate_next_at_us` is the endpoint's next free sending slot (the
//! "theoretical arrival time" of the generic cell rate algorithm), in epoch
//! **micro**seconds: a limit of up to 10 000 requests per second spaces
//! requests less than a millisecond apart, and whole milliseconds would
//! round some spacings down (1 000 / 3 = 333 ms is 3.003 a second, over
//! the limit). Only `domain::throttle` writes it.
//!
//! Both columns are nullable or have a constant default, so adding them
//! rewrites nothing. NULL means unlimited, which every existing endpoint
//! stays.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per ALTER: SQLite takes one change at a time.
        let columns = [
            integer_null(Endpoints::RateLimitPerSecond),
            big_integer(Endpoints::RateNextAtUs).default(0).to_owned(),
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
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Endpoints::RateLimitPerSecond, Endpoints::RateNextAtUs] {
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
    RateLimitPerSecond,
    RateNextAtUs,
}
