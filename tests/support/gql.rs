use serde_json::{Value, json};

/// A GraphQL-over-HTTP client for the API under test.
#[derive(Clone)]
pub struct Gql {
    pub endpoint: String,
    pub http: reqwest::Client,
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

    /// Runs an operation that must fail and returns its first error.
    pub async fn err(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let body = self.run(token, query, variables).await;
        body["errors"][0].clone()
    }
}

pub trait GqlExt {
    /// `extensions.code` of an error.
    fn code(&self) -> &str;
}

impl GqlExt for Value {
    fn code(&self) -> &str {
        self["extensions"]["code"].as_str().unwrap_or("<no code>")
    }
}
