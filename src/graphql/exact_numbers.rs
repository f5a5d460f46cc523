//! Numbers are kept exactly or refused, never changed on the way in.
//!
//! async-graphql and serde_json hold a number as a 64-bit integer or a
//! double. An integer beyond 64 bits (`123456789012345678901234567890`) or a
//! decimal with more digits than a double carries would be stored, shown and
//! delivered as another number (`1.2345678901234568e29`) while the request was
//! acknowledged. Both texts a request arrives in are scanned before they are
//! parsed: the JSON of a request (variables, over HTTP and WebSocket) and the
//! query text (literals). Integers are kept up to 64 bits; decimals and
//! exponents up to the 17 significant digits a double holds (`1e29`, `0.1`,
//! `3.141592653589793`), not beyond (`0.10000000000000000001`), and not when
//! they would underflow to zero (`1e-400`). Such values belong in strings.

use std::{str::FromStr, sync::Arc};

use async_graphql::{
    ServerResult, Variables,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery},
    parser::types::ExecutableDocument,
};

use super::nesting::{skip_ignored, skip_string};
use crate::error::AppError;

/// Runs [`check_query`] on every operation's text before it is parsed (the
/// JSON around it is checked where it arrives, with [`check_json`]).
pub struct ExactNumbers;

impl ExtensionFactory for ExactNumbers {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ExactNumbersExtension)
    }
}

struct ExactNumbersExtension;

#[async_trait::async_trait]
impl Extension for ExactNumbersExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        if let Err(error) = check_query(query) {
            return Err(super::errors::server_error(error.into()));
        }
        next.run(ctx, query, variables).await
    }
}

/// Checks every number in a JSON document (outside strings).
pub fn check_json(json: &[u8]) -> Result<(), AppError> {
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'"' => i = skip_string(json, i),
            b'-' | b'0'..=b'9' => {
                let end = number_end(json, i);
                check_token(&json[i..end], "variables")?;
                i = end;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// Checks every number literal in a GraphQL document, skipping strings,
/// block strings, comments and the digits inside names (`field2`).
pub fn check_query(query: &str) -> Result<(), AppError> {
    let bytes = query.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if let Some(next) = skip_ignored(bytes, i) {
            i = next;
            continue;
        }
        match bytes[i] {
            b'A'..=b'Z' | b'a'..=b'z' | b'_' => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
            }
            b'-' | b'0'..=b'9' => {
                let end = number_end(bytes, i);
                check_token(&bytes[i..end], "query")?;
                i = end;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

fn number_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < bytes.len() && matches!(bytes[i], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-') {
        i += 1;
    }
    i
}

fn check_token(token: &[u8], field: &str) -> Result<(), AppError> {
    let text = String::from_utf8_lossy(token);
    if is_exact(&text) {
        return Ok(());
    }
    let shown: String = text.chars().take(40).collect();
    Err(AppError::bad_input(
        field,
        format!(
            "the number {shown} cannot be kept exactly (integers are kept up to 64 bits, \
             decimals to a double's precision): send it as a string"
        ),
    ))
}

/// Significant digits a double tells apart: any decimal with at most this
/// many reads back as the same double, so a reader of the delivered JSON
/// gets the value that was sent.
const DOUBLE_DIGITS: usize = 17;

/// Whether `token` is kept as the value it was written as: an integer that
/// fits 64 bits (kept as an integer), or a decimal or exponent form with at
/// most [`DOUBLE_DIGITS`] significant digits that neither overflows nor
/// underflows to zero. Tokens that are not numbers pass: the parser refuses
/// them with its own message.
pub fn is_exact(token: &str) -> bool {
    let Some(written) = Decimal::parse(token) else {
        return true;
    };
    if !token.contains(['.', 'e', 'E']) {
        return token.parse::<i64>().is_ok() || token.parse::<u64>().is_ok();
    }
    if written.digits.len() > DOUBLE_DIGITS {
        return false;
    }
    match serde_json::Number::from_str(token) {
        Ok(number) => written.digits.is_empty() || number.as_f64().is_some_and(|v| v != 0.0),
        // Out of range (1e400): the parser refuses it.
        Err(_) => true,
    }
}

/// A decimal number's value: its sign, significant digits (no leading or
/// trailing zeros) and the power of ten of the last digit.
#[derive(Debug, PartialEq, Eq)]
struct Decimal {
    negative: bool,
    digits: String,
    exponent: i64,
}

impl Decimal {
    fn parse(text: &str) -> Option<Self> {
        let (negative, rest) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(at) => (&rest[..at], rest[at + 1..].parse::<i64>().ok()?),
            None => (rest, 0),
        };
        let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if whole.is_empty() || !(whole.bytes().chain(fraction.bytes())).all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let all = format!("{whole}{fraction}");
        let exponent = exponent.checked_sub(i64::try_from(fraction.len()).ok()?)?;
        let trimmed_end = all.trim_end_matches('0');
        let exponent = exponent.checked_add(i64::try_from(all.len() - trimmed_end.len()).ok()?)?;
        let digits = trimmed_end.trim_start_matches('0').to_owned();
        if digits.is_empty() {
            return Some(Self {
                negative: false,
                digits,
                exponent: 0,
            });
        }
        Some(Self {
            negative,
            digits,
            exponent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn numbers_that_survive_are_accepted() {
        for token in [
            "0",
            "-0",
            "7",
            "-9223372036854775808",
            "18446744073709551615",
            "0.1",
            "1.5",
            "1e29",
            "1E+29",
            "2.5e-3",
            "100.000",
            "3.141592653589793",
        ] {
            assert!(is_exact(token), "{token}");
        }
    }

    #[test]
    fn numbers_that_would_change_are_refused() {
        for token in [
            "123456789012345678901234567890",
            "18446744073709551616",
            "-9223372036854775809",
            "0.10000000000000000001",
            "3.14159265358979323846",
            "1e-400",
        ] {
            assert!(!is_exact(token), "{token}");
        }
    }

    #[test]
    fn json_is_scanned_outside_strings_only() {
        assert!(
            check_json(br#"{"a": [1, 2.5, -3e2], "b": "123456789012345678901234567890"}"#).is_ok()
        );
        assert!(check_json(br#"{"a": {"b": [123456789012345678901234567890]}}"#).is_err());
        assert!(check_json(br#"{"s": "\"", "n": 99999999999999999999}"#).is_err());
    }

    #[test]
    fn query_literals_are_scanned_but_not_names_strings_or_comments() {
        let ok = "query Q2 { field2(a: 1, s: \"123456789012345678901234567890\") \
                  # 123456789012345678901234567890\n b(x: \"\"\"99999999999999999999\"\"\") }";
        assert!(check_query(ok).is_ok());
        assert!(check_query("mutation { p(data: {n: 123456789012345678901234567890}) }").is_err());
        assert!(check_query("{ p(data: [-0.10000000000000000001]) }").is_err());
    }

    proptest! {
        #[test]
        fn every_double_written_shortest_is_accepted(value in any::<f64>().prop_filter("finite", |v| v.is_finite())) {
            let shortest = format!("{value:e}");
            prop_assert!(is_exact(&shortest), "{}", shortest);
            prop_assert!(is_exact(&serde_json::Number::from_f64(value).expect("finite").to_string()));
        }

        #[test]
        fn every_64_bit_integer_is_accepted(value in any::<i64>(), unsigned in any::<u64>()) {
            prop_assert!(is_exact(&value.to_string()));
            prop_assert!(is_exact(&unsigned.to_string()));
        }

        #[test]
        fn integers_with_more_digits_than_a_double_holds_are_refused(
            first in 1u8..10, middle in "[0-9]{19,40}", last in 1u8..10,
        ) {
            // 21 or more significant digits: no double is written that way.
            let token = format!("{first}{middle}{last}");
            prop_assert!(!is_exact(&token), "{}", token);
        }

        #[test]
        fn scanning_never_panics(text in ".{0,200}") {
            let _ = check_query(&text);
            let _ = check_json(text.as_bytes());
        }
    }
}
