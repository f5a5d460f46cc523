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
