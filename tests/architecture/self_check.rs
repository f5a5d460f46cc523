//! The checker checked: it must be able to fail.

use crate::{MAX_FILE_LINES, Violation, layering::layering_violations, sizes::size_violations};

fn messages(violations: &[Violation]) -> Vec<String> {
    violations.iter().map(ToString::to_string).collect()
}

#[test]
fn grouped_and_inline_wrong_way_imports_are_reported() {
    let fake = r#"
use crate::{
    domain::webhooks,
    ids::{EventId, WebhookId},
    bus::{Bus, LiveAttempt},
};
use sea_orm::EntityTrait;

fn publish() {
    crate::delivery::wake_worker();
}
"#;
    let found = messages(&layering_violations("src/domain/fake.rs", fake));
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        found[0].starts_with("src/domain/fake.rs:5: `crate::bus::Bus` refers to crate::bus"),
        "{found:#?}"
    );
    assert!(
        found[0].contains("rule: domain must not use crate::bus"),
        "{found:#?}"
    );
    assert!(
        found[1].starts_with("src/domain/fake.rs:10: `crate::delivery::wake_worker`"),
        "{found:#?}"
    );
}

#[test]
fn super_paths_resolve_to_the_module_they_land_in() {
    let fake = "use super::bus::Bus;\nmod tests {\n    use super::super::http::router;\n    use super::*;\n}\n";
    // From src/graphql/mod.rs, `super` is the crate root.
    let found = messages(&layering_violations("src/graphql/mod.rs", fake));
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found[0].starts_with("src/graphql/mod.rs:1: `super::bus::Bus` refers to crate::bus"));
    assert!(
        found[1].starts_with(
            "src/graphql/mod.rs:3: `super::super::http::router` refers to crate::http"
        )
    );
    // From a deeper file, `super` stays inside graphql.
    assert!(
        layering_violations("src/graphql/query/events.rs", "use super::super::types::X;")
            .is_empty()
    );
}

#[test]
fn comments_strings_and_allowed_places_are_not_reported() {
    let fake = r##"
// use crate::bus::Bus;
/* crate::http::router /* nested */ crate::bus::X */
const A: &str = "crate::delivery::x";
const B: &str = r#"use crate::bus::Bus;"#;
const C: char = '"';
fn f<'a>(x: &'a str) -> &'a str { x.entity::<u8>(); x }
use crate::domain::webhooks;
"##;
    assert!(layering_violations("src/graphql/fake.rs", fake).is_empty());
    let entity = "use entity::webhook;\nfn view() { entity::delivery::Model::default(); }";
    assert!(layering_violations("src/graphql/types/webhook.rs", entity).is_empty());
    assert_eq!(
        layering_violations("src/graphql/query/webhooks.rs", entity).len(),
        2
    );
    assert!(layering_violations("src/lib.rs", "use crate::bus::Bus;").is_empty());
}

#[test]
fn long_functions_and_files_are_reported() {
    let body = "    let x = '}';\n".repeat(80);
    let fake = format!("fn short() {{}}\nfn long() {{\n{body}}}\ntrait T {{ fn decl(&self); }}\n");
    let found = messages(&size_violations("src/fake.rs", &fake));
    assert_eq!(
        found,
        ["src/fake.rs:2: fn long has 82 lines; rule: at most 80 lines per function"]
    );

    let long_file = "\n".repeat(MAX_FILE_LINES + 1);
    assert_eq!(size_violations("src/fake.rs", &long_file).len(), 1);
}
