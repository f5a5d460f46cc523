//! A claimed delivery with everything needed to attempt it.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use entity::webhook::{self, WebhookStatus};
use reqwest::header::HeaderMap;
use url::Url;

use super::client::custom_headers;
use crate::{
    crypto::{SecretBox, signing_key},
    domain::{
        retry::RetryPolicy,
        webhooks::{header_pairs, policy_of},
    },
};

/// The parts of a webhook an attempt needs, with its secrets decrypted.
pub struct WebhookTarget {
    pub id: String,
    pub status: WebhookStatus,
    /// HMAC keys: the current secret, then the previous one during a rotation.
    pub keys: Vec<Vec<u8>>,
    pub timeout: Duration,
    pub policy: RetryPolicy,
}

impl WebhookTarget {
    pub fn from_model(
        model: &webhook::Model,
        secrets: &SecretBox,
        now_ms: i64,
    ) -> anyhow::Result<Self> {
        let mut keys = vec![signing_key(&secrets.open(&model.secret)?)?];
        if let (Some(previous), Some(until)) =
            (&model.previous_secret, model.previous_secret_expires_at)
            && until > now_ms
        {
            keys.push(signing_key(&secrets.open(previous)?)?);
        }
        Ok(Self {
            id: model.id.clone(),
            status: model.status,
            keys,
            timeout: Duration::from_millis(model.timeout_ms.max(1) as u64),
            policy: policy_of(model),
        })
    }
}

pub struct EndpointTarget {
    pub id: String,
    pub url: Url,
    pub headers: HeaderMap,
}

impl EndpointTarget {
    pub fn from_model(model: &entity::endpoint::Model) -> anyhow::Result<Self> {
        Ok(Self {
            id: model.id.clone(),
            url: Url::parse(&model.url)?,
            headers: custom_headers(&header_pairs(&model.headers)),
        })
    }
}

pub struct Job {
    pub delivery_id: String,
    pub tenant_id: String,
    pub event_id: String,
    pub event_type: Arc<str>,
    /// Shared by every delivery of the same event.
    pub body: Bytes,
    pub webhook: Arc<WebhookTarget>,
    pub endpoint: Arc<EndpointTarget>,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub claim_token: i64,
    pub claimed_at: Instant,
}
