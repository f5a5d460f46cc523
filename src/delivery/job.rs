//! A claimed delivery with everything needed to attempt it.

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use entity::webhook::{self, WebhookStatus};
use reqwest::header::HeaderMap;
use url::Url;

use super::client::custom_headers;
use crate::{
    crypto::{SecretBox, SigningKey},
    domain::{
        payload::{EndpointUrl, Shape},
        queue::Sequence,
        retry::RetryPolicy,
        webhooks::{header_pairs, policy_of},
    },
    ids::{DeliveryId, EndpointId, EventId, WebhookId},
};

/// The parts of a webhook an attempt needs, with its secrets decrypted.
pub struct WebhookTarget {
    pub id: WebhookId,
    pub status: WebhookStatus,
    /// Signing keys: the current secret's, then the previous one's during a
    /// rotation.
    pub keys: Vec<SigningKey>,
    pub timeout: Duration,
    pub policy: RetryPolicy,
    /// How its requests are made: body, method (its template compiled once).
    pub shape: Shape,
}

impl WebhookTarget {
    pub fn from_model(
        model: &webhook::Model,
        secrets: &SecretBox,
        now_ms: i64,
    ) -> anyhow::Result<Self> {
        let mut keys = vec![SigningKey::of(&secrets.open(&model.secret)?)?];
        if let (Some(previous), Some(until)) =
            (&model.previous_secret, model.previous_secret_expires_at)
            && until > now_ms
        {
            keys.push(SigningKey::of(&secrets.open(previous)?)?);
        }
        Ok(Self {
            id: model.id.clone(),
            status: model.status,
            keys,
            timeout: Duration::from_millis(model.timeout_ms.max(1) as u64),
            policy: policy_of(model),
            shape: Shape::of(model),
        })
    }
}

pub struct EndpointTarget {
    pub id: EndpointId,
    /// The URL it is known by: for a URL with macros, with `x` for each.
    pub url: Url,
    /// The URL requests go to, rendered per delivery when it has macros.
    pub address: EndpointUrl,
    pub headers: HeaderMap,
    /// Requests a second at most, shared with every instance (see
    /// `domain::throttle`); `None` when unlimited.
    pub rate_limit: Option<NonZeroU32>,
}

impl EndpointTarget {
    pub fn from_model(model: &entity::endpoint::Model) -> anyhow::Result<Self> {
        let address = EndpointUrl::of(&model.url).map_err(anyhow::Error::msg)?;
        Ok(Self {
            id: model.id.clone(),
            url: address.shown().clone(),
            address,
            headers: custom_headers(&header_pairs(&model.headers)),
            rate_limit: model
                .rate_limit_per_second
                .and_then(|n| u32::try_from(n).ok())
                .and_then(NonZeroU32::new),
        })
    }
}

pub struct Job {
    pub delivery_id: DeliveryId,
    pub tenant_id: String,
    pub event_id: EventId,
    pub event_type: Arc<str>,
    /// Shared by every delivery of the same event.
    pub body: Bytes,
    /// The `traceparent` the event was published under.
    pub trace_context: Option<Arc<str>>,
    pub webhook: Arc<WebhookTarget>,
    pub endpoint: Arc<EndpointTarget>,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub claim_token: i64,
    pub claimed_at: Instant,
    /// When its webhook and endpoint were read (see `refresh`).
    pub read_at: Instant,
    /// Its sequence's key when its webhook delivers in order: the next of
    /// the sequence is promoted once this one settles.
    pub ordering_key: Option<String>,
}

impl Job {
    /// The ordered sequence it belongs to, if any.
    pub fn sequence(&self) -> Option<Sequence> {
        Some((self.endpoint.id.clone(), self.ordering_key.clone()?))
    }
}

/// Webhook targets (secrets decrypted) and parsed endpoints, reused while the
/// webhook's `updated_at` stays the same (every change to a webhook or its
/// endpoints bumps it) and, for a rotation, until the previous secret expires.
#[derive(Default)]
pub struct TargetCache {
    webhooks: Mutex<HashMap<WebhookId, CachedWebhook>>,
    endpoints: Mutex<HashMap<EndpointId, (i64, Arc<EndpointTarget>)>>,
    /// What `refresh` last read for a (webhook, endpoint), and when: jobs
    /// of the same pair that start soon after take it instead of reading
    /// again.
    reread: Mutex<HashMap<(WebhookId, EndpointId), (Instant, Targets)>>,
}

/// A job's webhook and endpoint, ready for its request.
pub type Targets = (Arc<WebhookTarget>, Arc<EndpointTarget>);

struct CachedWebhook {
    updated_at: i64,
    /// When the previous secret stops signing, if it signs now.
    valid_until: Option<i64>,
    target: Arc<WebhookTarget>,
}

impl TargetCache {
    pub fn webhook(
        &self,
        model: &webhook::Model,
        secrets: &SecretBox,
        now_ms: i64,
    ) -> anyhow::Result<Arc<WebhookTarget>> {
        let mut cache = self.webhooks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cached) = cache.get(&model.id)
            && cached.updated_at == model.updated_at
            && cached.valid_until.is_none_or(|until| now_ms < until)
        {
            return Ok(cached.target.clone());
        }
        let target = Arc::new(WebhookTarget::from_model(model, secrets, now_ms)?);
        let valid_until = (target.keys.len() > 1)
            .then_some(model.previous_secret_expires_at)
            .flatten();
        cache.insert(
            model.id.clone(),
            CachedWebhook {
                updated_at: model.updated_at,
                valid_until,
                target: target.clone(),
            },
        );
        Ok(target)
    }

    /// A webhook and one of its endpoints, as [`Self::webhook`] and
    /// [`Self::endpoint`] make them.
    pub fn targets(
        &self,
        webhook: &webhook::Model,
        endpoint: &entity::endpoint::Model,
        secrets: &SecretBox,
        now_ms: i64,
    ) -> anyhow::Result<Targets> {
        let target = self.webhook(webhook, secrets, now_ms)?;
        Ok((target, self.endpoint(endpoint, webhook.updated_at)?))
    }

    /// What `refresh` read for `webhook` and `endpoint` within `within`,
    /// with when.
    pub fn reread_within(
        &self,
        webhook: &WebhookId,
        endpoint: &EndpointId,
        within: Duration,
    ) -> Option<(Instant, Targets)> {
        let reread = self.reread.lock().unwrap_or_else(|p| p.into_inner());
        let (at, targets) = reread.get(&(webhook.clone(), endpoint.clone()))?;
        (at.elapsed() <= within).then(|| (*at, targets.clone()))
    }

    /// Keeps what `refresh` read at `at`, forgetting reads older than
    /// `within`.
    pub fn reread_at(&self, at: Instant, targets: &Targets, within: Duration) {
        let mut reread = self.reread.lock().unwrap_or_else(|p| p.into_inner());
        reread.retain(|_, (read_at, _)| read_at.elapsed() <= within);
        let key = (targets.0.id.clone(), targets.1.id.clone());
        reread.insert(key, (at, targets.clone()));
    }

    /// An endpoint, valid as long as its webhook's `updated_at` is `version`.
    /// Callers read the endpoint after its webhook (never beside it), so an
    /// endpoint kept under a version is never older than that version.
    pub fn endpoint(
        &self,
        model: &entity::endpoint::Model,
        version: i64,
    ) -> anyhow::Result<Arc<EndpointTarget>> {
        let mut cache = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((cached_version, target)) = cache.get(&model.id)
            && *cached_version == version
        {
            return Ok(target.clone());
        }
        let target = Arc::new(EndpointTarget::from_model(model)?);
        cache.insert(model.id.clone(), (version, target.clone()));
        Ok(target)
    }
}
