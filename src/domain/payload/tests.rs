use entity::webhook::{self, WebhookStatus};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::{domain::events::render_body, ids::EventId};

fn envelope(event_type: &str, data: &Value) -> Bytes {
    Bytes::from(render_body(
        &EventId::new(),
        event_type,
        1_700_000_000_123,
        data,
    ))
}

fn shape(format: PayloadFormat, method: DeliveryMethod, template: Option<&str>) -> Shape {
    let model = webhook::Model {
        id: crate::ids::WebhookId::new(),
        tenant_id: "acme".into(),
        name: "n".into(),
        description: String::new(),
        status: WebhookStatus::Active,
        disabled_reason: None,
        event_types: json!(["*"]),
        label_filter: None,
        data_filter: None,
        ordering: None,
        team: None,
        created_by: "a".into(),
        for_login: None,
        secret: String::new(),
        previous_secret: None,
        previous_secret_expires_at: None,
        public_key: None,
        payload_format: format.stored(),
        body_template: template.map(str::to_owned),
        http_method: method.stored(),
        max_attempts: 1,
        initial_interval_ms: 1,
        max_interval_ms: 1,
        timeout_ms: 1,
        failing_since: None,
        last_sent_at: None,
        created_at: 0,
        updated_at: 0,
    };
    Shape::of(&model)
}

fn url(text: &str) -> EndpointUrl {
    EndpointUrl::of(&check_endpoint_url(text).expect("valid URL").0).expect("parses")
}

#[test]
fn data_only_is_the_slice_of_the_envelope_that_data_was_rendered_into() {
    let data = json!({ "zeta": 1, "alpha": { "b": [1, 2.5, "x"], "a": null }, "é": "東京" });
    let body = envelope("offer.created", &data);
    let sliced = data_of(&body).expect("data");
    assert_eq!(
        sliced,
        serde_json::to_string(&data).expect("JSON").as_bytes()
    );
    assert_eq!(
        sliced.as_ptr(),
        body[body.len() - 1 - sliced.len()..].as_ptr(),
        "no copy"
    );
    assert!(sliced.starts_with(br#"{"zeta":1"#), "keys keep their order");
}

#[test]
fn endpoint_urls_may_hold_macros_only_after_the_host() {
    for refused in [
        "https://{{ data.host }}/pb",
        "https://t.example{{ data.p }}",
        "https://t.example:{{ data.port }}/pb",
        "{{ data.url }}",
        "https://user:pw@t.example/{{ data.a }}",
        "https://t.example/{{ data.a ",
    ] {
        assert!(check_endpoint_url(refused).is_err(), "{refused}");
    }
    let (stored, sample) =
        check_endpoint_url("https://t.example/pb/{{ data.id }}?c={{ data.c }}").expect("valid");
    assert_eq!(stored, "https://t.example/pb/{{ data.id }}?c={{ data.c }}");
    assert_eq!(sample.as_str(), "https://t.example/pb/x?c=x");
}

#[test]
fn a_get_postback_puts_encoded_values_in_the_query_and_signs_its_target() {
    let data = json!({ "clickId": "a&b=c d", "payout": 12.5, "name": "Zoë" });
    let out = render(
        &shape(PayloadFormat::Envelope, DeliveryMethod::Get, None),
        &url("https://t.example/pb?click_id={{ data.clickId }}&payout={{ data.payout }}&n={{ data.name }}"),
        &envelope("conversion.created", &data),
    )
    .expect("renders");
    assert_eq!(out.method.http(), http::Method::GET);
    assert!(out.body.is_empty() && out.content_type.is_none());
    assert_eq!(
        out.url.as_str(),
        "https://t.example/pb?click_id=a%26b%3Dc%20d&payout=12.5&n=Zo%C3%AB"
    );
    assert_eq!(
        &out.signed[..],
        b"/pb?click_id=a%26b%3Dc%20d&payout=12.5&n=Zo%C3%AB"
    );
    let pairs: Vec<(String, String)> = out.url.query_pairs().into_owned().collect();
    assert_eq!(pairs[0], ("click_id".into(), "a&b=c d".into()));
    assert_eq!(pairs[2], ("n".into(), "Zoë".into()));
}

#[test]
fn a_form_postback_moves_the_query_into_the_body() {
    let out = render(
        &shape(PayloadFormat::Envelope, DeliveryMethod::PostForm, None),
        &url("https://t.example/pb?click_id={{ data.c }}"),
        &envelope("conversion.created", &json!({ "c": "x y" })),
    )
    .expect("renders");
    assert_eq!(out.url.as_str(), "https://t.example/pb");
    assert_eq!(&out.body[..], b"click_id=x%20y");
    assert_eq!(out.signed, out.body);
    assert_eq!(out.content_type, Some(FORM));
}

#[test]
fn a_body_template_renders_json_and_a_missing_field_fails_alone() {
    let template = shape(
        PayloadFormat::Template,
        DeliveryMethod::Post,
        Some(r#"{"event": {{ type }}, "amount": {{ data.amount }}}"#),
    );
    let endpoint = url("https://t.example/hook");
    let out = render(
        &template,
        &endpoint,
        &envelope("conversion.created", &json!({ "amount": 3 })),
    )
    .expect("renders");
    assert_eq!(
        &out.body[..],
        br#"{"event": "conversion.created", "amount": 3}"#
    );
    let err = render(
        &template,
        &endpoint,
        &envelope("conversion.created", &json!({})),
    )
    .expect_err("missing field");
    assert!(
        err.starts_with("body template: ") && err.contains("undefined"),
        "{err}"
    );
    let not_json = shape(
        PayloadFormat::Template,
        DeliveryMethod::Post,
        Some("{{ data.a }}, {"),
    );
    let err =
        render(&not_json, &endpoint, &envelope("x.y", &json!({ "a": 1 }))).expect_err("not JSON");
    assert!(err.contains("not JSON"), "{err}");
}

#[test]
fn an_envelope_post_sends_the_stored_bytes() {
    let body = envelope("offer.created", &json!({ "a": 1 }));
    let out = render(
        &shape(PayloadFormat::Envelope, DeliveryMethod::Post, None),
        &url("https://t.example/hook"),
        &body,
    )
    .expect("renders");
    assert_eq!(out.body.as_ptr(), body.as_ptr());
    assert_eq!(out.signed, body);
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("\\PC{0,10}", inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn data_only_always_equals_the_data_as_rendered(data in any_json()) {
        let body = envelope("conversion.status_changed", &data);
        let sliced = data_of(&body).expect("data");
        let expected = serde_json::to_string(&data).expect("JSON");
        prop_assert_eq!(&sliced[..], expected.as_bytes());
    }

    #[test]
    fn url_macros_round_trip_any_text(value in "\\PC{0,40}") {
        let out = render(
            &shape(PayloadFormat::Envelope, DeliveryMethod::Get, None),
            &url("https://t.example/pb?v={{ data.v }}&w=1"),
            &envelope("x.y", &json!({ "v": value })),
        ).expect("renders");
        prop_assert_eq!(out.url.host_str(), Some("t.example"));
        let pairs: Vec<(String, String)> = out.url.query_pairs().into_owned().collect();
        prop_assert_eq!(pairs, vec![("v".to_owned(), value), ("w".to_owned(), "1".to_owned())]);
    }
}
