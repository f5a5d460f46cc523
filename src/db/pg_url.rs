//! PostgreSQL URLs in libpq's multi-host form:
//! `postgres://user:pass@h1:5432,h2:5433/db?target_session_attrs=read-write`.
//!
//! sqlx connects to one host and does not understand a host list, so the
//! list and `target_session_attrs` are taken out here; everything else
//! (user, password, database, `sslmode`, `options`, …) is left to sqlx's own
//! parser, which then gives one set of connection options per host.

use std::str::FromStr;

use sea_orm::sqlx::postgres::PgConnectOptions;

use crate::error::root_message;

/// Which server of the list will do (libpq's `target_session_attrs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionAttrs {
    /// The first server that accepts a connection (libpq's default).
    Any,
    /// A server whose sessions can write (`transaction_read_only` is off).
    ReadWrite,
    /// A server that is not in recovery (not a standby).
    Primary,
}

/// One host of the list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    pub name: String,
    pub port: u16,
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.name.contains(':') {
            write!(f, "[{}]:{}", self.name, self.port)
        } else {
            write!(f, "{}:{}", self.name, self.port)
        }
    }
}

/// A parsed PostgreSQL URL: the hosts to try, in order, what a server must
/// be to be chosen, and the options shared by every host.
#[derive(Clone, Debug)]
pub struct PgTarget {
    pub hosts: Vec<Host>,
    pub attrs: SessionAttrs,
    base: PgConnectOptions,
}

impl PgTarget {
    /// Parses `url`; the error is one sentence, without the URL (the caller
    /// names it, redacted).
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = ["postgres://", "postgresql://"]
            .iter()
            .find_map(|scheme| url.strip_prefix(scheme))
            .ok_or("a PostgreSQL URL starts with postgres:// or postgresql://")?;
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let (userinfo, host_list) = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => (Some(userinfo), hosts),
            None => (None, authority),
        };
        let (tail, attrs) = take_session_attrs(tail)?;
        // Everything but the hosts goes through sqlx's parser once.
        let userinfo = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
        let base = PgConnectOptions::from_str(&format!("postgres://{userinfo}localhost{tail}"))
            .map_err(|err| root_message(&err))?;
        let hosts = if host_list.is_empty() {
            // No host: sqlx's default (PGHOST, a local socket or localhost).
            let base = PgConnectOptions::from_str(&format!("postgres://{userinfo}{tail}"))
                .map_err(|err| root_message(&err))?;
            vec![Host {
                name: base.get_host().to_owned(),
                port: base.get_port(),
            }]
        } else {
            host_list
                .split(',')
                .map(|entry| parse_host(entry, base.get_port()))
                .collect::<Result<_, _>>()?
        };
        Ok(Self { hosts, attrs, base })
    }

    /// The connection options for one of the hosts.
    pub fn options(&self, host: &Host) -> PgConnectOptions {
        self.base.clone().host(&host.name).port(host.port)
    }

    /// Whether the primary may move: several hosts, or a server that must
    /// be writable (checked again when it stops being so).
    pub fn can_fail_over(&self) -> bool {
        self.hosts.len() > 1 || self.attrs != SessionAttrs::Any
    }

    /// The hosts, for messages: `h1:5432, h2:5433`.
    pub fn host_list(&self) -> String {
        let hosts: Vec<String> = self.hosts.iter().map(Host::to_string).collect();
        hosts.join(", ")
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn parse_host(entry: &str, default_port: u16) -> Result<Host, String> {
    let (name, port) = if let Some(v6) = entry.strip_prefix('[') {
        let (name, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("host `{entry}` lacks its closing `]`"))?;
        match after {
            "" => (name, None),
            _ => (
                name,
                Some(after.strip_prefix(':').ok_or_else(|| {
                    format!("unexpected `{after}` after the IPv6 address [{name}]")
                })?),
            ),
        }
    } else {
        match entry.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (entry, None),
        }
    };
    if name.is_empty() {
        return Err("the host list has an empty host (two commas, or a port alone)".into());
    }
    let port = match port {
        None | Some("") => default_port,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("invalid port `{port}` for host {name}"))?,
    };
    Ok(Host {
        name: name.to_owned(),
        port,
    })
}

/// Removes `target_session_attrs` from the query of `tail` (path and
/// query) and reads it; host lists given as query parameters are refused.
fn take_session_attrs(tail: &str) -> Result<(String, SessionAttrs), String> {
    let Some((path, query)) = tail.split_once('?') else {
        return Ok((tail.to_owned(), SessionAttrs::Any));
    };
    let mut attrs = SessionAttrs::Any;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "target_session_attrs" => attrs = session_attrs(value)?,
            "host" | "hostaddr" | "port" if value.contains(',') || value.contains("%2C") => {
                return Err(format!(
                    "`{key}=` with a list is not supported: list the hosts in the URL \
                     (postgres://user@h1:5432,h2:5433/db)"
                ));
            }
            _ => kept.push(pair),
        }
    }
    let query = if kept.is_empty() {
        String::new()
    } else {
        format!("?{}", kept.join("&"))
    };
    Ok((format!("{path}{query}"), attrs))
}

fn session_attrs(value: &str) -> Result<SessionAttrs, String> {
    match value {
        "any" => Ok(SessionAttrs::Any),
        "read-write" => Ok(SessionAttrs::ReadWrite),
        "primary" => Ok(SessionAttrs::Primary),
        "read-only" | "standby" | "prefer-standby" => Err(format!(
            "target_session_attrs={value} cannot work: hookline writes; use read-write, \
             primary or any"
        )),
        other => Err(format!(
            "unknown target_session_attrs={other}: use read-write, primary or any"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(target: &PgTarget) -> Vec<(String, u16)> {
        target
            .hosts
            .iter()
            .map(|h| (h.name.clone(), h.port))
            .collect()
    }

    #[test]
    fn multi_host_with_a_port_per_host_and_read_write() {
        let target = PgTarget::parse(
            "postgres://hook@h1:5432,h2:5433/hookline?target_session_attrs=read-write",
        )
        .expect("parses");
        assert_eq!(
            hosts(&target),
            [("h1".to_owned(), 5432), ("h2".to_owned(), 5433)]
        );
        assert_eq!(target.attrs, SessionAttrs::ReadWrite);
        let second = target.options(&target.hosts[1]);
        assert_eq!(
            (second.get_host(), second.get_port()),
            ("h2", 5433),
            "each host gets its own options"
        );
        assert_eq!(second.get_username(), "hook");
        assert_eq!(second.get_database(), Some("hookline"));
        assert!(target.can_fail_over());
        assert_eq!(target.host_list(), "h1:5432, h2:5433");
    }

    #[test]
    fn hosts_without_a_port_take_the_default_and_attrs_default_to_any() {
        let target = PgTarget::parse("postgresql://u@h1,h2:6000,[::1]/db").expect("parses");
        assert_eq!(
            hosts(&target),
            [
                ("h1".to_owned(), 5432),
                ("h2".to_owned(), 6000),
                ("::1".to_owned(), 5432)
            ]
        );
        assert_eq!(target.attrs, SessionAttrs::Any);
        assert_eq!(target.host_list(), "h1:5432, h2:6000, [::1]:5432");
    }

    #[test]
    fn a_single_host_is_a_list_of_one_and_fails_over_only_when_it_must_write() {
        let plain = PgTarget::parse("postgres://postgres@127.0.0.1:5432/x").expect("parses");
        assert_eq!(hosts(&plain), [("127.0.0.1".to_owned(), 5432)]);
        assert!(!plain.can_fail_over());
        let primary =
            PgTarget::parse("postgres://postgres@127.0.0.1/x?target_session_attrs=primary")
                .expect("parses");
        assert_eq!(primary.attrs, SessionAttrs::Primary);
        assert!(primary.can_fail_over());
    }

    #[test]
    fn percent_encoded_user_and_password_and_other_parameters_are_kept() {
        let target = PgTarget::parse(
            "postgres://us%40er:p%3Ass%2Fw@h1,h2/d?sslmode=disable&target_session_attrs=any&application_name=x",
        )
        .expect("parses");
        let options = target.options(&target.hosts[0]);
        assert_eq!(options.get_username(), "us@er");
        assert_eq!(options.get_database(), Some("d"));
        assert_eq!(options.get_application_name(), Some("x"));
        assert_eq!(target.attrs, SessionAttrs::Any);
    }

    #[test]
    fn bad_forms_are_refused_with_one_sentence() {
        let refused = |url: &str| PgTarget::parse(url).expect_err(url);
        assert!(refused("postgres://u@h1,,h2/db").contains("empty host"));
        assert!(refused("postgres://u@h1:54x2,h2/db").contains("invalid port `54x2`"));
        assert!(refused("postgres://u@h1:70000/db").contains("invalid port"));
        assert!(refused("postgres://u@[::1/db").contains("closing `]`"));
        assert!(
            refused("postgres://u@h1,h2/db?target_session_attrs=standby")
                .contains("cannot work: hookline writes")
        );
        assert!(
            refused("postgres://u@h1/db?target_session_attrs=bogus")
                .contains("unknown target_session_attrs=bogus")
        );
        assert!(refused("postgres://u@/db?host=a,b").contains("list the hosts in the URL"));
        assert!(refused("mysql://u@h/db").contains("starts with postgres://"));
        for url in ["postgres://u@h1,,h2/db", "postgres://u@h1:x/db"] {
            assert!(!refused(url).contains('\n'), "one line");
        }
    }
}
