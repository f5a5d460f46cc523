//! Sequences of ordered deliveries: parking new ones, and promoting the
//! first open one of a sequence when it becomes first (see the module
//! above for the whole story).

use entity::delivery;
use sea_orm::{ConnectionTrait, DbErr, Value};

use super::returned_ids;
use crate::{
    db::{placeholders, statement, tuples},
    ids::{EndpointId, WebhookId},
};

/// Places a new delivery in its ordered webhook's sequence `key`, parked:
/// [`promote`] makes it due when it is first.
pub fn in_sequence(delivery: &mut delivery::Model, key: String) {
    delivery.ordering_key = Some(key);
    delivery.next_attempt_at = None;
}

/// One sequence of ordered deliveries: an endpoint and an ordering key.
pub type Sequence = (EndpointId, String);

/// The sequences of `deliveries` that are ordered, each once.
pub fn sequences_of<'a>(
    deliveries: impl IntoIterator<Item = &'a delivery::Model>,
) -> Vec<Sequence> {
    let mut found: Vec<Sequence> = deliveries
        .into_iter()
        .filter_map(|d| Some((d.endpoint_id.clone(), d.ordering_key.clone()?)))
        .collect();
    found.sort();
    found.dedup();
    found
}

/// Makes the first queued delivery of each of `sequences` due now, if it
/// is parked. Returns how many it promoted.
pub async fn promote<C: ConnectionTrait>(
    db: &C,
    sequences: &[Sequence],
    now: i64,
) -> Result<u64, DbErr> {
    let mut promoted = 0;
    for chunk in sequences.chunks(200) {
        let mut values: Vec<Value> = vec![now.into()];
        for (endpoint_id, key) in chunk {
            values.push(endpoint_id.as_str().into());
            values.push(key.as_str().into());
        }
        let sequences = format!("(VALUES {}) AS s", tuples(chunk.len(), 2, 2));
        promoted += promote_first(db, &sequences, values).await?;
    }
    Ok(promoted)
}

/// [`promote`] for every sequence with a parked delivery (of one webhook,
/// when given): the safety net for a promotion a crash left undone.
pub async fn promote_stranded<C: ConnectionTrait>(
    db: &C,
    webhook: Option<&WebhookId>,
    now: i64,
) -> Result<u64, DbErr> {
    let mut values: Vec<Value> = vec![now.into()];
    let of_webhook = match webhook {
        Some(id) => {
            values.push(id.as_str().into());
            " AND webhook_id = $2"
        }
        None => "",
    };
    let sequences = format!(
        "(SELECT DISTINCT endpoint_id AS column1, ordering_key AS column2 FROM delivery_queue \
         WHERE ordering_key IS NOT NULL AND due_at IS NULL{of_webhook}) AS s"
    );
    promote_first(db, &sequences, values).await
}

/// Makes due the first queued delivery of each sequence in `sequences` (an
/// SQL table of (endpoint id, key) as `column1`, `column2`) that is parked,
/// then says so on its delivery's row (for display; see the module above).
async fn promote_first<C: ConnectionTrait>(
    db: &C,
    sequences: &str,
    values: Vec<Value>,
) -> Result<u64, DbErr> {
    let sql = format!(
        "UPDATE delivery_queue SET due_at = $1 \
         WHERE due_at IS NULL AND id IN ( \
             SELECT (SELECT p.id FROM delivery_queue p \
                 WHERE p.endpoint_id = s.column1 AND p.ordering_key = s.column2 \
                 ORDER BY p.ordering_seq, p.id LIMIT 1) \
             FROM {sequences}) \
         RETURNING id"
    );
    let backend = db.get_database_backend();
    let promoted = returned_ids(db, statement(backend, &sql, values.clone())).await?;
    for chunk in promoted.chunks(500) {
        let mut values: Vec<Value> = vec![values[0].clone()];
        values.extend(chunk.iter().map(|id| Value::from(id.as_str())));
        let sql = format!(
            "UPDATE deliveries SET next_attempt_at = $1, updated_at = $1 WHERE id IN ({})",
            placeholders(2, chunk.len())
        );
        db.execute_raw(statement(backend, &sql, values)).await?;
    }
    Ok(promoted.len() as u64)
}
