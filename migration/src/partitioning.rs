//! History partitions on PostgreSQL: what they are named and where a day
//! begins in each table. Shared by the migration that partitions the tables
//! and by hookline's own upkeep, which makes days ahead and drops expired ones.
//!
//! `events`, `deliveries` and `delivery_attempts` are range-partitioned by
//! their id. An id is a type prefix and a lowercase ULID, whose first ten
//! characters are its creation time in milliseconds, so ids sort by time and
//! one UTC day of a table is the id range from the day's first possible id
//! to the next day's. The primary key stays `(id)`, every lookup by id reaches
//! one partition, and no column was added. Partitions: `<table>_history`
//! (everything a database held when it was partitioned, bounded above),
//! `<table>_pYYYYMMDD` (one UTC day), `<table>_default` (an id outside every
//! day, which should stay empty; it keeps a write from ever failing).

/// The partitioned tables with their ids' prefixes, in the order partitions of
/// one day are made (a delivery's event first); dropped in reverse.
pub const TABLES: [(&str, &str); 3] = [
    ("events", "evt_"),
    ("deliveries", "dlv_"),
    ("delivery_attempts", "att_"),
];

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

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

/// The partition of `table` holding the UTC day `day` (days since the epoch).
pub fn day_partition(table: &str, day: i64) -> String {
    let date = civil_date(day);
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

/// The statements that make `table`'s partition for `day`: a plain table
/// like the parent, attached (which locks the parent less than creating it
/// as a partition would, and finds its indexes made on the way).
pub fn make_day(table: &str, prefix: &str, day: i64) -> [String; 2] {
    let name = day_partition(table, day);
    [
        format!(
            "CREATE TABLE IF NOT EXISTS {name} \
             (LIKE {table} INCLUDING DEFAULTS INCLUDING STORAGE INCLUDING COMPRESSION)"
        ),
        format!(
            "ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES FROM ('{}') TO ('{}')",
            id_floor(prefix, day * DAY_MS),
            id_floor(prefix, (day + 1) * DAY_MS)
        ),
    ]
}
