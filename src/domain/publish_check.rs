//! Checking publishes before they reach a commit: event types, labels,
//! idempotency keys, sizes, and payloads against their type's JSON Schema.
//!
//! All of it runs before the submission enters the (shared) transaction, so
//! a payload that is slow to check delays only its own publish: a payload
//! whose schema weight times its size passes [`OFFLOAD_ABOVE`] is checked on
//! a blocking thread, leaving the async workers to everyone else. Inputs are
//! checked against the tenant's configuration as this instance last read it;
//! the commit reads the current one and sends the submission back to be
//! checked again when one of its types' schemas changed in between.

mod validators;

use std::{collections::HashMap, sync::Arc};

use entity::event;
use sea_orm::DatabaseConnection;
use serde_json::Value;

use super::{
    catalog,
    events::{PublishInput, render_body},
    labels::{self, Labels},
    schema_cost,
    tenant_config::{TenantConfig, TenantConfigCache},
    validate,
};
use crate::{
    error::{AppError, AppResult},
    ids::EventId,
    time::now_ms,
};
use validators::Validators;

pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 256;
/// Estimated work (schema weight × data nodes) above which a payload is
/// checked on a blocking thread. Below it, checking takes microseconds.
const OFFLOAD_ABOVE: usize = 20_000;

/// One caller's events, checked and rendered, ready to commit.
pub struct Checked {
    pub tenant: String,
    pub items: Vec<Prepared>,
    /// What was published: each item's `data`, for the filters on it.
    pub inputs: Arc<Vec<PublishInput>>,
    /// The configuration they were checked against.
    pub config: Arc<TenantConfig>,
}

/// An event ready to insert: validated, with its body rendered.
pub struct Prepared {
    pub model: event::Model,
    pub labels: Labels,
    /// Its position in [`Checked::inputs`].
    pub input: usize,
}

impl Checked {
    /// Whether checking against `current` would have judged the same: the
    /// same configuration, or the same schema for each event's type.
    pub fn still_valid(&self, current: &TenantConfig) -> bool {
        current.version == self.config.version
            || self.items.iter().all(|item| {
                let name = item.model.event_type.as_str();
                schema_of(current, name) == schema_of(&self.config, name)
            })
    }
}

fn schema_of<'a>(config: &'a TenantConfig, name: &str) -> Option<&'a Option<Value>> {
    config.custom_types.get(name).map(|custom| &custom.schema)
}

pub struct Checker {
    db: DatabaseConnection,
    max_payload_bytes: usize,
    configs: Arc<TenantConfigCache>,
    validators: Validators,
}

impl Checker {
    pub fn new(
        db: DatabaseConnection,
        max_payload_bytes: usize,
        configs: Arc<TenantConfigCache>,
    ) -> Self {
        Self {
            db,
            max_payload_bytes,
            configs,
            validators: Validators::default(),
        }
    }

    /// Checks a caller's inputs; in a `batch`, errors name the input
    /// (`inputs[3].data`).
    pub async fn check(
        self: &Arc<Self>,
        tenant: &str,
        inputs: Arc<Vec<PublishInput>>,
        batch: bool,
    ) -> AppResult<Checked> {
        let config = self.config_for(tenant, &inputs).await?;
        let items = if estimated_work(&config, &inputs) > OFFLOAD_ABOVE {
            let (checker, config, tenant) = (self.clone(), config.clone(), tenant.to_owned());
            let inputs = inputs.clone();
            tokio::task::spawn_blocking(move || checker.prepare(&tenant, &inputs, batch, &config))
                .await
                .map_err(|err| AppError::internal(anyhow::anyhow!("checking a payload: {err}")))??
        } else {
            self.prepare(tenant, &inputs, batch, &config)?
        };
        Ok(Checked {
            tenant: tenant.to_owned(),
            items,
            inputs,
            config,
        })
    }

    /// The configuration last read when it knows every type named (the
    /// commit tells whether it is still current), else a fresh one.
    async fn config_for(
        &self,
        tenant: &str,
        inputs: &[PublishInput],
    ) -> AppResult<Arc<TenantConfig>> {
        if let Some(config) = self.configs.cached(tenant)
            && inputs.iter().all(|input| {
                let name = input.event_type.trim();
                catalog::builtin(name).is_some() || config.custom_types.contains_key(name)
            })
        {
            return Ok(config);
        }
        self.configs.get(&self.db, tenant).await
    }

    /// Validates the inputs against the tenant's event types and renders
    /// each event's body.
    fn prepare(
        &self,
        tenant: &str,
        inputs: &[PublishInput],
        batch: bool,
        config: &TenantConfig,
    ) -> AppResult<Vec<Prepared>> {
        let types = &config.custom_types;
        let now = now_ms();
        let mut prepared = Vec::with_capacity(inputs.len());
        for (index, input) in inputs.iter().enumerate() {
            let prefix = if batch {
                format!("inputs[{index}].")
            } else {
                String::new()
            };
            let field = |name: &str| format!("{prefix}{name}");
            let event_type = input.event_type.trim().to_owned();
            let custom = types.get(&event_type);
            if catalog::builtin(&event_type).is_none() && custom.is_none() {
                return Err(AppError::bad_input(
                    field("type"),
                    format!("unknown event type `{event_type}`"),
                ));
            }
            if super::operational::is_operational(&event_type) {
                return Err(AppError::bad_input(
                    field("type"),
                    format!("`{event_type}` is published by hookline itself"),
                ));
            }
            validate::json_depth(&field("data"), &input.data)?;
            if let Some(custom) = custom
                && let Some(schema) = &custom.schema
            {
                self.check_against_schema(tenant, custom, schema, &input.data, &field("data"))?;
            }
            let labels = match &input.labels {
                None | Some(Value::Null) => Labels::new(),
                Some(value) => labels::parse(&field("labels"), value)?,
            };
            let key = match input.idempotency_key.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(key) if key.len() > MAX_IDEMPOTENCY_KEY_LEN => {
                    return Err(AppError::bad_input(
                        field("idempotencyKey"),
                        format!("must be at most {MAX_IDEMPOTENCY_KEY_LEN} characters"),
                    ));
                }
                Some(key) => Some(key.to_owned()),
            };
            let id = EventId::new();
            let occurred_at = input.occurred_at.unwrap_or(now);
            let body = render_body(&id, &event_type, occurred_at, &input.data);
            if body.len() > self.max_payload_bytes {
                return Err(AppError::bad_input(
                    field("data"),
                    format!("must be at most {} bytes of JSON", self.max_payload_bytes),
                ));
            }
            prepared.push(Prepared {
                model: event::Model {
                    id,
                    tenant_id: tenant.to_owned(),
                    event_type,
                    occurred_at,
                    body,
                    labels: labels::to_json(&labels),
                    idempotency_key: key,
                    created_at: now,
                    commit_seq: 0,
                    trace_context: input.trace_context.clone(),
                },
                labels,
                input: index,
            });
        }
        Ok(prepared)
    }

    fn check_against_schema(
        &self,
        tenant: &str,
        custom: &entity::event_type::Model,
        schema: &Value,
        data: &Value,
        field: &str,
    ) -> AppResult<()> {
        let validator = self
            .validators
            .of(tenant, &custom.name, custom.updated_at, schema)
            .map_err(|e| {
                AppError::internal(anyhow::anyhow!(
                    "stored schema of {} does not compile: {e}",
                    custom.name
                ))
            })?;
        if let Some(error) = validator.iter_errors(data).next() {
            let pointer = error.instance_path().to_string();
            let path = pointer
                .split('/')
                .filter(|s| !s.is_empty())
                .fold(field.to_owned(), |acc, segment| format!("{acc}.{segment}"));
            return Err(AppError::bad_input(
                path,
                format!("does not match the event type's schema: {error}"),
            ));
        }
        Ok(())
    }
}

/// Roughly how much work checking these payloads is: each schema's weight
/// times the nodes of the data it checks. A stored schema the measure
/// refuses (saved before it existed) counts as heavy.
fn estimated_work(config: &TenantConfig, inputs: &[PublishInput]) -> usize {
    let mut weights: HashMap<&str, usize> = HashMap::new();
    let mut work = 0usize;
    for input in inputs {
        let name = input.event_type.trim();
        let Some(schema) = config
            .custom_types
            .get(name)
            .and_then(|custom| custom.schema.as_ref())
        else {
            continue;
        };
        let weight = *weights.entry(name).or_insert_with(|| {
            schema_cost::weight(schema).unwrap_or(OFFLOAD_ABOVE.saturating_add(1))
        });
        work = work.saturating_add(weight.saturating_mul(schema_cost::data_nodes(&input.data)));
        if work > OFFLOAD_ABOVE {
            break;
        }
    }
    work
}
