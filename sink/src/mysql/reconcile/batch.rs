//! One batch of a [`super::Reconciliation`] in SQL: where it ends, its check statement, its
//! repair transaction. Why the reads come in this order is in the parent module's docs.

use super::Drift;
use crate::mysql::statements::{id_list, Datetime};
use crate::mysql::{classify, execute_text, fetch_text, reads, MySqlStore};
use likes_shared::store::StoreError;
use likes_shared::ContentId;
use sqlx::mysql::MySqlRow;
use sqlx::{Connection, Row};
use std::collections::HashMap;

/// The contents of one batch, as SQL sees them.
#[derive(Debug, Clone)]
pub(super) enum ContentSet {
    Between(u64, u64),
    Listed(Vec<ContentId>),
}

impl ContentSet {
    fn predicate(&self) -> String {
        match self {
            ContentSet::Between(from, to) => format!("content_id BETWEEN {from} AND {to}"),
            ContentSet::Listed(ids) => format!("content_id IN {}", id_list(ids)),
        }
    }
}

/// One content as the check statement sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Checked {
    pub(super) content_id: ContentId,
    pub(super) stored: Option<i64>,
    pub(super) actual: i64,
}

impl Checked {
    pub(super) fn drift(&self) -> Option<Drift> {
        (self.stored.unwrap_or(0) != self.actual).then_some(Drift {
            content_id: self.content_id,
            stored: self.stored,
            actual: self.actual,
        })
    }
}

/// The ids of the first `limit` count rows and the first `limit` liked contents in
/// `[from, to]`, merged: each list is complete up to its own last id.
pub(super) async fn first_contents(
    store: &MySqlStore,
    from: u64,
    to: u64,
    limit: usize,
) -> Result<(Vec<u64>, Vec<u64>), StoreError> {
    let mut conn = store.pool.acquire().await.map_err(classify)?;
    let with_rows = format!(
        "SELECT content_id FROM like_counts WHERE content_id BETWEEN {from} AND {to} \
         ORDER BY content_id LIMIT {limit}"
    );
    let with_likes = format!(
        "SELECT DISTINCT content_id FROM likes WHERE content_id BETWEEN {from} AND {to} \
         AND liked = 1 ORDER BY content_id LIMIT {limit}"
    );
    let ids = |rows: Vec<MySqlRow>| -> Result<Vec<u64>, StoreError> {
        rows.iter()
            .map(|row| reads::content(row, 0).map(ContentId::get))
            .collect()
    };
    let counted = ids(fetch_text(&mut conn, &with_rows).await?)?;
    let liked = ids(fetch_text(&mut conn, &with_likes).await?)?;
    Ok((counted, liked))
}

/// The last id of the batch that starts where `found` was read: the `limit`-th smallest id of
/// both lists, or `to` when together they hold fewer (then they hold every content left).
/// `None` when nothing is left.
pub(super) fn batch_end(
    (counted, liked): &(Vec<u64>, Vec<u64>),
    limit: usize,
    to: u64,
) -> Option<u64> {
    let mut all: Vec<u64> = counted.iter().chain(liked).copied().collect();
    all.sort_unstable();
    all.dedup();
    match all.get(limit.checked_sub(1)?) {
        Some(&end) => Some(end),
        None if all.is_empty() => None,
        None => Some(to),
    }
}

pub(super) async fn draw_sample(
    store: &MySqlStore,
    contents: usize,
) -> Result<Vec<ContentId>, StoreError> {
    let mut conn = store.pool.acquire().await.map_err(classify)?;
    let sql = format!("SELECT content_id FROM like_counts ORDER BY RAND() LIMIT {contents}");
    fetch_text(&mut conn, &sql)
        .await?
        .iter()
        .map(|row| reads::content(row, 0))
        .collect()
}

/// Both sides of every content in `contents`, in one statement and so one snapshot.
fn check_sql(contents: &ContentSet) -> String {
    let which = contents.predicate();
    format!(
        "SELECT content_id, CAST(SUM(stored_count) AS SIGNED), CAST(SUM(count_rows) AS SIGNED), \
         CAST(SUM(liked_rows) AS SIGNED) FROM ( \
           SELECT content_id, count AS stored_count, 1 AS count_rows, 0 AS liked_rows \
           FROM like_counts WHERE {which} \
           UNION ALL SELECT content_id, 0, 0, COUNT(*) FROM likes \
           WHERE {which} AND liked = 1 GROUP BY content_id \
         ) AS both_sides GROUP BY content_id ORDER BY content_id"
    )
}

fn checked_rows(rows: &[MySqlRow]) -> Result<Vec<Checked>, StoreError> {
    let number = |row: &MySqlRow, i| {
        row.try_get::<i64, _>(i)
            .map_err(|e| StoreError::Permanent(format!("reconcile row: {e}")))
    };
    rows.iter()
        .map(|row| {
            Ok(Checked {
                content_id: reads::content(row, 0)?,
                stored: (number(row, 2)? > 0).then(|| number(row, 1)).transpose()?,
                actual: number(row, 3)?,
            })
        })
        .collect()
}

pub(super) async fn check(
    store: &MySqlStore,
    contents: &ContentSet,
) -> Result<Vec<Checked>, StoreError> {
    let mut conn = store.pool.acquire().await.map_err(classify)?;
    checked_rows(&fetch_text(&mut conn, &check_sql(contents)).await?)
}

/// Sets the drifted counts of `contents` to their recount in one transaction; returns the drift
/// it found and wrote. The order of the reads is the whole point: see the module docs.
pub(super) async fn repair(
    store: &MySqlStore,
    contents: &ContentSet,
) -> Result<Vec<Drift>, StoreError> {
    let mut conn = store.pool.acquire().await.map_err(classify)?;
    // Applies to the next transaction only: a gap lock for every missing count row.
    execute_text(&mut conn, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").await?;
    let mut tx = conn.begin_with(store.begin).await.map_err(classify)?;
    let locked: Option<HashMap<ContentId, i64>> = if store.is_tidb() {
        None
    } else {
        let lock = format!(
            "SELECT content_id, count FROM like_counts WHERE {} ORDER BY content_id FOR UPDATE",
            contents.predicate()
        );
        let rows = fetch_text(&mut tx, &lock).await?;
        let mut locked = HashMap::with_capacity(rows.len());
        for row in &rows {
            let count = row
                .try_get::<i64, _>(1)
                .map_err(|e| StoreError::Permanent(format!("reconcile row: {e}")))?;
            locked.insert(reads::content(row, 0)?, count);
        }
        Some(locked)
    };
    let checked = checked_rows(&fetch_text(&mut tx, &check_sql(contents)).await?)?;
    if let Some(locked) = &locked {
        let snapshot: HashMap<ContentId, i64> = checked
            .iter()
            .filter_map(|c| Some((c.content_id, c.stored?)))
            .collect();
        if &snapshot != locked {
            return Err(StoreError::Permanent(
                "reconcile: the recount's snapshot is older than the locked counts; \
                 refusing to repair (REPEATABLE READ is required)"
                    .into(),
            ));
        }
    }
    let drift: Vec<Drift> = checked.iter().filter_map(Checked::drift).collect();
    if !drift.is_empty() {
        execute_text(&mut tx, &set_counts(&drift, likes_shared::hlc::now_ms())).await?;
    }
    tx.commit().await.map_err(classify)?;
    Ok(drift)
}

/// Sets each drifted count to its recount (inserting a missing row).
fn set_counts(drift: &[Drift], now_ms: u64) -> String {
    let now = Datetime(now_ms);
    let rows: Vec<String> = drift
        .iter()
        .map(|d| format!("({},{},'{now}')", d.content_id.get(), d.actual))
        .collect();
    format!(
        "INSERT INTO like_counts (content_id, count, updated_at) VALUES {} \
         ON DUPLICATE KEY UPDATE count = VALUES(count), updated_at = VALUES(updated_at)",
        rows.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_ends_at_the_nth_content_of_either_table_or_covers_the_rest() {
        let found = |counted: &[u64], liked: &[u64]| (counted.to_vec(), liked.to_vec());
        // Count rows 1, 4, 9 and liked contents 2, 4, 5 (content 2 lacks a count row).
        assert_eq!(batch_end(&found(&[1, 4, 9], &[2, 4, 5]), 3, 100), Some(4));
        assert_eq!(batch_end(&found(&[1, 4], &[2]), 3, 100), Some(4));
        assert_eq!(batch_end(&found(&[1], &[2]), 3, 100), Some(100));
        assert_eq!(batch_end(&found(&[], &[]), 3, 100), None);
        assert_eq!(batch_end(&found(&[7], &[]), 1, u64::MAX), Some(7));
    }

    #[test]
    fn drift_is_a_stored_count_other_than_the_recount_and_a_missing_row_counts_as_zero() {
        let c = |n| ContentId::new(n).expect("non-zero");
        let checked = |stored, actual| Checked {
            content_id: c(1),
            stored,
            actual,
        };
        assert_eq!(checked(Some(3), 3).drift(), None);
        assert_eq!(checked(None, 0).drift(), None);
        assert!(checked(Some(0), 2).drift().is_some());
        assert!(checked(None, 2).drift().is_some());
        assert!(checked(Some(4), 0).drift().is_some());
        assert_eq!(
            set_counts(
                &[Drift {
                    content_id: c(5),
                    stored: None,
                    actual: 2
                }],
                0
            ),
            "INSERT INTO like_counts (content_id, count, updated_at) VALUES \
             (5,2,'1970-01-01 00:00:00.000') ON DUPLICATE KEY UPDATE \
             count = VALUES(count), updated_at = VALUES(updated_at)"
        );
    }
}
