//! A bound on how deeply a query's text nests, checked before anything
//! parses it. async-graphql's parser recurses once per `[`, `{` or `(`, so a
//! few kilobytes of `[[[[…` would overflow the stack and abort the process,
//! with or without a token. This scan is linear, allocates nothing, and runs
//! before every parse: in the schema (HTTP and WebSocket operations alike)
//! and in the multiplexer, which looks at a subscription's text first.

use std::sync::Arc;

use async_graphql::{
    ServerResult, Variables,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery},
    parser::types::ExecutableDocument,
};

use crate::error::AppError;

/// Deepest nesting of brackets, braces and parentheses a query may have.
/// Selection depth is limited to 12 separately; this leaves room for
/// object and list literals (an event's `data` written inline) while staying
/// far below what overflows the parser's stack (about 1 500).
pub const MAX_QUERY_NESTING: usize = 128;

/// Checks that `query` nests at most [`MAX_QUERY_NESTING`] levels, ignoring
/// brackets inside strings, block strings and comments.
pub fn check(query: &str) -> Result<(), AppError> {
    let bytes = query.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(next) = skip_ignored(bytes, i) {
            i = next;
            continue;
        }
        match bytes[i] {
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > MAX_QUERY_NESTING {
                    return Err(too_deep());
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// When a comment, a string or a block string starts at `i` in a GraphQL
/// document, the index just past it: the text that the scanners over a
/// query's text (this one and `exact_numbers`) must not look into.
pub(super) fn skip_ignored(bytes: &[u8], i: usize) -> Option<usize> {
    match bytes[i] {
        b'#' => {
            let mut i = i;
            while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                i += 1;
            }
            Some(i)
        }
        b'"' if bytes[i..].starts_with(b"\"\"\"") => {
            let mut i = i + 3;
            while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                // `\"""` is an escaped triple quote inside a block string.
                i += if bytes[i..].starts_with(b"\\\"\"\"") {
                    4
                } else {
                    1
                };
            }
            Some(i + 3)
        }
        b'"' => Some(skip_string(bytes, i)),
        _ => None,
    }
}

/// The index just past the JSON or GraphQL string that opens at `start`.
pub(super) fn skip_string(bytes: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < bytes.len() && bytes[i] != b'"' {
        i += if bytes[i] == b'\\' { 2 } else { 1 };
    }
    i + 1
}

fn too_deep() -> AppError {
    AppError::bad_input(
        "query",
        format!("nests brackets, braces or parentheses more than {MAX_QUERY_NESTING} levels deep"),
    )
}

/// Runs [`check`] before the schema parses any operation.
pub struct NestingLimit;

impl ExtensionFactory for NestingLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(NestingLimitExtension)
    }
}

struct NestingLimitExtension;

#[async_trait::async_trait]
impl Extension for NestingLimitExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        if let Err(error) = check(query) {
            return Err(super::errors::server_error(error.into()));
        }
        next.run(ctx, query, variables).await
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn nested(open: &str, close: &str, levels: usize) -> String {
        format!(
            "{{ f(a: {}1{}) }}",
            open.repeat(levels),
            close.repeat(levels)
        )
    }

    #[test]
    fn ordinary_queries_pass() {
        check("{ viewer { tenant } }").expect("accepted");
        check(&nested("[", "]", MAX_QUERY_NESTING - 2)).expect("accepted");
    }

    #[test]
    fn deep_lists_objects_and_arguments_are_refused() {
        for (open, close) in [("[", "]"), ("{a: ", "}"), ("(", ")")] {
            assert!(check(&nested(open, close, MAX_QUERY_NESTING)).is_err());
            assert!(check(&nested(open, close, 100_000)).is_err());
        }
    }

    #[test]
    fn brackets_in_strings_and_comments_do_not_count() {
        let many = "[".repeat(10_000);
        check(&format!("{{ f(a: \"{many}\") }}")).expect("accepted");
        check(&format!("{{ f(a: \"\"\"{many} \\\"\"\" {many}\"\"\") }}")).expect("accepted");
        check(&format!("# {many}\n{{ f }}")).expect("accepted");
        check(&format!("{{ f(a: \"\\\"{many}\") }}")).expect("accepted");
    }

    #[test]
    fn an_unterminated_string_ends_the_scan() {
        check("{ f(a: \"[[[").expect("accepted");
        check("{ f(a: \"\"\"[[[").expect("accepted");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever the text, a query that passes the scan parses without
        /// overflowing the stack (the test thread's stack is 2 MiB, like
        /// the server's worker threads), and one that nests deeper than the
        /// bound is refused.
        #[test]
        fn the_scan_guards_the_parser(
            pieces in proptest::collection::vec(
                prop_oneof![
                    Just("["), Just("]"), Just("{"), Just("}"), Just("("), Just(")"),
                    Just("\""), Just("\"\"\""), Just("#"), Just("\n"), Just("\\"),
                    Just("a: "), Just("f"), Just("1"), Just(","), Just(" "),
                ],
                0..400,
            ),
            depth in 0usize..3_000,
        ) {
            let text: String = pieces.concat();
            if check(&text).is_ok() {
                let _ = async_graphql::parser::parse_query(&text);
            }
            let deep = nested("[", "]", depth);
            prop_assert_eq!(check(&deep).is_ok(), depth + 2 <= MAX_QUERY_NESTING);
            if check(&deep).is_ok() {
                prop_assert!(async_graphql::parser::parse_query(&deep).is_ok());
            }
        }
    }
}
