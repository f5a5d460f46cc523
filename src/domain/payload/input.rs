//! Checks of a webhook's payload settings when saved, with errors naming the
//! field.

use entity::webhook;

use super::{DeliveryMethod, PayloadFormat, template::Template};
use crate::error::{AppError, AppResult};

/// What an admin asks for: `None` keeps what the webhook has (the defaults
/// for a new one); `body_template: Some(None)` clears it.
#[derive(Clone, Debug, Default)]
pub struct PayloadPatch {
    pub format: Option<PayloadFormat>,
    pub body_template: Option<Option<String>>,
    pub method: Option<DeliveryMethod>,
}

impl PayloadPatch {
    pub fn is_empty(&self) -> bool {
        self.format.is_none() && self.body_template.is_none() && self.method.is_none()
    }
}

/// The columns as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredPayload {
    pub payload_format: Option<String>,
    pub body_template: Option<String>,
    pub http_method: Option<String>,
}

/// The settings `existing` has after `patch`, checked as a whole. Leaving a
/// `TEMPLATE` format drops its template unless one is given.
pub fn check(existing: Option<&webhook::Model>, patch: &PayloadPatch) -> AppResult<StoredPayload> {
    let format = patch.format.unwrap_or_else(|| {
        PayloadFormat::of_stored(existing.and_then(|w| w.payload_format.as_deref()))
    });
    let method = patch.method.unwrap_or_else(|| {
        DeliveryMethod::of_stored(existing.and_then(|w| w.http_method.as_deref()))
    });
    let template = match &patch.body_template {
        Some(given) => given.clone(),
        None if format == PayloadFormat::Template => existing.and_then(|w| w.body_template.clone()),
        None => None,
    };
    match (&template, format) {
        (None, PayloadFormat::Template) => {
            return Err(AppError::bad_input(
                "bodyTemplate",
                "is required with payloadFormat TEMPLATE",
            ));
        }
        (Some(_), PayloadFormat::Envelope | PayloadFormat::DataOnly) => {
            return Err(AppError::bad_input(
                "bodyTemplate",
                "is only used with payloadFormat TEMPLATE",
            ));
        }
        (Some(source), PayloadFormat::Template) => {
            Template::body(source)
                .map_err(|message| AppError::bad_input("bodyTemplate", message))?;
        }
        (None, _) => {}
    }
    if method != DeliveryMethod::Post && format != PayloadFormat::Envelope {
        return Err(AppError::bad_input(
            "payloadFormat",
            "a GET or POST_FORM postback sends its URL's values, not a JSON body: \
             leave payloadFormat ENVELOPE",
        ));
    }
    Ok(StoredPayload {
        payload_format: format.stored(),
        body_template: template,
        http_method: method.stored(),
    })
}
