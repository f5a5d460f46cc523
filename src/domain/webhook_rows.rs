//! Reading a webhook's stored columns: its retry policy, its pattern list,
//! its endpoints' headers.

use std::time::Duration;

use entity::webhook;
use serde_json::Value;

use super::retry::RetryPolicy;

pub fn policy_of(model: &webhook::Model) -> RetryPolicy {
    RetryPolicy {
        max_attempts: model.max_attempts.max(1) as u32,
        initial_interval: Duration::from_millis(model.initial_interval_ms.max(0) as u64),
        max_interval: Duration::from_millis(model.max_interval_ms.max(0) as u64),
    }
}

pub fn string_list(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Endpoint headers as stored: `[[name, value], ...]`.
pub fn header_pairs(value: &Value) -> Vec<(String, String)> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|pair| {
                    Some((
                        pair.get(0)?.as_str()?.to_owned(),
                        pair.get(1)?.as_str()?.to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}
