//! Removing a webhook or an endpoint on PostgreSQL, where no foreign key
//! ties a delivery to them: a publish locks neither, a publish racing the
//! removal leaves nothing behind, a delivery whose endpoint vanished anyway
//! is deleted unsent, and a resend's deliveries are only those whose
//! endpoint still exists (that last one on both databases).

use std::time::Duration;

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, Statement,
    TransactionTrait,
};
use serde_json::json;

use crate::support::{
    TestApp,
    app::skipped_without_postgres,
    eventually,
    fixtures::*,
    receiver::{Receiver, Reply},
};

async fn database(app: &TestApp) -> DatabaseConnection {
    hookline::db::connect(&app.database_url)
        .await
        .expect("connect")
        .write
}

async fn text(db: &impl ConnectionTrait, sql: &str) -> Option<String> {
    db.query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect(sql)
        .map(|row| row.try_get_by_index(0).expect("a value"))
}

async fn count(db: &impl ConnectionTrait, sql: &str) -> i64 {
    db.query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect(sql)
        .expect("a row")
        .try_get_by_index(0)
        .expect("a count")
}

/// A server with one webhook (its id last) whose receiver never answers.
async fn hanging_webhook() -> (TestApp, String, Receiver, String) {
    let app = TestApp::spawn().await;
    let token = app.admin("acme");
    let receiver = Receiver::start(|_| Reply::Hang).await;
    let hook = create_webhook(&app, &token, fast_webhook(&receiver.url, &["*"], 3))
        .await
        .webhook
        .id;
    (app, token, receiver, hook)
}

/// Deliveries and queue rows of webhook `hook`.
async fn left_of(db: &DatabaseConnection, hook: &str) -> (i64, i64) {
    (
        count(
            db,
            &format!("SELECT count(*) FROM deliveries WHERE webhook_id = '{hook}'"),
        )
        .await,
        count(
            db,
            &format!("SELECT count(*) FROM delivery_queue WHERE webhook_id = '{hook}'"),
        )
        .await,
    )
}

/// A foreign key's check locks the row it names: every delivery made locked
/// its webhook's row and, twice, its endpoint's, which leaves the locker's
/// transaction id in the row's `xmax` (and, when two transactions hold such
/// a lock, a multixact). Shown failing before the keys went: both rows held
/// the publishing transaction's id.
#[tokio::test]
async fn a_publish_locks_neither_its_webhook_nor_its_endpoint() {
    if skipped_without_postgres("SQLite keeps its foreign keys") {
        return;
    }
    // Its receiver never answers, so nothing records an outcome on the rows.
    let (app, token, receiver, hook) = hanging_webhook().await;
    let db = database(&app).await;
    let lockers = || async {
        let webhook = format!("SELECT xmax::text FROM webhooks WHERE id = '{hook}'");
        let endpoint = format!("SELECT xmax::text FROM endpoints WHERE webhook_id = '{hook}'");
        (text(&db, &webhook).await, text(&db, &endpoint).await)
    };
    // Creating the webhook locked its row (its endpoints' key).
    let before = lockers().await;
    assert!(before.0.is_some() && before.1.is_some(), "rows found");
    publish(&app, &token, "offer.created", json!({ "n": 1 })).await;
    receiver.wait_for(1, Duration::from_secs(10)).await;
    let (webhook, endpoint) = lockers().await;
    assert_eq!(webhook, before.0, "the webhook's row was locked");
    assert_eq!(endpoint, before.1, "the endpoint's row was locked");
}

/// A publish that read the configuration before a webhook's deletion and
/// commits after it: its delivery is deleted too, once it commits. Here its
/// transaction is held open by hand until the deletion has answered. Shown
/// failing with the keys dropped and no sweep: the late delivery stayed.
#[tokio::test]
async fn a_publish_racing_a_deletion_leaves_nothing_of_the_webhook_behind() {
    if skipped_without_postgres("SQLite keeps its foreign keys") {
        return;
    }
    let (app, token, receiver, hook) = hanging_webhook().await;
    publish(&app, &token, "offer.created", json!({ "n": 1 })).await;
    receiver.wait_for(1, Duration::from_secs(10)).await;
    let db = database(&app).await;
    let racing = db.begin().await.expect("begin");
    // The racing publish's delivery, queued for later (never due here). Its
    // id ends in what no generated id ends in: one that ends in `x` (one in
    // 32) was taken for the copy and queued twice.
    for sql in [
        format!(
            "INSERT INTO deliveries (id, tenant_id, event_id, webhook_id, endpoint_id, status, \
               attempt_count, created_at, updated_at) \
             SELECT id || '-racing', tenant_id, event_id, webhook_id, endpoint_id, 'PENDING', 0, \
               created_at, updated_at FROM deliveries WHERE webhook_id = '{hook}'"
        ),
        format!(
            "INSERT INTO delivery_queue (id, tenant_id, event_id, webhook_id, endpoint_id, \
               attempt_count, due_at) \
             SELECT id, tenant_id, event_id, webhook_id, endpoint_id, 0, 4000000000000 \
             FROM deliveries WHERE webhook_id = '{hook}' AND id LIKE '%-racing'"
        ),
    ] {
        racing.execute_unprepared(&sql).await.expect(&sql);
    }
    let delete = "mutation($id: ID!) { deleteWebhook(id: $id) { deletedId } }";
    // The deletion must not wait for the racing transaction (a lock would
    // hang it: bounded here), and the sweep must wait for it to commit.
    tokio::time::timeout(
        Duration::from_secs(30),
        app.gql.ok(&token, delete, json!({ "id": hook })),
    )
    .await
    .expect("the deletion answered without waiting for the racing publish");
    tokio::time::sleep(Duration::from_millis(300)).await;
    racing.commit().await.expect("commit");
    // The sweep waits for every older transaction of the database, other
    // tests' included, for a minute at most.
    eventually(
        "nothing of the deleted webhook left",
        Duration::from_secs(90),
        || async { (left_of(&db, &hook).await == (0, 0)).then_some(()) },
    )
    .await;
}

/// A delivery whose endpoint is gone with nothing swept after it (here the
/// row is deleted by hand) is deleted by the worker that claims it, and not
/// sent again. Shown failing before: a vanished row was left to its lease
/// and claimed again forever.
#[tokio::test]
async fn a_delivery_whose_endpoint_vanished_is_deleted_not_sent() {
    if skipped_without_postgres("SQLite keeps its foreign keys") {
        return;
    }
    let app = TestApp::spawn().await;
    let token = app.admin("acme");
    let receiver = Receiver::start(|n| Reply::Status(if n == 0 { 500 } else { 200 })).await;
    let mut input = fast_webhook(&receiver.url, &["*"], 5);
    input["retryPolicy"] =
        json!({ "maxAttempts": 5, "initialIntervalMs": 4000, "maxIntervalMs": 5000 });
    let hook = create_webhook(&app, &token, input).await.webhook.id;
    publish(&app, &token, "offer.created", json!({ "n": 1 })).await;
    receiver.wait_for(1, Duration::from_secs(10)).await;
    let db = database(&app).await;
    let status = format!("SELECT status FROM deliveries WHERE webhook_id = '{hook}'");
    eventually(
        "the first attempt recorded",
        Duration::from_secs(10),
        || async { (text(&db, &status).await.as_deref() == Some("RETRYING")).then_some(()) },
    )
    .await;
    db.execute_unprepared(&format!(
        "DELETE FROM endpoints WHERE webhook_id = '{hook}'"
    ))
    .await
    .expect("delete the endpoint");
    eventually("the delivery deleted", Duration::from_secs(20), || async {
        (left_of(&db, &hook).await == (0, 0)).then_some(())
    })
    .await;
    let orphans = "SELECT count(*) FROM delivery_attempts WHERE delivery_id NOT IN (SELECT id FROM deliveries)";
    assert_eq!(count(&db, orphans).await, 0, "its attempt went with it");
    assert_eq!(receiver.count(), 1, "sent once, before its endpoint went");
}

/// Resends and replays read their webhook before the transaction that
/// inserts their deliveries; inside it they keep only the deliveries whose
/// endpoint still exists, so a removal that committed between the two
/// leaves nothing to them. (Without the check PostgreSQL took both; SQLite
/// refused the whole transaction on its foreign key.)
#[tokio::test]
async fn a_resend_enqueues_only_deliveries_whose_endpoint_still_exists() {
    let (app, token, _receiver, hook) = hanging_webhook().await;
    publish(&app, &token, "offer.created", json!({ "n": 1 })).await;
    let db = database(&app).await;
    let delivery = entity::delivery::Entity::find()
        .filter(entity::delivery::Column::WebhookId.eq(hook.as_str()))
        .one(&db)
        .await
        .expect("read")
        .expect("a delivery");
    let mut again = delivery.clone();
    again.id = hookline::ids::DeliveryId::new();
    let mut gone = delivery.clone();
    gone.id = hookline::ids::DeliveryId::new();
    gone.endpoint_id = hookline::ids::EndpointId::new();
    let enqueued =
        hookline::domain::queue::enqueue_to_existing(&db, vec![again.clone(), gone.clone()])
            .await
            .expect("enqueue");
    assert_eq!(enqueued.len(), 1);
    assert_eq!(enqueued[0].id, again.id);
    let stored = |id: String| {
        let db = db.clone();
        async move {
            count(
                &db,
                &format!("SELECT count(*) FROM deliveries WHERE id = '{id}'"),
            )
            .await
        }
    };
    assert_eq!(stored(again.id.to_string()).await, 1);
    assert_eq!(stored(gone.id.to_string()).await, 0);
}
