//! The write path of publishing: matching webhooks and storing events with
//! their deliveries, durably, before anyone is told.
//!
//! Single `publishEvent` calls that arrive together are committed together
//! (group commit): the [`coalescer`] takes whatever submissions are waiting
//! and stores them in one transaction, so under load a commit carries many
//! events while a lone request waits for nothing. Submissions arrive checked
//! (`publish_check`): nothing slow runs inside the transaction. When the
//! database refuses part of a shared commit, the group is written again with
//! each submission under its own savepoint, so only the submission it
//! refuses fails; only a database that cannot store at all fails everyone.
//!
//! Before a group's rows are written, the [`Intake`] (this instance's
//! delivery worker, when it has one) is asked which new deliveries it has
//! room for; those are written held by its claim and handed to it after the
//! commit with what sending them needs, so they cost no claim of their own
//! and nothing is read back (see `domain::intake`). The rest are written
//! due. Once a commit lands, the [`Facts`] port is told what it stored.
//!
//! Submissions without idempotency keys are written by single statements
//! instead of a transaction, as many as fit each (on SQLite, a group of up
//! to two events, in one trip: [`one_statement`]).

pub mod coalescer;
mod insert;
mod one_statement;
mod rows;

use std::sync::Arc;

use entity::{delivery, event};
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr, TransactionTrait};

use super::{
    events::Published,
    facts::{Facts, WritePath, Writer},
    intake::{Held, Intake},
    publish_check::Checked,
    queue,
    tenant_config::{TenantConfig, TenantConfigCache},
};
use crate::{
    db::{Kept, STATEMENT_BYTES, is_race, is_unique_violation},
    error::{AppError, AppResult},
    time::now_ms,
};
pub(crate) use insert::insert_events;
use rows::{Rows, stage};

pub const MAX_BATCH: usize = 1_000;
/// Connections kept for the one-statement commits: as many as group
/// commits may run at once (see `coalescer`), with room for batches.
const KEPT_CONNECTIONS: usize = 8;
/// How long an idempotency key returns the first event instead of a new one.
pub const IDEMPOTENCY_WINDOW_MS: i64 = 24 * 3600 * 1000;

/// What a commit did with one submission.
#[derive(Debug)]
pub enum Committed {
    Stored(Vec<Published>),
    /// Not written: what it was checked against changed (an event type's
    /// schema, an idempotency key taken meanwhile). Check it again.
    CheckAgain,
}

/// Why writing rows failed.
enum WriteError {
    /// Lost a race with a commit beside this one: on SQLite a webhook or
    /// endpoint deleted meanwhile (a foreign key; PostgreSQL has none, see
    /// `domain::removal`), an idempotency key inserted at the same moment
    /// (a unique key), or a deadlock (PostgreSQL class 40).
    Raced,
    Refused(AppError),
}

impl From<DbErr> for WriteError {
    fn from(err: DbErr) -> Self {
        Self::Refused(err.into())
    }
}

impl From<AppError> for WriteError {
    fn from(err: AppError) -> Self {
        Self::Refused(err)
    }
}

/// The races an INSERT of events and deliveries can lose, told apart where
/// the statement is made.
fn classify(err: DbErr) -> WriteError {
    if is_race(&err) || is_unique_violation(&err) {
        WriteError::Raced
    } else {
        WriteError::from(err)
    }
}

pub struct Publisher {
    db: DatabaseConnection,
    /// Connections the one-statement commits keep between them.
    kept: Kept,
    configs: Arc<TenantConfigCache>,
    facts: Arc<dyn Facts>,
    intake: Option<Arc<dyn Intake>>,
}

impl Publisher {
    pub fn new(
        db: DatabaseConnection,
        configs: Arc<TenantConfigCache>,
        facts: Arc<dyn Facts>,
        intake: Option<Arc<dyn Intake>>,
    ) -> Self {
        Self {
            kept: Kept::new(&db, KEPT_CONNECTIONS),
            db,
            configs,
            facts,
            intake,
        }
    }

    /// Commits the submissions: leading ones without idempotency keys in
    /// single statements (on SQLite, single trips), as many as fit each
    /// ([`one_statement`]); the rest in one transaction. If the database
    /// refuses anything in that, the rest is written once more with each
    /// submission under its own savepoint: one submission's failure never
    /// fails the others. A database that cannot store (`UNAVAILABLE`) fails
    /// all that were not stored yet.
    pub async fn commit(&self, group: &[Checked]) -> Vec<AppResult<Committed>> {
        let mut results = Vec::with_capacity(group.len());
        let mut rest = group;
        while !rest.is_empty() {
            let suited = one_statement::suited(&self.db, rest);
            let written = match self.commit_in_one_statement(&rest[..suited]).await {
                Ok(written) => written,
                Err(WriteError::Refused(err @ AppError::Unavailable(_))) => {
                    results.extend(rest.iter().map(|_| Err(err.duplicate())));
                    return results;
                }
                // Nothing was written: the transaction sorts out who raced.
                Err(WriteError::Refused(err)) => self.refused(err),
                Err(WriteError::Raced) => self.refused("it lost a race"),
            };
            if written.is_empty() {
                break;
            }
            rest = &rest[written.len()..];
            results.extend(written);
        }
        if !rest.is_empty() {
            let rest: Vec<&Checked> = rest.iter().collect();
            results.extend(self.commit_in_transaction(&rest).await);
        }
        results
    }

    /// A one-statement write that wrote nothing, logged and counted; the
    /// transactional way takes the group (no results here).
    fn refused(&self, why: impl std::fmt::Display) -> Vec<AppResult<Committed>> {
        tracing::debug!("writing in one statement was refused: {why}");
        self.facts.written(Writer::Publish, WritePath::Refused);
        Vec::new()
    }

    /// [`one_statement`]: the leading submissions of `group` whose rows fit
    /// one statement, written by it; their results, in order (none when
    /// even the first does not fit). Tenants whose configuration moved since
    /// their submissions were checked are committed the transactional way.
    async fn commit_in_one_statement(
        &self,
        group: &[Checked],
    ) -> Result<Vec<AppResult<Committed>>, WriteError> {
        let mut rows = Rows::default();
        let mut published = Vec::with_capacity(group.len());
        let mut bytes = 0;
        for checked in group {
            let staged = stage(&self.db, checked, &checked.config, &rows.keys).await?;
            bytes += one_statement::weight(&staged);
            if bytes > STATEMENT_BYTES {
                break;
            }
            rows.configs
                .entry(checked.tenant.clone())
                .or_insert_with(|| checked.config.clone());
            published.push(rows.add(staged));
        }
        let group = &group[..published.len()];
        if group.is_empty() || !one_statement::fits_one_trip(&self.db, &rows) {
            return Ok(Vec::new());
        }
        let held = self.hold(&mut rows);
        let holding = held.as_ref().map(|h| rows.holding(h.reservation()));
        let fresh =
            one_statement::write(&self.db, &self.kept, group, &rows, holding.as_ref()).await?;
        if !fresh.is_empty() {
            self.facts.written(Writer::Publish, WritePath::OneStatement);
        }
        rows.keep_tenants(&fresh);
        self.promote(&rows).await;
        self.tell(&rows, held);
        let moved: Vec<&Checked> = group
            .iter()
            .filter(|checked| !fresh.contains(&checked.tenant))
            .collect();
        let mut again = if moved.is_empty() {
            Vec::new()
        } else {
            self.commit_in_transaction(&moved).await
        }
        .into_iter();
        let results = group.iter().zip(published).map(|(checked, published)| {
            if fresh.contains(&checked.tenant) {
                Ok(Committed::Stored(published))
            } else {
                again.next().unwrap_or(Ok(Committed::CheckAgain))
            }
        });
        Ok(results.collect())
    }

    /// Commits the submissions in one transaction (see [`Self::commit`]).
    async fn commit_in_transaction(&self, group: &[&Checked]) -> Vec<AppResult<Committed>> {
        let err = match self.commit_together(group).await {
            Ok(results) => {
                self.facts.written(Writer::Publish, WritePath::Transaction);
                return results;
            }
            Err(WriteError::Refused(err @ AppError::Unavailable(_))) => err,
            Err(_) => {
                tracing::debug!(
                    submissions = group.len(),
                    "a group commit was refused; writing its submissions one by one"
                );
                match self.commit_apart(group).await {
                    Ok(results) => {
                        self.facts.written(Writer::Publish, WritePath::Transaction);
                        return results;
                    }
                    Err(err) => err,
                }
            }
        };
        // Each caller's error reaches its own response (and log line).
        group.iter().map(|_| Err(err.duplicate())).collect()
    }

    /// The fast path: every submission's rows in the same statements.
    async fn commit_together(
        &self,
        group: &[&Checked],
    ) -> Result<Vec<AppResult<Committed>>, WriteError> {
        let txn = self.db.begin().await?;
        let mut rows = Rows::default();
        let mut results = Vec::with_capacity(group.len());
        for &checked in group {
            let config = rows.config(&self.configs, &txn, &checked.tenant).await?;
            if !checked.still_valid(&config) {
                results.push(Ok(Committed::CheckAgain));
                continue;
            }
            let staged = stage(&txn, checked, &config, &rows.keys).await?;
            results.push(Ok(Committed::Stored(rows.add(staged))));
        }
        let held = self.hold(&mut rows);
        let holding = held.as_ref().map(|h| rows.holding(h.reservation()));
        write(&txn, &rows.events, &rows.deliveries, holding.as_ref()).await?;
        txn.commit().await?;
        self.promote(&rows).await;
        self.tell(&rows, held);
        Ok(results)
    }

    /// The careful path, after the database refused part of a group: each
    /// submission under its own savepoint, so what is refused undoes only
    /// its own rows. Its deliveries are all written due (it is rare; a
    /// reservation per savepoint is not worth its bookkeeping).
    async fn commit_apart(&self, group: &[&Checked]) -> AppResult<Vec<AppResult<Committed>>> {
        let txn = self.db.begin().await?;
        let mut rows = Rows::default();
        let mut results = Vec::with_capacity(group.len());
        for &checked in group {
            let config = rows.config(&self.configs, &txn, &checked.tenant).await?;
            results.push(if checked.still_valid(&config) {
                write_alone(&txn, checked, &config, &mut rows).await?
            } else {
                Ok(Committed::CheckAgain)
            });
        }
        txn.commit().await?;
        self.promote(&rows).await;
        self.tell(&rows, None);
        Ok(results)
    }

    /// Room at the intake for what `rows` deliver, those deliveries written
    /// held by its claim. Dropped unhanded (the commit failed), the
    /// reservation gives its room back.
    fn hold(&self, rows: &mut Rows) -> Option<Held> {
        let held = Held::reserve(self.intake.as_ref()?, &rows.deliveries)?;
        rows.hold(held.reservation());
        Some(held)
    }

    /// Makes due the new deliveries of ordered webhooks that are first in
    /// their sequence, right after the commit that stored them (see
    /// `queue`). If this fails, the publish still stands: the instances'
    /// sweep promotes them.
    async fn promote(&self, rows: &Rows) {
        let sequences = queue::sequences_of(&rows.deliveries);
        if sequences.is_empty() {
            return;
        }
        if let Err(err) = queue::promote(&self.db, &sequences, now_ms()).await {
            tracing::warn!("promoting ordered deliveries failed; the sweep will: {err}");
        }
    }

    /// What a landed commit stored, told once; the deliveries `held` for
    /// the intake, handed over (the room of any not stored, given back).
    fn tell(&self, rows: &Rows, held: Option<Held>) {
        let total = rows.deliveries.len() as u64;
        let mut taken = 0;
        if let Some(held) = held {
            let queued = rows.queued(held.reservation().token);
            taken = queued.len() as u64;
            held.hand_over(queued);
        }
        if rows.events.is_empty() {
            return;
        }
        self.facts
            .published(&rows.events, total, total.saturating_sub(taken));
    }
}

/// Writes one submission under its own savepoint inside `txn`. What the
/// database refuses is that submission's error (the outer `Ok`); a race is
/// written once more, then sent back to be checked again. The outer error
/// is a database that cannot store at all.
async fn write_alone(
    txn: &DatabaseTransaction,
    checked: &Checked,
    config: &TenantConfig,
    rows: &mut Rows,
) -> AppResult<AppResult<Committed>> {
    for _ in 0..2 {
        let savepoint = txn.begin().await?;
        let attempt = async {
            let staged = stage(&savepoint, checked, config, &rows.keys).await?;
            write(&savepoint, &staged.events, &staged.deliveries, None).await?;
            Ok::<_, WriteError>(staged)
        }
        .await;
        match attempt {
            Ok(staged) => {
                savepoint.commit().await?;
                return Ok(Ok(Committed::Stored(rows.add(staged))));
            }
            Err(WriteError::Refused(err @ AppError::Unavailable(_))) => return Err(err),
            Err(WriteError::Refused(err)) => {
                savepoint.rollback().await?;
                return Ok(Err(err));
            }
            Err(WriteError::Raced) => savepoint.rollback().await?,
        }
    }
    tracing::debug!("a publish lost a race twice; checking it again");
    Ok(Ok(Committed::CheckAgain))
}

/// Inserts events and their deliveries.
async fn write(
    txn: &DatabaseTransaction,
    events: &[event::Model],
    deliveries: &[delivery::Model],
    holding: Option<&queue::Holding<'_>>,
) -> Result<(), WriteError> {
    insert_events(txn, events).await.map_err(classify)?;
    queue::enqueue(txn, deliveries, holding)
        .await
        .map_err(classify)
}
