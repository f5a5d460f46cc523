//! What `HOOKLINE_LOG` means. The filter speaks of hookline: the HTTP, TLS,
//! SQL and WebSocket libraries underneath stay at WARN unless the filter
//! names them, so `HOOKLINE_LOG=debug` shows hookline's own detail instead of
//! burying it under connection-pool and frame chatter. To see a library,
//! name it: `HOOKLINE_LOG=debug,hyper=debug`.

use tracing_subscriber::EnvFilter;

/// Crates (tracing targets) that log below WARN only when the filter names
/// them.
const LIBRARIES: &[&str] = &[
    "async_graphql",
    "h2",
    "hyper",
    "hyper_util",
    "reqwest",
    "rustls",
    "sea_orm",
    "sea_orm_migration",
    "sqlx",
    "tokio_tungstenite",
    "tower",
    "tower_http",
    "tungstenite",
];

/// The filter directives for `filter` as the user wrote it, with every
/// library it does not name held at WARN.
pub fn directives(filter: &str) -> String {
    let named: Vec<&str> = filter
        .split(',')
        .filter_map(|directive| {
            let target = directive.split(['=', '[']).next()?.trim();
            (!target.is_empty()).then_some(target)
        })
        .collect();
    let mut directives = filter.trim().to_owned();
    for library in LIBRARIES {
        let mentioned = named
            .iter()
            .any(|target| target == library || target.starts_with(&format!("{library}::")));
        if !mentioned {
            if !directives.is_empty() {
                directives.push(',');
            }
            directives.push_str(library);
            directives.push_str("=warn");
        }
    }
    directives
}

/// Parses `HOOKLINE_LOG` (EnvFilter syntax) with the libraries held at WARN.
pub fn filter(filter: &str) -> anyhow::Result<EnvFilter> {
    EnvFilter::try_new(directives(filter))
        .map_err(|err| anyhow::anyhow!("invalid HOOKLINE_LOG filter `{filter}`: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libraries_stay_at_warn_when_the_filter_is_a_level() {
        let directives = directives("debug");
        assert!(directives.starts_with("debug,"));
        for library in LIBRARIES {
            assert!(
                directives.contains(&format!(",{library}=warn")),
                "{library}"
            );
        }
    }

    #[test]
    fn a_library_the_filter_names_keeps_the_level_given() {
        let directives = directives("debug,hyper=trace,sqlx::query=info");
        assert!(directives.contains("hyper=trace"));
        assert!(!directives.contains("hyper=warn"));
        assert!(directives.contains("sqlx::query=info"));
        assert!(!directives.contains("sqlx=warn"));
        // A library that shares a prefix with a named one is still held.
        assert!(directives.contains("hyper_util=warn"));
    }

    #[test]
    fn every_directive_set_parses() {
        for given in [
            "info",
            "debug",
            "",
            "warn,hookline=debug",
            "hookline::delivery=trace",
        ] {
            filter(given).unwrap_or_else(|err| panic!("{given}: {err}"));
        }
        assert!(filter("info,[").is_err());
    }
}
