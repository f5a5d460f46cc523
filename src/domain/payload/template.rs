//! Templates for bodies and postback URLs, on minijinja.
//!
//! Each template gets an environment of its own, set up for where its output
//! goes: a body template's values are written as JSON (`{{ data.name }}` is
//! `"Ann"`, `{{ data }}` the whole object), a URL template's are
//! percent-encoded, every one, whatever it holds (`&`, `=`, `/`, `#`, spaces
//! and non-ASCII included), so a value can never add a parameter, end the
//! query or move the request elsewhere. A field the event lacks fails the
//! render (`{% if data.x is defined %}` tests for one). Evaluation is bounded
//! by fuel, output by size, source by length.

use std::fmt::Write as _;

use minijinja::{
    AutoEscape, Environment, Error, ErrorKind, UndefinedBehavior, Value, value::ValueKind,
};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Longest body template accepted.
pub const MAX_BODY_TEMPLATE_BYTES: usize = 16 * 1024;
/// Largest body a template may render.
pub const MAX_RENDERED_BODY_BYTES: usize = 1024 * 1024;
/// Longest URL a URL template may render.
pub const MAX_RENDERED_URL_BYTES: usize = 8 * 1024;
/// Evaluation budget of one render: about that many VM instructions, so a
/// template looping over a large list stops instead of holding a worker.
const FUEL: u64 = 200_000;

/// What a URL value keeps as is: RFC 3986's unreserved characters.
const URL_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

const NAME: &str = "template";

/// A compiled template and the environment it renders in.
pub struct Template {
    env: Environment<'static>,
    max_output: usize,
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Template")
    }
}

impl Template {
    /// A body template: values written as JSON.
    pub fn body(source: &str) -> Result<Self, String> {
        if source.len() > MAX_BODY_TEMPLATE_BYTES {
            return Err(format!("must be at most {MAX_BODY_TEMPLATE_BYTES} bytes"));
        }
        let mut env = base_env();
        env.set_auto_escape_callback(|_| AutoEscape::Json);
        Self::compile(env, source, MAX_RENDERED_BODY_BYTES)
    }

    /// A URL template: every value percent-encoded.
    pub fn url(source: &str) -> Result<Self, String> {
        let mut env = base_env();
        env.set_formatter(|out, _state, value| {
            let text = url_text(value)?;
            write!(out, "{}", utf8_percent_encode(&text, URL_VALUE)).map_err(Error::from)
        });
        Self::compile(env, source, MAX_RENDERED_URL_BYTES)
    }

    /// A URL template rendered with every value `x` and undefined fields
    /// allowed: the shape of the URLs it makes, for checking when saved.
    pub fn url_sample(source: &str) -> Result<String, String> {
        let mut env = base_env();
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        env.set_formatter(|out, _state, _value| out.write_str("x").map_err(Error::from));
        let template = Self::compile(env, source, MAX_RENDERED_URL_BYTES)?;
        template
            .render(Value::UNDEFINED)
            .map_err(|err| format!("cannot be rendered: {err}"))
    }

    fn compile(
        mut env: Environment<'static>,
        source: &str,
        max_output: usize,
    ) -> Result<Self, String> {
        env.add_template_owned(NAME, source.to_owned())
            .map_err(|err| describe(&err))?;
        Ok(Self { env, max_output })
    }

    /// Renders with `context` (the event: `id`, `type`, `timestamp`,
    /// `data`). Errors read as sentences for an attempt's error message.
    pub fn render(&self, context: Value) -> Result<String, String> {
        let template = self.env.get_template(NAME).map_err(|err| describe(&err))?;
        let output = template.render(context).map_err(|err| describe(&err))?;
        if output.len() > self.max_output {
            return Err(format!(
                "rendered {} bytes, more than the {} allowed",
                output.len(),
                self.max_output
            ));
        }
        Ok(output)
    }
}

fn base_env() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    env.set_fuel(Some(FUEL));
    env.set_debug(false);
    env
}

/// A value as URL text: scalars as they print (booleans as in JSON); `none` as nothing; lists and
/// objects refused (which field was meant?).
fn url_text(value: &Value) -> Result<String, Error> {
    match value.kind() {
        ValueKind::None => Ok(String::new()),
        // As JSON spells them, not Python's `True`.
        ValueKind::Bool => Ok(value.is_true().to_string()),
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable | ValueKind::Plain => {
            Err(Error::new(
                ErrorKind::InvalidOperation,
                "a list or an object cannot go in a URL; name one of its fields",
            ))
        }
        _ => Ok(value.to_string()),
    }
}

/// minijinja's message with its line, without the debug dump.
fn describe(err: &Error) -> String {
    let mut text = err
        .detail()
        .map_or_else(|| err.kind().to_string(), str::to_owned);
    if let Some(line) = err.line() {
        let _ = write!(text, " (line {line})");
    }
    if err.kind() == ErrorKind::OutOfFuel {
        text = "too much work to render (a loop over too many items?)".to_owned();
    }
    text
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(data: serde_json::Value) -> Value {
        Value::from(minijinja::value::Serde(
            json!({ "id": "evt_1", "type": "conversion.created", "data": data }),
        ))
    }

    #[test]
    fn url_values_are_percent_encoded_whatever_they_hold() {
        let template =
            Template::url("https://t.example/pb?a={{ data.a }}&b={{ data.b }}").expect("compiles");
        let url = template
            .render(event(json!({ "a": "x&y=z #/?", "b": "Zoë 東京" })))
            .expect("renders");
        assert_eq!(
            url,
            "https://t.example/pb?a=x%26y%3Dz%20%23%2F%3F&b=Zo%C3%AB%20%E6%9D%B1%E4%BA%AC"
        );
    }

    #[test]
    fn url_values_print_numbers_and_booleans_as_text_and_refuse_objects() {
        let template =
            Template::url("https://t.example/{{ data.n }}?p={{ data.p }}&f={{ data.f }}")
                .expect("compiles");
        let url = template
            .render(event(json!({ "n": 42, "p": 12.5, "f": true })))
            .expect("renders");
        assert_eq!(url, "https://t.example/42?p=12.5&f=true");
        let object = Template::url("https://t.example/?o={{ data }}").expect("compiles");
        let err = object
            .render(event(json!({ "a": 1 })))
            .expect_err("refused");
        assert!(err.contains("cannot go in a URL"), "{err}");
    }

    #[test]
    fn a_safe_marker_does_not_skip_url_encoding() {
        let template = Template::url("https://t.example/?a={{ data.a|safe }}").expect("compiles");
        let url = template
            .render(event(json!({ "a": "1&b=2" })))
            .expect("renders");
        assert_eq!(url, "https://t.example/?a=1%26b%3D2");
    }

    #[test]
    fn body_values_are_written_as_json() {
        let template =
            Template::body(r#"{"name": {{ data.name }}, "all": {{ data }}, "n": {{ data.n }}}"#)
                .expect("compiles");
        let body = template
            .render(event(json!({ "name": "A \"quoted\"\n name", "n": 1.5 })))
            .expect("renders");
        let parsed: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(parsed["name"], "A \"quoted\"\n name");
        assert_eq!(parsed["n"], 1.5);
        assert_eq!(parsed["all"]["name"], "A \"quoted\"\n name");
    }

    #[test]
    fn a_missing_field_fails_the_render_and_says_which_line() {
        let template = Template::body("{\n\"a\": {{ data.missing }}}").expect("compiles");
        let err = template.render(event(json!({}))).expect_err("missing");
        assert!(err.contains("undefined") && err.contains("line 2"), "{err}");
        let guarded = Template::body(r#"{% if data.missing is defined %}1{% else %}0{% endif %}"#)
            .expect("compiles");
        assert_eq!(guarded.render(event(json!({}))).expect("renders"), "0");
    }

    #[test]
    fn syntax_errors_and_oversized_templates_are_refused_when_compiled() {
        let err = Template::body("{{ data.a ").expect_err("syntax");
        assert!(err.contains("line 1"), "{err}");
        assert!(Template::body(&"x".repeat(MAX_BODY_TEMPLATE_BYTES + 1)).is_err());
    }

    #[test]
    fn runaway_templates_run_out_of_fuel_or_size() {
        let looping = Template::body(
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        )
        .expect("compiles");
        let err = looping.render(event(json!({}))).expect_err("out of fuel");
        assert!(err.contains("too much work"), "{err}");
        let big = Template::url(&format!(
            "https://t.example/?a={}",
            "x".repeat(MAX_RENDERED_URL_BYTES)
        ))
        .expect("compiles");
        assert!(big.render(event(json!({}))).is_err());
    }

    #[test]
    fn a_url_sample_puts_x_for_every_value() {
        assert_eq!(
            Template::url_sample("https://t.example/{{ data.a.b }}?c={{ data.c }}")
                .expect("renders"),
            "https://t.example/x?c=x"
        );
    }
}
