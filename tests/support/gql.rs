use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::types::{GqlError, parse};

/// A GraphQL-over-HTTP client for the API under test.
#[derive(Clone)]
pub struct Gql {
    pub endpoint: String,
    pub http: reqwest::Client,
}

impl AsRef<Gql> for Gql {
    fn as_ref(&self) -> &Gql {
        self
    }
}

impl Gql {
    pub fn new(endpoint: String) -> Self {
        Self {
            endpoint,
            http: reqwest::Client::new(),
        }
    }

    /// Runs an operation and returns the whole response body.
    pub async fn run(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut request = self
            .http
            .post(&self.endpoint)
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request sent");
        response.json().await.expect("JSON response")
    }

    /// Runs an operation that must succeed and returns its `data`.
    pub async fn ok(&self, token: &str, query: &str, variables: Value) -> Value {
        let body = self.run(Some(token), query, variables).await;
        assert!(
            body.get("errors").is_none(),
            "unexpected errors: {body:#}\nquery: {query}"
        );
        body["data"].clone()
    }

    /// Runs an operation with one root field that must succeed, and reads
    /// that field as a `T`: `gql.field::<Webhook>(token, "query { webhook(…) { status } }", …)`.
    pub async fn field<T: DeserializeOwned>(
        &self,
        token: &str,
        query: &str,
        variables: Value,
    ) -> T {
        let data = self.ok(token, query, variables).await;
        let fields = data.as_object().expect("data is an object");
        assert_eq!(fields.len(), 1, "one root field in {data:#}");
        parse(fields.values().next().expect("a root field"))
    }

    /// Runs an operation that must fail and returns its first error. An
    /// answer without errors reads as an error without a code whose message
    /// holds the answer, so that a check of the code fails saying what came.
    pub async fn err(&self, token: Option<&str>, query: &str, variables: Value) -> GqlError {
        let body = self.run(token, query, variables).await;
        first_error(&body).unwrap_or_else(|| GqlError {
            message: format!("no error in {body}"),
            ..GqlError::default()
        })
    }
}

/// The first of a response's `errors`, if any.
pub fn first_error(response: &Value) -> Option<GqlError> {
    response["errors"].get(0).map(parse)
}

/// `extensions.code` of a response's first error.
pub fn error_code(response: &Value) -> Option<String> {
    first_error(response).and_then(|error| error.extensions.code)
}

/// For error objects read raw, e.g. from a WebSocket message's payload.
pub trait GqlExt {
    /// `extensions.code` of an error.
    fn code(&self) -> &str;
}

impl GqlExt for Value {
    fn code(&self) -> &str {
        self["extensions"]["code"].as_str().unwrap_or("<no code>")
    }
}
