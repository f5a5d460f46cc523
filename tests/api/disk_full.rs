//! SQLite on a full disk: a publish is acknowledged only once it is durably
//! committed. The database is a file on the machine, so these tests run on
//! SQLite whatever `HOOKLINE_TEST_DATABASE_URL` says.

use crate::support::disk_full::{self, PUBLISHES_AFTER_SPACE};

// Multi-threaded: the test blocks on child processes (`prlimit`, restarts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_on_a_full_disk_are_refused_as_unavailable_and_every_acknowledged_one_survives_a_restart()
 {
    let (figures, _server, _dir) = disk_full::run(&["--no-worker"], |_| async {}).await;
    assert!(
        figures.refusals() > 0,
        "the file-size limit refused nothing: the test proves nothing"
    );
    assert_eq!(
        figures.refused.keys().collect::<Vec<_>>(),
        ["UNAVAILABLE"],
        "refusals by code: {:?}",
        figures.refused
    );
    assert_eq!(
        figures.after_space, PUBLISHES_AFTER_SPACE,
        "publishing did not recover by itself once space returned"
    );
    let missing = figures.missing();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged events are gone after a restart (refusals: {:?})",
        missing.len(),
        figures.acknowledged.len(),
        figures.refused
    );
}
