//! The committed contract: `schema.graphql` is exactly what the server serves.

#[test]
fn committed_schema_matches_the_server() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
        .unwrap_or_default();
    let served = hookline::graphql::sdl();
    assert!(
        committed == served,
        "schema.graphql is out of date with the server's schema.\n\
         Regenerate it with:  cargo run -- schema > schema.graphql\n\
         and review the diff: client code generators read this file."
    );
}

/// The API's error kinds are the strings the `error_kind` column stores, one
/// for one: a client that reads a stored value (an export, the database
/// itself) and one that reads the API see the same names.
#[test]
fn attempt_error_kinds_are_served_under_their_stored_names() {
    use entity::delivery_attempt::AttemptErrorKind;
    use sea_orm::{ActiveEnum, Iterable};

    let sdl = hookline::graphql::sdl();
    let body = sdl
        .split_once("enum AttemptErrorKind {")
        .and_then(|(_, rest)| rest.split_once('}'))
        .map(|(body, _)| body)
        .expect("AttemptErrorKind in the schema");
    let mut served: Vec<String> = body
        .lines()
        .map(str::trim)
        .filter(|line| {
            line.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect();
    let mut stored: Vec<String> = AttemptErrorKind::iter().map(|k| k.to_value()).collect();
    served.sort();
    stored.sort();
    assert_eq!(served, stored);
}
