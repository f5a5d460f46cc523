//! Which replays may run on this instance now: one per tenant, and at most
//! [`AT_ONCE`] in all.
//!
//! A replay is a long call: it reads up to 100 000 events a page at a time,
//! holding a reading connection and up to about 1 MiB of payload while it
//! runs, and queues up to 10 000 deliveries on the writer. Without a bound, a
//! tenant calling it many times at once would take every reading connection
//! (and the memory of as many replays) from every other tenant's reads. A
//! call over the bound is answered `RATE_LIMITED` at once, with
//! `retryAfterMs`, and does nothing.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::error::{AppError, AppResult};

/// Most replays running at once on one instance, whatever their tenants.
pub const AT_ONCE: usize = 4;
/// When a refused replay may try again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The tenants with a replay running on this instance.
#[derive(Clone, Default)]
pub struct ReplayTurns {
    running: Arc<Mutex<HashSet<String>>>,
}

/// A running replay's turn, given back when dropped (also when its call
/// fails or its request is dropped).
pub struct Turn {
    running: Arc<Mutex<HashSet<String>>>,
    tenant: String,
}

impl ReplayTurns {
    /// `tenant`'s turn to replay; `RATE_LIMITED` while another replay of
    /// the tenant runs here, or [`AT_ONCE`] replays do.
    pub fn take(&self, tenant: &str) -> AppResult<Turn> {
        let mut running = self.running.lock().expect("replay turns");
        if running.len() >= AT_ONCE || running.contains(tenant) {
            return Err(AppError::RateLimited {
                retry_after: RETRY_AFTER,
            });
        }
        running.insert(tenant.to_owned());
        Ok(Turn {
            running: self.running.clone(),
            tenant: tenant.to_owned(),
        })
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.running
            .lock()
            .expect("replay turns")
            .remove(&self.tenant);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_replay_per_tenant_and_a_bound_for_the_instance() {
        let turns = ReplayTurns::default();
        let acme = turns.take("acme").expect("acme's first replay");
        let refused = turns.take("acme").err().expect("acme's second replay");
        assert_eq!(refused.code(), "RATE_LIMITED");
        let others: Vec<Turn> = (1..AT_ONCE)
            .map(|n| turns.take(&format!("tenant-{n}")).expect("another tenant"))
            .collect();
        assert!(turns.take("one-too-many").is_err(), "the instance's bound");
        drop(acme);
        let again = turns.take("acme").expect("acme's turn came back");
        assert!(turns.take("one-too-many").is_err());
        drop((again, others));
        assert!(turns.take("one-too-many").is_ok(), "every turn came back");
    }
}
