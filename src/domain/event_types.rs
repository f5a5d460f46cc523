//! Event types: the built-in catalog plus each tenant's own, with optional
//! JSON Schemas for their payloads.

use std::collections::HashSet;

use entity::event_type;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter,
    TransactionTrait,
};
use serde_json::Value;

use super::{
    catalog::{self, BUILTIN_TYPES},
    pagination::{Page, PageRequest},
    patterns::{self, Pattern},
    tenant_config, validate,
};
use crate::{
    db::{Db, is_unique_violation},
    error::{AppError, AppResult},
    ids::EventTypeId,
    time::now_ms,
};

pub const MAX_SCHEMA_BYTES: usize = 64 * 1024;
pub const MAX_CUSTOM_TYPES: usize = 1_000;

/// An event type as the API shows it, built-in or custom.
#[derive(Clone, Debug)]
pub struct EventTypeView {
    pub name: String,
    pub description: String,
    pub schema: Option<Value>,
    pub builtin: bool,
    pub archived_at: Option<i64>,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
}

impl EventTypeView {
    fn from_builtin(entry: &catalog::BuiltinType) -> Self {
        Self {
            name: entry.name.to_owned(),
            description: entry.description.to_owned(),
            schema: None,
            builtin: true,
            archived_at: None,
            created_at: None,
            updated_at: None,
        }
    }

    fn from_model(model: event_type::Model) -> Self {
        Self {
            name: model.name,
            description: model.description,
            schema: model.schema,
            builtin: false,
            archived_at: model.archived_at,
            created_at: Some(model.created_at),
            updated_at: Some(model.updated_at),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct EventTypeFilter {
    pub object: Option<String>,
    pub action: Option<String>,
    /// Case-insensitive substring of the name or description.
    pub search: Option<String>,
    pub include_archived: bool,
}

#[derive(Clone, Debug)]
pub struct NewEventType {
    pub name: String,
    pub description: String,
    pub schema: Option<Value>,
}

#[derive(Clone, Debug, Default)]
pub struct EventTypePatch {
    pub description: Option<String>,
    /// `Some(None)` removes the schema.
    pub schema: Option<Option<Value>>,
}

/// The event type names a tenant may subscribe to and publish.
#[derive(Clone, Debug, Default)]
pub struct KnownTypes {
    names: HashSet<String>,
    objects: HashSet<String>,
}

impl KnownTypes {
    pub fn contains(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    /// Checks a webhook's subscription pattern against the known types.
    pub fn check_pattern(&self, pattern: &Pattern) -> Result<(), String> {
        match pattern {
            Pattern::All => Ok(()),
            Pattern::Object(object) if self.objects.contains(object) => Ok(()),
            Pattern::Object(object) => Err(format!("no event type has the object `{object}`")),
            Pattern::Exact(name) if self.names.contains(name) => Ok(()),
            Pattern::Exact(name) => Err(format!("unknown event type `{name}`")),
        }
    }

    fn insert(&mut self, name: &str) {
        self.objects.insert(patterns::object_of(name).to_owned());
        self.names.insert(name.to_owned());
    }
}

#[derive(Clone)]
pub struct EventTypeService {
    db: DatabaseConnection,
    read: DatabaseConnection,
}

impl EventTypeService {
    pub fn new(databases: &Db) -> Self {
        Self {
            db: databases.write.clone(),
            read: databases.read.clone(),
        }
    }

    /// Read through `db`: the writer when they decide a change, the readers
    /// for queries.
    async fn custom_types(
        db: &DatabaseConnection,
        tenant: &str,
    ) -> AppResult<Vec<event_type::Model>> {
        Ok(event_type::Entity::find()
            .filter(event_type::Column::TenantId.eq(tenant))
            .all(db)
            .await?)
    }

    /// Every custom type of the tenant, archived ones included (they can still
    /// be published), by name.
    pub async fn custom_types_by_name(
        &self,
        tenant: &str,
    ) -> AppResult<std::collections::HashMap<String, event_type::Model>> {
        Ok(Self::custom_types(&self.db, tenant)
            .await?
            .into_iter()
            .map(|t| (t.name.clone(), t))
            .collect())
    }

    async fn find_custom(
        db: &DatabaseConnection,
        tenant: &str,
        name: &str,
    ) -> AppResult<Option<event_type::Model>> {
        Ok(event_type::Entity::find()
            .filter(event_type::Column::TenantId.eq(tenant))
            .filter(event_type::Column::Name.eq(name))
            .one(db)
            .await?)
    }

    /// Built-in and custom types, by name. The catalog is small and bounded,
    /// so it is merged and filtered in memory.
    pub async fn list(
        &self,
        tenant: &str,
        filter: &EventTypeFilter,
        page: &PageRequest,
    ) -> AppResult<Page<EventTypeView>> {
        let mut all: Vec<EventTypeView> = BUILTIN_TYPES
            .iter()
            .map(EventTypeView::from_builtin)
            .collect();
        all.extend(
            Self::custom_types(&self.read, tenant)
                .await?
                .into_iter()
                .map(EventTypeView::from_model),
        );
        all.sort_by(|a, b| a.name.cmp(&b.name));
        let search = filter.search.as_deref().map(str::to_lowercase);
        let rows = all
            .into_iter()
            .filter(|t| filter.include_archived || t.archived_at.is_none())
            .filter(|t| {
                filter
                    .object
                    .as_deref()
                    .is_none_or(|o| patterns::object_of(&t.name) == o)
            })
            .filter(|t| {
                filter
                    .action
                    .as_deref()
                    .is_none_or(|a| patterns::action_of(&t.name) == a)
            })
            .filter(|t| {
                search
                    .as_deref()
                    .is_none_or(|s| t.name.contains(s) || t.description.to_lowercase().contains(s))
            })
            .filter(|t| {
                page.after
                    .as_deref()
                    .is_none_or(|after| t.name.as_str() > after)
            })
            .take(page.fetch_limit() as usize)
            .collect();
        Ok(Page::from_rows(rows, page))
    }

    pub async fn get(&self, tenant: &str, name: &str) -> AppResult<EventTypeView> {
        if let Some(entry) = catalog::builtin(name) {
            return Ok(EventTypeView::from_builtin(entry));
        }
        Self::find_custom(&self.read, tenant, name)
            .await?
            .map(EventTypeView::from_model)
            .ok_or(AppError::NotFound("event type"))
    }

    /// Names usable in subscriptions and publishing: the catalog and the
    /// tenant's types that are not archived.
    pub async fn known(&self, tenant: &str) -> AppResult<KnownTypes> {
        let mut known = KnownTypes::default();
        for entry in BUILTIN_TYPES {
            known.insert(entry.name);
        }
        for custom in Self::custom_types(&self.db, tenant).await? {
            if custom.archived_at.is_none() {
                known.insert(&custom.name);
            }
        }
        Ok(known)
    }

    /// The JSON Schema published payloads of this type must satisfy, if any.
    /// `NOT_FOUND`-free: unknown types are reported by the caller.
    pub async fn schema_of(&self, tenant: &str, name: &str) -> AppResult<Option<Value>> {
        if catalog::builtin(name).is_some() {
            return Ok(None);
        }
        Ok(Self::find_custom(&self.db, tenant, name)
            .await?
            .and_then(|t| t.schema))
    }

    pub async fn create(&self, tenant: &str, input: NewEventType) -> AppResult<EventTypeView> {
        let name = input.name.trim().to_owned();
        patterns::check_type_name(&name).map_err(|m| AppError::bad_input("name", m))?;
        if super::operational::is_operational(&name) {
            return Err(AppError::bad_input(
                "name",
                "`hookline.` event types are hookline's own",
            ));
        }
        if catalog::builtin(&name).is_some() {
            return Err(AppError::Conflict(format!(
                "`{name}` is a built-in event type"
            )));
        }
        let description = validate::text("description", &input.description, 1, 500)?;
        let schema = input.schema.map(check_schema).transpose()?;
        if Self::custom_types(&self.db, tenant).await?.len() >= MAX_CUSTOM_TYPES {
            return Err(AppError::bad_input(
                "name",
                format!("a tenant may define at most {MAX_CUSTOM_TYPES} event types"),
            ));
        }
        let now = now_ms();
        let model = event_type::ActiveModel {
            id: Set(EventTypeId::new()),
            tenant_id: Set(tenant.to_owned()),
            name: Set(name.clone()),
            description: Set(description),
            schema: Set(schema),
            archived_at: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        };
        let txn = self.db.begin().await?;
        match model.insert(&txn).await {
            Ok(model) => {
                tenant_config::bump(&txn, tenant).await?;
                txn.commit().await?;
                Ok(EventTypeView::from_model(model))
            }
            Err(err) if is_unique_violation(&err) => Err(AppError::Conflict(format!(
                "event type `{name}` already exists"
            ))),
            Err(err) => Err(err.into()),
        }
    }

    pub async fn update(
        &self,
        tenant: &str,
        name: &str,
        patch: EventTypePatch,
    ) -> AppResult<EventTypeView> {
        let existing = self.editable(tenant, name).await?;
        let mut model: event_type::ActiveModel = existing.into();
        if let Some(description) = patch.description {
            model.description = Set(validate::text("description", &description, 1, 500)?);
        }
        if let Some(schema) = patch.schema {
            model.schema = Set(schema.map(check_schema).transpose()?);
        }
        model.updated_at = Set(now_ms());
        self.save(tenant, model).await
    }

    /// Archived types disappear from listings and cannot be subscribed to by
    /// new webhooks; existing subscriptions and publishing keep working, so an
    /// archive never breaks a running integration.
    pub async fn set_archived(
        &self,
        tenant: &str,
        name: &str,
        archived: bool,
    ) -> AppResult<EventTypeView> {
        let existing = self.editable(tenant, name).await?;
        let now = now_ms();
        let mut model: event_type::ActiveModel = existing.into();
        model.archived_at = Set(archived.then_some(now));
        model.updated_at = Set(now);
        self.save(tenant, model).await
    }

    async fn save(&self, tenant: &str, model: event_type::ActiveModel) -> AppResult<EventTypeView> {
        let txn = self.db.begin().await?;
        let saved = model.update(&txn).await?;
        tenant_config::bump(&txn, tenant).await?;
        txn.commit().await?;
        Ok(EventTypeView::from_model(saved))
    }

    async fn editable(&self, tenant: &str, name: &str) -> AppResult<event_type::Model> {
        if catalog::builtin(name).is_some() {
            return Err(AppError::bad_input(
                "name",
                format!("`{name}` is a built-in event type and cannot be changed"),
            ));
        }
        Self::find_custom(&self.db, tenant, name)
            .await?
            .ok_or(AppError::NotFound("event type"))
    }
}

/// A payload schema must be a JSON object (or boolean) that compiles as a JSON
/// Schema and is not too costly to evaluate (`schema_cost`). References are
/// resolved locally only: no schema fetches a URL.
fn check_schema(schema: Value) -> AppResult<Value> {
    super::validate::json_depth("schema", &schema)?;
    if !matches!(schema, Value::Object(_) | Value::Bool(_)) {
        return Err(AppError::bad_input(
            "schema",
            "must be a JSON Schema object",
        ));
    }
    if serde_json::to_vec(&schema).map_or(usize::MAX, |bytes| bytes.len()) > MAX_SCHEMA_BYTES {
        return Err(AppError::bad_input(
            "schema",
            format!("must be at most {MAX_SCHEMA_BYTES} bytes"),
        ));
    }
    jsonschema::validator_for(&schema).map_err(|err| {
        AppError::bad_input("schema", format!("is not a valid JSON Schema: {err}"))
    })?;
    // Checking a payload runs inside no transaction, but it still takes a
    // core: what it may cost is bounded here, once.
    super::schema_cost::weight(&schema)
        .map_err(|message| AppError::bad_input("schema", message))?;
    Ok(schema)
}
