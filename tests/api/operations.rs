//! Operating hookline: `/metrics`, retention, rate limits, SSRF at delivery
//! time, and secrets at rest.

use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::{Value, json};

use crate::support::{
    TestApp,
    app::on_postgres,
    eventually,
    fixtures::*,
    receiver::{Receiver, Reply},
};

/// A series' value, 0 when it is not exposed (yet).
fn metric(text: &str, series: &str) -> f64 {
    crate::support::app::metric(text, series).unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_count_what_happened() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let flaky = Receiver::start(|n| {
        if n == 0 {
            Reply::Status(500)
        } else {
            Reply::Status(200)
        }
    })
    .await;
    let ok = Receiver::ok().await;
    create_webhook(&app, &admin, fast_webhook(&flaky.url, &["offer.*"], 3)).await;
    create_webhook(&app, &admin, fast_webhook(&ok.url, &["*"], 3)).await;
    publish(&app, &admin, "offer.created", json!({})).await;
    publish(&app, &admin, "affiliate.created", json!({})).await;
    wait_stats(
        &app,
        &admin,
        "all deliveries settled",
        Duration::from_secs(10),
        |s| s.succeeded == 3,
    )
    .await;

    let response = reqwest::get(app.url("/metrics")).await.expect("scrape");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/plain")
    );
    let text = response.text().await.expect("body");
    assert_eq!(
        metric(&text, "hookline_events_published_total"),
        2.0,
        "{text}"
    );
    assert_eq!(metric(&text, "hookline_deliveries_created_total"), 3.0);
    assert_eq!(
        metric(
            &text,
            "hookline_delivery_attempts_total{outcome=\"succeeded\"}"
        ),
        3.0
    );
    assert_eq!(
        metric(
            &text,
            "hookline_delivery_attempts_total{outcome=\"failed\",error_kind=\"non_2xx\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "hookline_deliveries_finished_total{status=\"succeeded\"}"
        ),
        3.0
    );
    assert_eq!(
        metric(&text, "hookline_attempt_duration_seconds_count"),
        4.0
    );
    assert!(
        text.contains("hookline_attempt_duration_seconds_bucket{le=\"0.005\"}"),
        "histogram buckets"
    );
    assert_eq!(metric(&text, "hookline_queue_due"), 0.0);
    assert_eq!(metric(&text, "hookline_subscribers"), 0.0);
    assert!(text.contains("# HELP hookline_queue_oldest_due_seconds"));
}

/// `/metrics` needs no login, so a loop on it must not become a loop of queue
/// counts: scrapes within a second of a count share its figures, even when
/// the queue changed since, and a scrape after that second counts again.
#[tokio::test]
async fn queue_gauges_are_counted_at_most_once_a_second() {
    // No worker: what is published stays in the queue.
    let app = TestApp::spawn_with(|c| c.no_worker = true).await;
    let admin = app.admin("acme");
    create_webhook(&app, &admin, webhook_input("http://127.0.0.1:9/")).await;
    let open = "hookline_queue_open";

    // A scrape that ends within a second of `counted` began within the
    // second of the count made after it, so it must share that count. On a
    // busy machine the scrapes may take longer: the round is made again.
    let mut shared = 0;
    let mut before = None;
    let mut counted = Instant::now();
    for round in 0..5 {
        if round > 0 {
            // The last count's second passes: the next scrape counts.
            tokio::time::sleep(Duration::from_millis(1_100)).await;
        }
        counted = Instant::now();
        before = app.metric(open).await;
        assert_eq!(
            before,
            Some(f64::from(round)),
            "a scrape after a second counts"
        );
        publish(&app, &admin, "offer.created", json!({})).await;
        let scrapes = futures::future::join_all((0..20).map(|_| async {
            let scrape = app.metric(open).await;
            (scrape, counted.elapsed())
        }))
        .await;
        for (scrape, at) in scrapes {
            if at < Duration::from_secs(1) {
                assert_eq!(
                    scrape, before,
                    "a scrape within a second of a count counted again"
                );
                shared += 1;
            }
        }
        if shared > 0 {
            break;
        }
    }
    assert!(
        shared > 0,
        "no scrape ended within a second of a count in 5 rounds"
    );

    let after = before.map(|open| open + 1.0);
    eventually(
        "a later scrape counts the delivery",
        Duration::from_secs(5),
        || async { (app.metric(open).await == after).then_some(()) },
    )
    .await;
    assert!(counted.elapsed() >= Duration::from_secs(1));
}

/// Publishes without idempotency keys, and successful attempts, are
/// written by one statement each (one trip on SQLite); `/metrics` says so,
/// which makes a one-statement write that starts failing (and silently
/// falls back to a transaction) visible.
#[tokio::test]
async fn writes_say_which_way_they_went() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let ok = Receiver::ok().await;
    create_webhook(&app, &admin, fast_webhook(&ok.url, &["*"], 3)).await;
    for _ in 0..3 {
        publish(&app, &admin, "offer.created", json!({})).await;
    }
    wait_stats(&app, &admin, "3 deliveries", Duration::from_secs(10), |s| {
        s.succeeded == 3
    })
    .await;

    // The recorder counts its writes before the attempts they recorded.
    let succeeded = "hookline_delivery_attempts_total{outcome=\"succeeded\"}";
    let text = eventually("3 attempts counted", Duration::from_secs(5), || async {
        let text = reqwest::get(app.url("/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        (metric(&text, succeeded) >= 3.0).then_some(text)
    })
    .await;
    let writes = |writer: &str, path: &str| {
        let series = format!("hookline_writes_total{{writer=\"{writer}\",way=\"{path}\"}}");
        crate::support::app::metric(&text, &series).expect("every series is exposed")
    };
    assert_eq!(writes("publish", "one_statement"), 3.0, "{text}");
    assert_eq!(writes("publish", "transaction"), 0.0);
    assert_eq!(writes("publish", "refused"), 0.0);
    assert!(writes("recorder", "one_statement") >= 1.0, "{text}");
    assert_eq!(writes("recorder", "transaction"), 0.0);
    assert_eq!(writes("recorder", "refused"), 0.0);
    assert!(text.contains("# HELP hookline_writes_total"));
}

#[tokio::test]
async fn history_past_the_retention_period_is_purged() {
    let app = TestApp::spawn_with(|config| config.retention = Duration::from_secs(2)).await;
    let admin = app.admin("acme");
    let receiver = Receiver::ok().await;
    let stuck = Receiver::start(|_| Reply::Status(500)).await;
    let kept = create_webhook(&app, &admin, fast_webhook(&receiver.url, &["offer.*"], 3)).await;
    let recovery: Value = app
        .gql
        .field(
            &admin,
            "mutation($id: ID!) { recoverDeliveries(filter: { webhookId: $id, since: \"2020-01-01T00:00:00Z\" }) { id } }",
            json!({ "id": kept.webhook.id }),
        )
        .await;
    let mut slow_retries = fast_webhook(&stuck.url, &["affiliate.*"], 5);
    slow_retries["retryPolicy"] =
        json!({ "maxAttempts": 5, "initialIntervalMs": 600000, "maxIntervalMs": 600000 });
    create_webhook(&app, &admin, slow_retries).await;
    let done = publish(&app, &admin, "offer.created", json!({})).await;
    let open = publish(&app, &admin, "affiliate.created", json!({})).await;
    receiver.wait_for(1, Duration::from_secs(5)).await;

    let event = "query($id: ID!) { event(id: $id) { id } }";
    eventually(
        "the settled event to be purged",
        Duration::from_secs(15),
        || async {
            let err = app
                .gql
                .err(Some(&admin), event, json!({ "id": done.event.id }))
                .await;
            (err.code() == "NOT_FOUND").then_some(())
        },
    )
    .await;
    // So does a finished recovery job.
    let job = "query($id: ID!) { recoveryJob(id: $id) { state } }";
    eventually(
        "the finished recovery to be purged",
        Duration::from_secs(15),
        || async {
            let err = app
                .gql
                .err(Some(&admin), job, json!({ "id": recovery["id"] }))
                .await;
            (err.code() == "NOT_FOUND").then_some(())
        },
    )
    .await;
    // The event whose delivery is still retrying stays.
    app.gql
        .ok(&admin, event, json!({ "id": open.event.id }))
        .await;
    let stats = delivery_stats(&app, &admin).await;
    assert_eq!(
        (stats.succeeded, stats.retrying),
        (0, 1),
        "deliveries went with their event"
    );
}

#[tokio::test]
async fn publishing_faster_than_the_rate_limit_is_refused_with_a_retry_hint() {
    let app = TestApp::spawn_with(|config| config.publish_rate = 1_000).await;
    let admin = app.admin("acme");
    let batch: Vec<Value> = (0..1_000)
        .map(|n| json!({ "type": "click.created", "data": { "n": n } }))
        .collect();
    let doc = "mutation($inputs: [PublishEventInput!]!) { publishEvents(inputs: $inputs) { deliveryCount } }";
    app.gql.ok(&admin, doc, json!({ "inputs": batch })).await;
    app.gql.ok(&admin, doc, json!({ "inputs": batch })).await;
    let err = app
        .gql
        .err(Some(&admin), doc, json!({ "inputs": batch }))
        .await;
    assert_eq!(err.code(), "RATE_LIMITED", "{err}");
    let hint = err.extensions.retry_after_ms.expect("retry hint");
    assert!((1..=1_000).contains(&hint), "{hint}");
    // Other tenants are unaffected.
    app.gql
        .ok(&app.admin("globex"), doc, json!({ "inputs": batch }))
        .await;
    // A fixed wait on purpose: the hint itself is under test, waiting it
    // out must be enough.
    tokio::time::sleep(Duration::from_millis(hint)).await;
    publish(&app, &admin, "click.created", json!({})).await;
}

/// A name that was fine when the webhook was saved but now points inside the
/// network (DNS rebinding, or a literal address saved while private endpoints
/// were allowed) is refused at connection time.
#[tokio::test]
async fn private_addresses_are_blocked_when_connecting_too() {
    let receiver = Receiver::ok().await;
    let port = receiver
        .url
        .trim_start_matches("http://127.0.0.1:")
        .split('/')
        .next()
        .expect("port")
        .to_owned();
    let permissive = TestApp::spawn_with(|config| config.no_worker = true).await;
    let admin = permissive.admin("acme");
    for url in [
        format!("http://localhost:{port}/hook"),
        format!("http://127.0.0.1:{port}/hook"),
    ] {
        create_webhook(&permissive, &admin, fast_webhook(&url, &["*"], 1)).await;
    }
    let database_url = permissive.database_url.clone();
    let dir = permissive.stop_keeping_data().await;

    let strict = TestApp::spawn_on(&database_url, |config| {
        config.allow_private_endpoints = false
    })
    .await;
    let published = publish(&strict, &admin, "offer.created", json!({})).await;
    assert_eq!(published.delivery_count, 2);
    let deliveries = wait_event_deliveries(&strict, &admin, &published.event.id, "FAILED").await;
    for d in deliveries {
        let attempt = delivery(&strict, &admin, &d.id).await.attempts[0].clone();
        assert_eq!(
            attempt.error_kind.as_deref(),
            Some("BLOCKED_ADDRESS"),
            "{attempt:?}"
        );
    }
    assert_eq!(receiver.count(), 0, "nothing reached the private address");
    drop(dir);
}

#[tokio::test]
async fn signing_secrets_are_encrypted_at_rest() {
    let app = TestApp::spawn_with(|config| config.no_worker = true).await;
    let admin = app.admin("acme");
    let created = create_webhook(&app, &admin, webhook_input("http://127.0.0.1:9/")).await;
    let secret = created.secret;
    let key_part = secret.trim_start_matches("whsec_").to_owned();
    let db = Database::connect(&app.database_url).await.expect("connect");
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT secret FROM webhooks",
        ))
        .await
        .expect("select");
    let stored: String = rows[0].try_get("", "secret").expect("secret column");
    assert!(stored.starts_with("v1:"), "{stored}");
    assert!(
        !stored.contains(&key_part),
        "the database holds the secret in the clear"
    );
    // A whole dump of the database (the SQLite file) holds it nowhere either.
    if !on_postgres() {
        let path = app.database_url.trim_start_matches("sqlite://").to_owned();
        let _dir = app.stop_keeping_data().await;
        let main = std::fs::read(&path).expect("the database file");
        assert!(!main.is_empty(), "{path} is empty");
        // The WAL is folded into the main file on a clean stop, and may be gone.
        let wal = match std::fs::read(format!("{path}-wal")) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(err) => panic!("reading {path}-wal: {err}"),
        };
        for (file, bytes) in [(&path, main), (&format!("{path}-wal"), wal)] {
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains(&key_part),
                "{file} holds the secret in the clear"
            );
        }
    }
}
