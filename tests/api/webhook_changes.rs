//! Every change to a webhook (rotation, update, pause) takes effect on the
//! very next publish, including deliveries handed straight from publishing to
//! the local worker, and on every instance; and on deliveries already
//! claimed that had not started when the change was acknowledged.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{
    TestApp,
    app::on_postgres,
    fixtures::*,
    receiver::{Received, Receiver, Reply},
    verify::verify,
};

const GRACE: Duration = Duration::from_secs(2);
const ROTATE: &str = "mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret } }";
const UPDATE: &str = "mutation($id: ID!, $input: UpdateWebhookInput!) { updateWebhook(id: $id, input: $input) { id status } }";

async fn app_with_short_grace() -> TestApp {
    TestApp::spawn_with(|config| config.secret_rotation_grace = GRACE).await
}

/// Creates a webhook for `conversion.created` and returns (id, secret).
async fn webhook_to(app: &TestApp, token: &str, url: &str) -> (String, String) {
    let created = create_webhook(app, token, fast_webhook(url, &["conversion.created"], 1)).await;
    (created.webhook.id, created.secret)
}

async fn rotate(app: &TestApp, token: &str, id: &str) -> String {
    let data = app.gql.ok(token, ROTATE, json!({ "id": id })).await;
    data["rotateWebhookSecret"]["secret"]
        .as_str()
        .expect("secret")
        .to_owned()
}

/// Publishes one event and waits for the `n`-th request (1-based) to arrive.
async fn publish_and_receive(
    app: &TestApp,
    token: &str,
    receiver: &Receiver,
    n: usize,
) -> Received {
    let published = publish(app, token, "conversion.created", json!({ "n": n })).await;
    assert_eq!(published.delivery_count, 1, "{published:?}");
    receiver.wait_for(n, Duration::from_secs(15)).await[n - 1].clone()
}

/// What a request verifies with: (old secret, new secret).
fn verifies(request: &Received, old: &str, new: &str) -> (bool, bool) {
    (verify(old, request).is_ok(), verify(new, request).is_ok())
}

#[tokio::test]
async fn a_rotated_secret_signs_the_next_publish_and_the_old_one_expires_after_the_grace() {
    let app = app_with_short_grace().await;
    let token = app.admin("acme");
    let receiver = Receiver::ok().await;
    let (id, old) = webhook_to(&app, &token, &receiver.url).await;

    let before = publish_and_receive(&app, &token, &receiver, 1).await;
    assert_eq!(verifies(&before, &old, "whsec_AAAA"), (true, false));

    let new = rotate(&app, &token, &id).await;
    let during = publish_and_receive(&app, &token, &receiver, 2).await;
    assert_eq!(
        verifies(&during, &old, &new),
        (true, true),
        "during the grace period both secrets sign"
    );

    // The grace period is time itself: let it run out.
    tokio::time::sleep(GRACE + Duration::from_millis(200)).await;
    let after = publish_and_receive(&app, &token, &receiver, 3).await;
    assert_eq!(
        verifies(&after, &old, &new),
        (false, true),
        "after the grace period only the new secret signs"
    );
}

#[tokio::test]
async fn two_rotations_in_a_row_sign_with_the_latest_secret() {
    let app = app_with_short_grace().await;
    let token = app.admin("acme");
    let receiver = Receiver::ok().await;
    let (id, _) = webhook_to(&app, &token, &receiver.url).await;
    publish_and_receive(&app, &token, &receiver, 1).await;
    let second = rotate(&app, &token, &id).await;
    let third = rotate(&app, &token, &id).await;
    let request = publish_and_receive(&app, &token, &receiver, 2).await;
    assert!(verify(&third, &request).is_ok(), "signed with the latest");
    assert!(verify(&second, &request).is_ok(), "and the one it replaced");
}

#[tokio::test]
async fn an_updated_url_and_a_pause_take_effect_on_the_next_publish() {
    let app = TestApp::spawn().await;
    let token = app.admin("acme");
    let (first, second) = (Receiver::ok().await, Receiver::ok().await);
    let (id, _) = webhook_to(&app, &token, &first.url).await;
    publish_and_receive(&app, &token, &first, 1).await;

    let input = json!({ "endpoints": [{ "url": second.url }] });
    app.gql
        .ok(&token, UPDATE, json!({ "id": id, "input": input }))
        .await;
    publish_and_receive(&app, &token, &second, 1).await;

    let input = json!({ "status": "PAUSED" });
    app.gql
        .ok(&token, UPDATE, json!({ "id": id, "input": input }))
        .await;
    let published = publish(&app, &token, "conversion.created", json!({})).await;
    assert_eq!(published.delivery_count, 0, "{published:?}");
    // Time for a wrong delivery to arrive: none may.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!((first.count(), second.count()), (1, 1));
}

#[tokio::test]
#[ignore = "needs PostgreSQL: HOOKLINE_TEST_DATABASE_URL and --include-ignored"]
async fn a_rotation_on_one_instance_signs_the_next_publish_on_another() {
    assert!(
        on_postgres(),
        "several instances need PostgreSQL: set HOOKLINE_TEST_DATABASE_URL"
    );
    let a = app_with_short_grace().await;
    let b = TestApp::spawn_on(&a.database_url, |config| {
        config.secret_rotation_grace = GRACE;
    })
    .await;
    let token = a.admin("acme");
    let receiver = Receiver::ok().await;
    let (id, old) = webhook_to(&a, &token, &receiver.url).await;
    // Instance B publishes first, so it holds the webhook in its caches.
    publish_and_receive(&b, &token, &receiver, 1).await;

    let new = rotate(&a, &token, &id).await;
    let during = publish_and_receive(&b, &token, &receiver, 2).await;
    assert_eq!(verifies(&during, &old, &new), (true, true));

    let input: Value = json!({ "status": "PAUSED" });
    // The grace period is time itself: let it run out.
    tokio::time::sleep(GRACE + Duration::from_millis(200)).await;
    let after = publish_and_receive(&b, &token, &receiver, 3).await;
    assert_eq!(verifies(&after, &old, &new), (false, true));

    a.gql
        .ok(&token, UPDATE, json!({ "id": id, "input": input }))
        .await;
    let published = publish(&b, &token, "conversion.created", json!({})).await;
    assert_eq!(published.delivery_count, 0, "paused on A, seen by B");
}

/// How long the first request is held: time for the change to be
/// acknowledged meanwhile, even on a slow machine.
const HOLD: Duration = Duration::from_secs(3);

/// A receiver that holds its first request for `hold` and answers the rest
/// at once, behind a webhook whose endpoint takes one request at a time: the
/// second delivery waits in its endpoint's lane while the first is held.
async fn one_held_then_one_waiting(hold: Duration) -> (TestApp, String, Receiver, String, String) {
    let app = TestApp::spawn_with(|config| {
        config.secret_rotation_grace = Duration::ZERO;
        config.endpoint_concurrency = 1;
    })
    .await;
    let token = app.admin("acme");
    let receiver = Receiver::start(move |n| {
        if n == 0 {
            Reply::Slow(hold)
        } else {
            Reply::Status(200)
        }
    })
    .await;
    let (id, secret) = webhook_to(&app, &token, &receiver.url).await;
    for n in 1..=2 {
        publish(&app, &token, "conversion.created", json!({ "n": n })).await;
    }
    receiver.wait_for(1, Duration::from_secs(15)).await;
    (app, token, receiver, id, secret)
}

/// The waiting delivery was signed with the webhook as it was claimed: a
/// rotation acknowledged while it waited (no grace period) did not stop
/// the old secret from signing it.
#[tokio::test]
async fn a_delivery_waiting_for_its_turn_is_signed_with_the_secret_rotated_meanwhile() {
    let (app, token, receiver, id, old) = one_held_then_one_waiting(HOLD).await;
    let new = rotate(&app, &token, &id).await;
    let requests = receiver.wait_for(2, Duration::from_secs(15)).await;
    assert_eq!(
        verifies(&requests[0], &old, &new),
        (true, false),
        "sent before"
    );
    assert_eq!(
        verifies(&requests[1], &old, &new),
        (false, true),
        "started after the rotation was acknowledged: the new secret alone signs"
    );
}

/// The waiting delivery was sent although its webhook was deleted (and its
/// secret with it) while it waited.
#[tokio::test]
async fn a_delivery_waiting_for_its_turn_is_not_sent_once_its_webhook_is_deleted() {
    let (app, token, receiver, id, _) = one_held_then_one_waiting(HOLD).await;
    let delete = "mutation($id: ID!) { deleteWebhook(id: $id) { deletedId } }";
    app.gql.ok(&token, delete, json!({ "id": id })).await;
    // The waiting one would follow the held one's answer at once.
    tokio::time::sleep(HOLD + Duration::from_millis(800)).await;
    assert_eq!(receiver.count(), 1, "nothing sent after the deletion");
}

/// A delivery that waited in its lane reads its webhook and endpoint again.
/// It read them at once, on two connections: an endpoint read before a
/// change committed, beside a webhook read after, was kept as the endpoint
/// of the changed webhook, and every later delivery of the instance went to
/// the old address until the webhook changed again. Here the change is made
/// by hand while the webhook table is locked, so the webhook's read waits
/// for it.
#[tokio::test]
#[ignore = "needs PostgreSQL: HOOKLINE_TEST_DATABASE_URL and --include-ignored"]
async fn a_waiting_delivery_never_pairs_a_changed_webhook_with_its_endpoint_from_before() {
    use sea_orm::{ConnectionTrait, Database, TransactionTrait};
    assert!(on_postgres(), "the race needs two connections: PostgreSQL");
    let (app, token, old_receiver, id, _) = one_held_then_one_waiting(HOLD).await;
    let new_receiver = Receiver::ok().await;
    let db = Database::connect(&app.database_url).await.expect("connect");
    let change = db.begin().await.expect("begin");
    let sql = |text: String| sea_orm::Statement::from_string(sea_orm::DbBackend::Postgres, text);
    change
        .execute_raw(sql("LOCK TABLE webhooks IN ACCESS EXCLUSIVE MODE".into()))
        .await
        .expect("lock");
    // The waiting delivery's read of the webhook waits for the lock.
    let watcher = Database::connect(&app.database_url).await.expect("connect");
    crate::support::eventually(
        "the waiting delivery to read its webhook",
        Duration::from_secs(15),
        || async {
            let waiting = watcher
                .query_one_raw(sql("SELECT count(*) AS n FROM pg_stat_activity \
                     WHERE wait_event_type = 'Lock' AND query LIKE 'SELECT \"webhooks\".%'"
                    .into()))
                .await
                .expect("pg_stat_activity")
                .expect("a row");
            (waiting.try_get::<i64>("", "n").expect("n") > 0).then_some(())
        },
    )
    .await;
    // What `updateWebhook` does to move the endpoint, made while it waits.
    for text in [
        format!(
            "UPDATE endpoints SET url = '{}' WHERE webhook_id = '{id}'",
            new_receiver.url
        ),
        format!("UPDATE webhooks SET updated_at = updated_at + 1 WHERE id = '{id}'"),
        format!(
            "UPDATE tenant_versions SET version = version + 1 \
             WHERE tenant_id = (SELECT tenant_id FROM webhooks WHERE id = '{id}')"
        ),
    ] {
        change.execute_raw(sql(text)).await.expect("change");
    }
    change.commit().await.expect("commit");

    new_receiver.wait_for(1, Duration::from_secs(15)).await;
    publish(&app, &token, "conversion.created", json!({ "n": 3 })).await;
    new_receiver.wait_for(2, Duration::from_secs(15)).await;
    assert_eq!(
        old_receiver.count(),
        1,
        "only the delivery sent before the change went to the old address"
    );
}
