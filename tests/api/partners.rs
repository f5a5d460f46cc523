//! Partner self-service: a partner token (role `partner`, its `sub` the
//! partner's login) manages only the webhooks that belong to its login and
//! reads only their deliveries and attempts; those webhooks receive only
//! events labelled with the login. The matrix below is partner P1 against
//! partner P2's webhook and the network's own, over HTTP and WebSocket.

use std::time::Duration;

use hookline::auth::Role;
use serde_json::{Value, json};

use crate::support::{GqlExt, TestApp, fixtures::*, jwt, receiver::Receiver, ws::WsClient};

fn partner(login: &str) -> String {
    jwt::keys()
        .issue("acme", login, Role::Partner, Duration::from_secs(3600))
        .expect("token")
}

fn hook(url: &str, for_login: Option<&str>) -> Value {
    json!({
        "name": format!("to {}", for_login.unwrap_or("the network")),
        "eventTypes": ["conversion.*"],
        "endpoints": [{ "url": url }],
        "forLogin": for_login,
    })
}

const CREATE: &str = "mutation($input: CreateWebhookInput!) {
    createWebhook(input: $input) { webhook { id forLogin endpoints { id } } } }";

async fn create(app: &TestApp, token: &str, input: Value) -> (String, String) {
    let created = app.gql.ok(token, CREATE, json!({ "input": input })).await;
    let webhook = &created["createWebhook"]["webhook"];
    (
        webhook["id"].as_str().expect("id").to_owned(),
        webhook["endpoints"][0]["id"]
            .as_str()
            .expect("endpoint")
            .to_owned(),
    )
}

/// Ids of the deliveries (of webhook `id`, if given) the token can list.
async fn listed_deliveries(app: &TestApp, token: &str) -> Vec<(String, String)> {
    let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
    delivery_nodes(app, token, "id webhookId")
        .await
        .iter()
        .map(|node| (text(&node["id"]), text(&node["webhookId"])))
        .collect()
}

#[tokio::test]
async fn a_partner_reaches_only_its_own_webhooks_over_http() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let publisher = app.token("acme", Role::Publisher);
    let (p1, p2) = (partner("p1"), partner("p2"));
    let (network_rx, p1_rx, p2_rx) = (
        Receiver::ok().await,
        Receiver::ok().await,
        Receiver::ok().await,
    );

    let (w0, e0) = create(&app, &admin, hook(&network_rx.url, None)).await;
    // An admin creates P1's webhook for it; P2 creates its own.
    let (w1, _) = create(&app, &admin, hook(&p1_rx.url, Some("p1"))).await;
    let (w2, e2) = create(&app, &p2, hook(&p2_rx.url, None)).await;
    let w2_owner = webhook_for_login(&app, &admin, &w2).await;
    assert_eq!(w2_owner, "p2", "a partner's webhook belongs to it");

    // Receiving: only events labelled with the webhook's login.
    for labels in [
        json!({ "login": "p1" }),
        json!({ "login": "p2" }),
        json!({}),
    ] {
        publish_input(
            &app,
            &publisher,
            json!({
                "type": "conversion.created", "data": { "x": 1 }, "labels": labels,
            }),
        )
        .await;
    }
    network_rx.wait_for(3, WAIT).await;
    assert_eq!(
        p1_rx.wait_for(1, WAIT).await[0].json()["data"],
        json!({ "x": 1 })
    );
    p2_rx.wait_for(1, WAIT).await;
    wait_settled(&app, &admin, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        (p1_rx.count(), p2_rx.count()),
        (1, 1),
        "each partner got its own event only"
    );

    // Listing: P1 sees its webhook and its delivery, nothing else.
    let listed = app
        .gql
        .ok(
            &p1,
            "{ webhooks(first: 50) { edges { node { id forLogin } } } }",
            json!({}),
        )
        .await;
    let ids: Vec<&str> = listed["webhooks"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(ids, vec![w1.as_str()]);
    let all = listed_deliveries(&app, &admin).await;
    assert_eq!(all.len(), 5, "the admin sees every delivery");
    let mine = listed_deliveries(&app, &p1).await;
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].1, w1);
    let foreign: Vec<&(String, String)> = all.iter().filter(|(_, w)| *w != w1).collect();
    let attempts = app
        .gql
        .ok(
            &p1,
            "{ deliveryAttempts(first: 100) { edges { node { webhookId } } } }",
            json!({}),
        )
        .await;
    let attempt_webhooks: Vec<&str> = attempts["deliveryAttempts"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"]["webhookId"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(attempt_webhooks, vec![w1.as_str()]);

    // Through its own delivery's event, P1 still sees only its delivery.
    let nested = app
        .gql
        .ok(
            &p1,
            "query($id: ID!) { delivery(id: $id) { event { deliveries(first: 50) { edges { node { webhookId } } } } } }",
            json!({ "id": mine[0].0 }),
        )
        .await;
    let nested = nested["delivery"]["event"]["deliveries"]["edges"]
        .as_array()
        .expect("edges")
        .clone();
    assert_eq!(
        nested.len(),
        1,
        "the network's delivery of the same event stays hidden: {nested:?}"
    );

    // Reading, changing, replaying anything else: as if it did not exist.
    for (webhook, endpoint) in [(&w0, &e0), (&w2, &e2)] {
        let not_found = [
            (
                "query($id: ID!) { webhook(id: $id) { id } }",
                json!({ "id": webhook }),
            ),
            (
                "mutation($id: ID!) { updateWebhook(id: $id, input: { name: \"mine\" }) { id } }",
                json!({ "id": webhook }),
            ),
            (
                "mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret } }",
                json!({ "id": webhook }),
            ),
            (
                "mutation($id: ID!) { sendTestEvent(webhookId: $id) { event { id } } }",
                json!({ "id": webhook }),
            ),
            (
                "mutation($id: ID!) { deleteWebhook(id: $id) { deletedId } }",
                json!({ "id": webhook }),
            ),
            (
                "mutation($id: ID!) { disableEndpoint(id: $id) { id } }",
                json!({ "id": endpoint }),
            ),
            (
                "mutation($id: ID!) { enableEndpoint(id: $id) { id } }",
                json!({ "id": endpoint }),
            ),
            (
                "query($id: ID) { deliveryStats(webhookId: $id) { succeeded } }",
                json!({ "id": webhook }),
            ),
            (
                "query($id: ID) { attemptMetrics(webhookId: $id) { succeeded } }",
                json!({ "id": webhook }),
            ),
        ];
        for (doc, variables) in not_found {
            let err = app.gql.err(Some(&p1), doc, variables).await;
            assert_eq!(err.code(), "NOT_FOUND", "{doc}: {err}");
        }
    }
    for (delivery, _) in &foreign {
        for doc in [
            "query($id: ID!) { delivery(id: $id) { id } }",
            "mutation($id: ID!) { retryDelivery(id: $id) { id } }",
        ] {
            let err = app.gql.err(Some(&p1), doc, json!({ "id": delivery })).await;
            assert_eq!(err.code(), "NOT_FOUND", "{doc}: {err}");
        }
    }
    let (foreign_delivery, foreign_webhook) = foreign[0];
    let forbidden = [
        ("{ events(first: 5) { edges { node { id } } } }", json!({})),
        (
            "mutation($id: ID!) { cancelDelivery(id: $id) { id } }",
            json!({ "id": foreign_delivery }),
        ),
        (
            "mutation($id: ID!) { replayWebhook(id: $id, since: \"2020-01-01T00:00:00Z\") { complete } }",
            json!({ "id": foreign_webhook }),
        ),
        (
            "mutation { publishEvent(input: { type: \"conversion.created\", data: {} }) { deliveryCount } }",
            json!({}),
        ),
        (
            "mutation { createPortalSession(login: \"p1\") { url } }",
            json!({}),
        ),
        (
            "mutation($input: CreateWebhookInput!) { createWebhook(input: $input) { secret } }",
            json!({ "input": hook(&p1_rx.url, Some("p2")) }),
        ),
    ];
    for (doc, variables) in forbidden {
        let err = app.gql.err(Some(&p1), doc, variables).await;
        assert_eq!(err.code(), "FORBIDDEN", "{doc}: {err}");
    }
    let err = app
        .gql
        .err(Some(&p1), "{ deliveryStats { succeeded } }", json!({}))
        .await;
    assert_eq!(err.code(), "BAD_USER_INPUT", "{err}");

    // Nothing of theirs changed; P1's own webhook is P1's to manage.
    assert_eq!(webhook_for_login(&app, &admin, &w2).await, "p2");
    let renamed = app
        .gql
        .ok(
            &p1,
            "mutation($id: ID!) { updateWebhook(id: $id, input: { name: \"mine\" }) { name } }",
            json!({ "id": w1 }),
        )
        .await;
    assert_eq!(renamed["updateWebhook"]["name"], "mine");
    let stats = app
        .gql
        .ok(
            &p1,
            "query($id: ID) { deliveryStats(webhookId: $id) { succeeded } }",
            json!({ "id": w1 }),
        )
        .await;
    assert_eq!(stats["deliveryStats"]["succeeded"], 1);
    app.stop().await;
}

async fn webhook_for_login(app: &TestApp, admin: &str, id: &str) -> String {
    let data = app
        .gql
        .ok(
            admin,
            "query($id: ID!) { webhook(id: $id) { forLogin } }",
            json!({ "id": id }),
        )
        .await;
    data["webhook"]["forLogin"]
        .as_str()
        .unwrap_or("<none>")
        .to_owned()
}

#[tokio::test]
async fn a_partner_subscribes_only_to_its_own_webhooks_over_websocket() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let publisher = app.token("acme", Role::Publisher);
    let p1 = partner("p1");
    let (p1_rx, p2_rx) = (Receiver::ok().await, Receiver::ok().await);
    let (w1, _) = create(&app, &admin, hook(&p1_rx.url, Some("p1"))).await;
    let (w2, _) = create(&app, &admin, hook(&p2_rx.url, Some("p2"))).await;

    let mut socket = WsClient::connect(app.addr, "graphql-transport-ws", None).await;
    socket
        .init(json!({ "Authorization": format!("Bearer {p1}") }))
        .await
        .expect("ack");
    let attempts =
        "subscription($id: ID) { deliveryAttempts(filter: { webhookId: $id }) { webhookId } }";
    let refused = [
        ("a", attempts, json!({ "id": w2 }), "NOT_FOUND"),
        ("b", attempts, json!({}), "BAD_USER_INPUT"),
        (
            "c",
            "subscription($id: ID) { deliveryStatusChanged(filter: { webhookId: $id }) { id } }",
            json!({ "id": w2 }),
            "NOT_FOUND",
        ),
        (
            "d",
            "subscription { eventsPublished { id } }",
            json!({}),
            "FORBIDDEN",
        ),
    ];
    for (id, doc, variables, code) in refused {
        socket.subscribe(id, doc, variables).await;
        let reply = socket.recv(Duration::from_secs(5)).await.expect("reply");
        // Refused before it runs (`error`), or as its only result (`next`
        // with errors and no data, then `complete`).
        let error = match reply["type"].as_str() {
            Some("error") => reply["payload"][0].clone(),
            Some("next") => {
                assert_eq!(reply["payload"]["data"], Value::Null, "{id}: {reply}");
                let done = socket.recv(Duration::from_secs(5)).await.expect("complete");
                assert_eq!(done["type"], "complete", "{id}: {done}");
                reply["payload"]["errors"][0].clone()
            }
            _ => panic!("{id}: {reply}"),
        };
        assert_eq!(error.code(), code, "{id}: {reply}");
    }
    socket
        .subscribe_listening("mine", attempts, json!({ "id": w1 }))
        .await;
    // Another partner asking for the very same subscription is checked on
    // its own, not joined to P1's running one.
    let mut other = WsClient::connect(app.addr, "graphql-transport-ws", None).await;
    other
        .init(json!({ "Authorization": format!("Bearer {}", partner("p2")) }))
        .await
        .expect("ack");
    other.subscribe("same", attempts, json!({ "id": w1 })).await;
    let reply = other.recv(Duration::from_secs(5)).await.expect("reply");
    let code = match reply["type"].as_str() {
        Some("error") => reply["payload"][0].code().to_owned(),
        _ => reply["payload"]["errors"][0].code().to_owned(),
    };
    assert_eq!(code, "NOT_FOUND", "{reply}");
    other.close().await;
    for login in ["p2", "p1"] {
        publish_input(
            &app,
            &publisher,
            json!({
                "type": "conversion.created", "data": {}, "labels": { "login": login },
            }),
        )
        .await;
    }
    p2_rx.wait_for(1, WAIT).await;
    let item = socket.next_payload(WAIT).await;
    assert_eq!(
        item["data"]["deliveryAttempts"]["webhookId"],
        json!(w1),
        "{item}"
    );
    socket.expect_silence(Duration::from_millis(500)).await;
    socket.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_portal_session_signs_a_partner_into_the_dashboard_for_a_while() {
    let app = TestApp::spawn_with(|config| {
        config.access.portal_frame_ancestors = vec!["https://network.example".into()];
    })
    .await;
    let admin = app.admin("acme");
    let session = app
        .gql
        .ok(
            &admin,
            "mutation { createPortalSession(login: \"aff-7\", ttlSeconds: 120) { url token expiresAt } }",
            json!({}),
        )
        .await;
    let session = &session["createPortalSession"];
    let token = session["token"].as_str().expect("token");
    let url = session["url"].as_str().expect("url");
    assert!(url.starts_with(&app.url("/?portal#token=")), "{url}");
    assert!(url.ends_with(token));
    let viewer = app
        .gql
        .ok(token, "{ viewer { login role tenant } }", json!({}))
        .await;
    assert_eq!(
        viewer["viewer"],
        json!({ "login": "aff-7", "role": "PARTNER", "tenant": "acme" })
    );
    let expires: chrono::DateTime<chrono::Utc> = session["expiresAt"]
        .as_str()
        .expect("expiresAt")
        .parse()
        .expect("a time");
    let left = expires - chrono::Utc::now();
    assert!((100..=121).contains(&left.num_seconds()), "{left}");
    for ttl in [10, 100_000] {
        let err = app
            .gql
            .err(
                Some(&admin),
                "mutation($t: Int) { createPortalSession(login: \"a\", ttlSeconds: $t) { url } }",
                json!({ "t": ttl }),
            )
            .await;
        assert_eq!(err.code(), "BAD_USER_INPUT", "{err}");
    }
    // The page may be framed by the network's site, by no other.
    let page = reqwest::get(app.url("/")).await.expect("page");
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_owned();
    assert!(
        csp.ends_with("frame-ancestors 'self' https://network.example"),
        "{csp}"
    );
    assert!(page.headers().get("x-frame-options").is_none());
    // A partner may not open a session for itself or another.
    let err = app
        .gql
        .err(
            Some(token),
            "mutation { createPortalSession(login: \"aff-8\") { url } }",
            json!({}),
        )
        .await;
    assert_eq!(err.code(), "FORBIDDEN");
    app.stop().await;
}
