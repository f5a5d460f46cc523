//! The HTTP edges: GraphiQL, health, content types, malformed bodies, limits.

use serde_json::{Value, json};

use crate::support::{GqlExt, TestApp};

#[tokio::test]
async fn graphiql_and_health_endpoints_answer() {
    let app = TestApp::spawn().await;
    let http = reqwest::Client::new();
    let page = http
        .get(app.url("/graphql"))
        .send()
        .await
        .expect("GET /graphql");
    assert!(page.status().is_success());
    assert!(
        page.text()
            .await
            .expect("body")
            .to_lowercase()
            .contains("graphiql")
    );
    let live = http.get(app.url("/healthz")).send().await.expect("healthz");
    assert_eq!(live.status(), 200);
    let ready = http.get(app.url("/readyz")).send().await.expect("readyz");
    assert_eq!(ready.status(), 200);
    assert_eq!(
        ready.json::<Value>().await.expect("json")["status"],
        "ready"
    );
}

#[tokio::test]
async fn bad_requests_get_clear_errors() {
    let app = TestApp::spawn_with(|config| {
        config.max_request_bytes = 64 * 1024;
        config.max_payload_bytes = 32 * 1024;
    })
    .await;
    let http = reqwest::Client::new();
    let url = app.url("/graphql");

    let form = http
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("query={viewer{tenant}}")
        .send()
        .await
        .expect("sent");
    assert_eq!(form.status(), 415);
    assert_eq!(
        form.json::<Value>().await.expect("json")["errors"][0].code(),
        "BAD_USER_INPUT"
    );

    let malformed = http
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"query\": ")
        .send()
        .await
        .expect("sent");
    assert_eq!(malformed.status(), 400);
    assert_eq!(
        malformed.json::<Value>().await.expect("json")["errors"][0].code(),
        "BAD_USER_INPUT"
    );

    let huge = http
        .post(&url)
        .header("content-type", "application/json")
        .body(format!("{{\"query\": \"{}\"}}", " ".repeat(100 * 1024)))
        .send()
        .await
        .expect("sent");
    assert_eq!(huge.status(), 413);

    // Syntax errors, unknown fields and wrong variable types are the client's.
    let token = app.admin("acme");
    for (query, variables) in [
        ("{ viewer { tenant ", json!({})),
        ("{ viewer { nope } }", json!({})),
        (
            "query($id: ID!) { webhook(id: $id) { id } }",
            json!({ "id": { "not": "an id" } }),
        ),
    ] {
        let err = app.gql.err(Some(&token), query, variables).await;
        assert_eq!(err.code(), "BAD_USER_INPUT", "{query}: {err}");
    }
}

#[tokio::test]
async fn deep_and_expensive_queries_are_refused() {
    let app = TestApp::spawn().await;
    let token = app.admin("acme");
    let deep = format!(
        "{{ __schema {{ types {{ {} name {} }} }} }}",
        "ofType { ".repeat(20),
        "}".repeat(20)
    );
    let err = app.gql.err(Some(&token), &deep, json!({})).await;
    assert_eq!(err.code(), "BAD_USER_INPUT", "{err}");
    let wide: String = (0..60)
        .map(|i| format!("a{i}: webhooks(first: 100) {{ edges {{ node {{ id name }} }} }} "))
        .collect();
    let err = app
        .gql
        .err(Some(&token), &format!("{{ {wide} }}"), json!({}))
        .await;
    assert_eq!(err.code(), "BAD_USER_INPUT", "{err}");
}
