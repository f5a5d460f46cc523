//! Compiled payload schemas, kept by tenant and event type.
//!
//! A compiled schema is reused only for the very schema it was compiled
//! from. Keyed on the type's `updated_at` alone, two changes stamped with
//! the same millisecond (two edits within one, or instances whose clocks
//! differ) left an instance checking payloads against the first schema
//! until the next change.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use jsonschema::Validator;
use serde_json::Value;

/// (tenant, type) -> (`updated_at`, the schema, its compiled form).
type Kept = HashMap<(String, String), (i64, Arc<Value>, Arc<Validator>)>;

#[derive(Default)]
pub struct Validators(Mutex<Kept>);

impl Validators {
    /// The compiled form of `schema`, the schema of `tenant`'s `name` as
    /// stamped `updated_at`; `Err` says why it does not compile. The stamp
    /// spares comparing the schema when it differs; when it is the same, the
    /// schemas are compared too.
    pub fn of(
        &self,
        tenant: &str,
        name: &str,
        updated_at: i64,
        schema: &Value,
    ) -> Result<Arc<Validator>, String> {
        let key = (tenant.to_owned(), name.to_owned());
        // Compared and compiled outside the lock, which every publish of
        // every tenant with a typed payload takes.
        let kept = self.lock().get(&key).cloned();
        if let Some((stamp, compiled_from, validator)) = kept
            && stamp == updated_at
            && compiled_from.as_ref() == schema
        {
            return Ok(validator);
        }
        let validator = Arc::new(jsonschema::validator_for(schema).map_err(|e| e.to_string())?);
        let entry = (updated_at, Arc::new(schema.clone()), validator.clone());
        self.lock().insert(key, entry);
        Ok(validator)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_schema_changed_within_the_same_millisecond_is_compiled_again() {
        let validators = Validators::default();
        let loose = json!({ "type": "object" });
        let strict = json!({ "type": "object", "required": ["offerId"] });
        let first = validators
            .of("acme", "offer.created", 7, &loose)
            .expect("compiles");
        assert!(first.is_valid(&json!({})));
        let again = validators
            .of("acme", "offer.created", 7, &loose)
            .expect("kept");
        assert!(Arc::ptr_eq(&first, &again), "the same schema is reused");
        let changed = validators
            .of("acme", "offer.created", 7, &strict)
            .expect("compiles");
        assert!(
            !changed.is_valid(&json!({})),
            "checked against the new schema"
        );
        assert!(
            validators
                .of("acme", "offer.created", 8, &json!({ "type": 5 }))
                .is_err()
        );
    }
}
