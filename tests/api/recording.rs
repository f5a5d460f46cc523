//! Recording attempts: whatever a receiver answers, and whatever one row
//! the database refuses, every other tenant's deliveries settle.

use std::time::Duration;

use sea_orm::{ConnectionTrait, Database};
use serde_json::json;

use crate::support::{
    TestApp,
    app::on_postgres,
    eventually,
    fixtures::*,
    receiver::{Receiver, Reply},
    types::{Delivery, Page},
};

const STATUSES: &str = "{ deliveries(first: 100) { edges { node { status
    attempts { responseBody errorMessage } } } } }";

/// Every delivery of the token's tenant, once all of them are SUCCEEDED.
async fn all_succeeded(app: &TestApp, token: &str, expected: usize) -> Vec<Delivery> {
    eventually(
        "every delivery to be recorded as SUCCEEDED",
        Duration::from_secs(15),
        || async {
            let page: Page<Delivery> = app.gql.field(token, STATUSES, json!({})).await;
            let nodes: Vec<Delivery> = page.items().into_iter().cloned().collect();
            (nodes.len() == expected && nodes.iter().all(|n| n.status == "SUCCEEDED"))
                .then_some(nodes)
        },
    )
    .await
}

async fn publish_to(app: &TestApp, token: &str, url: &str, events: usize) {
    create_webhook(app, token, fast_webhook(url, &["offer.created"], 3)).await;
    for n in 0..events {
        publish(app, token, "offer.created", json!({ "n": n })).await;
    }
}

#[tokio::test]
async fn a_reply_with_nul_or_invalid_utf8_is_stored_and_other_tenants_settle() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.admin("tenant-a"), app.admin("tenant-b"));
    let odd = Receiver::start(|_| Reply::Raw(200, b"ok\0then \xff\xfe bytes")).await;
    let plain = Receiver::ok().await;
    publish_to(&app, &a, &odd.url, 3).await;
    publish_to(&app, &b, &plain.url, 20).await;

    all_succeeded(&app, &b, 20).await;
    let stored = all_succeeded(&app, &a, 3).await;
    for delivery in stored {
        assert_eq!(
            delivery.attempts[0].response_body.as_deref(),
            Some("ok\u{fffd}then \u{fffd}\u{fffd} bytes"),
            "NUL and invalid UTF-8 are stored as U+FFFD"
        );
    }
}

/// Makes the database refuse attempt rows whose response body contains
/// `poison`, as a stand-in for any row one receiver's reply makes
/// unstorable.
async fn refuse_poisoned_attempts(database_url: &str) {
    let db = Database::connect(database_url).await.expect("connect");
    let statements: &[&str] = if on_postgres() {
        &[
            "CREATE FUNCTION refuse_poison() RETURNS trigger AS $$ BEGIN \
               IF NEW.response_body LIKE '%poison%' THEN RAISE EXCEPTION 'poison row refused'; END IF; \
               RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON delivery_attempts \
               FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
        ]
    } else {
        &[
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON delivery_attempts \
             WHEN NEW.response_body LIKE '%poison%' \
             BEGIN SELECT RAISE(ABORT, 'poison row refused'); END",
        ]
    };
    for sql in statements {
        db.execute_unprepared(sql)
            .await
            .expect("install the trigger");
    }
    db.close().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_the_database_refuses_never_holds_back_the_rest_of_its_batch() {
    let app = TestApp::spawn().await;
    refuse_poisoned_attempts(&app.database_url).await;
    let (a, b) = (app.admin("tenant-a"), app.admin("tenant-b"));
    let poisoned = Receiver::start(|_| Reply::Raw(200, b"poison")).await;
    let plain = Receiver::ok().await;
    // Interleaved, so that refused and storable attempts share batches.
    create_webhook(&app, &a, fast_webhook(&poisoned.url, &["offer.created"], 3)).await;
    create_webhook(&app, &b, fast_webhook(&plain.url, &["offer.created"], 3)).await;
    for n in 0..30 {
        publish(&app, &a, "offer.created", json!({ "n": n })).await;
        publish(&app, &b, "offer.created", json!({ "n": n })).await;
    }

    all_succeeded(&app, &b, 30).await;
    // The refused rows are stored without the body, saying why.
    let refused = all_succeeded(&app, &a, 30).await;
    for delivery in refused {
        let attempt = &delivery.attempts[0];
        assert_eq!(attempt.response_body, None);
        let message = attempt.error_message.as_deref().unwrap_or_default();
        assert!(message.contains("could not be stored"), "{attempt:?}");
    }
    assert_eq!(poisoned.count(), 30, "each poisoned delivery was sent once");
}
