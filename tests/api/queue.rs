//! The queue's transitions, called directly on the database a real server
//! created (SQLite, or PostgreSQL when `HOOKLINE_TEST_DATABASE_URL` is set):
//! claims under races, and that a transition out of a claim only ever moves
//! a delivery its claim token still holds.

use std::{collections::HashSet, sync::Arc};

use entity::delivery::{self, DeliveryStatus};
use hookline::domain::queue::{self, ClaimStamp, Holding, Settlement};
use hookline::ids::{DeliveryId, InstanceId};
use hookline::time::now_ms;
use migration::partitioning;
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, TransactionTrait};
use serde_json::json;
use tokio::sync::Barrier;

use crate::support::{TestApp, app::skipped_without_postgres, fixtures::*};

/// A server without a worker (nothing claims behind the test's back), a
/// webhook with `endpoints` endpoints, `events` events published to it, and
/// a connection to its database.
async fn queued(events: usize, endpoints: usize) -> (TestApp, DatabaseConnection, Vec<DeliveryId>) {
    let app = TestApp::spawn_with(|c| c.no_worker = true).await;
    let token = app.admin("acme");
    let urls: Vec<_> = (0..endpoints)
        .map(|n| json!({ "url": format!("http://127.0.0.1:9/{n}") }))
        .collect();
    let mut input = webhook_input("http://127.0.0.1:9/");
    input["endpoints"] = json!(urls);
    create_webhook(&app, &token, input).await;
    for n in 0..events {
        publish(&app, &token, "offer.created", json!({ "n": n })).await;
    }
    let db = hookline::db::connect(&app.database_url)
        .await
        .expect("connect")
        .write;
    let ids = delivery::Entity::find()
        .all(&db)
        .await
        .expect("deliveries")
        .into_iter()
        .map(|d| d.id)
        .collect();
    (app, db, ids)
}

fn stamp(token: i64, instance: &InstanceId, lease_ms: i64) -> ClaimStamp<'_> {
    let now = now_ms();
    ClaimStamp {
        now,
        lease_until: now + lease_ms,
        token,
        instance,
    }
}

async fn row(db: &DatabaseConnection, id: &DeliveryId) -> delivery::Model {
    delivery::Entity::find_by_id(id.clone())
        .one(db)
        .await
        .expect("read")
        .expect("row")
}

/// A delivery's queue row: (claim token, holder, due at); `None` when the
/// delivery is not queued.
async fn queued_row(
    db: &DatabaseConnection,
    id: &DeliveryId,
) -> Option<(Option<i64>, Option<String>, Option<i64>)> {
    let sql = "SELECT claim_token, claimed_by, due_at FROM delivery_queue WHERE id = $1";
    let sql = match db.get_database_backend() {
        sea_orm::DbBackend::Sqlite => sql.replace('$', "?"),
        _ => sql.to_owned(),
    };
    let row = db
        .query_one_raw(sea_orm::Statement::from_sql_and_values(
            db.get_database_backend(),
            sql,
            [id.as_str().into()],
        ))
        .await
        .expect("read queue")?;
    Some((
        row.try_get("", "claim_token").expect("token"),
        row.try_get("", "claimed_by").expect("holder"),
        row.try_get("", "due_at").expect("due"),
    ))
}

/// The claim token on a delivery's queue row (`None`: queued unclaimed).
async fn token(db: &DatabaseConnection, id: &DeliveryId) -> Option<i64> {
    queued_row(db, id).await.expect("queued").0
}

#[tokio::test]
async fn two_claimers_racing_take_every_due_delivery_exactly_once() {
    let (_app, db, ids) = queued(40, 2).await;
    assert_eq!(ids.len(), 80);
    let barrier = Arc::new(Barrier::new(2));
    let claimer = |token: i64| {
        let (db, barrier) = (db.clone(), barrier.clone());
        tokio::spawn(async move {
            let racer = InstanceId::new();
            barrier.wait().await;
            let mut taken = Vec::new();
            loop {
                let claimed = queue::claim_due(&db, 7, &[], &stamp(token, &racer, 60_000))
                    .await
                    .expect("claim");
                if claimed.is_empty() {
                    return taken;
                }
                taken.extend(claimed.into_iter().map(|c| c.id));
            }
        })
    };
    let (a, b) = (claimer(1), claimer(2));
    let (a, b) = (a.await.expect("a"), b.await.expect("b"));
    let a_set: HashSet<&DeliveryId> = a.iter().collect();
    let b_set: HashSet<&DeliveryId> = b.iter().collect();
    assert!(a_set.is_disjoint(&b_set), "a delivery was claimed twice");
    assert_eq!(
        a.len() + b.len(),
        ids.len(),
        "every due delivery was claimed"
    );
}

#[tokio::test]
async fn a_delivery_held_from_birth_is_left_alone_until_its_lease_runs_out() {
    let (_app, db, ids) = queued(1, 1).await;
    let due = row(&db, &ids[0]).await;
    let event = entity::event::Entity::find_by_id(due.event_id.clone())
        .one(&db)
        .await
        .expect("read")
        .expect("event");
    let (holder, lapsed_holder) = (InstanceId::new(), InstanceId::new());
    let now = now_ms();
    let born = || queue::new_delivery(&event, &due.webhook_id, &due.endpoint_id, now);
    let (held, lapsed) = (born(), born());
    for (delivery, stamp) in [
        (&held, stamp(5, &holder, 60_000)),
        (&lapsed, stamp(6, &lapsed_holder, -1)),
    ] {
        let ids = HashSet::from([delivery.id.clone()]);
        let holding = Holding { stamp, ids: &ids };
        queue::enqueue(&db, std::slice::from_ref(delivery), Some(&holding))
            .await
            .expect("enqueue");
    }

    let claimed: HashSet<DeliveryId> =
        queue::claim_due(&db, 100, &[], &stamp(7, &InstanceId::new(), 60_000))
            .await
            .expect("claim")
            .into_iter()
            .map(|c| c.id)
            .collect();
    assert_eq!(
        claimed,
        HashSet::from([due.id.clone(), lapsed.id.clone()]),
        "the claim loop takes the due row and the one whose lease ran out, not the held one"
    );
    let (still_token, still_holder, _) = queued_row(&db, &held.id).await.expect("queued");
    assert_eq!(still_token, Some(5));
    assert_eq!(still_holder.as_deref(), Some(holder.as_str()));
    assert_eq!(row(&db, &held.id).await.status, DeliveryStatus::Pending);
    assert_eq!(token(&db, &lapsed.id).await, Some(7));
}

#[tokio::test]
async fn a_claim_that_ran_out_cannot_settle_what_another_claimer_took_over() {
    let (_app, db, ids) = queued(1, 1).await;
    let id = &ids[0];
    let (slow, fast) = (InstanceId::new(), InstanceId::new());
    // The first claim's lease is already over, as if its worker stalled.
    let first = queue::claim_due(&db, 10, &[], &stamp(11, &slow, -1))
        .await
        .expect("first claim");
    assert_eq!(first.len(), 1);
    let second = queue::claim_due(&db, 10, &[], &stamp(22, &fast, 60_000))
        .await
        .expect("second claim");
    assert_eq!(second.len(), 1, "a lapsed claim falls due again");
    let settle = |token: i64, status: DeliveryStatus, response: i32| Settlement {
        delivery_id: id,
        claim_token: token,
        status,
        attempt_number: 1,
        next_attempt_at: None,
        attempted_at: now_ms(),
        response_status: Some(response),
    };
    let now = now_ms();
    queue::settle(&db, &[settle(11, DeliveryStatus::Failed, 500)], now)
        .await
        .expect("stale settle");
    let after_stale = row(&db, id).await;
    assert_eq!(
        after_stale.status,
        DeliveryStatus::Pending,
        "the stale claim changed nothing"
    );
    assert_eq!(token(&db, id).await, Some(22));
    queue::settle(&db, &[settle(22, DeliveryStatus::Succeeded, 200)], now)
        .await
        .expect("settle");
    let settled = row(&db, id).await;
    assert_eq!(settled.status, DeliveryStatus::Succeeded);
    assert_eq!(queued_row(&db, id).await, None, "settled: out of the queue");
    assert_eq!(settled.next_attempt_at, None);
    assert_eq!(settled.last_response_status, Some(200));
    // A settled delivery is not open: nothing claims, releases or cancels it.
    queue::release(&db, &[(id.clone(), 22)], now_ms())
        .await
        .expect("release");
    assert!(
        !queue::cancel(&db, "acme", id, now_ms())
            .await
            .expect("cancel")
    );
    assert!(
        queue::claim_due(&db, 10, &[], &stamp(33, &InstanceId::new(), 60_000))
            .await
            .expect("claim")
            .is_empty()
    );
    assert_eq!(row(&db, id).await.status, DeliveryStatus::Succeeded);
}

#[tokio::test]
async fn a_retried_delivery_stays_queued_unclaimed_until_its_next_attempt() {
    let (_app, db, ids) = queued(1, 1).await;
    let id = &ids[0];
    let claimed = queue::claim_due(&db, 10, &[], &stamp(3, &InstanceId::new(), 60_000))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    let next = now_ms() + 60_000;
    let retried = Settlement {
        delivery_id: id,
        claim_token: 3,
        status: DeliveryStatus::Retrying,
        attempt_number: 1,
        next_attempt_at: Some(next),
        attempted_at: now_ms(),
        response_status: Some(503),
    };
    queue::settle(&db, &[retried], now_ms())
        .await
        .expect("settle");
    assert_eq!(queued_row(&db, id).await, Some((None, None, Some(next))));
    let delivery = row(&db, id).await;
    assert_eq!(
        (
            delivery.status,
            delivery.attempt_count,
            delivery.next_attempt_at
        ),
        (DeliveryStatus::Retrying, 1, Some(next))
    );
    assert!(
        queue::claim_due(&db, 10, &[], &stamp(4, &InstanceId::new(), 60_000))
            .await
            .expect("claim")
            .is_empty(),
        "not due before its next attempt"
    );
    let later = ClaimStamp {
        now: next,
        lease_until: next + 60_000,
        token: 5,
        instance: &InstanceId::new(),
    };
    let again = queue::claim_due(&db, 10, &[], &later).await.expect("claim");
    assert_eq!(again.len(), 1);
    assert_eq!(
        again[0].attempt_count, 1,
        "the claim knows the attempts made"
    );
}

#[tokio::test]
async fn release_reap_reschedule_and_cancel_move_only_what_they_name() {
    let (_app, db, ids) = queued(4, 1).await;
    let dead = InstanceId::new();
    let claimed = queue::claim_due(&db, 10, &[], &stamp(5, &dead, 60_000))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 4);
    assert_eq!(
        queue::next_due(&db)
            .await
            .expect("next due")
            .map(|at| at > now_ms()),
        Some(true)
    );
    // Released with the wrong token: still held.
    queue::release(&db, &[(ids[0].clone(), 6)], now_ms())
        .await
        .expect("release");
    assert_eq!(token(&db, &ids[0]).await, Some(5));
    queue::release(&db, &[(ids[0].clone(), 5)], now_ms())
        .await
        .expect("release");
    let (released_token, released_holder, due) = queued_row(&db, &ids[0]).await.expect("queued");
    assert_eq!((released_token, released_holder), (None, None));
    assert!(due.is_some_and(|at| at <= now_ms()), "due again");
    // The dead instance's other three come back; a live one's would not.
    let reaped = queue::reap(&db, std::slice::from_ref(&dead), now_ms())
        .await
        .expect("reap");
    assert_eq!(reaped, 3);
    assert_eq!(
        queue::reap(&db, &[InstanceId::new()], now_ms())
            .await
            .expect("reap"),
        0
    );
    // An operator cancels one, then retries it: due again, never attempted.
    assert!(
        queue::cancel(&db, "acme", &ids[1], now_ms())
            .await
            .expect("cancel")
    );
    assert!(
        !queue::cancel(&db, "other-tenant", &ids[2], now_ms())
            .await
            .expect("cancel")
    );
    let cancelled = row(&db, &ids[1]).await;
    assert_eq!(cancelled.status, DeliveryStatus::Cancelled);
    assert_eq!(cancelled.next_attempt_at, None);
    assert_eq!(
        queued_row(&db, &ids[1]).await,
        None,
        "cancelled: out of the queue"
    );
    assert!(
        queue::reschedule(&db, &cancelled, now_ms())
            .await
            .expect("reschedule")
    );
    let retried = row(&db, &ids[1]).await;
    assert_eq!(retried.status, DeliveryStatus::Pending);
    assert!(retried.next_attempt_at.is_some_and(|at| at <= now_ms()));
    // All four are due again and claimable at once.
    let again = queue::claim_due(&db, 10, &[], &stamp(7, &InstanceId::new(), 60_000))
        .await
        .expect("claim");
    assert_eq!(again.len(), 4);
    // A worker cancels one it holds (its webhook was paused).
    queue::cancel_claimed(&db, &ids[3], 7, now_ms())
        .await
        .expect("cancel claimed");
    assert_eq!(row(&db, &ids[3]).await.status, DeliveryStatus::Cancelled);
    assert_eq!(queued_row(&db, &ids[3]).await, None);
}

/// Settling a hundred deliveries right after a burst: PostgreSQL's
/// statistics, taken when nearly every delivery was closed, still count few
/// open ones. The settle must reach its rows by primary key all the same,
/// not scan and hash deliveries (10 to 30 ms a statement in the 10-endpoint
/// benchmark when it hashed every open one, against about one).
#[tokio::test]
async fn a_settle_reaches_its_rows_by_primary_key_even_when_statistics_are_stale() {
    if skipped_without_postgres("a PostgreSQL plan") {
        return;
    }
    // As in the benchmark: many closed, then a burst of open ones.
    const CLOSED: usize = 100_000;
    const OPEN: usize = 20_000;
    const SETTLED: usize = 100;
    let (_app, db, _ids) = queued(1, 1).await;
    let txn = db.begin().await.expect("begin");
    for sql in [
        // Copies of the one delivery: the closed ones first, analyzed, then
        // the open ones, claimed, as after a burst.
        format!(
            "CREATE TEMP TABLE burst ON COMMIT DROP AS \
             SELECT d.*, g FROM deliveries d, generate_series(1, {}) AS g",
            CLOSED + OPEN
        ),
        "UPDATE burst SET id = id || '-' || g".into(),
        format!(
            "UPDATE burst SET status = 'SUCCEEDED', next_attempt_at = NULL WHERE g <= {CLOSED}"
        ),
        "ALTER TABLE burst DROP COLUMN g".into(),
        "INSERT INTO deliveries SELECT * FROM burst WHERE status = 'SUCCEEDED'".into(),
        "ANALYZE deliveries".into(),
        "INSERT INTO deliveries SELECT * FROM burst WHERE status <> 'SUCCEEDED'".into(),
    ] {
        txn.execute_unprepared(&sql).await.expect(&sql);
    }
    let types = std::iter::once("bigint")
        .chain(
            ["text", "text", "int", "bigint", "bigint", "int"]
                .repeat(SETTLED)
                .into_iter(),
        )
        .collect::<Vec<_>>()
        .join(", ");
    let open: Vec<String> = txn
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!("SELECT id FROM burst WHERE status = 'PENDING' LIMIT {SETTLED}"),
        ))
        .await
        .expect("open ids")
        .iter()
        .map(|row| row.try_get_by_index(0).expect("id"))
        .collect();
    assert_eq!(open.len(), SETTLED);
    let now = now_ms();
    let arguments = std::iter::once(now.to_string())
        .chain(open.iter().map(|id| {
            let id = id.replace('\'', "''");
            format!("'{id}', 'SUCCEEDED', 1, NULL, {now}, 200")
        }))
        .collect::<Vec<_>>()
        .join(", ");
    txn.execute_unprepared(&format!(
        "PREPARE settle_plan ({types}) AS {}",
        queue::settle_sql(SETTLED)
    ))
    .await
    .expect("prepare");
    let plan = txn
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!("EXPLAIN (FORMAT JSON) EXECUTE settle_plan({arguments})"),
        ))
        .await
        .expect("explain")
        .expect("a plan");
    let plan: serde_json::Value = plan.try_get_by_index(0).expect("json");
    let plan = plan.to_string();
    // PREPARE outlives a rollback; the session goes back to the pool.
    txn.execute_unprepared("DEALLOCATE settle_plan")
        .await
        .expect("deallocate");
    txn.rollback().await.expect("rollback");
    // The rows are in one partition; the empty ones cost nothing to scan.
    assert!(
        plan.contains("_pkey\""),
        "the settle looks its rows up by primary key: {plan}"
    );
    assert!(
        !plan.contains("Hash"),
        "the settle hashes no table to find a hundred rows: {plan}"
    );
}

/// A claim writes only the queue: the delivery's own row (history, with
/// every index of a partition as large as the week) keeps its version.
/// Before the queue had a table of its own, each claim rewrote that row and
/// added an entry to each of its eight indexes.
#[tokio::test]
async fn a_claim_leaves_the_delivery_row_as_it_was() {
    if skipped_without_postgres("row versions are PostgreSQL's") {
        return;
    }
    let (_app, db, ids) = queued(1, 1).await;
    let version = || async {
        let sql = format!(
            "SELECT xmin::text AS v FROM deliveries WHERE id = '{}'",
            ids[0]
        );
        db.query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            sql,
        ))
        .await
        .expect("read")
        .expect("row")
        .try_get::<String>("", "v")
        .expect("xmin")
    };
    let before = version().await;
    let claimed = queue::claim_due(&db, 10, &[], &stamp(9, &InstanceId::new(), 60_000))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(token(&db, &ids[0]).await, Some(9));
    assert_eq!(
        version().await,
        before,
        "the claim rewrote the delivery's row"
    );
}

/// Settling a delivery rewrites its row in place: no indexed column
/// changes and its page has room (PostgreSQL's heap-only update), so the
/// partition's indexes get no new entries. Before, the recovery jobs' index
/// held the status, and every settlement wrote all six indexes again.
#[tokio::test]
async fn a_settlement_rewrites_the_delivery_row_in_place() {
    if skipped_without_postgres("heap-only updates are PostgreSQL's") {
        return;
    }
    let (_app, db, ids) = queued(1, 1).await;
    let fillfactors = db
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT c.reloptions::text AS options FROM pg_inherits i \
             JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'deliveries'::regclass",
        ))
        .await
        .expect("partitions");
    assert!(!fillfactors.is_empty());
    for row in fillfactors {
        let options: Option<String> = row.try_get("", "options").expect("options");
        let expected = format!("{{fillfactor={}}}", partitioning::DELIVERIES_FILLFACTOR);
        assert_eq!(options, Some(expected));
    }
    let claimed = queue::claim_due(&db, 10, &[], &stamp(4, &InstanceId::new(), 60_000))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    let txn = db.begin().await.expect("begin");
    let settled = Settlement {
        delivery_id: &ids[0],
        claim_token: 4,
        status: DeliveryStatus::Succeeded,
        attempt_number: 1,
        next_attempt_at: None,
        attempted_at: now_ms(),
        response_status: Some(200),
    };
    queue::settle(&txn, &[settled], now_ms())
        .await
        .expect("settle");
    // This transaction's own counts, per table.
    let row = txn
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT sum(n_tup_upd)::bigint AS updated, sum(n_tup_hot_upd)::bigint AS in_place \
             FROM pg_stat_xact_user_tables WHERE relname LIKE 'deliveries%'",
        ))
        .await
        .expect("stats")
        .expect("a row");
    let counts: (i64, i64) = (
        row.try_get("", "updated").expect("updated"),
        row.try_get("", "in_place").expect("in place"),
    );
    txn.commit().await.expect("commit");
    assert_eq!(counts, (1, 1), "(rows updated, of them in place)");
}
