//! Field checks shared by every input. Errors name the input field, so a
//! client can put the message next to the right form control.

use crate::error::AppError;

/// A required string of `min..=max` characters without control characters.
pub fn text(field: &str, value: &str, min: usize, max: usize) -> Result<String, AppError> {
    let value = value.trim();
    let len = value.chars().count();
    if len < min {
        return Err(if min == 1 {
            AppError::bad_input(field, "must not be empty")
        } else {
            AppError::bad_input(field, format!("must be at least {min} characters"))
        });
    }
    if len > max {
        return Err(AppError::bad_input(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(AppError::bad_input(
            field,
            "must not contain control characters",
        ));
    }
    Ok(value.to_owned())
}

/// An optional string: `None` and blank both mean "not set".
pub fn optional_text(
    field: &str,
    value: Option<&str>,
    max: usize,
) -> Result<Option<String>, AppError> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(value) => text(field, value, 1, max).map(Some),
    }
}

/// An integer within `min..=max`.
pub fn range<T>(field: &str, value: T, min: T, max: T) -> Result<T, AppError>
where
    T: PartialOrd + std::fmt::Display + Copy,
{
    if value < min || value > max {
        Err(AppError::bad_input(
            field,
            format!("must be between {min} and {max}"),
        ))
    } else {
        Ok(value)
    }
}

/// Builds the path of an item in a list input: `endpoints[2].url`.
pub fn item(list: &str, index: usize, field: &str) -> String {
    format!("{list}[{index}].{field}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_and_bounded() {
        assert_eq!(text("name", "  hi ", 1, 5).expect("ok"), "hi");
        assert!(text("name", "   ", 1, 5).is_err());
        assert!(text("name", "toolong", 1, 5).is_err());
        assert!(text("name", "a\u{0}b", 1, 5).is_err());
    }

    #[test]
    fn errors_name_the_field() {
        let err = range("timeoutMs", 5, 100, 200).expect_err("out of range");
        assert_eq!(err.to_string(), "timeoutMs: must be between 100 and 200");
    }
}

/// Deepest nesting of arrays and objects in a JSON value a client sends
/// (an event's `data`, a payload schema). Deep enough for any real payload,
/// shallow enough that everything that later walks the value (the schema
/// validator, serializers, readers of the stored text, whose own limit is
/// 128) never comes near its bound.
pub const MAX_JSON_DEPTH: usize = 64;

/// Refuses a JSON value nested deeper than [`MAX_JSON_DEPTH`]. Walks the
/// value with its own stack, so the check itself cannot overflow.
pub fn json_depth(field: &str, value: &serde_json::Value) -> Result<(), AppError> {
    use serde_json::Value;
    let mut stack: Vec<(&Value, usize)> = vec![(value, 1)];
    while let Some((value, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        if depth > MAX_JSON_DEPTH {
            return Err(AppError::bad_input(
                field,
                format!("nests arrays and objects more than {MAX_JSON_DEPTH} levels deep"),
            ));
        }
        stack.extend(children.map(|child| (child, depth + 1)));
    }
    Ok(())
}

#[cfg(test)]
mod json_depth_tests {
    use serde_json::{Value, json};

    use super::*;

    /// Objects inside arrays: two levels per step.
    fn objects(steps: usize) -> Value {
        (0..steps).fold(json!(1), |inner, _| json!([{ "a": inner }]))
    }

    fn lists(levels: usize) -> Value {
        (1..levels).fold(json!([]), |inner, _| Value::Array(vec![inner]))
    }

    #[test]
    fn depth_counts_every_array_and_object() {
        json_depth("data", &lists(MAX_JSON_DEPTH)).expect("accepted");
        let err = json_depth("data", &lists(MAX_JSON_DEPTH + 1)).expect_err("refused");
        assert!(matches!(err, AppError::BadInput { ref field, .. } if field == "data"));
        json_depth("data", &json!({ "a": 1, "b": [1, 2, { "c": null }] })).expect("accepted");
        json_depth("data", &json!(12)).expect("accepted");
        json_depth("data", &objects(MAX_JSON_DEPTH / 2)).expect("accepted");
        assert!(json_depth("data", &objects(MAX_JSON_DEPTH / 2 + 1)).is_err());
    }
}
