//! Pull feeds: a link scoped to one webhook that a third party polls for the
//! events that webhook matches, oldest first, with a cursor, instead of
//! receiving POSTs (seed 002). The link's token is random (256 bits) and only
//! its SHA-256 is stored.

use std::sync::Arc;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use entity::{event, feed_link};
use rand::RngCore;
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, DatabaseConnection, DbBackend, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
    sea_query::{Expr, ExprTrait},
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{
    targets::Target,
    webhooks::{WebhookService, lock_in_tenant},
};
use crate::{
    db::Db,
    error::{AppError, AppResult},
    ids::{EventId, FeedLinkId, WebhookId},
    time::now_ms,
};

pub const TOKEN_PREFIX: &str = "hlf_";
/// Unrevoked links one webhook may have.
pub const MAX_ACTIVE_LINKS: u64 = 100;
/// Links `list` shows, newest first (revoked ones are kept).
const LISTED_LINKS: u64 = 2 * MAX_ACTIVE_LINKS;
pub const DEFAULT_LIMIT: u64 = 100;
pub const MAX_LIMIT: u64 = 1_000;
/// Events examined per read, at most, in multiples of the limit: a feed whose
/// webhook matches few events answers quickly and moves its cursor on.
const SCAN_FACTOR: u64 = 10;
/// Events read from the database per query of a scan: the bodies one read
/// holds at once besides the page it serves.
const SCAN_CHUNK: u64 = 50;
/// When a read refused for the instance's sake may try again.
const BUSY_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// What feed reads may hold: each page's event bodies at most `page_bytes`
/// (one event always, so a feed moves on), and at most `reads` pages being
/// built at once on the instance; past that a read is `RATE_LIMITED`.
#[derive(Clone)]
pub struct FeedBudget {
    page_bytes: usize,
    reads: Arc<Semaphore>,
}

impl FeedBudget {
    /// Pages of at most `page_bytes`, as many at once as `in_flight` holds.
    pub fn new(page_bytes: usize, in_flight: usize) -> Self {
        let reads = (in_flight / page_bytes.max(1)).max(1);
        Self {
            page_bytes,
            reads: Arc::new(Semaphore::new(reads)),
        }
    }
}

pub struct CreatedFeed {
    pub link: feed_link::Model,
    /// Shown once: only its hash is stored.
    pub token: String,
}

/// One page of a feed.
pub struct FeedPage {
    pub webhook_id: WebhookId,
    /// Each event as endpoints receive it: `{"id","type","timestamp","data"}`.
    pub events: Vec<Value>,
    /// Pass as `after` to read on (`<commit position>.<event id>`); `None`
    /// when nothing was read yet.
    pub next: Option<String>,
    /// Whether more events may be waiting right now.
    pub has_more: bool,
    /// The instance's turn to hold a page: kept until the page is turned
    /// into the response's bytes.
    _turn: OwnedSemaphorePermit,
}

#[derive(Clone)]
pub struct FeedService {
    db: DatabaseConnection,
    read: DatabaseConnection,
    budget: FeedBudget,
}

impl FeedService {
    pub fn new(databases: &Db, budget: FeedBudget) -> Self {
        Self {
            db: databases.write.clone(),
            read: databases.read.clone(),
            budget,
        }
    }

    pub async fn create(
        &self,
        tenant: &str,
        login: &str,
        webhook_id: &WebhookId,
    ) -> AppResult<CreatedFeed> {
        // Counted and made with the webhook's row locked: links made at
        // once cannot pass the cap together.
        let txn = self.db.begin().await?;
        let webhook = lock_in_tenant(&txn, tenant, webhook_id).await?;
        let active = feed_link::Entity::find()
            .filter(feed_link::Column::WebhookId.eq(webhook.id.as_str()))
            .filter(feed_link::Column::RevokedAt.is_null())
            .count(&txn)
            .await?;
        if active >= MAX_ACTIVE_LINKS {
            return Err(AppError::Conflict(format!(
                "the webhook has {active} active feed links, the most it may have; revoke one first"
            )));
        }
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let token = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
        let link = feed_link::ActiveModel {
            id: Set(FeedLinkId::new()),
            tenant_id: Set(tenant.to_owned()),
            webhook_id: Set(webhook.id.clone()),
            token_hash: Set(hash(&token)),
            created_by: Set(login.to_owned()),
            created_at: Set(now_ms()),
            revoked_at: Set(None),
            last_used_at: Set(None),
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        Ok(CreatedFeed { link, token })
    }

    pub async fn revoke(&self, tenant: &str, id: &FeedLinkId) -> AppResult<feed_link::Model> {
        let link = self.find_in_tenant(tenant, id).await?;
        if link.revoked_at.is_some() {
            return Ok(link);
        }
        let mut model: feed_link::ActiveModel = link.into();
        model.revoked_at = Set(Some(now_ms()));
        Ok(model.update(&self.db).await?)
    }

    async fn find_in_tenant(&self, tenant: &str, id: &FeedLinkId) -> AppResult<feed_link::Model> {
        feed_link::Entity::find_by_id(id.clone())
            .filter(feed_link::Column::TenantId.eq(tenant))
            .one(&self.db)
            .await?
            .ok_or(AppError::NotFound("feed link"))
    }

    /// A webhook's links, unrevoked ones first, then newest first (at most
    /// [`LISTED_LINKS`]: every unrevoked one, and the newest revoked ones).
    pub async fn list(
        &self,
        tenant: &str,
        webhook_id: &WebhookId,
    ) -> AppResult<Vec<feed_link::Model>> {
        Ok(feed_link::Entity::find()
            .filter(feed_link::Column::TenantId.eq(tenant))
            .filter(feed_link::Column::WebhookId.eq(webhook_id.as_str()))
            .order_by_desc(Expr::col(feed_link::Column::RevokedAt).is_null())
            .order_by_desc(feed_link::Column::Id)
            .limit(LISTED_LINKS)
            .all(&self.read)
            .await?)
    }

    /// Reads a feed. Unknown and revoked tokens are `NOT_FOUND` alike.
    pub async fn read(
        &self,
        token: &str,
        after: Option<&str>,
        limit: Option<u64>,
    ) -> AppResult<FeedPage> {
        let limit = checked_limit(limit)?;
        let after = checked_cursor(after)?;
        let link = self.live_link(token).await?;
        let webhook =
            WebhookService::find_in_tenant(&self.read, &link.tenant_id, &link.webhook_id).await?;
        // Taken once the link is known to be good: unknown tokens cannot
        // use up the turns.
        let Ok(turn) = self.budget.reads.clone().try_acquire_owned() else {
            return Err(AppError::RateLimited {
                retry_after: BUSY_RETRY,
            });
        };
        let target = Target::of(&webhook, Vec::new());
        let after = match after {
            Some(FeedCursor::Legacy(id)) => Some(self.position_of(&link.tenant_id, id).await?),
            Some(FeedCursor::At(position)) => Some(position),
            None => None,
        };
        let mut page = Selected {
            events: Vec::new(),
            next: after,
            has_more: false,
            bytes: 0,
        };
        let (scan, mut scanned) = (limit * SCAN_FACTOR, 0);
        while scanned < scan && !page.has_more {
            let chunk = Ord::min(SCAN_CHUNK, scan - scanned);
            let rows = self
                .scan(
                    &link.tenant_id,
                    webhook.created_at,
                    page.next.as_ref(),
                    chunk,
                )
                .await?;
            scanned += rows.len() as u64;
            let exhausted = (rows.len() as u64) < chunk;
            select(&rows, &target, limit, self.budget.page_bytes, &mut page);
            if exhausted {
                break;
            }
            page.has_more |= scanned == scan;
        }
        self.mark_used(&link.id).await?;
        Ok(FeedPage {
            webhook_id: webhook.id,
            events: page.events,
            next: page.next.map(|position| position.to_string()),
            has_more: page.has_more,
            _turn: turn,
        })
    }

    /// The unrevoked link a token opens.
    async fn live_link(&self, token: &str) -> AppResult<feed_link::Model> {
        if !token.starts_with(TOKEN_PREFIX) || token.len() > 128 {
            return Err(AppError::NotFound("feed"));
        }
        feed_link::Entity::find()
            .filter(feed_link::Column::TokenHash.eq(hash(token)))
            .filter(feed_link::Column::RevokedAt.is_null())
            .one(&self.read)
            .await?
            .ok_or(AppError::NotFound("feed"))
    }

    /// Up to `scan` of the tenant's events created from `since` on, in feed
    /// order after `after`.
    async fn scan(
        &self,
        tenant: &str,
        since: i64,
        after: Option<&Position>,
        scan: u64,
    ) -> AppResult<Vec<event::Model>> {
        let mut query = event::Entity::find()
            .filter(event::Column::TenantId.eq(tenant))
            .filter(event::Column::CreatedAt.gte(since))
            .order_by_asc(event::Column::CommitSeq)
            .order_by_asc(event::Column::Id)
            .limit(scan);
        if let Some(after) = after {
            query = query.filter(
                Expr::tuple([
                    Expr::col(event::Column::CommitSeq),
                    Expr::col(event::Column::Id),
                ])
                .gt(Expr::tuple([
                    Expr::val(after.commit_seq),
                    Expr::val(after.id.as_str()),
                ])),
            );
        }
        if self.read.get_database_backend() == DbBackend::Postgres {
            // Transactions still open may yet commit rows below positions
            // already served; serve only what lies below the oldest of them.
            query = query.filter(Expr::cust(
                "commit_seq < pg_snapshot_xmin(pg_current_snapshot())::text::bigint",
            ));
        }
        Ok(query.all(&self.read).await?)
    }

    async fn mark_used(&self, link_id: &FeedLinkId) -> AppResult<()> {
        feed_link::Entity::update_many()
            .col_expr(feed_link::Column::LastUsedAt, Expr::value(Some(now_ms())))
            .filter(feed_link::Column::Id.eq(link_id.as_str()))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Where a cursor from before commit order stands: its event's position,
    /// or, once that event has been purged, the start of its id among the
    /// oldest events (re-serving some, never skipping any).
    async fn position_of(&self, tenant: &str, id: EventId) -> AppResult<Position> {
        let commit_seq = event::Entity::find_by_id(id.clone())
            .filter(event::Column::TenantId.eq(tenant))
            .select_only()
            .column(event::Column::CommitSeq)
            .into_tuple::<i64>()
            .one(&self.read)
            .await?
            .unwrap_or(0);
        Ok(Position { commit_seq, id })
    }
}

fn checked_limit(limit: Option<u64>) -> AppResult<u64> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(AppError::bad_input(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        )),
    }
}

fn checked_cursor(after: Option<&str>) -> AppResult<Option<FeedCursor>> {
    after
        .map(|text| {
            FeedCursor::parse(text)
                .ok_or_else(|| AppError::bad_input("after", "is not a cursor this feed gave out"))
        })
        .transpose()
}

/// What one read serves out of the events it scanned.
struct Selected {
    events: Vec<Value>,
    /// Past the last event looked at, served or not, so the next read skips
    /// what the webhook does not match.
    next: Option<Position>,
    /// Whether the limit or the page's bytes stopped the read before the
    /// scan ran out.
    has_more: bool,
    /// The bodies of `events`.
    bytes: usize,
}

/// Adds to `page` the `scanned` events the webhook's `target` wants, up to
/// `limit` events and `page_bytes` of bodies (one event always).
fn select(
    scanned: &[event::Model],
    target: &Target,
    limit: u64,
    page_bytes: usize,
    page: &mut Selected,
) {
    for event in scanned {
        if page.events.len() as u64 == limit {
            page.has_more = true;
            return;
        }
        let wanted = target.wants_stored(event);
        if wanted && !page.events.is_empty() && page.bytes + event.body.len() > page_bytes {
            page.has_more = true;
            return;
        }
        page.next = Some(Position {
            commit_seq: event.commit_seq,
            id: event.id.clone(),
        });
        if wanted {
            page.bytes += event.body.len();
            page.events
                .push(serde_json::from_str(&event.body).unwrap_or(Value::Null));
        }
    }
}

/// An event's place in a feed: commit order first, then id.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Position {
    commit_seq: i64,
    id: EventId,
}

/// Rendered `<commit_seq>.<event id>`.
impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.commit_seq, self.id)
    }
}

/// An `after` parameter as a client sends it.
#[derive(Debug, PartialEq, Eq)]
enum FeedCursor {
    At(Position),
    /// A bare event id, as feeds answered before they followed commit order.
    Legacy(EventId),
}

impl FeedCursor {
    fn parse(text: &str) -> Option<Self> {
        if let Some(id) = EventId::parse(text) {
            return Some(Self::Legacy(id));
        }
        let (commit_seq, id) = text.split_once('.')?;
        let commit_seq = commit_seq
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0 && commit_seq.bytes().all(|b| b.is_ascii_digit()))?;
        let id = EventId::parse(id)?;
        Some(Self::At(Position { commit_seq, id }))
    }
}

fn hash(token: &str) -> String {
    format!("{:x}", Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "evt_01jf3w9k8s6a1n2b3c4d5e6f7g";

    fn event_id() -> EventId {
        EventId::parse(ID).expect("a valid event id")
    }

    #[test]
    fn cursors_round_trip_and_old_ones_still_parse() {
        let position = Position {
            commit_seq: 7_310,
            id: event_id(),
        };
        assert_eq!(
            FeedCursor::parse(&position.to_string()),
            Some(FeedCursor::At(position))
        );
        assert_eq!(FeedCursor::parse(ID), Some(FeedCursor::Legacy(event_id())));
    }

    #[test]
    fn anything_else_is_not_a_cursor() {
        for text in [
            "",
            "7310",
            "7310.",
            ".evt_01jf3w9k8s6a1n2b3c4d5e6f7g",
            "-1.evt_01jf3w9k8s6a1n2b3c4d5e6f7g",
            "+1.evt_01jf3w9k8s6a1n2b3c4d5e6f7g",
            "99999999999999999999.evt_01jf3w9k8s6a1n2b3c4d5e6f7g",
            "1.wh_01jf3w9k8s6a1n2b3c4d5e6f7g",
            "1.evt_01jf3w9k8s6a1n2b3c4d5e6f7g.2",
        ] {
            assert_eq!(FeedCursor::parse(text), None, "{text}");
        }
    }
}
