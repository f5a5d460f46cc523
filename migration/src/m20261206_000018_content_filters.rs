//! Filters on an event's `data` (issue 15 item 4): a webhook's condition
//! tree, as checked when saved (see `domain::data_filter`). NULL: no filter.
//! Label filters with several allowed values need no column: `label_filter`
//! already holds JSON, now a value or a list of values per label.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Webhooks::Table)
                    .add_column(json_binary_null(Webhooks::DataFilter))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Webhooks::Table)
                    .drop_column(Webhooks::DataFilter)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Webhooks {
    Table,
    DataFilter,
}
