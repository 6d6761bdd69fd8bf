//! The SQL text of [`super::MySqlStore`]'s window statements, one function per statement shape.
//!
//! Why text and not `?` placeholders: a window statement carries up to
//! [`super::MySqlConfig::rows_per_statement`] rows and the last one of a window any number below
//! that, so placeholder statements would be prepared in hundreds of shapes (a server round trip
//! and a cached server-side statement each; TiDB and MySQL cap both) and run into the protocol's
//! 65 535-placeholder limit. Every value written here is an integer or a datetime that this file
//! formats itself from integers, never text from outside, so there is nothing to escape and no
//! way to inject.

use crate::transitions::RowKey;
use crate::utc::Civil;
use likes_shared::store::LikeChange;
use likes_shared::{ContentId, UserId};
use std::fmt::Write as _;

/// `SELECT … FOR UPDATE` of the rows a window touches. The locking read matters on MariaDB and
/// MySQL: a plain read there is a snapshot that a concurrent writer of the same rows could have
/// moved past, and both would count the same transition. On TiDB in optimistic mode it adds the
/// rows to the commit's conflict check instead of locking now. `FORCE INDEX (PRIMARY)`: left to
/// itself MariaDB may range over `by_user` when users have few rows, and a locking read through
/// it locks every row of those users, in contents other workers own (I5); TiDB keeps its batch
/// point get either way.
pub(super) fn select_rows_for_update(keys: &[RowKey]) -> String {
    let mut sql = String::with_capacity(96 + keys.len() * 44);
    sql.push_str(
        "SELECT content_id, user_id, liked, version FROM likes FORCE INDEX (PRIMARY) \
         WHERE (content_id, user_id) IN (",
    );
    push_separated(&mut sql, keys, |sql, (content, user)| {
        write!(sql, "({},{})", content.get(), user.get())
    });
    sql.push_str(") FOR UPDATE");
    sql
}

/// Multi-row upsert of the winning rows, guarded by version (I4) on top of the plan: even if a
/// row changed after it was read, an older change cannot overwrite a newer one. MySQL and TiDB
/// evaluate the assignments left to right with the new values visible, so `version` is assigned
/// last and the guards before it compare against the stored version.
pub(super) fn upsert_rows(rows: &[LikeChange]) -> String {
    let mut sql = String::with_capacity(160 + rows.len() * 80);
    sql.push_str("INSERT INTO likes (content_id, user_id, liked, version, updated_at) VALUES ");
    push_separated(&mut sql, rows, |sql, row| {
        write!(
            sql,
            "({},{},{},{},'{}')",
            row.content_id.get(),
            row.user_id.get(),
            u8::from(row.liked),
            row.version,
            Datetime(row.ts_ms),
        )
    });
    sql.push_str(
        " ON DUPLICATE KEY UPDATE \
         liked = IF(VALUES(version) > version, VALUES(liked), liked), \
         updated_at = IF(VALUES(version) > version, VALUES(updated_at), updated_at), \
         version = GREATEST(version, VALUES(version))",
    );
    sql
}

/// Moves each count by its window's delta: one row per content per window, however many likes
/// the window held for it (that is what keeps a hot content's counter row from becoming a
/// per-event hotspot).
pub(super) fn add_counts(deltas: &[(ContentId, i64)], now_ms: u64) -> String {
    let now = Datetime(now_ms);
    let mut sql = String::with_capacity(140 + deltas.len() * 56);
    sql.push_str("INSERT INTO like_counts (content_id, count, updated_at) VALUES ");
    push_separated(&mut sql, deltas, |sql, (content, delta)| {
        write!(sql, "({},{delta},'{now}')", content.get())
    });
    sql.push_str(
        " ON DUPLICATE KEY UPDATE count = count + VALUES(count), updated_at = VALUES(updated_at)",
    );
    sql
}

/// Adds each content's fill-epoch delta to its count row (creating it at count 0 if the window
/// moved no count): a newer epoch starts over, an older one is a change from before the newest
/// and adds nothing. `epoch_delta` is assigned before `fill_epoch`, so it compares against the
/// stored epoch (MySQL and TiDB assign left to right with the new values visible).
pub(super) fn add_epoch_deltas(deltas: &[(ContentId, u64, i64)], now_ms: u64) -> String {
    let now = Datetime(now_ms);
    let mut sql = String::with_capacity(360 + deltas.len() * 72);
    sql.push_str(
        "INSERT INTO like_counts (content_id, count, updated_at, fill_epoch, epoch_delta) VALUES ",
    );
    push_separated(&mut sql, deltas, |sql, (content, epoch, delta)| {
        write!(sql, "({},0,'{now}',{epoch},{delta})", content.get())
    });
    sql.push_str(
        " ON DUPLICATE KEY UPDATE \
         epoch_delta = IF(VALUES(fill_epoch) = fill_epoch, epoch_delta + VALUES(epoch_delta), \
         IF(VALUES(fill_epoch) > fill_epoch, VALUES(epoch_delta), epoch_delta)), \
         fill_epoch = GREATEST(fill_epoch, VALUES(fill_epoch))",
    );
    sql
}

/// `(a,b,c)` of content ids, for `IN` lists.
pub(super) fn id_list(ids: &[ContentId]) -> String {
    number_list(ids.iter().map(|id| id.get()))
}

/// `(a,b,c)` of user ids, for `IN` lists.
pub(super) fn user_list(ids: &[UserId]) -> String {
    number_list(ids.iter().map(|id| id.get()))
}

fn number_list(ids: impl ExactSizeIterator<Item = u64>) -> String {
    let ids: Vec<u64> = ids.collect();
    let mut sql = String::with_capacity(2 + ids.len() * 21);
    sql.push('(');
    push_separated(&mut sql, &ids, |sql, id| write!(sql, "{id}"));
    sql.push(')');
    sql
}

/// Writes each item with `push`, a comma between two. Writing to a `String` cannot fail, so the
/// `fmt::Result`s carry nothing.
fn push_separated<T>(
    sql: &mut String,
    items: &[T],
    mut push: impl FnMut(&mut String, &T) -> std::fmt::Result,
) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            sql.push(',');
        }
        let _ = push(sql, item);
    }
}

/// Milliseconds since the Unix epoch as a UTC `DATETIME(3)` literal body
/// (`2026-11-25 04:41:20.123`). A time past year 9999 prints a five-digit year that the server
/// refuses: such an event can never be stored and is dead-lettered, alone (the worker isolates it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Datetime(pub u64);

impl std::fmt::Display for Datetime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Civil::from_unix_ms(self.0).write(f, ' ')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_print_as_mysql_literals() {
        assert_eq!(
            Datetime(1_795_581_680_123).to_string(),
            "2026-11-25 04:41:20.123"
        );
    }

    #[test]
    fn statements_list_every_row_once() {
        let c = |n| ContentId::new(n).expect("non-zero");
        assert_eq!(id_list(&[c(3), c(u64::MAX)]), format!("(3,{})", u64::MAX));
        assert_eq!(
            add_counts(&[(c(7), -2)], 0),
            "INSERT INTO like_counts (content_id, count, updated_at) VALUES \
             (7,-2,'1970-01-01 00:00:00.000') ON DUPLICATE KEY UPDATE \
             count = count + VALUES(count), updated_at = VALUES(updated_at)"
        );
    }
}
