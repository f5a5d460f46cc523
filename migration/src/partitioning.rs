//! History partitions on PostgreSQL: what they are named and where a day
//! begins in each table. Shared by the migration that partitions the tables
//! and by hookline's own upkeep, which makes days ahead and drops expired ones.
//!
//! `events`, `deliveries` and `delivery_attempts` are range-partitioned by
//! their id. An id is a type prefix and a lowercase ULID, whose first ten
//! characters are its creation time in milliseconds, so ids sort by time and
//! a span of time is the id range from its first possible id to the next
//! span's. The primary key stays `(id)`, every lookup by id reaches one
//! partition, and no column was added. Partitions: `<table>_history`
//! (everything a database held when it was partitioned, bounded above),
//! `<table>_pYYYYMMDD` (the week, in UTC, starting that Monday),
//! `<table>_default` (an id outside every week, which should stay empty; it
//! keeps a write from ever failing).
//!
//! A week, not a day: every statement that cannot be pruned to one partition
//! at planning (a prepared statement, a join on ids, the queue's scan of open
//! deliveries) opens and locks every partition with its indexes. Measured on
//! PostgreSQL 15 with one event per request to 5 endpoints, 30 daily
//! partitions behind cost PostgreSQL 50 % more CPU per event than five
//! (the recorder's batched settle went from 5 to 8.6 ms). With weeks, a
//! 30-day retention keeps about seven partitions; a day is kept at most a
//! week past the retention period.

/// The partitioned tables with their ids' prefixes, in the order partitions of
/// one day are made (a delivery's event first); dropped in reverse.
pub const TABLES: [(&str, &str); 3] = [
    ("events", "evt_"),
    ("deliveries", "dlv_"),
    ("delivery_attempts", "att_"),
];

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;
/// Days in a partition.
pub const SPAN_DAYS: i64 = 7;

const CROCKFORD: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// The smallest id with `prefix` made at `ms` (epoch milliseconds): every id
/// made at or after `ms` sorts at or after it.
pub fn id_floor(prefix: &str, ms: i64) -> String {
    let ms = ms.max(0) as u64;
    let mut id = String::with_capacity(prefix.len() + 26);
    id.push_str(prefix);
    for i in (0..10).rev() {
        id.push(CROCKFORD[((ms >> (5 * i)) & 31) as usize] as char);
    }
    id.push_str("0000000000000000");
    id
}

/// The first day of the partition holding `day` (days since the epoch): its
/// Monday (the epoch's day 4 was one).
pub fn span_start(day: i64) -> i64 {
    day - (day - 4).rem_euclid(SPAN_DAYS)
}

/// The name of `table`'s partition starting on `start` (days since the epoch).
pub fn span_partition(table: &str, start: i64) -> String {
    let date = civil_date(start);
    format!("{table}_p{date}")
}

/// `YYYYMMDD` of a day since the epoch (Howard Hinnant's days-to-civil).
fn civil_date(day: i64) -> String {
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}")
}

/// How full PostgreSQL fills a page of a `deliveries` partition (per cent):
/// the rest is room for the new versions of rows settled.
pub const DELIVERIES_FILLFACTOR: u32 = 70;

/// The statements that make `table`'s partition of the span starting on
/// `start`: a plain table like the parent, attached (which locks the parent
/// less than creating it as a partition would, and makes its indexes).
pub fn make_span(table: &str, prefix: &str, start: i64) -> [String; 2] {
    let name = span_partition(table, start);
    // A delivery's row is rewritten when it settles: room on its page lets
    // PostgreSQL do it without new index entries (see the migration
    // `settle_in_place`).
    let with = if table == "deliveries" {
        format!(" WITH (fillfactor = {DELIVERIES_FILLFACTOR})")
    } else {
        String::new()
    };
    [
        format!(
            "CREATE TABLE IF NOT EXISTS {name} \
             (LIKE {table} INCLUDING DEFAULTS INCLUDING STORAGE INCLUDING COMPRESSION){with}"
        ),
        format!(
            "ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES FROM ('{}') TO ('{}')",
            id_floor(prefix, start * DAY_MS),
            id_floor(prefix, (start + SPAN_DAYS) * DAY_MS)
        ),
    ]
}

/// The statements that make every table's partitions of the weeks from the
/// one holding `first_day` up to, not including, the one holding `until_day`
/// (days since the epoch): a past that a database keeping history has.
pub fn make_weeks(first_day: i64, until_day: i64) -> Vec<String> {
    let weeks = span_start(first_day)..span_start(until_day);
    weeks
        .step_by(SPAN_DAYS as usize)
        .flat_map(|start| {
            TABLES
                .iter()
                .flat_map(move |(table, prefix)| make_span(table, prefix, start))
        })
        .collect()
}
