//! Waiting between reconnects to something that is down: 1 s, doubling up
//! to 60 s, and one log line when it goes down and one when it is back,
//! rather than one per try.

use std::{
    fmt::Display,
    time::{Duration, Instant},
};

const FIRST: Duration = Duration::from_secs(1);
const LONGEST: Duration = Duration::from_secs(60);

pub struct Reconnect {
    /// What is reconnected, for the log lines.
    what: &'static str,
    wait: Duration,
    down_since: Option<Instant>,
}

impl Reconnect {
    pub fn new(what: &'static str) -> Self {
        Self {
            what,
            wait: FIRST,
            down_since: None,
        }
    }

    /// Notes a failure (logged at WARN only if it is the first of an
    /// outage) and waits before the next try.
    pub async fn failed(&mut self, err: impl Display) {
        let wait = self.backoff(err);
        tokio::time::sleep(wait).await;
    }

    /// Notes a failure and returns how long to wait before the next try
    /// (for a caller that waits on its own clock, doing other work meanwhile).
    pub fn backoff(&mut self, err: impl Display) -> Duration {
        self.note_failure(err);
        let wait = self.wait;
        self.wait = (self.wait * 2).min(LONGEST);
        wait
    }

    /// Notes a failure without waiting (the caller waits on its own clock).
    pub fn note_failure(&mut self, err: impl Display) {
        if self.down_since.is_none() {
            self.down_since = Some(Instant::now());
            tracing::warn!(
                "{} failed; retrying with backoff up to 60 s: {err}",
                self.what
            );
        } else {
            tracing::debug!("{} failed again: {err}", self.what);
        }
    }

    /// Notes a success: logs the end of an outage, if there was one.
    pub fn succeeded(&mut self) {
        if let Some(since) = self.down_since.take() {
            tracing::info!(down_for = ?since.elapsed(), "{} works again", self.what);
        }
        self.wait = FIRST;
    }

    /// The wait before the next try.
    pub fn wait(&self) -> Duration {
        self.wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_a_minute_and_start_over_after_a_success() {
        let mut reconnect = Reconnect::new("test");
        let waits: Vec<u64> = (0..8)
            .map(|_| reconnect.backoff("down").as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert!(reconnect.down_since.is_some());
        reconnect.succeeded();
        assert_eq!(reconnect.wait().as_secs(), 1);
        assert!(reconnect.down_since.is_none());
    }
}
