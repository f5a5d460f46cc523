//! In-process signals between the API and the delivery worker.
//!
//! Publishing commits rows and then pings `deliveries_due`, so the worker
//! claims new deliveries at once instead of waiting for its next poll.

use tokio::sync::Notify;

#[derive(Default)]
pub struct Bus {
    deliveries_due: Notify,
}

impl Bus {
    pub fn new() -> Self {
        Self::default()
    }

    /// New deliveries are due now (after a commit).
    pub fn deliveries_due(&self) {
        self.deliveries_due.notify_one();
    }

    /// Resolves at the next `deliveries_due` (or at once if one came since the
    /// last wait).
    pub async fn wait_deliveries_due(&self) {
        self.deliveries_due.notified().await;
    }
}
