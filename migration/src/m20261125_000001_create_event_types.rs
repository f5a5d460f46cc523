use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(EventTypes::Table)
                    .col(text(EventTypes::Id).primary_key())
                    .col(text(EventTypes::TenantId))
                    .col(text(EventTypes::Name))
                    .col(text(EventTypes::Description))
                    .col(json_binary_null(EventTypes::Schema))
                    .col(big_integer_null(EventTypes::ArchivedAt))
                    .col(big_integer(EventTypes::CreatedAt))
                    .col(big_integer(EventTypes::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("event_types_tenant_name")
                    .table(EventTypes::Table)
                    .col(EventTypes::TenantId)
                    .col(EventTypes::Name)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(EventTypes::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum EventTypes {
    Table,
    Id,
    TenantId,
    Name,
    Description,
    Schema,
    ArchivedAt,
    CreatedAt,
    UpdatedAt,
}
