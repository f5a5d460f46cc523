//! Delivery against real receivers: the request, signatures, retries,
//! timeouts, 410, fan-out, isolation.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{
    TestApp,
    fixtures::*,
    receiver::{Receiver, Reply},
    types::Attempt,
    verify::verify,
};

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn a_200_receiver_gets_the_exact_body_and_a_valid_signature() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let receiver = Receiver::ok().await;
    let created = create_webhook(&app, &admin, webhook_input(&receiver.url)).await;
    let secret = &created.secret;

    let data = json!({
        "conversionId": "cnv_981",
        "affiliateId": "aff_7",
        "previousStatus": "pending",
        "status": "approved",
        "payout": { "amount": 12.5, "currency": "EUR" }
    });
    let published = publish(&app, &admin, "conversion.status_changed", data.clone()).await;
    assert_eq!(published.delivery_count, 1);
    let event_id = published.event.id.as_str();

    let request = receiver.wait_for(1, WAIT).await.remove(0);
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/hook");
    assert_eq!(request.header("content-type"), "application/json");
    assert!(
        request.header("user-agent").starts_with("hookline/"),
        "{}",
        request.header("user-agent")
    );
    assert_eq!(
        request.header("x-api-key"),
        "k-123",
        "custom endpoint header"
    );
    assert_eq!(request.header("webhook-id"), event_id);
    let body = request.json();
    assert_eq!(body["id"], event_id);
    assert_eq!(body["type"], "conversion.status_changed");
    assert_eq!(body["data"], data);
    assert_eq!(
        body["timestamp"],
        published.event.occurred_at.replace("+00:00", "Z")
    );
    verify(secret, &request).expect("signature verifies per the Standard Webhooks spec");
    let mut tampered = request.clone();
    tampered.body = bytes::Bytes::from(request.body.iter().rev().copied().collect::<Vec<u8>>());
    assert!(
        verify(secret, &tampered).is_err(),
        "a changed body must not verify"
    );

    let deliveries = wait_event_deliveries(&app, &admin, event_id, "SUCCEEDED").await;
    let delivery = delivery(&app, &admin, &deliveries[0].id).await;
    assert_eq!(delivery.attempt_count, 1);
    assert_eq!(delivery.last_response_status, Some(200));
    let attempt = &delivery.attempts[0];
    assert_eq!(attempt.attempt_number, 1);
    assert_eq!(attempt.outcome, "SUCCEEDED");
    assert_eq!(attempt.response_status, Some(200));
    assert_eq!(attempt.error_kind, None);
    assert_eq!(attempt.endpoint_url, receiver.url);

    let webhook = webhook(&app, &admin, &created.webhook.id).await;
    assert!(webhook.last_sent_at.is_some(), "lastSentAt is set");
}

#[tokio::test]
async fn failing_twice_then_succeeding_takes_three_attempts_with_growing_gaps() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let receiver = Receiver::start(|n| {
        if n < 2 {
            Reply::Status(500)
        } else {
            Reply::Status(200)
        }
    })
    .await;
    create_webhook(
        &app,
        &admin,
        fast_webhook(&receiver.url, &["offer.created"], 5),
    )
    .await;

    let published = publish(&app, &admin, "offer.created", json!({ "offerId": 1019 })).await;
    let arrivals = receiver.wait_for(3, WAIT).await;
    let first_gap = arrivals[1].at - arrivals[0].at;
    let second_gap = arrivals[2].at - arrivals[1].at;
    assert!(
        first_gap >= Duration::from_millis(75),
        "first retry after ~100ms, was {first_gap:?}"
    );
    assert!(
        second_gap > first_gap,
        "gaps grow: {first_gap:?} then {second_gap:?}"
    );
    let ids: Vec<&str> = arrivals.iter().map(|r| r.header("webhook-id")).collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "webhook-id is stable across retries"
    );
    let numbers: Vec<&str> = arrivals
        .iter()
        .map(|r| r.header("webhook-attempt"))
        .collect();
    assert_eq!(numbers, ["1", "2", "3"], "webhook-attempt numbers each try");

    let deliveries = wait_event_deliveries(&app, &admin, &published.event.id, "SUCCEEDED").await;
    let delivery = delivery(&app, &admin, &deliveries[0].id).await;
    assert_eq!(delivery.attempt_count, 3);
    let attempts = &delivery.attempts;
    let summary: Vec<(i64, &str, i64)> = attempts
        .iter()
        .map(|a| {
            (
                a.attempt_number,
                a.outcome.as_str(),
                a.response_status.expect("s"),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (1, "FAILED", 500),
            (2, "FAILED", 500),
            (3, "SUCCEEDED", 200)
        ]
    );
    assert_eq!(attempts[0].error_kind.as_deref(), Some("NON_2XX"));
    assert!(attempts[0].next_attempt_at.is_some());
    assert_eq!(attempts[2].next_attempt_at, None);
}

#[tokio::test]
async fn attempts_run_out_and_the_delivery_fails() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let receiver = Receiver::start(|_| Reply::Status(503)).await;
    create_webhook(
        &app,
        &admin,
        fast_webhook(&receiver.url, &["offer.created"], 2),
    )
    .await;
    let published = publish(&app, &admin, "offer.created", json!({})).await;
    let deliveries = wait_event_deliveries(&app, &admin, &published.event.id, "FAILED").await;
    let delivery = delivery(&app, &admin, &deliveries[0].id).await;
    assert_eq!(delivery.attempt_count, 2);
    assert_eq!(delivery.next_attempt_at, None);
    assert_eq!(receiver.count(), 2);
}

#[tokio::test]
async fn a_receiver_that_never_answers_hits_the_timeout() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let receiver = Receiver::start(|_| Reply::Hang).await;
    let mut input = fast_webhook(&receiver.url, &["offer.created"], 1);
    input["timeoutMs"] = json!(300);
    create_webhook(&app, &admin, input).await;
    let published = publish(&app, &admin, "offer.created", json!({})).await;
    let deliveries = wait_event_deliveries(&app, &admin, &published.event.id, "FAILED").await;
    let attempt = delivery(&app, &admin, &deliveries[0].id).await.attempts[0].clone();
    assert_eq!(attempt.error_kind.as_deref(), Some("TIMEOUT"));
    assert_eq!(attempt.response_status, None);
    let duration = attempt.duration_ms;
    assert!(
        (300..2000).contains(&duration),
        "stopped at the timeout, took {duration} ms"
    );
}

#[tokio::test]
async fn a_refused_connection_is_a_connection_error() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    // Bind and drop a listener: nothing listens on that port any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    create_webhook(
        &app,
        &admin,
        fast_webhook(&format!("http://127.0.0.1:{port}/"), &["offer.created"], 1),
    )
    .await;
    let published = publish(&app, &admin, "offer.created", json!({})).await;
    let deliveries = wait_event_deliveries(&app, &admin, &published.event.id, "FAILED").await;
    let attempt = delivery(&app, &admin, &deliveries[0].id).await.attempts[0].clone();
    assert_eq!(
        attempt.error_kind.as_deref(),
        Some("CONNECTION"),
        "{attempt:?}"
    );
    assert!(
        attempt
            .error_message
            .as_deref()
            .expect("message")
            .to_lowercase()
            .contains("refused"),
        "{attempt:?}"
    );
}

#[tokio::test]
async fn gone_disables_the_webhook() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let receiver = Receiver::start(|_| Reply::Status(410)).await;
    let created = create_webhook(
        &app,
        &admin,
        fast_webhook(&receiver.url, &["offer.created"], 5),
    )
    .await;
    let published = publish(&app, &admin, "offer.created", json!({})).await;
    wait_event_deliveries(&app, &admin, &published.event.id, "FAILED").await;
    let webhook = webhook(&app, &admin, &created.webhook.id).await;
    assert_eq!(webhook.status, "DISABLED");
    assert!(
        webhook
            .disabled_reason
            .as_deref()
            .expect("reason")
            .contains("410")
    );
    assert_eq!(receiver.count(), 1, "no retries after 410");
    let again = publish(&app, &admin, "offer.created", json!({})).await;
    assert_eq!(
        again.delivery_count, 0,
        "a disabled webhook receives nothing"
    );
}

#[tokio::test]
async fn types_wildcards_and_label_filters_fan_out_to_exactly_the_right_endpoints() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let [exact_a, exact_b, object, all_42, affiliates, paused] = [
        Receiver::ok().await,
        Receiver::ok().await,
        Receiver::ok().await,
        Receiver::ok().await,
        Receiver::ok().await,
        Receiver::ok().await,
    ];
    let hook = |types: Value, endpoints: Vec<&Receiver>| {
        json!({
            "name": "fan-out",
            "eventTypes": types,
            "endpoints": endpoints.iter().map(|r| json!({ "url": r.url })).collect::<Vec<_>>(),
        })
    };
    create_webhook(
        &app,
        &admin,
        hook(json!(["offer.created"]), vec![&exact_a, &exact_b]),
    )
    .await;
    create_webhook(&app, &admin, hook(json!(["offer.*"]), vec![&object])).await;
    let mut labelled = hook(json!(["*"]), vec![&all_42]);
    labelled["labelFilter"] = json!({ "campaignId": "42" });
    create_webhook(&app, &admin, labelled).await;
    create_webhook(
        &app,
        &admin,
        hook(json!(["affiliate.created"]), vec![&affiliates]),
    )
    .await;
    let mut off = hook(json!(["*"]), vec![&paused]);
    off["status"] = json!("PAUSED");
    create_webhook(&app, &admin, off).await;
    // Another tenant's catch-all never sees acme's events.
    let other = Receiver::ok().await;
    create_webhook(&app, &app.admin("globex"), hook(json!(["*"]), vec![&other])).await;

    let first = publish_input(
        &app,
        &admin,
        json!({ "type": "offer.created", "data": {}, "labels": { "campaignId": 42 } }),
    )
    .await;
    assert_eq!(first.delivery_count, 4);
    let second = publish_input(
        &app,
        &admin,
        json!({ "type": "offer.updated", "data": {}, "labels": { "campaignId": "7" } }),
    )
    .await;
    assert_eq!(second.delivery_count, 1);

    for receiver in [&exact_a, &exact_b, &all_42] {
        receiver.wait_for(1, WAIT).await;
    }
    object.wait_for(2, WAIT).await;
    // Give stragglers a chance to (wrongly) arrive.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let counts: Vec<usize> = [
        &exact_a,
        &exact_b,
        &object,
        &all_42,
        &affiliates,
        &paused,
        &other,
    ]
    .iter()
    .map(|r| r.count())
    .collect();
    assert_eq!(counts, [1, 1, 2, 1, 0, 0, 0]);
}

#[tokio::test]
async fn a_hung_endpoint_does_not_delay_a_healthy_one() {
    let app = TestApp::spawn_with(|config| config.endpoint_concurrency = 4).await;
    let admin = app.admin("acme");
    let hung = Receiver::start(|_| Reply::Hang).await;
    let healthy = Receiver::ok().await;
    let mut slow_hook = fast_webhook(&hung.url, &["click.created"], 1);
    slow_hook["timeoutMs"] = json!(10_000);
    create_webhook(&app, &admin, slow_hook).await;
    create_webhook(
        &app,
        &admin,
        fast_webhook(&healthy.url, &["click.created"], 1),
    )
    .await;

    let inputs: Vec<Value> = (0..40)
        .map(|i| json!({ "type": "click.created", "data": { "clickId": i } }))
        .collect();
    let started = std::time::Instant::now();
    publish_many(&app, &admin, inputs).await;
    healthy.wait_for(40, Duration::from_secs(5)).await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "healthy endpoint got all 40 in {took:?} while the other hangs"
    );
    assert_eq!(
        hung.count(),
        2,
        "the hung endpoint holds only its own lane, and only the 2 requests it started with"
    );
}

/// Hung endpoints whose lanes together held the whole worker (their
/// requests in flight and the backlog claimed behind them) stopped every
/// other endpoint's deliveries, of every tenant, until that backlog was
/// worked off: here one lane of 8 filled a worker of 8. A backlog that
/// stalls behind a hung endpoint goes back to the queue when others need
/// the room.
#[tokio::test]
async fn hung_endpoints_that_fill_the_worker_do_not_stall_other_tenants() {
    let app = TestApp::spawn_with(|config| {
        config.worker_concurrency = 8;
        config.endpoint_concurrency = 2;
    })
    .await;
    let slow_tenant = app.admin("slow-network");
    let hung = hung_webhooks(&app, &slow_tenant, 1).await;
    publish_clicks(&app, &slow_tenant, 30).await;
    hung[0].wait_for(2, WAIT).await;

    another_tenant_is_served_at_once(&app).await;
    // Handed back, not dropped: every one of the hung endpoint's
    // deliveries is still waiting for its first answer.
    let pending = unanswered(&app, &slow_tenant).await;
    assert_eq!(
        pending, 30,
        "the hung endpoint's deliveries are all still pending"
    );
}

/// `count` webhooks of `token`'s tenant for `click.created`, each to its own
/// endpoint that never answers (20 s timeout).
async fn hung_webhooks(app: &TestApp, token: &str, count: usize) -> Vec<Receiver> {
    let mut hung = Vec::new();
    for _ in 0..count {
        let receiver = Receiver::start(|_| Reply::Hang).await;
        let mut hook = fast_webhook(&receiver.url, &["click.created"], 1);
        hook["timeoutMs"] = json!(20_000);
        create_webhook(app, token, hook).await;
        hung.push(receiver);
    }
    hung
}

async fn publish_clicks(app: &TestApp, token: &str, count: usize) {
    let inputs: Vec<Value> = (0..count)
        .map(|i| json!({ "type": "click.created", "data": { "clickId": i } }))
        .collect();
    publish_many(app, token, inputs).await;
}

/// Another tenant's three deliveries arrive within 4 s.
async fn another_tenant_is_served_at_once(app: &TestApp) {
    let healthy = Receiver::ok().await;
    let other = app.admin("acme");
    create_webhook(
        app,
        &other,
        fast_webhook(&healthy.url, &["offer.created"], 1),
    )
    .await;
    let started = std::time::Instant::now();
    for n in 0..3 {
        publish(app, &other, "offer.created", json!({ "n": n })).await;
    }
    healthy.wait_for(3, Duration::from_secs(15)).await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(4),
        "the other tenant's deliveries took {took:?} behind the hung endpoints"
    );
}

/// Requests in flight hold the worker's slots until they end and are never
/// cut short: two endpoints that accepted connections and never answered
/// used to start `endpoint_concurrency` requests each (4 here) and hold a
/// worker of 8 for their 20 s timeout, with nothing queued to hand back.
/// An endpoint now earns its concurrency by answering: each hung one holds
/// two requests, and the rest of their deliveries wait in the queue.
#[tokio::test]
async fn endpoints_that_hang_do_not_hold_every_request_slot() {
    let app = TestApp::spawn_with(|config| {
        config.worker_concurrency = 8;
        config.endpoint_concurrency = 4;
    })
    .await;
    let slow_tenant = app.admin("slow-network");
    let hung = hung_webhooks(&app, &slow_tenant, 2).await;
    publish_clicks(&app, &slow_tenant, 4).await;
    for receiver in &hung {
        receiver.wait_for(2, WAIT).await;
    }

    another_tenant_is_served_at_once(&app).await;
    let requests: Vec<usize> = hung.iter().map(Receiver::count).collect();
    assert_eq!(requests, [2, 2], "each hung endpoint holds two requests");
    assert_eq!(
        unanswered(&app, &slow_tenant).await,
        8,
        "the hung endpoints' deliveries are all still pending"
    );
}

/// A tenant may have a thousand webhooks: enough endpoints hanging at once
/// held every request slot, however few each held (here four endpoints of
/// one tenant, two requests each, filled a worker of 8). A tenant now runs
/// at most half the worker's requests (`HOOKLINE_TENANT_CONCURRENCY`'s
/// default), until its requests have run for a second and linger
/// (`lingering`: the worker is full here, with its queued deliveries).
#[tokio::test]
async fn one_tenants_hung_endpoints_hold_at_most_its_share_of_the_worker() {
    let app = TestApp::spawn_with(|config| {
        config.worker_concurrency = 8;
        config.endpoint_concurrency = 4;
    })
    .await;
    let slow_tenant = app.admin("slow-network");
    let hung = hung_webhooks(&app, &slow_tenant, 4).await;
    publish_clicks(&app, &slow_tenant, 2).await;
    crate::support::eventually("4 hung requests", WAIT, || async {
        (hung.iter().map(Receiver::count).sum::<usize>() >= 4).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let requests: usize = hung.iter().map(Receiver::count).sum();
    assert_eq!(requests, 4, "the tenant holds its share, half the worker");

    another_tenant_is_served_at_once(&app).await;
    let requests: usize = hung.iter().map(Receiver::count).sum();
    assert!(requests <= 8, "each hung endpoint holds its window of two");
    assert_eq!(
        unanswered(&app, &slow_tenant).await,
        8,
        "the hung endpoints' deliveries are all still pending"
    );
}

/// Shares and windows bound one tenant's hung requests, not several
/// tenants': two tenants whose endpoints hang (or many whose webhooks point
/// at one partner that went down) held every slot of the worker until their
/// timeouts, here two tenants of four hung endpoints each a worker of 8.
/// When the worker is full, a request running for over a second leaves its
/// slot (`lingering`), and the other tenants' deliveries go out.
#[tokio::test]
async fn tenants_whose_endpoints_all_hang_do_not_stall_the_others() {
    let app = TestApp::spawn_with(|config| {
        config.worker_concurrency = 8;
        config.endpoint_concurrency = 4;
    })
    .await;
    let mut hung = Vec::new();
    for name in ["slow-network", "slower-network"] {
        let token = app.admin(name);
        let receivers = hung_webhooks(&app, &token, 4).await;
        publish_clicks(&app, &token, 2).await;
        hung.push((token, receivers));
    }
    let requests = |hung: &[(String, Vec<Receiver>)]| -> Vec<usize> {
        hung.iter()
            .map(|(_, receivers)| receivers.iter().map(Receiver::count).sum())
            .collect()
    };
    crate::support::eventually("the hung requests fill the worker", WAIT, || async {
        (requests(&hung).iter().sum::<usize>() >= 8).then_some(())
    })
    .await;

    another_tenant_is_served_at_once(&app).await;
    crate::support::eventually("every hung endpoint holds two requests", WAIT, || async {
        (requests(&hung) == [8, 8]).then_some(())
    })
    .await;
    let lingering = app.metric("hookline_worker_lingering").await;
    assert!(
        lingering.is_some_and(|n| (4.0..=16.0).contains(&n)),
        "/metrics counts the lingering requests: {lingering:?}"
    );
    for (token, receivers) in &hung {
        let each: Vec<usize> = receivers.iter().map(Receiver::count).collect();
        assert_eq!(
            each,
            [2, 2, 2, 2],
            "a lingering request stays in its window"
        );
        assert_eq!(
            unanswered(&app, token).await,
            8,
            "the hung endpoints' deliveries are all still pending"
        );
    }
}

/// A tenant's hung endpoints held its whole share until their timeouts, and
/// its healthy endpoint's deliveries waited behind them, though the worker
/// had room. Past a second they linger (`lingering`), out of the share, up
/// to twice the share in all (here 6 hung requests of a share of 4).
#[tokio::test]
async fn a_tenants_hung_endpoints_do_not_hold_up_its_healthy_one() {
    let app = TestApp::spawn_with(|config| {
        config.worker_concurrency = 16;
        config.endpoint_concurrency = 4;
        config.tenant_concurrency = Some(4);
    })
    .await;
    let admin = app.admin("acme");
    let hung = hung_webhooks(&app, &admin, 3).await;
    let healthy = Receiver::ok().await;
    create_webhook(
        &app,
        &admin,
        fast_webhook(&healthy.url, &["offer.created"], 1),
    )
    .await;
    publish_clicks(&app, &admin, 2).await;
    crate::support::eventually("4 hung requests", WAIT, || async {
        (hung.iter().map(Receiver::count).sum::<usize>() >= 4).then_some(())
    })
    .await;

    let started = std::time::Instant::now();
    for n in 0..3 {
        publish(&app, &admin, "offer.created", json!({ "n": n })).await;
    }
    healthy.wait_for(3, WAIT).await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "the healthy endpoint's deliveries took {took:?} behind its tenant's hung ones"
    );
    let requests: Vec<usize> = hung.iter().map(Receiver::count).collect();
    assert!(
        requests.iter().all(|&n| n <= 2),
        "a hung endpoint keeps its window: {requests:?}"
    );
}

/// At its share, a tenant's endpoints take turns: a busy endpoint's lane
/// does not keep every slot of the share while another of the tenant's
/// endpoints waits (here its one delivery would have waited for the 40
/// before it, about 5 s).
#[tokio::test]
async fn at_its_share_a_tenants_endpoints_take_turns() {
    let app = TestApp::spawn_with(|config| {
        config.endpoint_concurrency = 4;
        config.tenant_concurrency = Some(4);
    })
    .await;
    let admin = app.admin("acme");
    let slow = Receiver::start(|_| Reply::Slow(Duration::from_millis(500))).await;
    let quick = Receiver::ok().await;
    create_webhook(&app, &admin, fast_webhook(&slow.url, &["click.created"], 1)).await;
    create_webhook(
        &app,
        &admin,
        fast_webhook(&quick.url, &["offer.created"], 1),
    )
    .await;
    publish_clicks(&app, &admin, 40).await;
    slow.wait_for(4, WAIT).await;

    let started = std::time::Instant::now();
    publish(&app, &admin, "offer.created", json!({})).await;
    quick.wait_for(1, Duration::from_secs(15)).await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(2_500),
        "the tenant's other endpoint waited {took:?} for the busy one's backlog"
    );
    assert!(slow.count() < 30, "the busy endpoint still had its backlog");
}

/// How many of the tenant's deliveries are pending with no attempt made.
async fn unanswered(app: &TestApp, token: &str) -> usize {
    let nodes = delivery_nodes(app, token, "status attemptCount").await;
    nodes
        .iter()
        .filter(|node| node["status"] == "PENDING" && node["attemptCount"] == 0)
        .count()
}

#[tokio::test]
async fn a_webhook_failing_for_the_whole_window_is_disabled() {
    let app = TestApp::spawn_with(|config| config.disable_after = Duration::from_millis(600)).await;
    let admin = app.admin("acme");
    let receiver = Receiver::start(|_| Reply::Status(500)).await;
    let mut input = fast_webhook(&receiver.url, &["offer.created"], 20);
    input["retryPolicy"] =
        json!({ "maxAttempts": 20, "initialIntervalMs": 200, "maxIntervalMs": 200 });
    let created = create_webhook(&app, &admin, input).await;
    publish(&app, &admin, "offer.created", json!({})).await;
    let webhook = crate::support::eventually("the webhook to be disabled", WAIT, || async {
        let webhook = webhook(&app, &admin, &created.webhook.id).await;
        (webhook.status == "DISABLED").then_some(webhook)
    })
    .await;
    assert!(
        webhook
            .disabled_reason
            .as_deref()
            .expect("reason")
            .contains("failed"),
        "{webhook:?}"
    );
    assert!(
        receiver.count() >= 3,
        "it took several failed attempts over the window"
    );
}

/// A TLS server on 127.0.0.1 whose certificate no one issued: it completes
/// handshakes that accept it, and answers nothing else.
async fn self_signed_server() -> u16 {
    let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("cert");
    let cert = key.cert.der().clone();
    let private =
        tokio_rustls::rustls::pki_types::PrivateKeyDer::try_from(key.signing_key.serialize_der())
            .expect("key");
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        tokio_rustls::rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(vec![cert], private)
    .expect("config");
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = acceptor.accept(stream).await;
            });
        }
    });
    port
}

async fn first_attempt_of_a_failed_delivery(app: &TestApp, admin: &str, url: &str) -> Attempt {
    create_webhook(app, admin, fast_webhook(url, &["offer.created"], 1)).await;
    let published = publish(app, admin, "offer.created", json!({})).await;
    let deliveries = wait_event_deliveries(app, admin, &published.event.id, "FAILED").await;
    delivery(app, admin, &deliveries[0].id).await.attempts[0].clone()
}

#[tokio::test]
async fn https_to_a_plain_port_or_an_unknown_certificate_is_a_tls_error() {
    let plain = Receiver::ok().await;
    let self_signed = self_signed_server().await;
    for (url, expected) in [
        (
            plain.url.replacen("http://", "https://", 1),
            "plain HTTP answering a TLS client",
        ),
        (
            format!("https://127.0.0.1:{self_signed}/"),
            "a self-signed certificate",
        ),
    ] {
        let app = TestApp::spawn().await;
        let admin = app.admin("acme");
        let attempt = first_attempt_of_a_failed_delivery(&app, &admin, &url).await;
        assert_eq!(
            attempt.error_kind.as_deref(),
            Some("TLS"),
            "{expected}: {attempt:?}"
        );
        assert_eq!(attempt.response_status, None, "{attempt:?}");
    }
    assert_eq!(
        plain.count(),
        0,
        "the plain receiver took a TLS hello as a request"
    );
}
