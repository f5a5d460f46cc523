//! How one received request reads on screen: what it is (event type, id,
//! attempt), whether its signature verified and why not, what was answered,
//! and the body, pretty-printed when it is JSON.

use std::fmt::Write as _;

use super::verify::{Refusal, Verified};

/// Everything printed about one request.
pub struct Received<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub message_id: Option<&'a str>,
    pub attempt: Option<&'a str>,
    pub verdict: &'a Result<Verified, Refusal>,
    pub status: u16,
    /// Why this status was chosen, when it is not the usual answer.
    pub status_note: Option<String>,
    pub body: &'a [u8],
}

/// The lines printed for `received`, ending with a blank line.
pub fn render(received: &Received<'_>, received_at: &str) -> String {
    let json: Option<serde_json::Value> = serde_json::from_slice(received.body).ok();
    let field = |name: &str| {
        json.as_ref()
            .and_then(|v| v.get(name))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let event_type = field("type").unwrap_or_else(|| "(no type in body)".to_owned());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "--- {received_at}  {} {}",
        received.method, received.path
    );
    let _ = writeln!(out, "event     {event_type}");
    let id = received
        .message_id
        .map(str::to_owned)
        .or_else(|| field("id"))
        .unwrap_or_else(|| "(none)".to_owned());
    let _ = writeln!(out, "id        {id}");
    let _ = writeln!(
        out,
        "attempt   {}",
        received.attempt.unwrap_or("(no webhook-attempt header)")
    );
    let _ = match received.verdict {
        Ok(verified) if verified.listed > 1 => writeln!(
            out,
            "verified  yes (signature {} of {}, signed {} s ago)",
            verified.matched, verified.listed, verified.age_secs
        ),
        Ok(verified) => writeln!(out, "verified  yes (signed {} s ago)", verified.age_secs),
        Err(refusal) => writeln!(out, "verified  NOT VERIFIED: {refusal}"),
    };
    let _ = match &received.status_note {
        Some(note) => writeln!(out, "answered  {} ({note})", received.status),
        None => writeln!(out, "answered  {}", received.status),
    };
    out.push_str(&body_text(received.body, json.as_ref()));
    out.push_str("\n\n");
    out
}

fn body_text(body: &[u8], json: Option<&serde_json::Value>) -> String {
    if body.is_empty() {
        return "(empty body)".to_owned();
    }
    match std::str::from_utf8(body) {
        Ok(text) if json.is_some() => indent_json(text),
        Ok(text) => text.to_owned(),
        Err(_) => format!("({} bytes, not UTF-8)", body.len()),
    }
}

/// Re-indents valid JSON text two spaces a level. Works on the text rather
/// than a parsed value so that keys keep the order they were sent in and
/// numbers their spelling: the screen shows what the receiver got.
fn indent_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = text.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    };
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                while chars.peek().is_some_and(|n| n.is_whitespace()) {
                    chars.next();
                }
                if chars.peek().is_some_and(|n| matches!(n, '}' | ']')) {
                    continue;
                }
                depth += 1;
                newline(&mut out, depth);
            }
            '}' | ']' => {
                if !matches!(out.chars().last(), Some('{' | '[')) {
                    depth = depth.saturating_sub(1);
                    newline(&mut out, depth);
                }
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received<'a>(verdict: &'a Result<Verified, Refusal>, body: &'a [u8]) -> Received<'a> {
        Received {
            method: "POST",
            path: "/",
            message_id: Some("evt_1"),
            attempt: Some("2"),
            verdict,
            status: 200,
            status_note: None,
            body,
        }
    }

    #[test]
    fn a_verified_delivery_shows_type_id_attempt_and_pretty_body() {
        let verdict = Ok(Verified {
            age_secs: 0,
            matched: 1,
            listed: 1,
        });
        let text = render(
            &received(
                &verdict,
                br#"{"id":"evt_1","type":"offer.updated","data":{"a":1}}"#,
            ),
            "now",
        );
        assert!(text.contains("event     offer.updated\n"), "{text}");
        assert!(text.contains("id        evt_1\n"), "{text}");
        assert!(text.contains("attempt   2\n"), "{text}");
        assert!(text.contains("verified  yes (signed 0 s ago)\n"), "{text}");
        assert!(text.contains("answered  200\n"), "{text}");
        assert!(text.contains("  \"data\": {\n    \"a\": 1\n  }"), "{text}");
    }

    #[test]
    fn json_keeps_its_key_order_and_number_spelling_when_indented() {
        let text =
            indent_json(r#"{"z":1.50,"a":[], "s":"x, {\"y\": [1]}","o":{},"l":[1,{"b":null}]}"#);
        assert_eq!(
            text,
            "{\n  \"z\": 1.50,\n  \"a\": [],\n  \"s\": \"x, {\\\"y\\\": [1]}\",\n  \"o\": {},\n  \"l\": [\n    1,\n    {\n      \"b\": null\n    }\n  ]\n}"
        );
    }

    #[test]
    fn an_unverified_request_says_why_and_binary_bodies_are_not_dumped() {
        let verdict = Err(Refusal::MissingHeader("webhook-signature"));
        let text = render(&received(&verdict, &[0xff, 0xfe]), "now");
        assert!(
            text.contains("verified  NOT VERIFIED: no `webhook-signature` header\n"),
            "{text}"
        );
        assert!(text.contains("(2 bytes, not UTF-8)"), "{text}");
    }
}
