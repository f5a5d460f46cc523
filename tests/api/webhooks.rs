//! Webhook management: create, read, list, update, rotate, delete, validate.

use serde_json::{Value, json};

use crate::support::{
    TestApp,
    fixtures::*,
    types::{Page, Webhook},
};

const GET: &str = "query($id: ID!) { webhook(id: $id) { id name description status eventTypes team labelFilter timeoutMs
    retryPolicy { maxAttempts initialIntervalMs maxIntervalMs } endpoints { id url headers { name value } } } }";

#[tokio::test]
async fn create_read_update_delete_round_trip() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let mut input = webhook_input("http://127.0.0.1:9/a");
    input["labelFilter"] = json!({ "campaignId": 42 });
    input["team"] = json!("growth");
    input["retryPolicy"] =
        json!({ "maxAttempts": 5, "initialIntervalMs": 1000, "maxIntervalMs": 60000 });
    input["timeoutMs"] = json!(5000);
    let created = create_webhook(&app, &admin, input).await;

    let secret = &created.secret;
    assert!(secret.starts_with("whsec_"), "{secret}");
    let webhook = &created.webhook;
    let id = webhook.id.as_str();
    assert!(id.starts_with("wh_"));
    assert_eq!(webhook.status, "ACTIVE");
    assert_eq!(webhook.created_by, "admin-user");
    assert_eq!(
        webhook.event_types,
        ["conversion.status_changed", "offer.*"]
    );
    assert_eq!(webhook.label_filter, json!({ "campaignId": "42" }));
    assert_eq!(webhook.team.as_deref(), Some("growth"));
    assert_eq!(webhook.timeout_ms, 5000);
    assert_eq!(webhook.retry_policy.max_attempts, 5);
    assert_eq!(webhook.last_sent_at, None);
    let headers: Vec<(&str, &str)> = webhook.endpoints[0]
        .headers
        .iter()
        .map(|h| (h.name.as_str(), h.value.as_str()))
        .collect();
    assert_eq!(headers, [("X-Api-Key", "k-123")]);
    let first_endpoint = webhook.endpoints[0].id.clone();

    let fetched: Webhook = app.gql.field(&admin, GET, json!({ "id": id })).await;
    assert_eq!(fetched.name, "Conversions to CRM");

    // A partial update changes only what it names; a kept URL keeps its id.
    let updated: Webhook = app
        .gql
        .field(
            &admin,
            "mutation($id: ID!, $input: UpdateWebhookInput!) { updateWebhook(id: $id, input: $input) {
                id name status team labelFilter description updatedAt
                endpoints { id url } } }",
            json!({ "id": id, "input": {
                "name": "Renamed",
                "status": "PAUSED",
                "team": null,
                "labelFilter": null,
                "endpoints": [{ "url": "http://127.0.0.1:9/a" }, { "url": "http://127.0.0.1:9/b" }],
            }}),
        )
        .await;
    assert_eq!(updated.name, "Renamed");
    assert_eq!(updated.status, "PAUSED");
    assert_eq!(updated.team, None);
    assert_eq!(updated.label_filter, Value::Null);
    assert_eq!(updated.description, "Approved conversions go to the CRM");
    assert_eq!(updated.endpoints[0].id, first_endpoint);
    assert_eq!(updated.endpoints[1].url, "http://127.0.0.1:9/b");

    let deleted = app
        .gql
        .ok(
            &admin,
            "mutation($id: ID!) { deleteWebhook(id: $id) { deletedId } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(deleted["deleteWebhook"]["deletedId"], id);
    let err = app.gql.err(Some(&admin), GET, json!({ "id": id })).await;
    assert_eq!(err.code(), "NOT_FOUND");
}

#[tokio::test]
async fn list_pages_newest_first_and_filters() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut input = webhook_input(&format!("http://127.0.0.1:9/{i}"));
        input["name"] = json!(format!("hook {i}"));
        if i == 3 {
            input["eventTypes"] = json!(["affiliate.created"]);
            input["status"] = json!("PAUSED");
            input["team"] = json!("partners");
        }
        let created = create_webhook(&app, &admin, input).await;
        ids.push(created.webhook.id);
    }
    ids.reverse();

    let page = "query($after: String, $filter: WebhookFilter) { webhooks(first: 2, after: $after, filter: $filter) {
        edges { cursor node { id name } } pageInfo { hasNextPage hasPreviousPage endCursor } } }";
    let mut seen = Vec::new();
    let mut after = Value::Null;
    loop {
        let conn: Page<Webhook> = app.gql.field(&admin, page, json!({ "after": after })).await;
        seen.extend(conn.items().into_iter().map(|w| w.id.clone()));
        if !conn.page_info.has_next_page {
            break;
        }
        after = json!(conn.page_info.end_cursor);
    }
    assert_eq!(seen, ids, "all five, newest first, no repeats");

    let only = |filter: Value| {
        let gql = app.gql.clone();
        let admin = admin.clone();
        async move {
            let conn: Page<Webhook> = gql.field(&admin, page, json!({ "filter": filter })).await;
            conn.items()
                .into_iter()
                .map(|w| w.name.clone())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(only(json!({ "status": "PAUSED" })).await, ["hook 3"]);
    assert_eq!(only(json!({ "team": "partners" })).await, ["hook 3"]);
    assert_eq!(
        only(json!({ "eventType": "affiliate.created" })).await,
        ["hook 3"]
    );
    // offer.updated reaches the others through `offer.*`.
    assert_eq!(
        only(json!({ "eventType": "offer.updated" })).await,
        ["hook 4", "hook 2"]
    );
    assert_eq!(only(json!({ "search": "HOOK 1" })).await, ["hook 1"]);
    assert_eq!(only(json!({ "search": "%" })).await, Vec::<String>::new());

    let err = app
        .gql
        .err(
            Some(&admin),
            "{ webhooks(first: 101) { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(err.code(), "BAD_USER_INPUT");
}

#[tokio::test]
async fn every_validation_rule_names_its_field() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let base = webhook_input("http://127.0.0.1:9/hook");
    let with = |patch: Value| {
        let mut input = base.clone();
        for (key, value) in patch.as_object().expect("object") {
            input[key] = value.clone();
        }
        input
    };
    let cases = [
        (with(json!({ "name": "" })), "name"),
        (with(json!({ "name": "x".repeat(101) })), "name"),
        (
            with(json!({ "description": "x".repeat(1001) })),
            "description",
        ),
        (with(json!({ "eventTypes": [] })), "eventTypes"),
        (
            with(json!({ "eventTypes": ["nope.created"] })),
            "eventTypes[0]",
        ),
        (
            with(json!({ "eventTypes": ["offer.created", "Offer.Created"] })),
            "eventTypes[1]",
        ),
        (with(json!({ "eventTypes": ["nope.*"] })), "eventTypes[0]"),
        (with(json!({ "endpoints": [] })), "endpoints"),
        (
            with(
                json!({ "endpoints": (0..11).map(|i| json!({ "url": format!("http://127.0.0.1:9/{i}") })).collect::<Vec<_>>() }),
            ),
            "endpoints",
        ),
        (
            with(json!({ "endpoints": [{ "url": "ftp://127.0.0.1/" }] })),
            "endpoints[0].url",
        ),
        (
            with(json!({ "endpoints": [{ "url": "/relative" }] })),
            "endpoints[0].url",
        ),
        (
            with(
                json!({ "endpoints": [{ "url": format!("http://127.0.0.1/{}", "a".repeat(2048)) }] }),
            ),
            "endpoints[0].url",
        ),
        (
            with(
                json!({ "endpoints": [{ "url": "http://127.0.0.1:9/a" }, { "url": "http://127.0.0.1:9/a" }] }),
            ),
            "endpoints[1].url",
        ),
        (
            with(
                json!({ "endpoints": [{ "url": "http://127.0.0.1:9/", "headers": [{ "name": "Content-Type", "value": "x" }] }] }),
            ),
            "endpoints[0].headers[0].name",
        ),
        (
            with(
                json!({ "endpoints": [{ "url": "http://127.0.0.1:9/", "headers": [{ "name": "Host", "value": "x" }] }] }),
            ),
            "endpoints[0].headers[0].name",
        ),
        (
            with(
                json!({ "endpoints": [{ "url": "http://127.0.0.1:9/", "headers": [{ "name": "webhook-id", "value": "x" }] }] }),
            ),
            "endpoints[0].headers[0].name",
        ),
        (
            with(
                json!({ "endpoints": [{ "url": "http://127.0.0.1:9/", "headers": [{ "name": "bad header", "value": "x" }] }] }),
            ),
            "endpoints[0].headers[0].name",
        ),
        (
            with(
                json!({ "endpoints": [{ "url": "http://127.0.0.1:9/", "headers": [{ "name": "x-a", "value": "line\r\nbreak" }] }] }),
            ),
            "endpoints[0].headers[0].value",
        ),
        (
            with(json!({ "labelFilter": ["not", "an", "object"] })),
            "labelFilter",
        ),
        (
            with(json!({ "labelFilter": { "nested": { "a": 1 } } })),
            "labelFilter.nested",
        ),
        (with(json!({ "team": "t".repeat(101) })), "team"),
        (with(json!({ "timeoutMs": 50 })), "timeoutMs"),
        (with(json!({ "timeoutMs": 30001 })), "timeoutMs"),
        (
            with(
                json!({ "retryPolicy": { "maxAttempts": 0, "initialIntervalMs": 1000, "maxIntervalMs": 2000 } }),
            ),
            "retryPolicy.maxAttempts",
        ),
        (
            with(
                json!({ "retryPolicy": { "maxAttempts": 3, "initialIntervalMs": 5000, "maxIntervalMs": 2000 } }),
            ),
            "retryPolicy.maxIntervalMs",
        ),
    ];
    for (input, field) in cases {
        let err = app
            .gql
            .err(
                Some(&admin),
                &create_webhook_doc(),
                json!({ "input": input }),
            )
            .await;
        assert_eq!(err.code(), "BAD_USER_INPUT", "{field}: {err}");
        assert_eq!(err.field(), Some(field), "{err}");
        assert!(err.message.starts_with(field), "{err}");
    }
    // Status DISABLED is not an input value at all.
    let err = app
        .gql
        .err(
            Some(&admin),
            &create_webhook_doc(),
            json!({ "input": with(json!({ "status": "DISABLED" })) }),
        )
        .await;
    assert_eq!(err.code(), "BAD_USER_INPUT");

    let data = app
        .gql
        .ok(&admin, "{ webhooks { edges { cursor } } }", json!({}))
        .await;
    assert_eq!(data["webhooks"]["edges"], json!([]), "nothing stored");
}

#[tokio::test]
async fn private_addresses_are_refused_unless_allowed() {
    let app = TestApp::spawn_with(|config| config.allow_private_endpoints = false).await;
    let admin = app.admin("acme");
    for url in [
        "http://127.0.0.1/hook",
        "http://localhost:8080/hook",
        "http://10.0.0.8/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://0.0.0.0/",
        "http://2130706433/",
        "http://0x7f.0.0.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[fd00::1]/",
    ] {
        let err = app
            .gql
            .err(
                Some(&admin),
                &create_webhook_doc(),
                json!({ "input": webhook_input(url) }),
            )
            .await;
        assert_eq!(err.code(), "BAD_USER_INPUT", "{url}: {err}");
        assert_eq!(err.field(), Some("endpoints[0].url"), "{url}");
    }
    // A public literal address is accepted (nothing is sent at save time).
    create_webhook(&app, &admin, webhook_input("https://93.184.216.34/hook")).await;
}

#[tokio::test]
async fn refusing_a_private_address_says_which_flag_and_variable_allow_it() {
    let app = TestApp::spawn_with(|config| config.allow_private_endpoints = false).await;
    let admin = app.admin("acme");
    for url in ["http://127.0.0.1:8090/", "http://localhost:8090/"] {
        let err = app
            .gql
            .err(
                Some(&admin),
                &create_webhook_doc(),
                json!({ "input": webhook_input(url) }),
            )
            .await;
        assert_eq!(err.code(), "BAD_USER_INPUT", "{url}: {err}");
        let message = &err.message;
        assert!(message.contains("loopback"), "{url}: {message}");
        assert!(
            message.contains("--allow-private-endpoints")
                && message.contains("HOOKLINE_ALLOW_PRIVATE_ENDPOINTS=true"),
            "{url}: {message}"
        );
    }
}

#[tokio::test]
async fn the_secret_is_shown_once_and_rotation_issues_a_new_one() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let created = create_webhook(&app, &admin, webhook_input("http://127.0.0.1:9/hook")).await;
    let secret = created.secret;
    let id = created.webhook.id;

    let everything = app
        .gql
        .run(
            Some(&admin),
            &format!("query($id: ID!) {{ webhook(id: $id) {{ {WEBHOOK_FIELDS} previousSecretExpiresAt }} webhooks {{ edges {{ node {{ {WEBHOOK_FIELDS} }} }} }} }}"),
            json!({ "id": id }),
        )
        .await;
    let text = everything.to_string();
    assert!(
        !text.contains(&secret["whsec_".len()..]),
        "secret leaked: {text}"
    );

    let rotated = app
        .gql
        .ok(
            &admin,
            "mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret previousSecretExpiresAt webhook { id previousSecretExpiresAt } } }",
            json!({ "id": id }),
        )
        .await;
    let rotated = &rotated["rotateWebhookSecret"];
    let new_secret = rotated["secret"].as_str().expect("secret");
    assert!(new_secret.starts_with("whsec_"));
    assert_ne!(new_secret, secret);
    assert!(rotated["previousSecretExpiresAt"].is_string());
    assert_eq!(
        rotated["webhook"]["previousSecretExpiresAt"],
        rotated["previousSecretExpiresAt"]
    );
}

#[tokio::test]
async fn the_webhook_limit_per_tenant_is_enforced() {
    let app = TestApp::spawn_with(|config| config.max_webhooks_per_tenant = 2).await;
    let admin = app.admin("acme");
    for _ in 0..2 {
        create_webhook(&app, &admin, webhook_input("http://127.0.0.1:9/hook")).await;
    }
    let err = app
        .gql
        .err(
            Some(&admin),
            &create_webhook_doc(),
            json!({ "input": webhook_input("http://127.0.0.1:9/hook") }),
        )
        .await;
    assert_eq!(err.code(), "CONFLICT");
    // Another tenant has its own allowance.
    create_webhook(
        &app,
        &app.admin("globex"),
        webhook_input("http://127.0.0.1:9/hook"),
    )
    .await;
}
