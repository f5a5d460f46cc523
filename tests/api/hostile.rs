//! Hostile input: every case gets the right error code and nothing is stored.

use std::sync::atomic::{AtomicUsize, Ordering};

use hookline::auth::Role;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};

use crate::support::{GqlExt, TestApp, fixtures::*, jwt::forge};

static CASES: AtomicUsize = AtomicUsize::new(0);

fn counted() {
    CASES.fetch_add(1, Ordering::Relaxed);
}

/// Raw POSTs to `/graphql`: bodies and content types GraphQL never sees.
async fn raw(app: &TestApp, content_type: &str, body: Vec<u8>, headers: HeaderMap) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(app.url("/graphql"))
        .header("content-type", content_type)
        .headers(headers)
        .body(body)
        .send()
        .await
        .expect("sent");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn hostile_input_is_refused_with_the_right_code_and_nothing_is_stored() {
    let app = TestApp::spawn_with(|config| {
        config.allow_private_endpoints = false;
        config.max_request_bytes = 512 * 1024;
        config.max_payload_bytes = 64 * 1024;
    })
    .await;
    let admin = app.admin("acme");
    let mut auth = HeaderMap::new();
    auth.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {admin}")).expect("header"),
    );

    // 1. Bodies that are not GraphQL requests in JSON.
    let bodies: Vec<(&str, Vec<u8>, u16)> = vec![
        ("application/json", b"".to_vec(), 400),
        ("application/json", b"{".to_vec(), 400),
        ("application/json", b"null".to_vec(), 400),
        ("application/json", b"[]".to_vec(), 400),
        ("application/json", b"\"query\"".to_vec(), 400),
        ("application/json", br#"{"query": 42}"#.to_vec(), 400),
        (
            "application/json",
            br#"{"query": "{ viewer { tenant } }", "variables": "x"}"#.to_vec(),
            400,
        ),
        ("application/json", vec![0xff, 0xfe, 0x7b, 0x7d], 400),
        (
            "application/json",
            format!("{{\"query\": \"{}\"}}", "a".repeat(600 * 1024)).into_bytes(),
            413,
        ),
        (
            "text/plain",
            br#"{"query": "{ viewer { tenant } }"}"#.to_vec(),
            415,
        ),
        (
            "application/x-www-form-urlencoded",
            b"query=%7Bviewer%7Btenant%7D%7D".to_vec(),
            415,
        ),
        ("multipart/form-data; boundary=x", b"--x--".to_vec(), 415),
    ];
    for (content_type, body, status) in bodies {
        let (got, reply) = raw(&app, content_type, body, auth.clone()).await;
        assert_eq!(got, status, "{content_type}: {reply}");
        if status != 413 {
            assert_eq!(reply["errors"][0].code(), "BAD_USER_INPUT", "{reply}");
        }
        counted();
    }

    // 2. Queries: syntax, unknown fields, wrong variable types, depth, width.
    let deep = format!(
        "{{ __schema {{ types {{ {} name {} }} }} }}",
        "fields { type { ofType { ".repeat(6),
        "} } }".repeat(6)
    );
    let wide: String = (0..80)
        .map(|i| {
            format!(
                "a{i}: webhooks(first: 100) {{ edges {{ node {{ id endpoints {{ url }} }} }} }} "
            )
        })
        .collect();
    let fragments = "query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }";
    let queries: Vec<(String, Value)> = vec![
        ("{ viewer { tenant ".into(), json!({})),
        ("{ nope }".into(), json!({})),
        ("mutation { dropTables }".into(), json!({})),
        (deep, json!({})),
        (format!("{{ {wide} }}"), json!({})),
        (fragments.into(), json!({})),
        (
            "query($n: Int!) { webhooks(first: $n) { edges { cursor } } }".into(),
            json!({ "n": "ten" }),
        ),
        (
            "query($n: Int!) { webhooks(first: $n) { edges { cursor } } }".into(),
            json!({ "n": 1e20 }),
        ),
        (
            "query($n: Int!) { webhooks(first: $n) { edges { cursor } } }".into(),
            json!({}),
        ),
        (
            "query($id: ID!) { webhook(id: $id) { id } }".into(),
            json!({ "id": { "$ne": null } }),
        ),
        (
            "query($id: ID!) { webhook(id: $id) { id } }".into(),
            json!({ "id": ["a"] }),
        ),
        (
            "{ webhooks(first: 0) { edges { cursor } } }".into(),
            json!({}),
        ),
        (
            "{ webhooks(first: -5) { edges { cursor } } }".into(),
            json!({}),
        ),
        (
            "{ webhooks(first: 101) { edges { cursor } } }".into(),
            json!({}),
        ),
        (
            "{ webhooks(after: \"".to_owned() + &"z".repeat(500) + "\") { edges { cursor } } }",
            json!({}),
        ),
        (
            "{ events(filter: {since: \"yesterday\"}) { edges { cursor } } }".into(),
            json!({}),
        ),
        ("subscription { deliveryAttempts { id } }".into(), json!({})),
    ];
    for (query, variables) in &queries {
        let err = app.gql.err(Some(&admin), query, variables.clone()).await;
        assert_eq!(
            err.code(),
            "BAD_USER_INPUT",
            "{}: {err}",
            &query[..query.len().min(80)]
        );
        counted();
    }

    // 3. Oversized and malformed mutation input.
    let huge = "x".repeat(100_000);
    let mut inputs: Vec<Value> = Vec::new();
    for (key, value) in [
        ("name", json!(huge)),
        ("description", json!(huge)),
        ("team", json!(huge)),
        ("eventTypes", json!(vec!["offer.created"; 51])),
        ("eventTypes", json!(["offer.created\u{0}"])),
        ("eventTypes", json!(["../../etc/passwd"])),
        (
            "labelFilter",
            json!(
                (0..50)
                    .map(|i| (format!("k{i}"), json!("v")))
                    .collect::<serde_json::Map<_, _>>()
            ),
        ),
        ("labelFilter", json!({ "k": huge })),
        (
            "endpoints",
            json!([{ "url": format!("https://93.184.216.34/{huge}") }]),
        ),
        (
            "endpoints",
            json!([{ "url": "https://93.184.216.34/", "headers": (0..21).map(|i| json!({ "name": format!("x-h{i}"), "value": "v" })).collect::<Vec<_>>() }]),
        ),
        (
            "endpoints",
            json!([{ "url": "https://93.184.216.34/", "headers": [{ "name": "x-a", "value": "a".repeat(2000) }] }]),
        ),
        (
            "endpoints",
            json!([{ "url": "https://93.184.216.34/", "headers": [{ "name": "x-a\r\ninjected", "value": "v" }] }]),
        ),
        (
            "endpoints",
            json!([{ "url": "https://93.184.216.34/", "headers": [{ "name": "Webhook-Signature", "value": "v1,forged" }] }]),
        ),
        ("timeoutMs", json!(i64::MAX)),
        (
            "retryPolicy",
            json!({ "maxAttempts": 1_000_000, "initialIntervalMs": 1000, "maxIntervalMs": 1000 }),
        ),
        (
            "retryPolicy",
            json!({ "maxAttempts": 3, "initialIntervalMs": -1, "maxIntervalMs": 1000 }),
        ),
    ] {
        let mut input = webhook_input("https://93.184.216.34/hook");
        input[key] = value;
        inputs.push(input);
    }
    // Every SSRF spelling the issue lists, refused when saved.
    for url in [
        "http://127.0.0.1/",
        "http://localhost/",
        "http://10.0.0.1/",
        "http://172.16.5.4/",
        "http://192.168.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://0.0.0.0/",
        "http://0/",
        "http://2130706433/",
        "http://017700000001/",
        "http://0x7f000001/",
        "http://0x7f.1/",
        "http://127.1/",
        "http://[::1]/",
        "http://[::]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://[fe80::1]/",
        "http://[fd12:3456::1]/",
        "http://[64:ff9b::7f00:1]/",
        "http://100.64.0.1/",
        "http://255.255.255.255/",
        "http://224.0.0.251/",
        "file:///etc/passwd",
        "gopher://127.0.0.1:25/",
        "http://user:pass@93.184.216.34/",
    ] {
        inputs.push(webhook_input(url));
    }
    for input in inputs {
        let err = app
            .gql
            .err(
                Some(&admin),
                &create_webhook_doc(),
                json!({ "input": input }),
            )
            .await;
        assert_eq!(err.code(), "BAD_USER_INPUT", "{err}");
        counted();
    }

    // 4. Events.
    let events: Vec<Value> = vec![
        json!({ "type": "offer.created", "data": { "blob": "x".repeat(70 * 1024) } }),
        json!({ "type": "../etc/passwd", "data": {} }),
        json!({ "type": "offer.created", "data": {}, "labels": { "nested": { "a": 1 } } }),
        json!({ "type": "offer.created", "data": {}, "labels": "not-an-object" }),
        json!({ "type": "offer.created", "data": {}, "idempotencyKey": huge }),
        json!({ "type": "offer.created", "data": {}, "occurredAt": "not-a-date" }),
        json!({ "type": "offer.created" }),
    ];
    for input in events {
        let err = app
            .gql
            .err(Some(&admin), PUBLISH, json!({ "input": input }))
            .await;
        assert_eq!(err.code(), "BAD_USER_INPUT", "{err}");
        counted();
    }

    // 5. Event types: schemas must not fetch anything, nor be huge.
    let create_type =
        "mutation($input: CreateEventTypeInput!) { createEventType(input: $input) { name } }";
    for input in [
        json!({ "name": "invoice.paid", "description": "x", "schema": { "$ref": "http://169.254.169.254/latest/meta-data/" } }),
        json!({ "name": "invoice.paid", "description": "x", "schema": { "$ref": "file:///etc/passwd" } }),
        json!({ "name": "invoice.paid", "description": "x", "schema": { "type": "object", "description": "x".repeat(70 * 1024) } }),
        json!({ "name": "invoice.paid", "description": "x", "schema": "not a schema" }),
        json!({ "name": "ïnvoice.pâid", "description": "x" }),
        json!({ "name": "invoice.paid", "description": huge }),
    ] {
        let err = app
            .gql
            .err(Some(&admin), create_type, json!({ "input": input }))
            .await;
        assert_eq!(err.code(), "BAD_USER_INPUT", "{err}");
        counted();
    }

    // 6. Credentials.
    let secret = crate::support::jwt::JWT_SECRET.as_bytes();
    let far = 4_000_000_000u64;
    let claims = |role: &str| json!({ "sub": "x", "tenant": "acme", "role": role, "exp": far });
    let tokens: Vec<String> = vec![
        forge(
            json!({ "alg": "HS512", "typ": "JWT" }),
            claims("admin"),
            secret,
        ),
        forge(json!({ "alg": "none" }), claims("admin"), secret),
        forge(json!({ "alg": "RS256" }), claims("admin"), secret),
        forge(json!({ "alg": "HS256" }), claims("root"), secret),
        forge(
            json!({ "alg": "HS256" }),
            json!({ "tenant": "acme", "role": "admin", "exp": far }),
            secret,
        ),
        forge(
            json!({ "alg": "HS256" }),
            json!({ "sub": "x", "role": "admin", "exp": far }),
            secret,
        ),
        forge(
            json!({ "alg": "HS256" }),
            json!({ "sub": "x", "tenant": "acme", "role": "admin" }),
            secret,
        ),
        forge(
            json!({ "alg": "HS256" }),
            json!({ "sub": "x", "tenant": "", "role": "admin", "exp": far }),
            secret,
        ),
        forge(
            json!({ "alg": "HS256" }),
            json!({ "sub": "x", "tenant": "a/b", "role": "admin", "exp": far }),
            secret,
        ),
        forge(
            json!({ "alg": "HS256" }),
            json!({ "sub": "x", "tenant": "acme", "role": "admin", "exp": "soon" }),
            secret,
        ),
        forge(
            json!({ "alg": "HS256" }),
            json!({ "sub": "x", "tenant": "acme", "role": "admin", "exp": 1 }),
            secret,
        ),
        forge(
            json!({ "alg": "HS256" }),
            claims("admin"),
            b"the-wrong-secret-the-wrong-secret!",
        ),
        format!("{}x", app.admin("acme")),
        "....".into(),
        "".into(),
    ];
    for token in &tokens {
        let mut headers = HeaderMap::new();
        headers.insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
        );
        let (_, reply) = raw(
            &app,
            "application/json",
            json!({ "query": "{ viewer { tenant } }" })
                .to_string()
                .into_bytes(),
            headers,
        )
        .await;
        assert_eq!(
            reply["errors"][0].code(),
            "UNAUTHENTICATED",
            "{token}: {reply}"
        );
        counted();
    }
    for value in [
        &b"Basic YWRtaW46YWRtaW4="[..],
        b"Bearer",
        b"bearer \xff\xfe\xfd",
        b"Token abc",
    ] {
        let mut headers = HeaderMap::new();
        headers.insert(
            "authorization",
            HeaderValue::from_bytes(value).expect("obs-text is allowed"),
        );
        let (_, reply) = raw(
            &app,
            "application/json",
            json!({ "query": "{ viewer { tenant } }" })
                .to_string()
                .into_bytes(),
            headers,
        )
        .await;
        assert_eq!(reply["errors"][0].code(), "UNAUTHENTICATED", "{reply}");
        counted();
    }
    // Roles: a publisher is refused admin work, a viewer publishing.
    let publisher = app.token("acme", Role::Publisher);
    let err = app
        .gql
        .err(
            Some(&publisher),
            &create_webhook_doc(),
            json!({ "input": webhook_input("https://93.184.216.34/") }),
        )
        .await;
    assert_eq!(err.code(), "FORBIDDEN");
    counted();

    // Nothing of the above was stored.
    let stored = app
        .gql
        .ok(&admin, "{ webhooks { edges { cursor } } events { edges { cursor } } eventTypes(filter: {includeArchived: true, object: \"invoice\"}) { edges { cursor } } }", json!({}))
        .await;
    assert_eq!(stored["webhooks"]["edges"], json!([]));
    assert_eq!(stored["events"]["edges"], json!([]));

    let total = CASES.load(Ordering::Relaxed);
    let line = format!(
        "hostile-input suite ({}): {total} cases, all refused with the expected code, nothing stored\n",
        if app.database_url.starts_with("postgres") {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );
    eprint!("{line}");
    // CI prints this; one line per backend the suite ran on.
    let report = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("hostile-report.txt");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(report)
        .expect("open the hostile-input report");
    std::io::Write::write_all(&mut file, line.as_bytes()).expect("write the report");
    assert!(total >= 100, "the suite tries {total} cases");
}

/// A query nested `levels` deep in a list literal: a few kilobytes that used
/// to overflow the parser's stack and abort the whole process.
fn deeply_nested_query(levels: usize) -> String {
    format!(
        "{{ viewer(x: {}1{}) {{ tenant }} }}",
        "[".repeat(levels),
        "]".repeat(levels)
    )
}

/// POSTs `query` to `url`, with `token` as its bearer when given: the JSON
/// answer, which there must be.
async fn post_query(
    client: &reqwest::Client,
    url: &str,
    query: &str,
    token: Option<&str>,
) -> Value {
    let mut request = client.post(url).json(&json!({ "query": query }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request
        .send()
        .await
        .expect("the server answers")
        .json()
        .await
        .expect("JSON")
}

// A child process: an overflow aborts it, not the test binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_queries_are_refused_and_the_server_lives_on() {
    use crate::support::{app::fresh_database, process::ServerProcess, ws::WsClient};

    let (database_url, dir) = fresh_database().await;
    let logs = tempfile::tempdir().expect("tempdir");
    let mut server = ServerProcess::start(&database_url, logs.path(), &[]);
    let client = reqwest::Client::new();
    let admin = crate::support::jwt::admin_token("acme");
    // 500 already overflowed a debug build's parser, 2 000 a release build.
    for levels in [500, 2_000, 100_000] {
        for token in [None, Some(admin.as_str())] {
            let query = deeply_nested_query(levels);
            let body = post_query(&client, &server.graphql_url(), &query, token).await;
            assert_eq!(
                body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
                "{body}"
            );
            assert_eq!(body["errors"][0]["extensions"]["field"], "query", "{body}");
            counted();
        }
    }
    for protocols in ["graphql-transport-ws", "graphql-ws"] {
        let mut socket = WsClient::connect(server.addr, protocols, None).await;
        socket
            .init(json!({ "Authorization": format!("Bearer {admin}") }))
            .await
            .expect("ack");
        let deep = format!(
            "subscription {{ eventsPublished(filter: {{ type: {}\"a\"{} }}) {{ id }} }}",
            "[".repeat(2_000),
            "]".repeat(2_000)
        );
        socket.subscribe("1", &deep, json!({})).await;
        let reply = socket
            .recv(std::time::Duration::from_secs(5))
            .await
            .expect("a reply");
        let errors = match reply["payload"].as_array() {
            Some(errors) => errors.clone(),
            None => reply["payload"]["errors"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        };
        assert_eq!(
            errors[0]["extensions"]["code"], "BAD_USER_INPUT",
            "{protocols}: {reply}"
        );
        counted();
    }
    // Just under the bound: parsed, and refused for what it says instead.
    let body: Value = client
        .post(server.graphql_url())
        .json(&json!({ "query": deeply_nested_query(hookline::graphql::nesting::MAX_QUERY_NESTING - 4) }))
        .send()
        .await
        .expect("the server answers")
        .json()
        .await
        .expect("JSON");
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("Unknown argument"), "{body}");
    assert!(
        server.child.try_wait().expect("status").is_none(),
        "the server died:\n{}",
        server.log()
    );
    let alive: Value = client
        .post(server.graphql_url())
        .bearer_auth(&admin)
        .json(&json!({ "query": "{ viewer { tenant } }" }))
        .send()
        .await
        .expect("still answering")
        .json()
        .await
        .expect("JSON");
    assert_eq!(alive["data"]["viewer"]["tenant"], "acme");
    drop(dir);
}

/// `first: 2147483647` on nested pages overflowed the complexity product:
/// in a debug build the request's task panicked and the client got no
/// answer; in a release build the product wrapped and could pass the limit.
#[tokio::test]
async fn huge_page_sizes_are_refused_as_too_complex() {
    let app = TestApp::spawn().await;
    let query = "{ events(first: 2147483647) { edges { node { \
        deliveries(first: 2147483647) { edges { cursor node { id status } } \
        pageInfo { hasNextPage } } } } } }";
    let admin = app.admin("acme");
    let client = reqwest::Client::new();
    for token in [None, Some(admin.as_str())] {
        let body = post_query(&client, &app.url("/graphql"), query, token).await;
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{body}"
        );
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains("complex"), "{body}");
        counted();
    }
}
