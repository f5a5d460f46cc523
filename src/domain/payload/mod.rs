//! What a webhook's requests look like (issue 15 item 3).
//!
//! - **Body**: the event's envelope `{"id","type","timestamp","data"}`
//!   (`ENVELOPE`, the default), its `data` alone (`DATA_ONLY`: the slice of
//!   the envelope's bytes that `data` was rendered into, so it is exactly
//!   what the publisher sent, keys in their order, without rendering
//!   anything again), or a JSON body template rendered per delivery
//!   (`TEMPLATE`, see [`template`]).
//! - **Method**: `POST`, or a postback: `GET` (no body) or `POST_FORM` (the
//!   rendered URL's query moves into an `application/x-www-form-urlencoded`
//!   body).
//! - **URL macros**: an endpoint URL may carry `{{ … }}` in its path and
//!   query, never before them, so the host is fixed when saved; every value
//!   is percent-encoded and the rendered URL must keep the saved scheme, host
//!   and port. The SSRF guard checks it again on connect, as for any URL.
//!
//! A render that fails (a field the event lacks, a template that no longer
//! compiles) fails that delivery alone, with the reason as its attempt's
//! error. What is signed: the body sent, or for `GET` the request target
//! (path and query, exactly as sent), in place of the body.

mod input;
pub mod preview;
pub mod template;

pub use input::{PayloadPatch, StoredPayload, check as check_payload};

use bytes::Bytes;
use entity::webhook;
use url::{Position, Url};

use self::template::Template;
use super::address::{MAX_URL_LEN, parse_endpoint_url};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PayloadFormat {
    #[default]
    Envelope,
    DataOnly,
    Template,
}

impl PayloadFormat {
    /// As stored: NULL for the default.
    pub fn stored(self) -> Option<String> {
        match self {
            Self::Envelope => None,
            Self::DataOnly => Some("DATA_ONLY".into()),
            Self::Template => Some("TEMPLATE".into()),
        }
    }

    pub fn of_stored(text: Option<&str>) -> Self {
        match text {
            Some("DATA_ONLY") => Self::DataOnly,
            Some("TEMPLATE") => Self::Template,
            _ => Self::Envelope,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeliveryMethod {
    #[default]
    Post,
    Get,
    PostForm,
}

impl DeliveryMethod {
    /// As stored: NULL for the default.
    pub fn stored(self) -> Option<String> {
        match self {
            Self::Post => None,
            Self::Get => Some("GET".into()),
            Self::PostForm => Some("POST_FORM".into()),
        }
    }

    pub fn of_stored(text: Option<&str>) -> Self {
        match text {
            Some("GET") => Self::Get,
            Some("POST_FORM") => Self::PostForm,
            _ => Self::Post,
        }
    }

    /// The HTTP method on the wire.
    pub fn http(self) -> http::Method {
        match self {
            Self::Get => http::Method::GET,
            Self::Post | Self::PostForm => http::Method::POST,
        }
    }
}

pub const JSON: &str = "application/json";
pub const FORM: &str = "application/x-www-form-urlencoded";

/// A webhook's request shape, compiled: what the worker caches with its
/// other parts.
#[derive(Debug)]
pub struct Shape {
    pub format: PayloadFormat,
    pub method: DeliveryMethod,
    /// The body template of a `TEMPLATE` webhook, or why it does not compile.
    body: Option<Result<Template, String>>,
}

impl Shape {
    pub fn of(model: &webhook::Model) -> Self {
        let format = PayloadFormat::of_stored(model.payload_format.as_deref());
        Self {
            format,
            method: DeliveryMethod::of_stored(model.http_method.as_deref()),
            body: (format == PayloadFormat::Template)
                .then(|| Template::body(model.body_template.as_deref().unwrap_or_default())),
        }
    }

    /// Whether requests carry the envelope as is (nothing to render).
    pub fn is_plain(&self) -> bool {
        self.format == PayloadFormat::Envelope && self.method == DeliveryMethod::Post
    }
}

/// An endpoint's URL: fixed, or a template filling its path and query.
pub enum EndpointUrl {
    Fixed(Url),
    Template {
        /// Boxed: an environment is large, and most endpoints are fixed.
        template: Box<Result<Template, String>>,
        /// Rendered with `x` for every value: its scheme, host and port are
        /// every rendering's.
        sample: Url,
    },
}

impl EndpointUrl {
    /// An endpoint's URL as stored (checked when saved by
    /// [`check_endpoint_url`]).
    pub fn of(text: &str) -> Result<Self, String> {
        if !is_template(text) {
            return Url::parse(text)
                .map(Self::Fixed)
                .map_err(|err| err.to_string());
        }
        Ok(Self::Template {
            template: Box::new(Template::url(text)),
            sample: Url::parse(&Template::url_sample(text)?).map_err(|err| err.to_string())?,
        })
    }

    /// The URL to name the endpoint by (its host in logs).
    pub fn shown(&self) -> &Url {
        match self {
            Self::Fixed(url) => url,
            Self::Template { sample, .. } => sample,
        }
    }
}

/// Whether an endpoint URL carries macros.
pub fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{#")
}

/// Checks an endpoint URL being saved: a plain URL, or a URL template whose
/// macros all come after the host. Returns the text to store and a URL with
/// the same scheme, host and port, for the address (SSRF) check.
pub fn check_endpoint_url(text: &str) -> Result<(String, Url), String> {
    if !is_template(text) {
        let url = parse_endpoint_url(text)?;
        return Ok((url.to_string(), url));
    }
    if text.len() > MAX_URL_LEN {
        return Err(format!("must be at most {MAX_URL_LEN} characters"));
    }
    let first_tag = ["{{", "{%", "{#"]
        .iter()
        .filter_map(|tag| text.find(tag))
        .min()
        .unwrap_or(text.len());
    let prefix = &text[..first_tag];
    let fixed_host = prefix
        .find("://")
        .is_some_and(|at| prefix[at + 3..].contains(['/', '?']));
    if !fixed_host {
        return Err(
            "macros may only appear in the path and query: write the scheme, host and port out"
                .into(),
        );
    }
    Template::url(text)?;
    let sample = parse_endpoint_url(&Template::url_sample(text)?)?;
    Ok((text.to_owned(), sample))
}

/// One request, ready to sign and send.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub method: DeliveryMethod,
    pub url: Url,
    pub content_type: Option<&'static str>,
    pub body: Bytes,
    /// What the signature covers in place of `{body}`: the body, or for
    /// `GET` the request target (path and query, as sent).
    pub signed: Bytes,
}

/// The request `shape` makes to `endpoint` for the event whose envelope is
/// `envelope`. An error says why, as a sentence.
pub fn render(shape: &Shape, endpoint: &EndpointUrl, envelope: &Bytes) -> Result<Outgoing, String> {
    let mut context = Context {
        envelope,
        value: None,
    };
    let mut url = match endpoint {
        EndpointUrl::Fixed(url) => url.clone(),
        EndpointUrl::Template { template, sample } => {
            let template = (**template)
                .as_ref()
                .map_err(|err| format!("URL template: {err}"))?;
            let text = template
                .render(context.get()?)
                .map_err(|err| format!("URL template: {err}"))?;
            let url = parse_endpoint_url(&text).map_err(|err| format!("the rendered URL {err}"))?;
            if url.origin() != sample.origin() {
                return Err(
                    "the rendered URL does not keep the endpoint's scheme, host and port".into(),
                );
            }
            url
        }
    };
    match shape.method {
        DeliveryMethod::Get => {
            let target =
                Bytes::copy_from_slice(url[Position::BeforePath..Position::AfterQuery].as_bytes());
            Ok(Outgoing {
                method: shape.method,
                url,
                content_type: None,
                body: Bytes::new(),
                signed: target,
            })
        }
        DeliveryMethod::PostForm => {
            let form = Bytes::from(url.query().unwrap_or_default().to_owned());
            url.set_query(None);
            Ok(Outgoing {
                method: shape.method,
                url,
                content_type: Some(FORM),
                signed: form.clone(),
                body: form,
            })
        }
        DeliveryMethod::Post => {
            let body = json_body(shape, &mut context)?;
            Ok(Outgoing {
                method: shape.method,
                url,
                content_type: Some(JSON),
                signed: body.clone(),
                body,
            })
        }
    }
}

fn json_body(shape: &Shape, context: &mut Context<'_>) -> Result<Bytes, String> {
    match (shape.format, &shape.body) {
        (PayloadFormat::Envelope, _) => Ok(context.envelope.clone()),
        (PayloadFormat::DataOnly, _) => data_of(context.envelope)
            .ok_or_else(|| "the event's body has no `data` to send".to_owned()),
        (PayloadFormat::Template, None) => Err("body template: none saved".into()),
        (PayloadFormat::Template, Some(template)) => {
            let template = template
                .as_ref()
                .map_err(|err| format!("body template: {err}"))?;
            let body = template
                .render(context.get()?)
                .map_err(|err| format!("body template: {err}"))?;
            serde_json::from_str::<serde::de::IgnoredAny>(&body)
                .map_err(|err| format!("body template: the rendered body is not JSON ({err})"))?;
            Ok(Bytes::from(body))
        }
    }
}

/// The event a template renders with, parsed from its envelope at most once.
struct Context<'a> {
    envelope: &'a Bytes,
    value: Option<minijinja::Value>,
}

impl Context<'_> {
    fn get(&mut self) -> Result<minijinja::Value, String> {
        if let Some(value) = &self.value {
            return Ok(value.clone());
        }
        let parsed: serde_json::Value = serde_json::from_slice(self.envelope)
            .map_err(|err| format!("the event's body is not JSON ({err})"))?;
        let value = minijinja::Value::from(minijinja::value::Serde(&parsed));
        self.value = Some(value.clone());
        Ok(value)
    }
}

/// The `data` of an envelope made by `events::render_body`, as the very
/// bytes it was rendered into. The envelope is
/// `{"id":…,"type":…,"timestamp":…,"data":DATA}` with `data` last, and ids,
/// type names and timestamps never hold `,"data":`, so DATA runs from after
/// its first occurrence to the closing brace.
pub fn data_of(envelope: &Bytes) -> Option<Bytes> {
    let data = data_slice(envelope)?;
    Some(envelope.slice_ref(data))
}

/// [`data_of`] over borrowed bytes.
pub fn data_slice(envelope: &[u8]) -> Option<&[u8]> {
    const MARK: &[u8] = b",\"data\":";
    let start = envelope.windows(MARK.len()).position(|w| w == MARK)? + MARK.len();
    (envelope.last() == Some(&b'}')).then(|| &envelope[start..envelope.len() - 1])
}

#[cfg(test)]
mod tests;
