//! Event type names (`object.action`) and the patterns webhooks subscribe
//! with: an exact name, `object.*`, or `*`.

use std::fmt;

/// Checks an event type name: `object.action`, each part lowercase letters,
/// digits and underscores, starting with a letter, at most 64 characters.
pub fn check_type_name(name: &str) -> Result<(), String> {
    // hookline's own `hookline.endpoint.failing`, … (`domain::operational`).
    if super::operational::is_operational(name) && super::catalog::builtin(name).is_some() {
        return Ok(());
    }
    let mut parts = name.split('.');
    let (Some(object), Some(action), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("`{name}` is not of the form object.action"));
    };
    if name.len() > 64 {
        return Err("must be at most 64 characters".into());
    }
    for part in [object, action] {
        if !is_identifier(part) {
            return Err(format!(
                "`{name}`: each part must start with a lowercase letter and contain only a-z, 0-9 and _"
            ));
        }
    }
    Ok(())
}

fn is_identifier(part: &str) -> bool {
    let mut bytes = part.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The object part of a valid type name (`offer` in `offer.created`).
pub fn object_of(name: &str) -> &str {
    name.split_once('.').map_or(name, |(object, _)| object)
}

/// The action part of a valid type name (`created` in `offer.created`).
pub fn action_of(name: &str) -> &str {
    name.split_once('.').map_or("", |(_, action)| action)
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Pattern {
    /// Every event type.
    All,
    /// Every action of one object: `offer.*`.
    Object(String),
    /// One event type.
    Exact(String),
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == "*" {
            return Ok(Self::All);
        }
        if let Some(object) = text.strip_suffix(".*") {
            if !is_identifier(object) || object.len() > 62 {
                return Err(format!("`{text}`: `{object}` is not a valid object name"));
            }
            return Ok(Self::Object(object.to_owned()));
        }
        check_type_name(text)?;
        Ok(Self::Exact(text.to_owned()))
    }

    pub fn matches(&self, event_type: &str) -> bool {
        match self {
            // hookline's own events go only to webhooks that name them.
            Self::All => !super::operational::is_operational(event_type),
            Self::Object(object) => object_of(event_type) == object,
            Self::Exact(name) => name == event_type,
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("*"),
            Self::Object(object) => write!(f, "{object}.*"),
            Self::Exact(name) => f.write_str(name),
        }
    }
}

/// The patterns that select `event_type`, i.e. what a stored pattern list must
/// contain for a webhook to receive it.
pub fn patterns_selecting(event_type: &str) -> [String; 3] {
    [
        event_type.to_owned(),
        format!("{}.*", object_of(event_type)),
        "*".to_owned(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_matches_every_type() {
        let all = Pattern::parse("*").expect("valid");
        assert!(all.matches("offer.created") && all.matches("click.tracked"));
    }

    #[test]
    fn object_wildcard_matches_only_that_object() {
        let offers = Pattern::parse("offer.*").expect("valid");
        assert!(offers.matches("offer.created"));
        assert!(offers.matches("offer.status_changed"));
        assert!(!offers.matches("offers.created"));
        assert!(!offers.matches("affiliate.created"));
    }

    #[test]
    fn exact_pattern_matches_only_its_type() {
        let exact = Pattern::parse("conversion.status_changed").expect("valid");
        assert!(exact.matches("conversion.status_changed"));
        assert!(!exact.matches("conversion.created"));
    }

    #[test]
    fn malformed_patterns_are_refused() {
        for bad in [
            "",
            "offer",
            "offer.",
            ".created",
            "Offer.created",
            "offer.created.x",
            "*.created",
            "offer.**",
            "of fer.created",
            "1offer.created",
            "offer.*.*",
            "o*.created",
        ] {
            assert!(Pattern::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn patterns_round_trip_through_display() {
        for text in ["*", "offer.*", "landing_page.created"] {
            assert_eq!(Pattern::parse(text).expect("valid").to_string(), text);
        }
    }

    #[test]
    fn selecting_patterns_cover_exact_object_and_all() {
        let selecting = patterns_selecting("offer.updated");
        assert_eq!(selecting, ["offer.updated", "offer.*", "*"]);
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn parsing_never_panics_and_round_trips(text in "\\PC{0,40}") {
            if let Ok(pattern) = Pattern::parse(&text) {
                prop_assert_eq!(Pattern::parse(&pattern.to_string()).ok(), Some(pattern));
            }
        }

        #[test]
        fn every_valid_name_is_matched_by_itself_its_object_and_all(
            object in "[a-z][a-z0-9_]{0,20}",
            action in "[a-z][a-z0-9_]{0,20}",
        ) {
            let name = format!("{object}.{action}");
            prop_assert!(check_type_name(&name).is_ok());
            for text in patterns_selecting(&name) {
                let pattern = Pattern::parse(&text).expect("selecting patterns are valid");
                prop_assert!(pattern.matches(&name));
            }
            let other = Pattern::parse(&format!("{object}x.*")).expect("valid");
            prop_assert!(!other.matches(&name));
        }
    }
}
