//! Stopping: no new claims, queued deliveries handed back, requests in
//! flight given the grace period.

use super::Worker;

impl Worker {
    /// Stops claiming, hands back queued deliveries, lets requests in flight
    /// finish within the grace period, then hands back the rest.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        // No new reservations now; those in flight are committed (or given
        // back) within moments, and their deliveries join the lanes first.
        let settled = async {
            loop {
                let notified = self.reservations_settled.notified();
                if self.lanes().reserved == 0 {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(self.settings.shutdown_grace, settled)
            .await
            .is_err()
        {
            tracing::warn!(
                "publishes still committing after the grace period; their deliveries come back when their lease runs out"
            );
        }
        let (_, queued) = self.lanes().hand_back(|_| true);
        self.release_all(queued).await;
        self.tasks.close();
        if tokio::time::timeout(self.settings.shutdown_grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(grace = ?self.settings.shutdown_grace, "requests still in flight after the grace period; handing them back");
            self.abort.cancel();
            self.tasks.wait().await;
        }
    }
}
