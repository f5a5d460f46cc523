//! How a webhook's requests look: body format and method.

use async_graphql::Enum;

/// What a webhook's `POST` carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
#[graphql(remote = "crate::domain::payload::PayloadFormat")]
pub enum PayloadFormat {
    /// `{"id","type","timestamp","data"}`: the event with its envelope (the default).
    Envelope,
    /// The event's `data` alone, byte for byte as published (keys in their
    /// order), for receivers that expect the object itself.
    DataOnly,
    /// `bodyTemplate` rendered for each event: values are written as JSON
    /// (`{{ data.name }}` is `"Ann"`), and the result must be JSON.
    Template,
}

/// How a webhook's requests are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
#[graphql(remote = "crate::domain::payload::DeliveryMethod")]
pub enum DeliveryMethod {
    /// A `POST` with a JSON body (see `PayloadFormat`). The default.
    Post,
    /// A postback: `GET` the endpoint URL, its macros filled in
    /// (`?click_id={{ data.clickId }}`), without a body. Signed over the
    /// request's path and query in place of a body.
    Get,
    /// A postback as a form: `POST` the URL's query, macros filled in, as an
    /// `application/x-www-form-urlencoded` body to the URL without it.
    PostForm,
}
