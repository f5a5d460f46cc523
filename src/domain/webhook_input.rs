//! Checks of webhook input, field by field, with errors naming the field.

use entity::webhook::WebhookStatus;
use serde_json::Value;

use super::{
    data_filter,
    event_types::KnownTypes,
    labels,
    patterns::Pattern,
    retry::{self, RetryPolicy},
    throttle::MAX_RATE_PER_SECOND,
    validate,
    webhooks::RetryPolicyInput,
};
use crate::error::{AppError, AppResult};

/// Ordered delivery asked for: per endpoint, or per value of the label `key`.
#[derive(Clone, Debug, Default)]
pub struct OrderingSpec {
    pub key: Option<String>,
}

pub const MAX_ENDPOINTS: usize = 10;
pub const MAX_PATTERNS: usize = 50;
pub const MAX_HEADERS: usize = 20;
pub const MAX_HEADER_VALUE_LEN: usize = 1024;

/// Headers hookline sets itself; endpoints may not override them.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
    "user-agent",
];

pub(super) fn check_settable_status(status: WebhookStatus) -> AppResult<WebhookStatus> {
    match status {
        WebhookStatus::Disabled => Err(AppError::bad_input(
            "status",
            "must be ACTIVE or PAUSED; DISABLED is set by hookline",
        )),
        other => Ok(other),
    }
}

pub(super) fn check_patterns(known: &KnownTypes, items: &[String]) -> AppResult<Value> {
    if items.is_empty() || items.len() > MAX_PATTERNS {
        return Err(AppError::bad_input(
            "eventTypes",
            format!("must list between 1 and {MAX_PATTERNS} event types"),
        ));
    }
    let mut patterns: Vec<String> = Vec::with_capacity(items.len());
    for (index, text) in items.iter().enumerate() {
        let field = format!("eventTypes[{index}]");
        let pattern = Pattern::parse(text.trim()).map_err(|m| AppError::bad_input(&field, m))?;
        known
            .check_pattern(&pattern)
            .map_err(|m| AppError::bad_input(&field, m))?;
        let text = pattern.to_string();
        if !patterns.contains(&text) {
            patterns.push(text);
        }
    }
    Ok(Value::from(patterns))
}

pub(super) fn check_label_filter(filter: Option<&Value>) -> AppResult<Option<Value>> {
    match filter {
        None | Some(Value::Null) => Ok(None),
        Some(value) => {
            let parsed = labels::parse_filter("labelFilter", value)?;
            Ok((!parsed.is_empty()).then(|| labels::filter_to_json(&parsed)))
        }
    }
}

/// A filter on `data`, as stored (see [`data_filter`]).
pub(super) fn check_data_filter(filter: Option<&Value>) -> AppResult<Option<Value>> {
    match filter {
        None | Some(Value::Null) => Ok(None),
        Some(value) => Ok(Some(data_filter::to_json(&data_filter::parse(
            "dataFilter",
            value,
        )?))),
    }
}

/// Ordered delivery as stored: `None`, `''` for one sequence per endpoint,
/// or the label whose value keys the sequences.
pub(super) fn check_ordering(ordering: Option<&OrderingSpec>) -> AppResult<Option<String>> {
    let Some(spec) = ordering else {
        return Ok(None);
    };
    match spec.key.as_deref().map(str::trim) {
        None | Some("") => Ok(Some(String::new())),
        Some(key) => {
            labels::check_key(key)
                .map_err(|message| AppError::bad_input("ordering.key", message))?;
            Ok(Some(key.to_owned()))
        }
    }
}

pub(super) fn check_policy(raw: RetryPolicyInput) -> AppResult<RetryPolicy> {
    RetryPolicy::from_millis(
        raw.max_attempts,
        raw.initial_interval_ms,
        raw.max_interval_ms,
    )
}

pub(super) fn check_timeout(timeout_ms: i64) -> AppResult<i32> {
    validate::range(
        "timeoutMs",
        timeout_ms,
        retry::MIN_TIMEOUT_MS.into(),
        retry::MAX_TIMEOUT_MS.into(),
    )
    .map(|ms| ms as i32)
}

pub(super) fn check_headers(
    endpoint: usize,
    headers: &[(String, String)],
) -> AppResult<Vec<(String, String)>> {
    let list = format!("endpoints[{endpoint}].headers");
    if headers.len() > MAX_HEADERS {
        return Err(AppError::bad_input(
            &list,
            format!("must have at most {MAX_HEADERS} headers"),
        ));
    }
    let mut checked: Vec<(String, String)> = Vec::with_capacity(headers.len());
    for (index, (name, value)) in headers.iter().enumerate() {
        let field = format!("{list}[{index}]");
        let lower = name.trim().to_ascii_lowercase();
        if http::HeaderName::from_bytes(lower.as_bytes()).is_err() || lower.len() > 64 {
            return Err(AppError::bad_input(
                format!("{field}.name"),
                "is not a valid header name",
            ));
        }
        if RESERVED_HEADERS.contains(&lower.as_str()) || lower.starts_with("webhook-") {
            return Err(AppError::bad_input(
                format!("{field}.name"),
                format!("`{lower}` is set by hookline and cannot be overridden"),
            ));
        }
        if checked.iter().any(|(n, _)| n.eq_ignore_ascii_case(&lower)) {
            return Err(AppError::bad_input(
                format!("{field}.name"),
                "is listed twice",
            ));
        }
        if value.len() > MAX_HEADER_VALUE_LEN || http::HeaderValue::from_str(value).is_err() {
            return Err(AppError::bad_input(
                format!("{field}.value"),
                format!("must be at most {MAX_HEADER_VALUE_LEN} visible ASCII characters"),
            ));
        }
        checked.push((name.trim().to_owned(), value.clone()));
    }
    Ok(checked)
}

/// An endpoint's `rateLimitPerSecond`: none, or 1 to [`MAX_RATE_PER_SECOND`].
/// Zero is refused rather than read as "stop": pausing is what stops.
pub(super) fn check_rate_limit(endpoint: usize, limit: Option<i64>) -> AppResult<Option<i32>> {
    limit
        .map(|limit| {
            let field = validate::item("endpoints", endpoint, "rateLimitPerSecond");
            validate::range(&field, limit, 1, MAX_RATE_PER_SECOND).map(|n| n as i32)
        })
        .transpose()
}
