//! Payload shapes (issue 15 item 3): what a webhook's requests look like.
//! `payload_format` is `ENVELOPE` (the event's `{"id","type","timestamp","data"}`),
//! `DATA_ONLY` (its `data` alone) or `TEMPLATE` (`body_template` rendered);
//! `http_method` is `POST`, `GET` or `POST_FORM` (postbacks). NULL reads as
//! `ENVELOPE` and `POST`, so adding them rewrites nothing; one ALTER each,
//! as SQLite requires.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            Webhooks::PayloadFormat,
            Webhooks::BodyTemplate,
            Webhooks::HttpMethod,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Webhooks::Table)
                        .add_column(text_null(column))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            Webhooks::PayloadFormat,
            Webhooks::BodyTemplate,
            Webhooks::HttpMethod,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Webhooks::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum Webhooks {
    Table,
    PayloadFormat,
    BodyTemplate,
    HttpMethod,
}
