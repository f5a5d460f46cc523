//! What an operator reads in the log at the default level: one WARN line per
//! failed attempt and one when a delivery gives up, each saying which event
//! type, webhook, endpoint host, error kind and status; and no library
//! chatter at `debug`.

use std::time::Duration;

use serde_json::json;

use crate::support::{
    app::fresh_database,
    eventually,
    fixtures::{create_webhook, fast_webhook, publish},
    gql::Gql,
    jwt::admin_token,
    process::ServerProcess,
    receiver::{Receiver, Reply},
};

/// Lines of `log` that are WARN lines containing `text`.
fn warn_lines<'a>(log: &'a str, text: &str) -> Vec<&'a str> {
    log.lines()
        .filter(|line| line.contains(" WARN ") && line.contains(text))
        .collect()
}

/// A server at the default log level with one fast-retrying webhook (3
/// attempts) for `event_types` to a receiver that always answers `status`.
struct FailingSetup {
    server: ServerProcess,
    gql: Gql,
    token: String,
    webhook_id: String,
    _receiver: Receiver,
    _logs: tempfile::TempDir,
    _database: Option<tempfile::TempDir>,
}

async fn failing_setup(status: u16, path: &str, event_types: &[&str]) -> FailingSetup {
    let (database_url, database) = fresh_database().await;
    let logs = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(move |_| Reply::Status(status)).await;
    let server = ServerProcess::start_logging(&database_url, logs.path(), &[], None);
    let gql = Gql::new(server.graphql_url());
    let token = admin_token("acme");
    let url = format!("{}{path}", receiver.url);
    let created = create_webhook(&gql, &token, fast_webhook(&url, event_types, 3)).await;
    let webhook_id = created.webhook.id;
    FailingSetup {
        server,
        gql,
        token,
        webhook_id,
        _receiver: receiver,
        _logs: logs,
        _database: database,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_attempts_and_giving_up_are_warned_at_the_default_level() {
    let setup = failing_setup(500, "/crm", &["conversion.status_changed"]).await;
    let FailingSetup {
        server,
        gql,
        token,
        webhook_id,
        ..
    } = &setup;
    publish(
        gql,
        token,
        "conversion.status_changed",
        json!({ "amount": 1 }),
    )
    .await;

    let log = eventually(
        "a `delivery gave up` WARN line",
        Duration::from_secs(20),
        || {
            let log = server.log();
            async move { (!warn_lines(&log, "delivery gave up").is_empty()).then_some(log) }
        },
    )
    .await;

    let retries = warn_lines(&log, "attempt failed, will retry");
    assert_eq!(retries.len(), 2, "one WARN per failed attempt:\n{log}");
    let gave_up = warn_lines(&log, "delivery gave up");
    assert_eq!(gave_up.len(), 1, "{log}");
    for line in retries.iter().chain(&gave_up) {
        for what in [
            "conversion.status_changed",
            webhook_id.as_str(),
            "endpoint=\"127.0.0.1\"",
            "kind=\"NON_2XX\"",
            "status=500",
        ] {
            assert!(line.contains(what), "`{what}` missing from: {line}");
        }
    }
    assert!(retries.iter().all(|line| line.contains("next_attempt_in=")));
    assert!(gave_up[0].contains("attempts=3"), "{}", gave_up[0]);
    assert!(
        log.lines()
            .all(|line| !line.contains(" INFO ") || !line.contains("attempt{")),
        "successful bookkeeping stays below the default level"
    );
}

/// A receiver answering 410 Gone disables its webhook: one WARN line says
/// which webhook and why, at the default level.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_webhook_is_warned_once_with_its_reason() {
    let setup = failing_setup(410, "", &["offer.*"]).await;
    let FailingSetup {
        server,
        gql,
        token,
        webhook_id,
        ..
    } = &setup;
    for n in 0..3 {
        publish(gql, token, "offer.updated", json!({ "n": n })).await;
    }
    eventually(
        "a `webhook disabled` WARN line",
        Duration::from_secs(20),
        || {
            let log = server.log();
            async move { (!warn_lines(&log, "webhook disabled").is_empty()).then_some(()) }
        },
    )
    .await;
    // Give any further attempts time to be (wrongly) logged as disabling too.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = server.log();
    let disabled = warn_lines(&log, "webhook disabled");
    assert_eq!(disabled.len(), 1, "one line per disabled webhook:\n{log}");
    assert!(disabled[0].contains(webhook_id.as_str()), "{}", disabled[0]);
    assert!(
        disabled[0].contains("410"),
        "the reason names the answer: {}",
        disabled[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_shows_hooklines_detail_without_library_chatter() {
    let (database_url, dir) = fresh_database().await;
    let logs = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::ok().await;
    let server = ServerProcess::start_logging(&database_url, logs.path(), &[], Some("debug"));
    let gql = Gql::new(server.graphql_url());
    let token = admin_token("acme");
    let url = format!("{}/crm", receiver.url);
    create_webhook(&gql, &token, fast_webhook(&url, &["offer.updated"], 3)).await;
    publish(&gql, &token, "offer.updated", json!({})).await;
    receiver.wait_for(1, Duration::from_secs(10)).await;
    let log = eventually(
        "the attempt's debug line",
        Duration::from_secs(10),
        || async {
            let log = server.log();
            log.contains("delivered").then_some(log)
        },
    )
    .await;
    let chatter: Vec<&str> = log
        .lines()
        .filter(|line| line.contains(" DEBUG ") || line.contains(" TRACE "))
        .filter(|line| {
            [
                "hyper",
                "h2::",
                "reqwest",
                "rustls",
                "sqlx",
                "sea_orm",
                "tungstenite",
            ]
            .iter()
            .any(|library| line.contains(&format!(" {library}")))
        })
        .collect();
    assert!(chatter.is_empty(), "library debug lines: {chatter:#?}");
    drop(dir);
}

/// A log that cannot be written (stderr on a full disk) costs log lines,
/// never the service: requests are answered and deliveries retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_log_cannot_be_written_keeps_serving() {
    let (database_url, _dir) = fresh_database().await;
    // The first attempt fails, so the worker has a WARN line to write.
    let receiver = Receiver::start(|n| Reply::Status(if n == 0 { 500 } else { 200 })).await;
    // Every write to /dev/full fails with ENOSPC.
    let mut server =
        ServerProcess::start_logging_into(&database_url, "/dev/full".into(), &[], Some("debug"));
    let gql = Gql::new(server.graphql_url());
    let token = admin_token("acme");
    create_webhook(&gql, &token, fast_webhook(&receiver.url, &["*"], 5)).await;
    for n in 0..3 {
        publish(&gql, &token, "conversion.created", json!({ "n": n })).await;
    }
    // 3 deliveries, one of them retried after a failed attempt.
    receiver.wait_for(4, Duration::from_secs(20)).await;
    gql.ok(&token, "{ events(first: 10) { nodes { id } } }", json!({}))
        .await;
    assert!(
        server.child.try_wait().expect("status").is_none(),
        "the server exited"
    );
}
