//! Health per endpoint: a dead endpoint is disabled alone beside a live
//! one, an admin disables and enables endpoints, a webhook left with no
//! active endpoint is disabled and comes back with them, and each endpoint
//! reports its streak and its attempts over the last hour and day.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{
    TestApp, eventually,
    fixtures::*,
    gql::Gql,
    receiver::{Receiver, Reply},
    types::Endpoint,
};

const ENDPOINT_FIELDS: &str = "id url status disabledReason disabledAt consecutiveFailures
    failingSince lastSuccessAt lastFailureAt
    lastHour { attempts succeeded successRate durationP50Ms durationP95Ms }
    lastDay { attempts succeeded successRate durationP50Ms durationP95Ms }";

/// The webhook's endpoints, every health field of them, in the order given.
async fn endpoints(on: &impl AsRef<Gql>, token: &str, webhook_id: &str) -> Vec<Endpoint> {
    let query =
        format!("query($id: ID!) {{ webhook(id: $id) {{ endpoints {{ {ENDPOINT_FIELDS} }} }} }}");
    let found: Value = on
        .as_ref()
        .field(token, &query, json!({ "id": webhook_id }))
        .await;
    serde_json::from_value(found["endpoints"].clone()).expect("endpoints")
}

async fn set_endpoint(
    on: &impl AsRef<Gql>,
    token: &str,
    id: &str,
    enable: bool,
    reason: Option<&str>,
) -> Endpoint {
    let doc = if enable {
        format!("mutation($id: ID!) {{ enableEndpoint(id: $id) {{ {ENDPOINT_FIELDS} }} }}")
    } else {
        format!(
            "mutation($id: ID!, $reason: String) {{ disableEndpoint(id: $id, reason: $reason) {{ {ENDPOINT_FIELDS} }} }}"
        )
    };
    on.as_ref()
        .field(token, &doc, json!({ "id": id, "reason": reason }))
        .await
}

/// A webhook delivering `offer.created` to each of `urls`, retrying fast.
fn webhook_to(urls: &[&str], max_attempts: u32, interval_ms: u64) -> Value {
    let mut input = fast_webhook(urls[0], &["offer.created"], max_attempts);
    input["endpoints"] = json!(
        urls.iter()
            .map(|url| json!({ "url": url }))
            .collect::<Vec<_>>()
    );
    input["retryPolicy"] = json!({
        "maxAttempts": max_attempts,
        "initialIntervalMs": interval_ms,
        "maxIntervalMs": interval_ms,
    });
    input
}

#[tokio::test]
async fn a_gone_endpoint_beside_a_live_one_is_disabled_alone() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let gone = Receiver::start(|_| Reply::Status(410)).await;
    let live = Receiver::start(|_| Reply::Status(200)).await;
    let created = create_webhook(&app, &admin, webhook_to(&[&gone.url, &live.url], 5, 100)).await;
    let published = publish(&app, &admin, "offer.created", json!({})).await;
    assert_eq!(published.delivery_count, 2);
    live.wait_for(1, WAIT).await;
    let found = eventually("the gone endpoint to be disabled", WAIT, || async {
        let found = endpoints(&app, &admin, &created.webhook.id).await;
        (found[0].status == "DISABLED").then_some(found)
    })
    .await;
    let [dead, alive] = <[Endpoint; 2]>::try_from(found).expect("two endpoints");
    assert_eq!(dead.status, "DISABLED", "{dead:?}");
    assert!(
        dead.disabled_reason
            .as_deref()
            .expect("reason")
            .contains("410"),
        "{dead:?}"
    );
    assert!(dead.disabled_at.is_some());
    assert_eq!(alive.status, "ACTIVE", "{alive:?}");
    let webhook = webhook(&app, &admin, &created.webhook.id).await;
    assert_eq!(
        webhook.status, "ACTIVE",
        "the live endpoint keeps the webhook active"
    );

    let again = publish(&app, &admin, "offer.created", json!({})).await;
    assert_eq!(again.delivery_count, 1, "only the live endpoint receives");
    live.wait_for(2, WAIT).await;
    assert_eq!(gone.count(), 1, "no request after 410");
}

#[tokio::test]
async fn an_endpoint_failing_for_the_whole_window_is_disabled_though_its_sibling_succeeds() {
    let app = TestApp::spawn_with(|config| config.disable_after = Duration::from_millis(600)).await;
    let admin = app.admin("acme");
    let failing = Receiver::start(|_| Reply::Status(500)).await;
    let live = Receiver::start(|_| Reply::Status(200)).await;
    let created = create_webhook(
        &app,
        &admin,
        webhook_to(&[&failing.url, &live.url], 20, 150),
    )
    .await;
    // The live endpoint keeps succeeding while the other fails: successes
    // elsewhere must not reset the failing endpoint's streak.
    let dead = eventually("the failing endpoint to be disabled", WAIT, || async {
        publish(&app, &admin, "offer.created", json!({})).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let found = endpoints(&app, &admin, &created.webhook.id).await;
        (found[0].status == "DISABLED").then_some(found)
    })
    .await;
    assert!(
        dead[0]
            .disabled_reason
            .as_deref()
            .expect("reason")
            .contains("failed"),
        "{:?}",
        dead[0]
    );
    assert!(dead[0].consecutive_failures >= 3, "{:?}", dead[0]);
    assert!(dead[0].failing_since.is_some());
    assert_eq!(dead[1].status, "ACTIVE", "{:?}", dead[1]);
    assert_eq!(dead[1].consecutive_failures, 0);
    assert!(dead[1].last_success_at.is_some());
    assert_eq!(
        webhook(&app, &admin, &created.webhook.id).await.status,
        "ACTIVE"
    );

    // Its open deliveries are cancelled when they come due, not attempted.
    let before = failing.count();
    let stats = wait_settled(&app, &admin, WAIT).await;
    assert!(stats.cancelled > 0, "{stats:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        failing.count(),
        before,
        "nothing is sent to a disabled endpoint"
    );
}

#[tokio::test]
async fn an_admin_disables_and_enables_endpoints_and_the_webhook_follows_the_last_one() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let one = Receiver::start(|_| Reply::Status(200)).await;
    let two = Receiver::start(|_| Reply::Status(200)).await;
    let created = create_webhook(&app, &admin, webhook_to(&[&one.url, &two.url], 3, 100)).await;
    let ids: Vec<String> = created
        .webhook
        .endpoints
        .iter()
        .map(|e| e.id.clone())
        .collect();

    let off = set_endpoint(
        &app,
        &admin,
        &ids[0],
        false,
        Some("receiver under maintenance"),
    )
    .await;
    assert_eq!(off.status, "DISABLED");
    assert_eq!(
        off.disabled_reason.as_deref(),
        Some("receiver under maintenance")
    );
    assert_eq!(
        publish(&app, &admin, "offer.created", json!({}))
            .await
            .delivery_count,
        1
    );
    assert_eq!(
        webhook(&app, &admin, &created.webhook.id).await.status,
        "ACTIVE"
    );

    // The last active endpoint disabled: the webhook is disabled with it.
    let off = set_endpoint(&app, &admin, &ids[1], false, None).await;
    assert!(
        off.disabled_reason
            .as_deref()
            .expect("reason")
            .contains("disabled by"),
        "{off:?}"
    );
    let disabled = webhook(&app, &admin, &created.webhook.id).await;
    assert_eq!(disabled.status, "DISABLED");
    assert_eq!(
        publish(&app, &admin, "offer.created", json!({}))
            .await
            .delivery_count,
        0
    );

    // One endpoint enabled: the webhook is active again, for that one.
    let on = set_endpoint(&app, &admin, &ids[1], true, None).await;
    assert_eq!(on.status, "ACTIVE");
    assert_eq!(on.disabled_reason, None);
    assert_eq!(
        webhook(&app, &admin, &created.webhook.id).await.status,
        "ACTIVE"
    );
    assert_eq!(
        publish(&app, &admin, "offer.created", json!({}))
            .await
            .delivery_count,
        1
    );

    // Setting the webhook active again enables every endpoint of it.
    set_endpoint(&app, &admin, &ids[1], false, None).await;
    app.gql
        .ok(
            &admin,
            "mutation($id: ID!) { updateWebhook(id: $id, input: { status: ACTIVE }) { id } }",
            json!({ "id": created.webhook.id }),
        )
        .await;
    let found = endpoints(&app, &admin, &created.webhook.id).await;
    assert!(found.iter().all(|e| e.status == "ACTIVE"), "{found:?}");
    assert_eq!(
        publish(&app, &admin, "offer.created", json!({}))
            .await
            .delivery_count,
        2
    );
    one.wait_for(1, WAIT).await;
    two.wait_for(3, WAIT).await;
}

#[tokio::test]
async fn each_endpoint_counts_its_own_attempts_over_the_last_hour_and_day() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    // Fails its first two requests, then succeeds.
    let flaky = Receiver::start(|n| Reply::Status(if n < 2 { 503 } else { 200 })).await;
    let steady = Receiver::start(|_| Reply::Status(200)).await;
    let created =
        create_webhook(&app, &admin, webhook_to(&[&flaky.url, &steady.url], 5, 100)).await;
    let published = publish(&app, &admin, "offer.created", json!({})).await;
    wait_event_deliveries(&app, &admin, &published.event.id, "SUCCEEDED").await;
    let [flaky_stats, steady_stats] =
        <[Endpoint; 2]>::try_from(endpoints(&app, &admin, &created.webhook.id).await)
            .expect("two endpoints");
    for window in [&flaky_stats.last_hour, &flaky_stats.last_day] {
        assert_eq!(window.attempts, 3, "{flaky_stats:?}");
        assert_eq!(window.succeeded, 1);
        let rate = window.success_rate.expect("a rate");
        assert!((rate - 1.0 / 3.0).abs() < 1e-9, "{rate}");
        let (p50, p95) = (window.duration_p50_ms, window.duration_p95_ms);
        assert!(p50.is_some() && p95 >= p50, "{window:?}");
    }
    assert_eq!(
        flaky_stats.consecutive_failures, 0,
        "the success ended the streak"
    );
    assert!(flaky_stats.last_failure_at.is_some() && flaky_stats.last_success_at.is_some());
    assert_eq!(flaky_stats.failing_since, None);
    assert_eq!(steady_stats.last_hour.attempts, 1);
    assert_eq!(steady_stats.last_hour.success_rate, Some(1.0));
    assert_eq!(steady_stats.last_failure_at, None);

    // A webhook without attempts has empty windows, not zero rates.
    let idle = create_webhook(&app, &admin, webhook_to(&[&steady.url], 1, 100)).await;
    let quiet = &endpoints(&app, &admin, &idle.webhook.id).await[0];
    assert_eq!(quiet.last_hour.attempts, 0);
    assert_eq!(quiet.last_hour.success_rate, None);
    assert_eq!(quiet.last_hour.duration_p50_ms, None);
}

#[tokio::test]
async fn endpoint_changes_are_admin_only_checked_and_kept_within_the_tenant() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let created = create_webhook(&app, &admin, webhook_input("http://127.0.0.1:9/")).await;
    let id = created.webhook.endpoints[0].id.clone();
    let disable =
        "mutation($id: ID!, $reason: String) { disableEndpoint(id: $id, reason: $reason) { id } }";

    let other = app.admin("globex");
    let err = app
        .gql
        .err(Some(&other), disable, json!({ "id": id }))
        .await;
    assert_eq!(err.code(), "NOT_FOUND", "{err:?}");
    let publisher = app.token("acme", hookline::auth::Role::Publisher);
    let err = app
        .gql
        .err(Some(&publisher), disable, json!({ "id": id }))
        .await;
    assert_eq!(err.code(), "FORBIDDEN", "{err:?}");
    let err = app
        .gql
        .err(
            Some(&admin),
            disable,
            json!({ "id": id, "reason": "x".repeat(501) }),
        )
        .await;
    assert_eq!(err.code(), "BAD_USER_INPUT", "{err:?}");
    let err = app
        .gql
        .err(Some(&admin), disable, json!({ "id": "not-an-endpoint" }))
        .await;
    assert!(
        matches!(err.code(), "NOT_FOUND" | "BAD_USER_INPUT"),
        "{err:?}"
    );
    let found = endpoints(&app, &admin, &created.webhook.id).await;
    assert_eq!(
        found[0].status, "ACTIVE",
        "nothing refused changed anything"
    );
}
