//! Which way the server's writes went over a timed part: the group commits
//! of publishes and the batches of attempts, by one statement, by
//! transaction, or refused by their one statement (`hookline_writes_total`
//! on `/metrics`, read before and after). On SQLite, where there is no
//! `pg_stat_statements`, it counts the trips to the database the two
//! writers every event goes through make (not every statement: checks,
//! claims and other writers are not in it).

use std::{collections::BTreeMap, net::SocketAddr, time::Duration};

use serde_json::{Value, json};

const SERIES: &str = "hookline_writes_total";
pub const WRITERS: [&str; 2] = ["publish", "recorder"];
pub const WAYS: [&str; 3] = ["one_statement", "transaction", "refused"];
/// A server that does not answer its `/metrics` within this counts nothing.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

/// Writes by (writer, way).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Writes(BTreeMap<(String, String), f64>);

/// Each server's writes at one moment, by process id.
pub struct Reading(Vec<(u32, Option<Writes>)>);

impl Reading {
    /// Reads the servers (`(pid, address)`); one that cannot be read, or
    /// does not expose the series (an older build), reads as `None`.
    pub async fn take(servers: &[(u32, SocketAddr)]) -> Self {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(SCRAPE_TIMEOUT)
            .build()
            .ok();
        let mut read = Vec::with_capacity(servers.len());
        for &(pid, addr) in servers {
            let writes = match &http {
                Some(http) => scrape(http, addr).await,
                None => None,
            };
            read.push((pid, writes.filter(|w| !w.is_empty())));
        }
        Self(read)
    }

    /// What the same servers wrote since `before`: not available (empty)
    /// when one was replaced meanwhile (a restart: what the one before
    /// wrote after `before` is gone with it), or could not be read.
    pub fn since(&self, before: &Reading) -> Writes {
        let same =
            self.0.len() == before.0.len() && self.0.iter().zip(&before.0).all(|(a, b)| a.0 == b.0);
        if !same {
            return Writes::default();
        }
        let mut total = Writes::default();
        for ((_, after), (_, before)) in self.0.iter().zip(&before.0) {
            let (Some(after), Some(before)) = (after, before) else {
                return Writes::default();
            };
            let Some(delta) = after.since(before) else {
                return Writes::default();
            };
            total.add(&delta);
        }
        total
    }
}

async fn scrape(http: &reqwest::Client, addr: SocketAddr) -> Option<Writes> {
    let response = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    Some(Writes::parse(&response.text().await.ok()?))
}

impl Writes {
    /// The `hookline_writes_total` series of a Prometheus text.
    pub fn parse(text: &str) -> Self {
        let mut writes = Self::default();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix(SERIES).and_then(|r| r.strip_prefix('{')) else {
                continue;
            };
            let Some((labels, value)) = rest.rsplit_once("} ") else {
                continue;
            };
            let label = |name: &str| {
                labels.split(',').find_map(|pair| {
                    let (key, value) = pair.split_once('=')?;
                    (key == name).then(|| value.trim_matches('"').to_owned())
                })
            };
            if let (Some(writer), Some(way), Ok(value)) =
                (label("writer"), label("way"), value.trim().parse::<f64>())
            {
                *writes.0.entry((writer, way)).or_default() += value;
            }
        }
        writes
    }

    fn add(&mut self, other: &Self) {
        for (key, value) in &other.0 {
            *self.0.entry(key.clone()).or_default() += value;
        }
    }

    /// What was written since `before`; `None` when a counter went down
    /// (not the same server).
    fn since(&self, before: &Self) -> Option<Self> {
        let mut delta = self.clone();
        for (key, value) in &before.0 {
            *delta.0.entry(key.clone()).or_default() -= value;
        }
        delta.0.values().all(|v| *v >= 0.0).then_some(delta)
    }

    pub fn get(&self, writer: &str, way: &str) -> f64 {
        self.0
            .get(&(writer.to_owned(), way.to_owned()))
            .copied()
            .unwrap_or(0.0)
    }

    /// Every write, whatever its way (a refused one wrote nothing, but it
    /// was a trip to the database all the same).
    pub fn total(&self) -> f64 {
        self.0.values().sum()
    }

    /// Whether the server exposed the series at all (an older build does not).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn json(&self, events: u64) -> Value {
        let per_event = |n: f64| {
            if events == 0 {
                Value::Null
            } else {
                json!(n / events as f64)
            }
        };
        let mut by_writer = serde_json::Map::new();
        for writer in WRITERS {
            let ways: serde_json::Map<String, Value> = WAYS
                .iter()
                .map(|way| ((*way).to_owned(), json!(self.get(writer, way))))
                .collect();
            by_writer.insert(writer.to_owned(), Value::Object(ways));
        }
        json!({
            "available": !self.is_empty(),
            "total": self.total(),
            "per_event": per_event(self.total()),
            "by_writer": by_writer,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_read_by_writer_and_way_and_subtracted() {
        let before = Writes::parse(
            "# HELP hookline_writes_total x\n\
             hookline_writes_total{writer=\"publish\",way=\"one_statement\"} 3\n\
             hookline_writes_total{writer=\"recorder\",way=\"transaction\"} 1\n\
             hookline_events_published_total 9\n",
        );
        let after = Writes::parse(
            "hookline_writes_total{writer=\"publish\",way=\"one_statement\"} 10\n\
             hookline_writes_total{writer=\"publish\",way=\"refused\"} 2\n\
             hookline_writes_total{writer=\"recorder\",way=\"transaction\"} 1\n",
        );
        let delta = after.since(&before).expect("counters only grew");
        assert_eq!(delta.get("publish", "one_statement"), 7.0);
        assert_eq!(delta.get("publish", "refused"), 2.0);
        assert_eq!(delta.get("recorder", "transaction"), 0.0);
        assert_eq!(delta.get("recorder", "one_statement"), 0.0);
        assert_eq!(delta.total(), 9.0);
        assert!(Writes::parse("hookline_events_published_total 9\n").is_empty());
        // A restarted server counts from zero again.
        assert!(before.since(&after).is_none());
    }

    #[test]
    fn a_replaced_or_unread_server_makes_the_figure_unavailable() {
        let some = |n: f64| {
            let text =
                format!("hookline_writes_total{{writer=\"publish\",way=\"transaction\"}} {n}\n");
            Some(Writes::parse(&text))
        };
        let before = Reading(vec![(1, some(1.0)), (2, some(5.0))]);
        let after = Reading(vec![(1, some(4.0)), (2, some(6.0))]);
        assert_eq!(after.since(&before).get("publish", "transaction"), 4.0);
        let restarted = Reading(vec![(3, some(4.0)), (2, some(6.0))]);
        assert!(restarted.since(&before).is_empty());
        let unread = Reading(vec![(1, None), (2, some(6.0))]);
        assert!(unread.since(&before).is_empty());
    }
}
