//! One tenant's publishes never fail or stall another's: single publishes
//! that arrive together share a commit, and what one of them does wrong (a
//! row the database refuses, a race on its idempotency key, a payload that
//! is slow to check against its schema) stays its own.

use futures::future::join_all;
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};

use crate::support::{GqlExt, TestApp, app::on_postgres, fixtures::*, receiver::Receiver};

/// How many of the token's events are stored (at most 100: one page).
async fn stored_events(app: &TestApp, token: &str) -> usize {
    let data = app
        .gql
        .ok(
            token,
            "{ events(first: 100) { edges { node { id } } pageInfo { hasNextPage } } }",
            json!({}),
        )
        .await;
    assert_eq!(data["events"]["pageInfo"]["hasNextPage"], false);
    data["events"]["edges"].as_array().map_or(0, Vec::len)
}

/// Makes the database refuse events whose body contains `poison`, as a
/// stand-in for any row of one submission the database will not store.
async fn refuse_poisoned_events(database_url: &str) {
    let db = Database::connect(database_url).await.expect("connect");
    let statements: &[&str] = if on_postgres() {
        &[
            "CREATE FUNCTION refuse_poison() RETURNS trigger AS $$ BEGIN \
               IF NEW.body LIKE '%poison%' THEN RAISE EXCEPTION 'poison row refused'; END IF; \
               RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON events \
               FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
        ]
    } else {
        &["CREATE TRIGGER refuse_poison BEFORE INSERT ON events \
             WHEN NEW.body LIKE '%poison%' \
             BEGIN SELECT RAISE(ABORT, 'poison row refused'); END"]
    };
    for sql in statements {
        db.execute_unprepared(sql)
            .await
            .expect("install the trigger");
    }
    db.close().await.ok();
}

/// Publishes `inputs` as one token, all at once, and returns each response.
async fn publish_all(app: &TestApp, token: &str, inputs: Vec<Value>) -> Vec<Value> {
    join_all(
        inputs
            .into_iter()
            .map(|input| app.gql.run(Some(token), PUBLISH, json!({ "input": input }))),
    )
    .await
}

/// What went wrong in `responses`, by error code.
fn error_codes(responses: &[Value]) -> Vec<String> {
    responses
        .iter()
        .filter_map(|r| r.get("errors").map(|e| e[0].code().to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_the_database_refuses_never_fails_the_others_in_its_commit() {
    let app = TestApp::spawn().await;
    refuse_poisoned_events(&app.database_url).await;
    let (a, b) = (app.admin("tenant-a"), app.admin("tenant-b"));
    let receiver = Receiver::ok().await;
    create_webhook(&app, &a, fast_webhook(&receiver.url, &["offer.created"], 3)).await;
    create_webhook(&app, &b, fast_webhook(&receiver.url, &["offer.created"], 3)).await;

    let bad = (0..100).map(|n| json!({ "type": "offer.created", "data": { "poison": n } }));
    let good = (0..100).map(|n| json!({ "type": "offer.created", "data": { "n": n } }));
    let (from_a, from_b) = tokio::join!(
        publish_all(&app, &a, bad.collect()),
        publish_all(&app, &b, good.collect()),
    );

    let b_errors = error_codes(&from_b);
    assert!(
        b_errors.is_empty(),
        "{} of tenant B's 100 publishes failed: {b_errors:?}",
        b_errors.len()
    );
    assert_eq!(stored_events(&app, &b).await, 100);
    assert_eq!(
        error_codes(&from_a).len(),
        100,
        "each refused publish answers its own error"
    );
    assert_eq!(stored_events(&app, &a).await, 0);
    receiver
        .wait_for(100, std::time::Duration::from_secs(15))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_publishes_of_one_idempotency_key_never_fail_other_tenants() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.admin("tenant-a"), app.admin("tenant-b"));
    // Each key five times at once: on PostgreSQL, commits running side by
    // side insert the same key and all but one hit the unique index.
    let racing = (0..200).map(|n| {
        json!({ "type": "offer.created", "data": { "n": n }, "idempotencyKey": format!("k-{}", n % 40) })
    });
    let good = (0..100).map(|n| json!({ "type": "offer.created", "data": { "n": n } }));
    let (from_a, from_b) = tokio::join!(
        publish_all(&app, &a, racing.collect()),
        publish_all(&app, &b, good.collect()),
    );

    let b_errors = error_codes(&from_b);
    assert!(
        b_errors.is_empty(),
        "{} of tenant B's 100 publishes failed: {b_errors:?}",
        b_errors.len()
    );
    assert_eq!(stored_events(&app, &b).await, 100);
    let a_errors = error_codes(&from_a);
    assert!(a_errors.is_empty(), "tenant A: {a_errors:?}");
    let fresh = from_a
        .iter()
        .filter(|r| r["data"]["publishEvent"]["duplicate"] == false)
        .count();
    assert_eq!(fresh, 40, "one event per key, the others are duplicates");
    assert_eq!(stored_events(&app, &a).await, 40);
}

const CREATE_TYPE: &str =
    "mutation($input: CreateEventTypeInput!) { createEventType(input: $input) { name } }";

/// A payload schema that checks every item of `values` against
/// `outer × inner` conditions: allowed (its weight is under the bound), but
/// costly on a big payload.
fn costly_schema(outer: usize, inner: usize) -> Value {
    let conditions: Vec<Value> = (0..outer)
        .map(|n| {
            let each: Vec<Value> = (0..inner)
                .map(|m| json!({ "minimum": -((n * inner + m) as i64) }))
                .collect();
            json!({ "allOf": each })
        })
        .collect();
    json!({
        "type": "object",
        "properties": { "values": { "type": "array", "items": { "allOf": conditions } } },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_slow_to_check_never_holds_back_another_tenants_publish() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.admin("tenant-a"), app.admin("tenant-b"));
    let input = json!({ "name": "report.built", "description": "A big report", "schema": costly_schema(99, 18) });
    app.gql.ok(&a, CREATE_TYPE, json!({ "input": input })).await;
    // A small request (quick to read) that is long to check: 4 000
    // integers, each against 1 782 conditions.
    let big = json!({ "type": "report.built", "data": { "values": vec![7; 4_000] } });

    let slow = {
        let (gql, a) = (app.gql.clone(), a.clone());
        tokio::spawn(async move { gql.run(Some(&a), PUBLISH, json!({ "input": big })).await })
    };
    // Tenant B publishes one event after another while A's is checked.
    let started = std::time::Instant::now();
    for n in 0..20 {
        publish(&app, &b, "offer.created", json!({ "n": n })).await;
    }
    let b_done = started.elapsed();
    assert!(
        !slow.is_finished(),
        "tenant B's 20 publishes were answered only after tenant A's ({b_done:?})"
    );
    let answer = slow.await.expect("A's publish");
    assert!(answer.get("errors").is_none(), "{answer}");
    eprintln!(
        "B's 20 publishes took {b_done:?}, A's took {:?}",
        started.elapsed()
    );
    assert_eq!(stored_events(&app, &b).await, 20);
}

#[tokio::test]
async fn a_schema_too_costly_to_evaluate_is_refused_when_saved() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    // 2 000 allOf branches in under 64 KiB: within the byte limit.
    let branches: Vec<Value> = (0..2_000)
        .map(|n| json!({ "required": [format!("f{n}")] }))
        .collect();
    let wide = json!({ "type": "object", "allOf": branches });
    assert!(serde_json::to_vec(&wide).expect("json").len() < 64 * 1024);
    // Thirty definitions that each refer twice to the next: 2^30
    // subschemas in under 2 KB.
    let mut defs = serde_json::Map::new();
    for n in 0..30 {
        let next = json!({ "$ref": format!("#/$defs/d{}", n + 1) });
        defs.insert(format!("d{n}"), json!({ "allOf": [next.clone(), next] }));
    }
    defs.insert("d30".into(), json!({ "type": "string" }));
    let doubling = json!({ "$defs": defs, "$ref": "#/$defs/d0" });
    let looping =
        json!({ "$defs": { "a": { "allOf": [{ "$ref": "#/$defs/a" }] } }, "$ref": "#/$defs/a" });

    for (schema, says) in [
        (&wide, "at most 100 branches"),
        (&doubling, "too costly"),
        (&looping, "refer to itself"),
    ] {
        let input = json!({ "name": "invoice.paid", "description": "x", "schema": schema });
        let err = app
            .gql
            .err(Some(&admin), CREATE_TYPE, json!({ "input": input }))
            .await;
        assert_eq!(err.code(), "BAD_USER_INPUT", "{err}");
        assert_eq!(err.field(), Some("schema"));
        assert!(err.message.contains(says), "{err}");
    }

    // The same bounds hold when a schema is changed.
    let input =
        json!({ "name": "invoice.paid", "description": "x", "schema": costly_schema(99, 18) });
    app.gql
        .ok(&admin, CREATE_TYPE, json!({ "input": input }))
        .await;
    let update = "mutation($schema: JSON) { updateEventType(name: \"invoice.paid\", input: { schema: $schema }) { name } }";
    let err = app
        .gql
        .err(Some(&admin), update, json!({ "schema": wide }))
        .await;
    assert_eq!(err.code(), "BAD_USER_INPUT", "{err}");
    assert_eq!(err.field(), Some("schema"));
    let stored = app
        .gql
        .ok(
            &admin,
            "{ eventType(name: \"invoice.paid\") { schema } }",
            json!({}),
        )
        .await;
    assert_eq!(stored["eventType"]["schema"], costly_schema(99, 18));
}
