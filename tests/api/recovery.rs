//! `recoverDeliveries`: a background job re-queues exactly the failed (and
//! cancelled) deliveries of a window, once each, reports its progress,
//! goes on where it was after a restart, and can be cancelled.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering::SeqCst},
    },
    time::Duration,
};

use chrono::{SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::support::{
    TestApp, eventually,
    fixtures::*,
    gql::Gql,
    receiver::{Receiver, Reply},
};

const JOB_FIELDS: &str = "id state webhookId endpointId statuses total queued open succeeded failed
    createdAt finishedAt";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Job {
    id: String,
    state: String,
    #[serde(rename = "webhookId")]
    _webhook_id: String,
    endpoint_id: Option<String>,
    statuses: Vec<String>,
    total: u64,
    queued: u64,
    open: u64,
    succeeded: u64,
    failed: u64,
    finished_at: Option<String>,
}

async fn recover(on: &impl AsRef<Gql>, token: &str, filter: Value) -> Job {
    let doc = format!(
        "mutation($filter: RecoveryFilter!) {{ recoverDeliveries(filter: $filter) {{ {JOB_FIELDS} }} }}"
    );
    on.as_ref()
        .field(token, &doc, json!({ "filter": filter }))
        .await
}

async fn job(on: &impl AsRef<Gql>, token: &str, id: &str) -> Job {
    let doc = format!("query($id: ID!) {{ recoveryJob(id: $id) {{ {JOB_FIELDS} }} }}");
    on.as_ref().field(token, &doc, json!({ "id": id })).await
}

async fn finished(on: &impl AsRef<Gql>, token: &str, id: &str) -> Job {
    eventually(
        "the recovery to complete with nothing open",
        WAIT * 2,
        || async {
            let found = job(on, token, id).await;
            (found.state == "COMPLETED" && found.open == 0).then_some(found)
        },
    )
    .await
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A receiver that answers 500 while `up` is false and `when_up` after.
async fn switchable(up: &Arc<AtomicBool>, when_up: Reply) -> Receiver {
    let up = up.clone();
    Receiver::start(move |_| {
        if up.load(SeqCst) {
            when_up.clone()
        } else {
            Reply::Status(500)
        }
    })
    .await
}

async fn publish_n(app: &TestApp, token: &str, tag: &str, count: usize) -> Vec<String> {
    let inputs = (0..count)
        .map(|n| json!({ "type": "conversion.created", "data": { "tag": tag, "n": n } }))
        .collect();
    publish_many(app, token, inputs)
        .await
        .into_iter()
        .map(|published| published.event.id)
        .collect()
}

/// How many requests each event id got among `received`.
fn arrivals(received: &[crate::support::receiver::Received]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for request in received {
        *counts
            .entry(request.header("webhook-id").to_owned())
            .or_default() += 1;
    }
    counts
}

/// Deliveries failed before, inside and after a window, and some that
/// succeeded inside it: the ids of those that failed inside it, the window,
/// and how many requests the receiver had got by then.
struct Outage {
    failed_inside: BTreeSet<String>,
    since: String,
    until: String,
    seen: usize,
}

async fn outage(app: &TestApp, admin: &str, up: &AtomicBool, receiver: &Receiver) -> Outage {
    let settle = |count: usize| receiver.wait_for(count, WAIT);
    publish_n(app, admin, "before", 3).await;
    settle(3).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let since = now();
    let failed_inside: BTreeSet<String> = publish_n(app, admin, "inside", 12)
        .await
        .into_iter()
        .collect();
    settle(15).await;
    up.store(true, SeqCst);
    publish_n(app, admin, "arrived", 4).await;
    settle(19).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let until = now();
    up.store(false, SeqCst);
    publish_n(app, admin, "after", 3).await;
    settle(22).await;
    wait_settled(app, admin, WAIT).await;
    up.store(true, SeqCst);
    Outage {
        failed_inside,
        since,
        until,
        seen: receiver.count(),
    }
}

/// An endpoint down through an outage (see [`outage`]), then answering
/// `when_up`, and a recovery of the outage's window started.
async fn recover_window(app: &TestApp, admin: &str, when_up: Reply) -> (Receiver, Outage, Job) {
    let up = Arc::new(AtomicBool::new(false));
    let receiver = switchable(&up, when_up).await;
    let webhook_id = one_attempt_webhook(app, admin, &receiver.url).await;
    let outage = outage(app, admin, &up, &receiver).await;
    let window = json!({ "webhookId": webhook_id, "since": outage.since, "until": outage.until });
    let started = recover(app, admin, window).await;
    (receiver, outage, started)
}

/// Since the outage, exactly the deliveries that failed inside its window
/// arrived again, each once.
fn assert_each_failed_one_arrived_once(receiver: &Receiver, outage: &Outage) {
    let again = arrivals(&receiver.received()[outage.seen..]);
    let again_ids: BTreeSet<String> = again.keys().cloned().collect();
    assert_eq!(
        again_ids, outage.failed_inside,
        "exactly the failed ones of the window"
    );
    assert!(
        again.values().all(|&count| count == 1),
        "each once: {again:?}"
    );
}

async fn one_attempt_webhook(app: &TestApp, admin: &str, url: &str) -> String {
    create_webhook(app, admin, fast_webhook(url, &["conversion.*"], 1))
        .await
        .webhook
        .id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_requeues_exactly_the_failed_deliveries_of_the_window_once_each() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let (receiver, outage, started) = recover_window(&app, &admin, Reply::Status(200)).await;
    assert_eq!(started.total, 12, "{started:?}");
    assert_eq!(started.statuses, ["FAILED", "CANCELLED"]);
    assert_eq!(started.endpoint_id, None);
    let done = finished(&app, &admin, &started.id).await;
    assert_eq!(
        (done.queued, done.succeeded, done.failed),
        (12, 12, 0),
        "{done:?}"
    );
    assert!(done.finished_at.is_some());

    assert_each_failed_one_arrived_once(&receiver, &outage);
    let stats = delivery_stats(&app, &admin).await;
    assert_eq!((stats.succeeded, stats.failed), (16, 6), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovery_goes_on_where_it_was_after_a_restart() {
    // Two deliveries re-queued at a time, each taking 300 ms to arrive: the
    // job is still running when the server stops.
    let small_steps = |config: &mut hookline::config::Config| {
        config.recovery_batch = 2;
        config.recovery_in_flight = 2;
    };
    let app = TestApp::spawn_with(small_steps).await;
    let admin = app.admin("acme");
    let slow = Reply::Slow(Duration::from_millis(300));
    let (receiver, outage, started) = recover_window(&app, &admin, slow).await;
    eventually("the recovery to be under way", WAIT, || async {
        let found = job(&app, &admin, &started.id).await;
        (found.queued >= 4).then_some(())
    })
    .await;
    let database_url = app.database_url.clone();
    let _dir = app.stop_keeping_data().await;
    let midway = receiver.count() - outage.seen;
    assert!(
        midway < 12,
        "the recovery was done before the restart ({midway} arrived)"
    );

    let restarted = TestApp::spawn_on(&database_url, small_steps).await;
    let done = finished(&restarted, &admin, &started.id).await;
    assert_eq!(
        (done.total, done.queued, done.succeeded),
        (12, 12, 12),
        "{done:?}"
    );
    assert_each_failed_one_arrived_once(&receiver, &outage);
    restarted.stop().await;
}

#[tokio::test]
async fn a_recovery_can_be_cancelled_and_keeps_what_it_queued() {
    let app = TestApp::spawn_with(|config| {
        config.recovery_batch = 1;
        config.recovery_in_flight = 1;
    })
    .await;
    let admin = app.admin("acme");
    let up = Arc::new(AtomicBool::new(false));
    let receiver = switchable(&up, Reply::Slow(Duration::from_millis(500))).await;
    let webhook_id = one_attempt_webhook(&app, &admin, &receiver.url).await;
    let outage = outage(&app, &admin, &up, &receiver).await;
    let started = recover(
        &app,
        &admin,
        json!({ "webhookId": webhook_id, "since": outage.since }),
    )
    .await;
    // Inside the window and after it: 15 failed.
    assert_eq!(started.total, 15);
    let cancel = format!("mutation($id: ID!) {{ cancelRecovery(id: $id) {{ {JOB_FIELDS} }} }}");
    let cancelled: Job = app
        .gql
        .field(&admin, &cancel, json!({ "id": started.id }))
        .await;
    assert_eq!(cancelled.state, "CANCELLED");
    assert!(cancelled.finished_at.is_some());
    let twice = app
        .gql
        .err(Some(&admin), &cancel, json!({ "id": started.id }))
        .await;
    assert_eq!(
        twice.extensions.code.as_deref(),
        Some("CONFLICT"),
        "{twice:?}"
    );
    wait_settled(&app, &admin, WAIT).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let after = job(&app, &admin, &started.id).await;
    assert!(after.queued < 15, "a cancelled job stops: {after:?}");
    assert_eq!(receiver.count() - outage.seen, after.queued as usize);
}

#[tokio::test]
async fn recovery_of_one_endpoint_leaves_the_others_alone() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let down = Receiver::start(|_| Reply::Status(503)).await;
    let other_down = Receiver::start(|_| Reply::Status(503)).await;
    let mut input = fast_webhook(&down.url, &["conversion.*"], 1);
    input["endpoints"] = json!([{ "url": down.url }, { "url": other_down.url }]);
    let created = create_webhook(&app, &admin, input).await;
    let since = now();
    publish_n(&app, &admin, "x", 5).await;
    wait_settled(&app, &admin, WAIT).await;
    let endpoints: Value = app
        .gql
        .field(
            &admin,
            "query($id: ID!) { webhook(id: $id) { endpoints { id } } }",
            json!({ "id": created.webhook.id }),
        )
        .await;
    let first = endpoints["endpoints"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (before, other_before) = (down.count(), other_down.count());
    let started = recover(&app, &admin, json!({ "endpointId": first, "since": since })).await;
    assert_eq!(
        (started.total, started.endpoint_id.as_deref()),
        (5, Some(first.as_str()))
    );
    let done = finished(&app, &admin, &started.id).await;
    assert_eq!((done.queued, done.failed), (5, 5), "{done:?}");
    assert_eq!(down.count() - before, 5);
    assert_eq!(
        other_down.count(),
        other_before,
        "the other endpoint is left alone"
    );
}

#[tokio::test]
async fn recovery_refuses_what_it_cannot_do_with_a_code() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let receiver = Receiver::ok().await;
    let webhook_id = one_attempt_webhook(&app, &admin, &receiver.url).await;
    let doc = "mutation($filter: RecoveryFilter!) { recoverDeliveries(filter: $filter) { id } }";
    let cases = [
        (json!({ "since": now() }), "BAD_USER_INPUT"),
        (
            json!({ "webhookId": webhook_id, "endpointId": "ep_01jf3w9k0000000000000000aa", "since": now() }),
            "BAD_USER_INPUT",
        ),
        (
            json!({ "webhookId": webhook_id, "since": now(), "statuses": ["PENDING"] }),
            "BAD_USER_INPUT",
        ),
        (
            json!({ "webhookId": webhook_id, "since": now(), "statuses": [] }),
            "BAD_USER_INPUT",
        ),
        (
            json!({ "webhookId": webhook_id, "since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z" }),
            "BAD_USER_INPUT",
        ),
        (
            json!({ "webhookId": "wh_01jf3w9k0000000000000000aa", "since": now() }),
            "NOT_FOUND",
        ),
    ];
    for (filter, code) in cases {
        let error = app
            .gql
            .err(Some(&admin), doc, json!({ "filter": filter }))
            .await;
        assert_eq!(
            error.extensions.code.as_deref(),
            Some(code),
            "{filter}: {error:?}"
        );
    }
    // Another tenant's webhook is not found; a viewer may not recover.
    let other = app.admin("globex");
    let error = app
        .gql
        .err(
            Some(&other),
            doc,
            json!({ "filter": { "webhookId": webhook_id, "since": now() } }),
        )
        .await;
    assert_eq!(error.extensions.code.as_deref(), Some("NOT_FOUND"));
    let viewer = app.token("acme", hookline::auth::Role::Viewer);
    let error = app
        .gql
        .err(
            Some(&viewer),
            doc,
            json!({ "filter": { "webhookId": webhook_id, "since": now() } }),
        )
        .await;
    assert_eq!(error.extensions.code.as_deref(), Some("FORBIDDEN"));
    // A paused webhook's deliveries would only be cancelled again.
    app.gql
        .ok(
            &admin,
            "mutation($id: ID!) { updateWebhook(id: $id, input: { status: PAUSED }) { status } }",
            json!({ "id": webhook_id }),
        )
        .await;
    let error = app
        .gql
        .err(
            Some(&admin),
            doc,
            json!({ "filter": { "webhookId": webhook_id, "since": now() } }),
        )
        .await;
    assert_eq!(error.extensions.code.as_deref(), Some("CONFLICT"));
}

/// Recoveries asked for at once were all let through the cap of five
/// running per tenant: each counted the running ones, then counted its
/// scope, then stored itself, and all counted before any stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recoveries_asked_for_at_once_are_held_to_five_running() {
    let app = TestApp::spawn_with(|config| config.recovery_in_flight = 1).await;
    let admin = app.admin("acme");
    // Fails the first 30 requests, then holds each for 10 s: every job
    // stays running while the test looks.
    let receiver = Receiver::start(|n| {
        if n < 30 {
            Reply::Status(500)
        } else {
            Reply::Slow(Duration::from_secs(10))
        }
    })
    .await;
    let webhook_id = one_attempt_webhook(&app, &admin, &receiver.url).await;
    let since = now();
    publish_n(&app, &admin, "race", 30).await;
    eventually("30 failed deliveries", Duration::from_secs(15), || async {
        let stats = delivery_stats(&app, &admin).await;
        (stats.failed == 30).then_some(())
    })
    .await;

    let doc = "mutation($filter: RecoveryFilter!) { recoverDeliveries(filter: $filter) { id } }";
    let filter = json!({ "filter": { "webhookId": webhook_id, "since": since } });
    let asked = (0..10).map(|_| app.gql.run(Some(&admin), doc, filter.clone()));
    let answers = futures::future::join_all(asked).await;
    let started = answers.iter().filter(|a| a["errors"].is_null()).count();
    let refused = answers
        .iter()
        .filter(|a| a["errors"][0]["extensions"]["code"] == "CONFLICT")
        .count();
    assert_eq!((started, refused), (5, 5), "{answers:?}");
}
