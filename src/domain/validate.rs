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
