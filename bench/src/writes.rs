//! Which way the server's writes went over a timed part: the group commits
//! of publishes and the batches of attempts, by one statement, by
//! transaction, or refused by their one statement (`hookline_writes_total`
//! on `/metrics`, read before and after). On SQLite this is what stands in
//! for the statement count PostgreSQL's `pg_stat_statements` gives.

use std::{collections::BTreeMap, net::SocketAddr};

use serde_json::{Value, json};

const SERIES: &str = "hookline_writes_total";
pub const WRITERS: [&str; 2] = ["publish", "recorder"];
pub const WAYS: [&str; 3] = ["one_statement", "transaction", "refused"];

/// Writes by (writer, way), summed over the servers read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Writes(BTreeMap<(String, String), f64>);

impl Writes {
    /// Reads the servers at `addrs`; one that cannot be read counts nothing.
    pub async fn read(addrs: &[SocketAddr]) -> Self {
        let mut writes = Self::default();
        let Ok(http) = reqwest::Client::builder().no_proxy().build() else {
            return writes;
        };
        for addr in addrs {
            let url = format!("http://{addr}/metrics");
            let Ok(response) = http.get(&url).send().await else {
                continue;
            };
            if let Ok(text) = response.text().await {
                writes.add(&Self::parse(&text));
            }
        }
        writes
    }

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

    /// What was written since `before`; nothing (not available) when a
    /// counter went down: the server was restarted in between, and what
    /// the one before wrote after `before` is not known.
    pub fn since(&self, before: &Self) -> Self {
        let mut delta = self.clone();
        for (key, value) in &before.0 {
            *delta.0.entry(key.clone()).or_default() -= value;
        }
        if delta.0.values().any(|v| *v < 0.0) {
            return Self::default();
        }
        delta
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
        let delta = after.since(&before);
        assert_eq!(delta.get("publish", "one_statement"), 7.0);
        assert_eq!(delta.get("publish", "refused"), 2.0);
        assert_eq!(delta.get("recorder", "transaction"), 0.0);
        assert_eq!(delta.get("recorder", "one_statement"), 0.0);
        assert_eq!(delta.total(), 9.0);
        assert!(Writes::parse("hookline_events_published_total 9\n").is_empty());
        // A restarted server counts from zero again.
        assert!(before.since(&after).is_empty());
    }
}
