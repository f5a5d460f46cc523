//! Pull feeds: cursoring, scoping to one webhook, revocation, isolation.

use hookline::auth::Role;
use serde_json::{Value, json};

use crate::support::{TestApp, feed_race, fixtures::*};

const CREATE: &str = "mutation($w: ID!) { createFeedLink(webhookId: $w) { url feedLink { id webhookId active createdBy } } }";

async fn read(url: &str, query: &str) -> (u16, Value) {
    let response = reqwest::get(format!("{url}{query}"))
        .await
        .expect("GET feed");
    let status = response.status().as_u16();
    assert_eq!(response.headers()["cache-control"], "no-store");
    (status, response.json().await.expect("JSON"))
}

#[tokio::test]
async fn a_feed_pages_through_its_webhooks_events_oldest_first() {
    let app = TestApp::spawn_with(|config| config.no_worker = true).await;
    let admin = app.admin("acme");
    let offers = create_webhook(
        &app,
        &admin,
        fast_webhook("http://127.0.0.1:9/", &["offer.*"], 1),
    )
    .await;
    let mut labelled = fast_webhook("http://127.0.0.1:9/", &["*"], 1);
    labelled["labelFilter"] = json!({ "login": "aff-7" });
    let for_login = create_webhook(&app, &admin, labelled).await;
    let mut offer_ids = Vec::new();
    for n in 0..7 {
        let event_type = if n % 2 == 0 {
            "offer.updated"
        } else {
            "affiliate.created"
        };
        let labels = if n == 3 {
            json!({ "login": "aff-7" })
        } else {
            json!({})
        };
        let published = publish_input(
            &app,
            &admin,
            json!({ "type": event_type, "data": { "n": n }, "labels": labels }),
        )
        .await;
        if event_type == "offer.updated" {
            offer_ids.push(published.event.id);
        }
    }

    let created = app
        .gql
        .ok(&admin, CREATE, json!({ "w": offers.webhook.id }))
        .await;
    let url = created["createFeedLink"]["url"]
        .as_str()
        .expect("url")
        .to_owned();
    assert!(
        url.starts_with(&format!("http://{}/feeds/hlf_", app.addr)),
        "{url}"
    );
    assert_eq!(created["createFeedLink"]["feedLink"]["active"], true);

    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = read(&url, &format!("?limit=2&after={cursor}")).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["webhookId"], offers.webhook.id.as_str());
        for event in page["events"].as_array().expect("events") {
            assert_eq!(
                event["type"], "offer.updated",
                "only what the webhook matches"
            );
            seen.push(event["id"].as_str().expect("id").to_owned());
        }
        cursor = page["next"].as_str().unwrap_or_default().to_owned();
        if page["hasMore"] == false {
            break;
        }
    }
    assert_eq!(seen, offer_ids, "every offer event once, oldest first");
    // Reading on from the end gives nothing new until something is published.
    let (_, tail) = read(&url, &format!("?after={cursor}")).await;
    assert_eq!(tail["events"], json!([]));

    // A second webhook's feed follows its own label filter.
    let other = app
        .gql
        .ok(&admin, CREATE, json!({ "w": for_login.webhook.id }))
        .await;
    let (_, page) = read(other["createFeedLink"]["url"].as_str().expect("url"), "").await;
    let data: Vec<&Value> = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| &e["data"])
        .collect();
    assert_eq!(data, [&json!({ "n": 3 })]);

    // Bad parameters are 400s.
    assert_eq!(read(&url, "?limit=0").await.0, 400);
    assert_eq!(read(&url, "?limit=5000").await.0, 400);
    assert_eq!(read(&url, "?after=not-a-cursor").await.0, 400);
}

#[tokio::test]
async fn revoked_unknown_and_foreign_links_are_refused() {
    let app = TestApp::spawn_with(|config| config.no_worker = true).await;
    let admin = app.admin("acme");
    let webhook =
        create_webhook(&app, &admin, fast_webhook("http://127.0.0.1:9/", &["*"], 1)).await;
    let webhook_id = json!(webhook.webhook.id);
    publish(&app, &admin, "offer.created", json!({})).await;

    // Only admins create and revoke; another tenant cannot at all.
    let viewer = app.token("acme", Role::Viewer);
    assert_eq!(
        app.gql
            .err(Some(&viewer), CREATE, json!({ "w": webhook_id }))
            .await
            .code(),
        "FORBIDDEN"
    );
    assert_eq!(
        app.gql
            .err(
                Some(&app.admin("globex")),
                CREATE,
                json!({ "w": webhook_id })
            )
            .await
            .code(),
        "NOT_FOUND"
    );

    let created = app.gql.ok(&admin, CREATE, json!({ "w": webhook_id })).await;
    let url = created["createFeedLink"]["url"]
        .as_str()
        .expect("url")
        .to_owned();
    let link_id = created["createFeedLink"]["feedLink"]["id"].clone();
    assert_eq!(
        read(&url, "").await.1["events"]
            .as_array()
            .expect("events")
            .len(),
        1
    );

    let listed = app
        .gql
        .ok(
            &viewer,
            "query($w: ID!) { webhook(id: $w) { feedLinks { id active lastUsedAt } } }",
            json!({ "w": webhook_id }),
        )
        .await;
    assert_eq!(listed["webhook"]["feedLinks"][0]["id"], link_id);
    assert!(listed["webhook"]["feedLinks"][0]["lastUsedAt"].is_string());

    let revoke = "mutation($id: ID!) { revokeFeedLink(id: $id) { active revokedAt } }";
    assert_eq!(
        app.gql
            .err(Some(&app.admin("globex")), revoke, json!({ "id": link_id }))
            .await
            .code(),
        "NOT_FOUND"
    );
    let revoked = app.gql.ok(&admin, revoke, json!({ "id": link_id })).await;
    assert_eq!(revoked["revokeFeedLink"]["active"], false);
    let (status, body) = read(&url, "").await;
    assert_eq!(status, 404, "{body}");

    // Guessing is pointless: unknown tokens look exactly like revoked ones.
    let base = url.rsplit_once("/feeds/").expect("url").0;
    for token in [
        "hlf_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "nope",
        &"hlf_x".repeat(50),
    ] {
        let (status, _) = read(&format!("{base}/feeds/{token}"), "").await;
        assert_eq!(status, 404);
    }

    // Deleting the webhook takes its links along.
    let fresh = app.gql.ok(&admin, CREATE, json!({ "w": webhook_id })).await;
    app.gql
        .ok(
            &admin,
            "mutation($id: ID!) { deleteWebhook(id: $id) { deletedId } }",
            json!({ "id": webhook_id }),
        )
        .await;
    let (status, _) = read(fresh["createFeedLink"]["url"].as_str().expect("url"), "").await;
    assert_eq!(status, 404);
}

/// Ids are taken before commit, so concurrent publishes commit out of id
/// order; a reader following `next` must still see every acknowledged event,
/// once, however its polls interleave with the commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reader_racing_batch_and_single_publishers_sees_every_event_once() {
    let app = TestApp::spawn_with(|config| config.no_worker = true).await;
    let race = feed_race::race(&app.gql, &app.admin("acme"), 5, 25).await;
    assert_eq!(race.acknowledged.len(), 2_200);
    let served: std::collections::HashSet<&String> = race.served.iter().collect();
    assert_eq!(served.len(), race.served.len(), "an event was served twice");
    let missed = race
        .acknowledged
        .iter()
        .filter(|id| !served.contains(id))
        .count();
    assert_eq!(
        missed, 0,
        "{missed} of 2 200 acknowledged events never served"
    );
}

/// A server whose responses hold at most 1 MiB, with `count` events of
/// 200 KB published to a webhook, and that webhook's feed's URL.
async fn large_events_feed(count: usize) -> (TestApp, String) {
    let app = TestApp::spawn_with(|config| {
        config.no_worker = true;
        config.max_response_bytes = 1024 * 1024;
        config.max_response_bytes_in_flight = 1024 * 1024;
    })
    .await;
    let admin = app.admin("acme");
    let hook = create_webhook(&app, &admin, fast_webhook("http://127.0.0.1:9/", &["*"], 1)).await;
    let text = "x".repeat(200_000);
    for n in 0..count {
        publish(
            &app,
            &admin,
            "offer.updated",
            json!({ "n": n, "text": text }),
        )
        .await;
    }
    let vars = json!({ "w": hook.webhook.id });
    let created = app.gql.ok(&admin, CREATE, vars).await;
    let url = created["createFeedLink"]["url"].as_str().expect("url");
    let url = url.to_owned();
    (app, url)
}

/// A page of a feed had no byte bound: `limit=1000` over large events built
/// a response of the whole limit (here 12 events of 200 KB, 2.4 MB, against
/// a response limit of 1 MiB). Now a page stops at the limit's bytes (one
/// event always) and says there is more; the cursor takes the rest.
#[tokio::test]
async fn a_feed_page_stays_within_the_response_limit() {
    let (_app, url) = large_events_feed(12).await;

    let mut seen = Vec::new();
    let mut cursor = String::new();
    for _ in 0..12 {
        let (status, page) = read(&url, &format!("?limit=1000&after={cursor}")).await;
        assert_eq!(status, 200, "{page}");
        let events = page["events"].as_array().expect("events");
        let bytes: usize = events.iter().map(|e| e.to_string().len()).sum();
        assert!(bytes <= 1024 * 1024, "a page of {bytes} bytes");
        seen.extend(events.iter().map(|e| e["data"]["n"].as_i64().expect("n")));
        cursor = page["next"].as_str().unwrap_or_default().to_owned();
        if page["hasMore"] == false {
            break;
        }
    }
    assert_eq!(
        seen,
        (0..12).collect::<Vec<_>>(),
        "every event once, in order"
    );
}

/// Pages are built a few at a time on an instance (its response bytes in
/// flight over one page's): past that a read is told to come back, not
/// queued or built.
#[tokio::test]
async fn feed_reads_past_the_instances_bytes_in_flight_are_rate_limited() {
    let (_app, url) = large_events_feed(5).await;
    let reads = (0..16).map(|_| {
        let url = url.clone();
        async move { reqwest::get(url).await.expect("GET feed") }
    });
    let answers = futures::future::join_all(reads).await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.status().as_u16()).collect();
    assert!(statuses.contains(&200), "{statuses:?}");
    let limited: Vec<_> = answers
        .iter()
        .filter(|a| a.status().as_u16() == 429)
        .collect();
    assert!(!limited.is_empty(), "one page at a time: {statuses:?}");
    assert!(limited.iter().all(|a| a.headers()["retry-after"] == "1"));
}

/// Feed links had no bound: a webhook could be given any number, and
/// `feedLinks` listed them all. At most 100 unrevoked; revoking one makes
/// room.
#[tokio::test]
async fn a_webhook_has_at_most_a_hundred_active_feed_links() {
    let app = TestApp::spawn_with(|config| config.no_worker = true).await;
    let admin = app.admin("acme");
    let hook = create_webhook(&app, &admin, fast_webhook("http://127.0.0.1:9/", &["*"], 1)).await;
    let vars = json!({ "w": hook.webhook.id });
    let mut first = Value::Null;
    for n in 0..100 {
        let created = app.gql.ok(&admin, CREATE, vars.clone()).await;
        if n == 0 {
            first = created["createFeedLink"]["feedLink"]["id"].clone();
        }
    }
    let refused = app.gql.err(Some(&admin), CREATE, vars.clone()).await;
    assert_eq!(
        refused.extensions.code.as_deref(),
        Some("CONFLICT"),
        "{refused:?}"
    );
    let revoke = "mutation($id: ID!) { revokeFeedLink(id: $id) { id active } }";
    app.gql.ok(&admin, revoke, json!({ "id": first })).await;
    let made = app.gql.ok(&admin, CREATE, vars.clone()).await;
    let id = made["createFeedLink"]["feedLink"]["id"].clone();
    app.gql.ok(&admin, revoke, json!({ "id": id })).await;

    // 200 links made and revoked since: the 99 old unrevoked ones are
    // still listed, ahead of the revoked ones.
    for _ in 0..200 {
        let made = app.gql.ok(&admin, CREATE, vars.clone()).await;
        let id = made["createFeedLink"]["feedLink"]["id"].clone();
        app.gql.ok(&admin, revoke, json!({ "id": id })).await;
    }
    let listed = app
        .gql
        .ok(
            &admin,
            "query($w: ID!) { webhook(id: $w) { feedLinks { active } } }",
            vars,
        )
        .await;
    let links = listed["webhook"]["feedLinks"].as_array().expect("links");
    let active = links.iter().filter(|l| l["active"] == true).count();
    assert_eq!(
        (links.len(), active),
        (200, 99),
        "every unrevoked one listed"
    );
    assert!(
        links[..99].iter().all(|l| l["active"] == true),
        "unrevoked first"
    );
}
