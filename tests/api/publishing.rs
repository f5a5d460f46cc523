//! Publishing: validation, idempotency, batches, and reading the log back.

use std::time::Duration;

use hookline::auth::Role;
use serde_json::{Value, json};

use crate::support::{
    GqlExt, TestApp, error_code,
    fixtures::*,
    gql::first_error,
    receiver::{Receiver, Reply},
    types::{Delivery, DeliveryStats, Event, Page, Published, Webhook, parse},
};

async fn event_count(app: &TestApp, token: &str) -> usize {
    let events: Page<Event> = app
        .gql
        .field(
            token,
            "{ events(first: 100) { edges { cursor } } }",
            json!({}),
        )
        .await;
    events.edges.len()
}

#[tokio::test]
async fn bad_events_are_refused_with_the_failing_path_and_nothing_is_stored() {
    let app = TestApp::spawn_with(|config| config.max_payload_bytes = 2048).await;
    let admin = app.admin("acme");
    app.gql
        .ok(
            &admin,
            "mutation($input: CreateEventTypeInput!) { createEventType(input: $input) { name } }",
            json!({ "input": {
                "name": "invoice.paid",
                "description": "An invoice was paid",
                "schema": {
                    "type": "object",
                    "required": ["invoiceId", "amount"],
                    "properties": {
                        "invoiceId": { "type": "string" },
                        "amount": { "type": "object", "properties": { "value": { "type": "number" } } }
                    }
                }
            }}),
        )
        .await;
    let cases = [
        (json!({ "type": "nope.created", "data": {} }), "type"),
        (
            json!({ "type": "offer.created", "data": { "blob": "x".repeat(4096) } }),
            "data",
        ),
        (
            json!({ "type": "invoice.paid", "data": { "amount": { "value": 3 } } }),
            "data",
        ),
        (
            json!({ "type": "invoice.paid", "data": { "invoiceId": "i1", "amount": { "value": "three" } } }),
            "data.amount.value",
        ),
        (
            json!({ "type": "offer.created", "data": {}, "labels": { "a": { "nested": true } } }),
            "labels.a",
        ),
        (
            json!({ "type": "offer.created", "data": {}, "idempotencyKey": "k".repeat(300) }),
            "idempotencyKey",
        ),
    ];
    for (input, field) in cases {
        let err = app
            .gql
            .err(Some(&admin), PUBLISH, json!({ "input": input }))
            .await;
        assert_eq!(err.code(), "BAD_USER_INPUT", "{input}: {err}");
        assert_eq!(err.field(), Some(field), "{err}");
    }
    // In a batch, the error names the input, and the valid events are not stored either.
    let err = app
        .gql
        .err(
            Some(&admin),
            PUBLISH_MANY,
            json!({ "inputs": [{ "type": "offer.created", "data": {} }, { "type": "nope.x", "data": {} }] }),
        )
        .await;
    assert_eq!(err.field(), Some("inputs[1].type"));
    let err = app
        .gql
        .err(Some(&admin), PUBLISH_MANY, json!({ "inputs": [] }))
        .await;
    assert_eq!(err.code(), "BAD_USER_INPUT");
    let too_many: Vec<Value> = (0..1001)
        .map(|_| json!({ "type": "offer.created", "data": {} }))
        .collect();
    let err = app
        .gql
        .err(Some(&admin), PUBLISH_MANY, json!({ "inputs": too_many }))
        .await;
    assert_eq!(err.code(), "BAD_USER_INPUT");
    assert_eq!(event_count(&app, &admin).await, 0, "nothing stored");

    // Viewers read; they do not publish.
    let viewer = app.token("acme", Role::Viewer);
    let err = app
        .gql
        .err(
            Some(&viewer),
            PUBLISH,
            json!({ "input": { "type": "offer.created", "data": {} } }),
        )
        .await;
    assert_eq!(err.code(), "FORBIDDEN");
    let publisher = app.token("acme", Role::Publisher);
    publish(
        &app,
        &publisher,
        "invoice.paid",
        json!({ "invoiceId": "i1", "amount": { "value": 3 } }),
    )
    .await;
}

#[tokio::test]
async fn idempotency_keys_return_the_first_event() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let receiver = Receiver::ok().await;
    create_webhook(&app, &admin, webhook_input(&receiver.url)).await;
    let input = json!({ "type": "offer.created", "data": { "offerId": 1 }, "idempotencyKey": "offer-1-created" });
    let first = publish_input(&app, &admin, input.clone()).await;
    let second = publish_input(&app, &admin, input.clone()).await;
    assert!(!first.duplicate);
    assert!(second.duplicate);
    assert_eq!(first.event.id, second.event.id);
    assert_eq!(second.delivery_count, 1);

    // Within one batch too.
    let results = publish_many(
        &app,
        &admin,
        vec![
            json!({ "type": "offer.created", "data": {}, "idempotencyKey": "b" }),
            json!({ "type": "offer.created", "data": {}, "idempotencyKey": "b" }),
        ],
    )
    .await;
    assert_eq!(results[0].event.id, results[1].event.id);
    assert!(results[1].duplicate);

    // Keys are per tenant.
    let other = publish_input(&app, &app.admin("globex"), input).await;
    assert_ne!(other.event.id, first.event.id);

    receiver.wait_for(2, Duration::from_secs(10)).await;
    // Time for a wrong third delivery to arrive: none may.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.count(), 2, "one delivery per distinct event");
    assert_eq!(event_count(&app, &admin).await, 2);
}

#[tokio::test]
async fn a_batch_is_committed_whole_and_delivered() {
    let app = TestApp::spawn().await;
    let publisher = app.token("acme", Role::Publisher);
    let admin = app.admin("acme");
    let receiver = Receiver::ok().await;
    create_webhook(&app, &admin, fast_webhook(&receiver.url, &["*"], 3)).await;
    let inputs: Vec<Value> = (0..250)
        .map(|i| json!({ "type": "click.created", "data": { "clickId": i }, "labels": { "n": i } }))
        .collect();
    let results = publish_many(&app, &publisher, inputs).await;
    assert_eq!(results.len(), 250);
    assert!(results.iter().all(|r| r.delivery_count == 1));
    let arrived = receiver.wait_for(250, Duration::from_secs(20)).await;
    let mut seen: Vec<i64> = arrived
        .iter()
        .map(|r| r.json()["data"]["clickId"].as_i64().expect("id"))
        .collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 250, "every event arrived");
}

#[tokio::test]
async fn the_log_reads_back_events_deliveries_and_attempts() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let viewer = app.token("acme", Role::Viewer);
    // Slow enough that every attempt has a duration worth measuring.
    let receiver = Receiver::start(|_| Reply::Slow(Duration::from_millis(25))).await;
    let created = create_webhook(
        &app,
        &admin,
        fast_webhook(&receiver.url, &["offer.*", "affiliate.created"], 3),
    )
    .await;
    let webhook_id = created.webhook.id;
    let mut ids = Vec::new();
    for event_type in ["offer.created", "affiliate.created", "offer.updated"] {
        let published = publish(&app, &admin, event_type, json!({ "t": event_type })).await;
        ids.push(published.event.id);
    }
    receiver.wait_for(3, Duration::from_secs(10)).await;
    for id in &ids {
        wait_event_deliveries(&app, &admin, id, "SUCCEEDED").await;
    }

    let events = app
        .gql
        .ok(
            &viewer,
            "{ events(first: 10) { edges { node { id type data } } } }",
            json!({}),
        )
        .await;
    let listed: Vec<&str> = events["events"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"]["id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        listed,
        [ids[2].as_str(), ids[1].as_str(), ids[0].as_str()],
        "newest first"
    );
    let offers = app
        .gql
        .ok(
            &viewer,
            "{ events(filter: {type: \"offer.created\"}) { edges { node { id data } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        offers["events"]["edges"][0]["node"]["data"],
        json!({ "t": "offer.created" })
    );
    assert_eq!(
        offers["events"]["edges"].as_array().expect("edges").len(),
        1
    );
    let future = app
        .gql
        .ok(
            &viewer,
            "{ events(filter: {since: \"2999-01-01T00:00:00Z\"}) { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(future["events"]["edges"], json!([]));

    let deliveries: Page<Delivery> = app
        .gql
        .field(
            &viewer,
            "query($w: ID!) { deliveries(filter: {webhookId: $w, status: SUCCEEDED}) { edges { node { id status event { type } webhook { id } endpoint { url } attempts { attemptNumber } } } } }",
            json!({ "w": webhook_id }),
        )
        .await;
    let nodes = deliveries.items();
    assert_eq!(nodes.len(), 3);
    assert_eq!(nodes[0].event.event_type, "offer.updated");
    assert_eq!(nodes[0].webhook.id, webhook_id);
    assert_eq!(
        nodes[0].endpoint.as_ref().map(|e| e.url.as_str()),
        Some(receiver.url.as_str())
    );
    assert_eq!(nodes[0].attempts[0].attempt_number, 1);
    let webhook_deliveries: Webhook = app
        .gql
        .field(&viewer, "query($w: ID!) { webhook(id: $w) { deliveries(first: 2) { edges { cursor } pageInfo { hasNextPage } } } }", json!({ "w": webhook_id }))
        .await;
    assert!(webhook_deliveries.deliveries.page_info.has_next_page);

    let stats = delivery_stats(&app, &viewer).await;
    assert_eq!(
        stats,
        DeliveryStats {
            pending: 0,
            retrying: 0,
            succeeded: 3,
            failed: 0,
            cancelled: 0,
            attempts: 3
        }
    );

    let since = (chrono::Utc::now() - chrono::Duration::minutes(5)).to_rfc3339();
    let metrics = app
        .gql
        .ok(
            &viewer,
            "query($since: DateTime) { attemptMetrics(since: $since, bucketSeconds: 60) { start succeeded failed meanDurationMs maxDurationMs } }",
            json!({ "since": since }),
        )
        .await;
    let buckets = metrics["attemptMetrics"].as_array().expect("buckets");
    assert!(
        (5..=7).contains(&buckets.len()),
        "one bucket a minute: {}",
        buckets.len()
    );
    let succeeded: u64 = buckets
        .iter()
        .map(|b| b["succeeded"].as_u64().expect("n"))
        .sum();
    assert_eq!(succeeded, 3);
    let busy: Vec<&Value> = buckets
        .iter()
        .filter(|b| b["succeeded"].as_u64() > Some(0))
        .collect();
    assert!(!busy.is_empty(), "a bucket holds the attempts: {buckets:?}");
    for bucket in busy {
        let mean = bucket["meanDurationMs"].as_f64().expect("mean");
        let max = bucket["maxDurationMs"].as_i64().expect("max");
        assert!(
            (25.0..5_000.0).contains(&mean) && max >= 25 && max as f64 >= mean,
            "durations of 25 ms requests: {bucket}"
        );
    }
    let err = app
        .gql
        .err(
            Some(&viewer),
            "{ attemptMetrics(since: \"2001-01-01T00:00:00Z\") { start } }",
            json!({}),
        )
        .await;
    assert_eq!(err.code(), "BAD_USER_INPUT");

    // Another tenant sees none of it.
    let intruder = app.admin("globex");
    let err = app
        .gql
        .err(
            Some(&intruder),
            "query($id: ID!) { event(id: $id) { id } }",
            json!({ "id": ids[0] }),
        )
        .await;
    assert_eq!(err.code(), "NOT_FOUND");
    let delivery_id = nodes[0].id.as_str();
    let err = app
        .gql
        .err(Some(&intruder), DELIVERY, json!({ "id": delivery_id }))
        .await;
    assert_eq!(err.code(), "NOT_FOUND");
    let theirs = app
        .gql
        .ok(
            &intruder,
            "{ events { edges { cursor } } deliveries { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(theirs["events"]["edges"], json!([]));
    assert_eq!(theirs["deliveries"]["edges"], json!([]));
}

/// Concurrent single publishes are committed together; each still gets its
/// own answer: a bad input fails alone, a shared idempotency key yields one
/// event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishes_are_committed_together_but_answered_apart() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let receiver = Receiver::ok().await;
    create_webhook(&app, &admin, fast_webhook(&receiver.url, &["*"], 3)).await;
    let requests = (0..60).map(|n| {
        let gql = app.gql.clone();
        let admin = admin.clone();
        let input = match n % 3 {
            0 => json!({ "type": "nope.created", "data": {} }),
            1 => json!({ "type": "offer.created", "data": { "n": n }, "idempotencyKey": "shared" }),
            _ => json!({ "type": "offer.created", "data": { "n": n } }),
        };
        tokio::spawn(async move {
            (
                n,
                gql.run(Some(&admin), PUBLISH, json!({ "input": input }))
                    .await,
            )
        })
    });
    let mut shared_ids = std::collections::HashSet::new();
    for handle in requests {
        let (n, body) = handle.await.expect("request");
        match n % 3 {
            0 => assert_eq!(
                error_code(&body).as_deref(),
                Some("BAD_USER_INPUT"),
                "{body}"
            ),
            1 => {
                let published: Published = parse(&body["data"]["publishEvent"]);
                shared_ids.insert(published.event.id);
            }
            _ => {
                let published: Published = parse(&body["data"]["publishEvent"]);
                assert!(!published.duplicate, "{body}");
            }
        }
    }
    assert_eq!(shared_ids.len(), 1, "one event for the shared key");
    assert_eq!(
        event_count(&app, &admin).await,
        21,
        "20 distinct events and 1 keyed one"
    );
    receiver.wait_for(21, Duration::from_secs(15)).await;
}

/// Single publishes racing the deletion of one of two webhooks: every
/// publish is stored once (a commit the deletion refuses is written again,
/// never twice), and the webhook that stays receives each event once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_racing_a_webhook_deletion_are_all_stored_and_matched_once() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let (staying, leaving) = (Receiver::ok().await, Receiver::ok().await);
    create_webhook(&app, &admin, fast_webhook(&staying.url, &["*"], 3)).await;
    let doomed = create_webhook(&app, &admin, fast_webhook(&leaving.url, &["*"], 3)).await;
    // 96: the event count below reads one page of 100.
    let publishes: Vec<_> = (0..96)
        .map(|n| {
            let gql = app.gql.clone();
            let admin = admin.clone();
            tokio::spawn(async move {
                let input = json!({ "type": "offer.created", "data": { "n": n } });
                gql.run(Some(&admin), PUBLISH, json!({ "input": input }))
                    .await
            })
        })
        .collect();
    app.gql
        .ok(
            &admin,
            "mutation($id: ID!) { deleteWebhook(id: $id) { deletedId } }",
            json!({ "id": doomed.webhook.id }),
        )
        .await;
    for publish in publishes {
        let body = publish.await.expect("publish task");
        let published: Published = parse(&body["data"]["publishEvent"]);
        assert!(!published.duplicate, "{body}");
        assert!((1..=2).contains(&published.delivery_count), "{body}");
    }
    assert_eq!(
        event_count(&app, &admin).await,
        96,
        "each publish stored once"
    );
    let mut numbers = settled_numbers(&staying, 96).await;
    assert_eq!(numbers.len(), 96, "no event delivered twice");
    numbers.dedup();
    assert_eq!(
        numbers,
        (0..96).collect::<Vec<_>>(),
        "every event delivered"
    );
}

/// Concurrent single publishes too big to share one statement (40 × 3 KB,
/// against a 12 KiB bound), some with idempotency keys: on PostgreSQL a
/// group is cut into several statements and a transaction; whatever the
/// cut, each is stored and delivered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_too_big_for_one_statement_is_cut_and_each_publish_stored_once() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let receiver = Receiver::ok().await;
    create_webhook(&app, &admin, fast_webhook(&receiver.url, &["*"], 3)).await;
    let publishes: Vec<_> = (0..40)
        .map(|n| {
            let gql = app.gql.clone();
            let admin = admin.clone();
            tokio::spawn(async move {
                let mut input = json!({
                    "type": "offer.created",
                    "data": { "n": n, "pad": "x".repeat(3000) },
                });
                if n % 7 == 3 {
                    input["idempotencyKey"] = json!(format!("key-{n}"));
                }
                gql.run(Some(&admin), PUBLISH, json!({ "input": input }))
                    .await
            })
        })
        .collect();
    for publish in publishes {
        let body = publish.await.expect("publish task");
        let published: Published = parse(&body["data"]["publishEvent"]);
        assert!(!published.duplicate, "{body}");
        assert_eq!(published.delivery_count, 1, "{body}");
    }
    assert_eq!(
        event_count(&app, &admin).await,
        40,
        "each publish stored once"
    );
    let numbers = settled_numbers(&receiver, 40).await;
    assert_eq!(numbers, (0..40).collect::<Vec<_>>(), "each delivered once");
}

/// The `data.n` of every request `receiver` got, sorted, once `expected`
/// arrived and long enough after for a second copy of any to arrive too.
async fn settled_numbers(receiver: &Receiver, expected: usize) -> Vec<i64> {
    receiver.wait_for(expected, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut numbers: Vec<i64> = receiver
        .received()
        .iter()
        .map(|r| r.json()["data"]["n"].as_i64().expect("n"))
        .collect();
    numbers.sort_unstable();
    numbers
}

/// `levels` arrays inside each other, the innermost holding `1`.
fn nested_lists(levels: usize) -> Value {
    (1..levels).fold(json!([1]), |inner, _| Value::Array(vec![inner]))
}

#[tokio::test]
async fn payloads_and_schemas_nested_too_deep_are_refused_and_the_rest_read_back_whole() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let receiver = Receiver::ok().await;
    create_webhook(
        &app,
        &admin,
        fast_webhook(&receiver.url, &["offer.created"], 1),
    )
    .await;

    // As deep as allowed: stored, read back and delivered exactly as sent.
    let deepest = nested_lists(hookline::domain::validate::MAX_JSON_DEPTH - 1);
    let data = json!({ "tree": deepest });
    let published = publish(&app, &admin, "offer.created", data.clone()).await;
    assert_eq!(published.event.data, data);
    let events = app
        .gql
        .ok(
            &admin,
            "{ events(first: 1) { edges { node { data } } } }",
            json!({}),
        )
        .await;
    assert_eq!(events["events"]["edges"][0]["node"]["data"], data);
    let arrived = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(arrived[0].json()["data"], data);

    // One level deeper, in a variable: refused, naming the field.
    let too_deep = json!({ "tree": nested_lists(hookline::domain::validate::MAX_JSON_DEPTH) });
    for (query, variables, field) in [
        (
            PUBLISH,
            json!({ "input": { "type": "offer.created", "data": too_deep } }),
            "data",
        ),
        (
            PUBLISH_MANY,
            json!({ "inputs": [{ "type": "offer.created", "data": {} },
                               { "type": "offer.created", "data": too_deep }] }),
            "inputs[1].data",
        ),
        (
            "mutation($input: CreateEventTypeInput!) { createEventType(input: $input) { name } }",
            json!({ "input": { "name": "deep.schema", "description": "x",
                               "schema": { "type": "array", "items": too_deep } } }),
            "schema",
        ),
    ] {
        let error = app.gql.err(Some(&admin), query, variables).await;
        assert_eq!(error.code(), "BAD_USER_INPUT", "{error}");
        assert_eq!(error.field(), Some(field), "{error}");
    }
    assert_eq!(event_count(&app, &admin).await, 1);
}

/// Posts a raw JSON body, so numbers reach the server as written.
async fn post_raw(app: &TestApp, token: &str, body: String) -> (u16, Value) {
    let response = app
        .gql
        .http
        .post(&app.gql.endpoint)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON response"))
}

#[tokio::test]
async fn numbers_are_delivered_as_sent_or_refused_never_changed() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let receiver = Receiver::ok().await;
    create_webhook(
        &app,
        &admin,
        fast_webhook(&receiver.url, &["offer.created"], 1),
    )
    .await;

    // Numbers a 64-bit integer or a double holds: delivered with their value.
    let kept = r#"{"max":18446744073709551615,"min":-9223372036854775808,"pi":3.141592653589793,"tenth":0.1,"huge":1e300,"tiny":5e-324}"#;
    let (status, body) = post_raw(
        &app,
        &admin,
        format!(
            r#"{{"query":"mutation($input: PublishEventInput!) {{ publishEvent(input: $input) {{ event {{ id }} }} }}","variables":{{"input":{{"type":"offer.created","data":{kept}}}}}}}"#
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    let arrived = receiver.wait_for(1, Duration::from_secs(10)).await;
    let delivered = String::from_utf8_lossy(&arrived[0].body).into_owned();
    for text in [
        "18446744073709551615",
        "-9223372036854775808",
        "3.141592653589793",
        "0.1",
    ] {
        assert!(delivered.contains(text), "{text} in {delivered}");
    }
    let data = &arrived[0].json()["data"];
    assert_eq!(data["huge"].as_f64(), Some(1e300));
    assert_eq!(data["tiny"].as_f64(), Some(5e-324));

    // Numbers that would be changed: refused, in a variable or a literal.
    for number in [
        "123456789012345678901234567890",
        "18446744073709551616",
        "0.10000000000000000001",
    ] {
        let (status, body) = post_raw(
            &app,
            &admin,
            format!(
                r#"{{"query":"mutation($input: PublishEventInput!) {{ publishEvent(input: $input) {{ event {{ id }} }} }}","variables":{{"input":{{"type":"offer.created","data":{{"amount":{number}}}}}}}}}"#
            ),
        )
        .await;
        assert_eq!(status, 400, "{body}");
        let error = first_error(&body).expect("an error");
        assert_eq!(error.code(), "BAD_USER_INPUT", "{body}");
        assert!(error.message.contains(number), "{body}");

        let literal = format!(
            "mutation {{ publishEvent(input: {{type: \"offer.created\", data: {{amount: {number}}}}}) {{ event {{ id }} }} }}"
        );
        let error = app.gql.err(Some(&admin), &literal, json!({})).await;
        assert_eq!(error.code(), "BAD_USER_INPUT", "{error}");
        assert_eq!(error.field(), Some("query"), "{error}");

        // Over WebSocket, the operation gets the error and the socket lives on.
        let mut socket =
            crate::support::ws::WsClient::connect(app.addr, "graphql-transport-ws", None).await;
        socket
            .init(json!({ "Authorization": format!("Bearer {admin}") }))
            .await
            .expect("ack");
        socket
            .send_text(&format!(
                r#"{{"id":"1","type":"subscribe","payload":{{"query":"mutation($input: PublishEventInput!) {{ publishEvent(input: $input) {{ event {{ id }} }} }}","variables":{{"input":{{"type":"offer.created","data":{{"amount":{number}}}}}}}}}}}"#
            ))
            .await;
        let reply = socket.recv(Duration::from_secs(5)).await.expect("reply");
        assert_eq!(reply["type"], "error", "{reply}");
        assert_eq!(reply["payload"][0].code(), "BAD_USER_INPUT", "{reply}");
        socket.close().await;
    }
    assert_eq!(event_count(&app, &admin).await, 1);
}
