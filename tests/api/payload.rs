//! Payload shapes (issue 15 item 3): `DATA_ONLY` bodies, body templates and
//! GET / form postbacks with URL macros, each checked by a real receiver
//! that verifies the signature with an independent verifier.

use serde_json::{Value, json};

use crate::support::{
    TestApp,
    fixtures::*,
    receiver::{Received, Receiver},
    verify::{verify, verify_content},
};

/// Creates a webhook for `conversion.created` to `url` with `extra` fields.
async fn webhook_with(app: &TestApp, token: &str, url: &str, extra: Value) -> (String, String) {
    let mut input = fast_webhook(url, &["conversion.created"], 1);
    for (key, value) in extra.as_object().expect("object") {
        input[key] = value.clone();
    }
    let created = create_webhook(app, token, input).await;
    (created.webhook.id, created.secret)
}

async fn one(receiver: &Receiver) -> Received {
    receiver.wait_for(1, WAIT).await[0].clone()
}

#[tokio::test]
async fn a_data_only_body_is_the_published_data_byte_for_byte() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let receiver = Receiver::ok().await;
    let (_, secret) = webhook_with(
        &app,
        &admin,
        &receiver.url,
        json!({ "payloadFormat": "DATA_ONLY" }),
    )
    .await;
    // Keys deliberately out of alphabetical order, nested, with escapes and
    // non-ASCII: what the publisher sent, in its order.
    let data = json!({
        "network_offer_id": 1019,
        "name": "Offer \"New\" </script>\n",
        "payout": 1.6,
        "city": "Zürich 東京",
        "relationship": { "labels": { "total": 2, "entries": ["b", "a"] }, "category": null },
        "big": 9_007_199_254_740_993_i64,
    });
    publish(&app, &admin, "conversion.created", data.clone()).await;
    let request = one(&receiver).await;
    let expected = serde_json::to_string(&data).expect("JSON");
    assert_eq!(
        std::str::from_utf8(&request.body).expect("UTF-8"),
        expected,
        "the body is the data as published"
    );
    assert!(
        expected.starts_with(r#"{"network_offer_id":1019,"name":"#),
        "{expected}"
    );
    assert_eq!(request.header("content-type"), "application/json");
    verify(&secret, &request).expect("signed over the body sent");
}

#[tokio::test]
async fn a_get_postback_sends_each_macro_value_url_encoded_and_signs_its_target() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let receiver = Receiver::ok().await;
    let url = format!(
        "{}/pb/{{{{ data.offer }}}}?click_id={{{{ data.clickId }}}}&payout={{{{ data.payout }}}}&sub={{{{ data.sub }}}}&fixed=1",
        receiver.url
    );
    let (_, secret) = webhook_with(&app, &admin, &url, json!({ "method": "GET" })).await;
    let data = json!({
        "offer": "a/b c",
        "clickId": "k&x=1 y",
        "payout": 12.5,
        "sub": "Zoë = 東京 & more",
    });
    publish(&app, &admin, "conversion.created", data).await;
    let request = one(&receiver).await;
    assert_eq!(request.method, "GET");
    assert!(request.body.is_empty(), "no body");
    assert_eq!(
        request.header("content-type"),
        "",
        "no content type without a body"
    );
    let parsed = url::Url::parse(&format!("http://x{}", request.target)).expect("target");
    let pairs: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
    assert_eq!(
        pairs,
        [
            ("click_id", "k&x=1 y"),
            ("payout", "12.5"),
            ("sub", "Zoë = 東京 & more"),
            ("fixed", "1"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
    assert_eq!(
        request.path, "/hook/pb/a%2Fb%20c",
        "a value stays one path segment"
    );
    verify_content(&secret, &request, request.target.as_bytes())
        .expect("signed over the path and query");
    assert!(verify(&secret, &request).is_err(), "not over an empty body");
}

#[tokio::test]
async fn a_form_postback_posts_the_urls_query_as_a_form() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let receiver = Receiver::ok().await;
    let url = format!(
        "{}?click_id={{{{ data.clickId }}}}&s={{{{ data.s }}}}",
        receiver.url
    );
    let (_, secret) = webhook_with(&app, &admin, &url, json!({ "method": "POST_FORM" })).await;
    publish(
        &app,
        &admin,
        "conversion.created",
        json!({ "clickId": "a&b", "s": "é =" }),
    )
    .await;
    let request = one(&receiver).await;
    assert_eq!(request.method, "POST");
    assert_eq!(request.target, "/hook", "the query moved into the body");
    assert_eq!(
        request.header("content-type"),
        "application/x-www-form-urlencoded"
    );
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect();
    assert_eq!(
        form,
        [("click_id", "a&b"), ("s", "é =")].map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
    verify(&secret, &request).expect("signed over the form body");
}

#[tokio::test]
async fn a_body_template_renders_json_and_one_that_cannot_render_fails_its_delivery_alone() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let good = Receiver::ok().await;
    let bad = Receiver::ok().await;
    let template = r#"{"conversion": {{ data.id }}, "amount": {{ data.amount }}, "event": {{ type }},
        "items": [{% for i in data.items %}{{ i.sku }}{% if not loop.last %},{% endif %}{% endfor %}]}"#;
    let (_, secret) = webhook_with(
        &app,
        &admin,
        &good.url,
        json!({ "payloadFormat": "TEMPLATE", "bodyTemplate": template }),
    )
    .await;
    webhook_with(
        &app,
        &admin,
        &bad.url,
        json!({ "payloadFormat": "TEMPLATE", "bodyTemplate": r#"{"x": {{ data.missing }}}"# }),
    )
    .await;
    let data =
        json!({ "id": "cnv \"1\"", "amount": 3.25, "items": [{ "sku": "a" }, { "sku": "b\n" }] });
    let published = publish(&app, &admin, "conversion.created", data).await;
    let request = one(&good).await;
    assert_eq!(
        request.json(),
        json!({ "conversion": "cnv \"1\"", "amount": 3.25, "event": "conversion.created", "items": ["a", "b\n"] })
    );
    verify(&secret, &request).expect("signed over the rendered body");

    let event = published.event.id;
    let failed = crate::support::eventually("the unrenderable delivery to fail", WAIT, || async {
        let deliveries = app
            .gql
            .ok(
                &admin,
                "query($id: ID!) { event(id: $id) { deliveries(first: 10) { edges { node { id status } } } } }",
                json!({ "id": event }),
            )
            .await;
        let nodes = deliveries["event"]["deliveries"]["edges"].as_array()?.clone();
        nodes
            .iter()
            .find(|e| e["node"]["status"] == "FAILED")
            .map(|e| e["node"]["id"].as_str().unwrap_or_default().to_owned())
    })
    .await;
    let failed = delivery(&app, &admin, &failed).await;
    let attempt = &failed.attempts[0];
    assert_eq!(attempt.error_kind.as_deref(), Some("RENDER"));
    let message = attempt.error_message.as_deref().unwrap_or_default();
    assert!(
        message.contains("body template") && message.contains("undefined"),
        "{message}"
    );
    assert_eq!(
        failed.attempt_count, 1,
        "not retried: it would render the same"
    );
    assert_eq!(bad.count(), 0, "nothing was sent");
}

#[tokio::test]
async fn payload_settings_are_checked_when_saved_naming_the_field() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let url = "https://t.example/pb";
    let cases = [
        (
            json!({ "payloadFormat": "TEMPLATE", "bodyTemplate": "{{ data.a " }),
            "bodyTemplate",
        ),
        (json!({ "payloadFormat": "TEMPLATE" }), "bodyTemplate"),
        (json!({ "bodyTemplate": "{}" }), "bodyTemplate"),
        (
            json!({ "payloadFormat": "TEMPLATE", "bodyTemplate": "x".repeat(16 * 1024 + 1) }),
            "bodyTemplate",
        ),
        (
            json!({ "method": "GET", "payloadFormat": "DATA_ONLY" }),
            "payloadFormat",
        ),
        (
            json!({ "endpoints": [{ "url": "https://{{ data.host }}/pb" }] }),
            "endpoints[0].url",
        ),
        (
            json!({ "endpoints": [{ "url": "https://t.example:{{ data.p }}/" }] }),
            "endpoints[0].url",
        ),
        (
            json!({ "endpoints": [{ "url": "https://t.example/?a={{ data.a" }] }),
            "endpoints[0].url",
        ),
    ];
    for (extra, field) in cases {
        let mut input = fast_webhook(url, &["conversion.created"], 1);
        for (key, value) in extra.as_object().expect("object") {
            input[key] = value.clone();
        }
        let err = app
            .gql
            .err(
                Some(&admin),
                &create_webhook_doc(),
                json!({ "input": input }),
            )
            .await;
        assert_eq!(err.code(), "BAD_USER_INPUT", "{extra}: {}", err.message);
        assert_eq!(
            err.extensions.field.as_deref(),
            Some(field),
            "{extra}: {}",
            err.message
        );
    }
}

#[tokio::test]
async fn payload_settings_are_shown_and_changed_as_a_whole() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let (id, _) = webhook_with(
        &app,
        &admin,
        "http://127.0.0.1:9/{{ data.a }}",
        json!({ "payloadFormat": "TEMPLATE", "bodyTemplate": "{{ data }}" }),
    )
    .await;
    let shown = |doc: &'static str| {
        let app = &app;
        let admin = &admin;
        let id = id.clone();
        async move { app.gql.ok(admin, doc, json!({ "id": id })).await }
    };
    let read = "query($id: ID!) { webhook(id: $id) { payloadFormat bodyTemplate method endpoints { url } } }";
    let webhook = shown(read).await["webhook"].clone();
    assert_eq!(webhook["payloadFormat"], "TEMPLATE");
    assert_eq!(webhook["bodyTemplate"], "{{ data }}");
    assert_eq!(webhook["method"], "POST");
    assert_eq!(
        webhook["endpoints"][0]["url"], "http://127.0.0.1:9/{{ data.a }}",
        "kept as written"
    );
    // Leaving TEMPLATE drops the template; a GET postback then is allowed.
    let update =
        "mutation($id: ID!, $input: UpdateWebhookInput!) { updateWebhook(id: $id, input: $input) {
        payloadFormat bodyTemplate method } }";
    let updated = app
        .gql
        .ok(
            &admin,
            update,
            json!({ "id": id, "input": { "payloadFormat": "ENVELOPE", "method": "GET" } }),
        )
        .await;
    assert_eq!(
        updated["updateWebhook"],
        json!({ "payloadFormat": "ENVELOPE", "bodyTemplate": null, "method": "GET" })
    );
    let err = app
        .gql
        .err(
            Some(&admin),
            update,
            json!({ "id": id, "input": { "payloadFormat": "DATA_ONLY" } }),
        )
        .await;
    assert_eq!(
        err.extensions.field.as_deref(),
        Some("payloadFormat"),
        "{}",
        err.message
    );
}

const PREVIEW: &str = "query($id: ID!, $event: ID, $sample: PreviewSampleInput) {
    previewDelivery(webhookId: $id, eventId: $event, sample: $sample) {
        eventId wouldDeliver
        requests { endpointId method url headers { name value } body signedContent error } } }";

#[tokio::test]
async fn preview_delivery_shows_exactly_what_is_sent_and_why_a_request_cannot_be_made() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let receiver = Receiver::ok().await;
    let url = format!("{}?c={{{{ data.clickId }}}}", receiver.url);
    let (id, _) = webhook_with(&app, &admin, &url, json!({ "method": "GET" })).await;
    let published = publish(
        &app,
        &admin,
        "conversion.created",
        json!({ "clickId": "a b&c" }),
    )
    .await;
    let request = one(&receiver).await;

    let preview = app
        .gql
        .ok(
            &admin,
            PREVIEW,
            json!({ "id": id, "event": published.event.id }),
        )
        .await["previewDelivery"]
        .clone();
    assert_eq!(preview["wouldDeliver"], true);
    let shown = &preview["requests"][0];
    assert_eq!(shown["method"], "GET");
    assert_eq!(shown["body"], Value::Null);
    let shown_url = url::Url::parse(shown["url"].as_str().expect("url")).expect("URL");
    assert_eq!(
        &shown_url[url::Position::BeforePath..],
        request.target,
        "the URL sent"
    );
    let content = shown["signedContent"].as_str().expect("signed content");
    assert!(
        content.starts_with(&format!("{}.", published.event.id))
            && content.ends_with(&format!(".{}", request.target)),
        "{content}"
    );

    // A made-up event, of a type it does not take, and without the field.
    let sample = json!({ "type": "offer.created", "data": { "other": 1 } });
    let preview = app
        .gql
        .ok(&admin, PREVIEW, json!({ "id": id, "sample": sample }))
        .await["previewDelivery"]
        .clone();
    assert_eq!(preview["wouldDeliver"], false);
    let error = preview["requests"][0]["error"].as_str().expect("an error");
    assert!(
        error.contains("URL template") && error.contains("undefined"),
        "{error}"
    );
    assert_eq!(receiver.count(), 1, "a preview sends nothing");

    let viewer = app.token("acme", hookline::auth::Role::Viewer);
    let err = app
        .gql
        .err(
            Some(&viewer),
            PREVIEW,
            json!({ "id": id, "sample": sample }),
        )
        .await;
    assert_eq!(err.code(), "FORBIDDEN");
}
