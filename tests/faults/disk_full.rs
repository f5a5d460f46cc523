//! (s) SQLite whose files cannot grow, as on a full disk, with the worker
//! delivering meanwhile; then space again, then a restart: every
//! acknowledged publish is in the file and delivered, every refusal was
//! UNAVAILABLE, and publishing resumed by itself once space returned.

use std::{collections::HashSet, time::Duration};

use crate::{
    Tally,
    support::{
        disk_full::{self, PUBLISHES_AFTER_SPACE},
        fixtures::*,
        jwt::admin_token,
        receiver::{Receiver, Reply},
    },
    wait_all,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_whose_disk_fills_up_then_has_space_again() {
    let receiver = Receiver::start(|_| Reply::Status(200)).await;
    let url = receiver.url.clone();
    let (figures, _server, _dir) = disk_full::run(&[], |gql| async move {
        create_webhook(&gql, &admin_token("acme"), fast_webhook(&url, &["*"], 10)).await;
    })
    .await;
    let acknowledged: HashSet<String> = figures.acknowledged.iter().cloned().collect();
    wait_all(
        "every acknowledged event delivered after the restart",
        &acknowledged,
        &[&receiver],
        Duration::from_secs(60),
    )
    .await;
    let notes = format!(
        "soft RLIMIT_FSIZE at the largest file + 16 KiB, SIGXFSZ ignored, worker on; refused: {:?}; \
         limit lifted: {} of {} publishes acknowledged without a restart; all {} acknowledged \
         reached the receiver",
        figures.refused,
        figures.after_space,
        PUBLISHES_AFTER_SPACE,
        acknowledged.len()
    );
    let refused = figures.refused.clone();
    let after_space = figures.after_space;
    Tally::of(
        "(s) SQLite disk full (acknowledged vs present after restart: must be equal)",
        &acknowledged,
        &figures.present,
        notes,
    )
    .report();
    assert!(
        refused.values().sum::<usize>() > 0,
        "the limit refused nothing"
    );
    assert_eq!(
        refused.keys().collect::<Vec<_>>(),
        ["UNAVAILABLE"],
        "{refused:?}"
    );
    assert_eq!(after_space, PUBLISHES_AFTER_SPACE);
}
