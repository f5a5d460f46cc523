//! Raw statements and their `$n` placeholders, numbered as PostgreSQL
//! takes them and rewritten for SQLite.

use sea_orm::{DbBackend, Statement, Value};

/// `count` placeholders from `$first` on, for [`statement`]: `$3, $4, $5`.
pub fn placeholders(first: usize, count: usize) -> String {
    let mut list = String::with_capacity(count * 6);
    push_placeholders(&mut list, first, count);
    list
}

/// `rows` parenthesised groups of `width` placeholders, numbered from
/// `$first` on, for a `VALUES` list: `tuples(2, 2, 3)` is `($3, $4), ($5, $6)`.
pub fn tuples(rows: usize, width: usize, first: usize) -> String {
    let mut list = String::with_capacity(rows * (width * 6 + 4));
    for row in 0..rows {
        if row > 0 {
            list.push_str(", ");
        }
        list.push('(');
        push_placeholders(&mut list, first + row * width, width);
        list.push(')');
    }
    list
}

/// Appends [`placeholders`] to `list`, written in place: a multi-row
/// statement has hundreds of them.
fn push_placeholders(list: &mut String, first: usize, count: usize) {
    use std::fmt::Write as _;
    for n in first..first + count {
        if n > first {
            list.push_str(", ");
        }
        // Writing to a String cannot fail.
        let _ = write!(list, "${n}");
    }
}

/// A raw statement written with `$n` placeholders (see [`sqlite_placeholders`]
/// for SQLite's form).
pub fn statement(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    let sql = if backend == DbBackend::Sqlite {
        sqlite_placeholders(sql)
    } else {
        sql.to_owned()
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// `sql`'s `$n` placeholders as SQLite takes them: `?` each when they come
/// once each in order from `$1` (SQLite numbers a bare `?` by its place),
/// else `?n`. sqlx binds a `?n` by asking SQLite its name, which SQLite finds
/// by walking its list of names from the start, so binding n of them costs
/// n²/2 steps: a 61-row insert into the queue, 610 parameters, spent more
/// time there than in the insert, a tenth of the server's CPU when
/// publishing in batches to ten endpoints. A bare `?` has no name to find.
fn sqlite_placeholders(sql: &str) -> String {
    let numbered = || sql.replace('$', "?");
    let mut bare = String::with_capacity(sql.len());
    let mut rest = sql;
    let mut next = 1;
    while let Some(at) = rest.find('$') {
        bare.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if after[..digits].parse::<usize>() != Ok(next) {
            return numbered();
        }
        bare.push('?');
        next += 1;
        rest = &after[digits..];
    }
    bare.push_str(rest);
    bare
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuples_number_their_placeholders_row_by_row() {
        assert_eq!(tuples(2, 2, 3), "($3, $4), ($5, $6)");
        assert_eq!(tuples(1, 3, 1), "($1, $2, $3)");
        assert_eq!(tuples(0, 4, 1), "");
        assert_eq!(placeholders(9, 3), "$9, $10, $11");
    }

    /// What [`statement`] gives SQLite for `sql`.
    fn sqlite(sql: &str) -> String {
        statement(DbBackend::Sqlite, sql, Vec::new()).sql
    }

    #[test]
    fn sqlite_binds_placeholders_in_order_by_place() {
        let sql = format!("UPDATE t SET a = $1 FROM (VALUES {}) AS v", tuples(2, 2, 2));
        assert_eq!(
            sqlite(&sql),
            "UPDATE t SET a = ? FROM (VALUES (?, ?), (?, ?)) AS v"
        );
        assert_eq!(sqlite("SELECT 1"), "SELECT 1");
        let many = format!("INSERT INTO q VALUES {}", tuples(61, 10, 1));
        assert!(!sqlite(&many).contains("?1"));
    }

    #[test]
    fn sqlite_keeps_numbers_when_placeholders_repeat_or_skip() {
        assert_eq!(sqlite("$1 OR $1"), "?1 OR ?1");
        assert_eq!(sqlite("$2, $1"), "?2, ?1");
        assert_eq!(sqlite("$1, $3"), "?1, ?3");
        assert_eq!(sqlite("$1 || '$'"), "?1 || '?'");
    }
}
