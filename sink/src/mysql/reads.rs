//! The read side of [`super::MySqlStore`]: what ingest falls back to and what the checks use.
//! Reads of one user have fixed shapes and go through prepared statements; `IN` lists of ids
//! vary in length and are written as text (see [`super::statements`]).

use super::classify;
use super::statements::{id_list, user_list, Datetime};
use likes_shared::store::{HistoryCursor, LikedItem, RowState, StoreError, StoredCount, UserRows};
use likes_shared::{ContentId, UserId};
use sqlx::mysql::MySqlRow;
use sqlx::{MySqlPool, Row};
use std::collections::HashMap;

/// Milliseconds since the epoch of a `DATETIME(3)` column, independent of the session time zone.
const UPDATED_AT_MS: &str =
    "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', updated_at) DIV 1000";

fn bad_row(e: impl std::fmt::Display) -> StoreError {
    StoreError::Permanent(format!("stored row: {e}"))
}

/// An unsigned column, or a signed expression (a count, a computed time) that is not negative.
fn unsigned(row: &MySqlRow, i: usize) -> Result<u64, StoreError> {
    match row.try_get::<u64, _>(i) {
        Ok(n) => Ok(n),
        Err(_) => {
            let n: i64 = row.try_get(i).map_err(bad_row)?;
            u64::try_from(n).map_err(bad_row)
        }
    }
}

pub(super) fn content(row: &MySqlRow, i: usize) -> Result<ContentId, StoreError> {
    ContentId::new(unsigned(row, i)?).map_err(bad_row)
}

pub(super) fn user(row: &MySqlRow, i: usize) -> Result<UserId, StoreError> {
    UserId::new(unsigned(row, i)?).map_err(bad_row)
}

pub(super) fn row_state(
    row: &MySqlRow,
    liked: usize,
    version: usize,
) -> Result<RowState, StoreError> {
    Ok(RowState {
        liked: row.try_get::<i8, _>(liked).map_err(bad_row)? == 1,
        version: unsigned(row, version)?,
    })
}

pub(super) async fn counts(
    pool: &MySqlPool,
    ids: &[ContentId],
    out: &mut HashMap<ContentId, i64>,
) -> Result<(), StoreError> {
    let sql = format!(
        "SELECT content_id, count FROM like_counts WHERE content_id IN {}",
        id_list(ids)
    );
    for row in sqlx::raw_sql(&sql)
        .fetch_all(pool)
        .await
        .map_err(classify)?
    {
        out.insert(content(&row, 0)?, row.try_get(1).map_err(bad_row)?);
    }
    Ok(())
}

pub(super) async fn fill_counts(
    pool: &MySqlPool,
    ids: &[ContentId],
    out: &mut HashMap<ContentId, StoredCount>,
) -> Result<(), StoreError> {
    let sql = format!(
        "SELECT content_id, count, fill_epoch, epoch_delta FROM like_counts WHERE content_id IN {}",
        id_list(ids)
    );
    for row in sqlx::raw_sql(&sql)
        .fetch_all(pool)
        .await
        .map_err(classify)?
    {
        let stored = StoredCount {
            count: row.try_get(1).map_err(bad_row)?,
            fill_epoch: unsigned(&row, 2)?,
            epoch_delta: row.try_get(3).map_err(bad_row)?,
        };
        out.insert(content(&row, 0)?, stored);
    }
    Ok(())
}

pub(super) async fn states(
    pool: &MySqlPool,
    user_id: UserId,
    ids: &[ContentId],
    out: &mut HashMap<ContentId, RowState>,
) -> Result<(), StoreError> {
    let sql = format!(
        "SELECT content_id, liked, version FROM likes WHERE content_id IN {} AND user_id = {}",
        id_list(ids),
        user_id.get()
    );
    for row in sqlx::raw_sql(&sql)
        .fetch_all(pool)
        .await
        .map_err(classify)?
    {
        out.insert(content(&row, 0)?, row_state(&row, 1, 2)?);
    }
    Ok(())
}

pub(super) async fn user_rows(
    pool: &MySqlPool,
    user_id: UserId,
    limit: usize,
) -> Result<Vec<(ContentId, RowState)>, StoreError> {
    sqlx::query(
        "SELECT content_id, liked, version FROM likes WHERE user_id = ? \
         ORDER BY updated_at DESC, content_id DESC LIMIT ?",
    )
    .bind(user_id.get())
    .bind(limit as u64)
    .fetch_all(pool)
    .await
    .map_err(classify)?
    .iter()
    .map(|row| Ok((content(row, 0)?, row_state(row, 1, 2)?)))
    .collect()
}

/// [`user_rows`] of many users in one statement: their rows in the `by_user` index's order,
/// backwards, with one `LIMIT` of twice `limit` rows over them all, so the server stops the
/// scan there (one heavy user cannot make the read scan all of its likes). The users past the
/// rows read are left out, to be asked again; the first user (the highest id) is always
/// answered: it has fewer rows than the bound, or at least `limit` of them.
pub(super) async fn users_rows(
    pool: &MySqlPool,
    users: &[UserId],
    limit: usize,
) -> Result<Vec<UserRows>, StoreError> {
    let mut users = users.to_vec();
    users.sort_unstable_by(|a, b| b.cmp(a));
    users.dedup();
    if let [user] = users[..] {
        return Ok(vec![(user, user_rows(pool, user, limit).await?)]);
    }
    let bound = limit.max(1).saturating_mul(2);
    let sql = format!(
        "SELECT user_id, content_id, liked, version FROM likes WHERE user_id IN {} \
         ORDER BY user_id DESC, updated_at DESC, content_id DESC LIMIT {bound}",
        user_list(&users)
    );
    let rows = sqlx::raw_sql(&sql)
        .fetch_all(pool)
        .await
        .map_err(classify)?;
    let mut read: HashMap<UserId, Vec<(ContentId, RowState)>> = HashMap::new();
    let mut last = None;
    for row in &rows {
        let owner = user(row, 0)?;
        last = Some(owner);
        read.entry(owner)
            .or_default()
            .push((content(row, 1)?, row_state(row, 2, 3)?));
    }
    let answered: Vec<UserId> = users
        .into_iter()
        .filter(|u| match last {
            // The bound ran out at `cut`: users after it are unread, and `cut` itself is read
            // only as far as its first `limit` rows.
            Some(cut) if rows.len() >= bound => {
                *u > cut || (*u == cut && read.get(u).is_some_and(|r| r.len() >= limit))
            }
            _ => true,
        })
        .collect();
    Ok(answered
        .into_iter()
        .map(|u| {
            let mut rows = read.remove(&u).unwrap_or_default();
            rows.truncate(limit);
            (u, rows)
        })
        .collect())
}

pub(super) async fn history(
    pool: &MySqlPool,
    user_id: UserId,
    cursor: Option<HistoryCursor>,
    limit: usize,
) -> Result<Vec<LikedItem>, StoreError> {
    let select = format!("SELECT content_id, {UPDATED_AT_MS} FROM likes");
    let order = "ORDER BY updated_at DESC, content_id DESC LIMIT ?";
    let rows = match cursor {
        None => {
            sqlx::query(&format!("{select} WHERE user_id = ? AND liked = 1 {order}"))
                .bind(user_id.get())
                .bind(limit as u64)
                .fetch_all(pool)
                .await
        }
        Some(at) => {
            let at_time = Datetime(at.liked_at_ms).to_string();
            sqlx::query(&format!(
                "{select} WHERE user_id = ? AND liked = 1 \
                 AND (updated_at < ? OR (updated_at = ? AND content_id < ?)) {order}"
            ))
            .bind(user_id.get())
            .bind(&at_time)
            .bind(&at_time)
            .bind(at.content_id.get())
            .bind(limit as u64)
            .fetch_all(pool)
            .await
        }
    }
    .map_err(classify)?;
    rows.iter()
        .map(|row| {
            Ok(LikedItem {
                content_id: content(row, 0)?,
                liked_at_ms: unsigned(row, 1)?,
            })
        })
        .collect()
}

pub(super) async fn count_mismatches(
    pool: &MySqlPool,
) -> Result<Vec<(ContentId, i64, i64)>, StoreError> {
    // Both sides read in one snapshot: a window committing meanwhile cannot show as drift.
    let rows = sqlx::query(
        "SELECT content_id, CAST(SUM(stored_count) AS SIGNED), CAST(SUM(actual_count) AS SIGNED) FROM ( \
           SELECT content_id, count AS stored_count, 0 AS actual_count FROM like_counts \
           UNION ALL SELECT content_id, 0, COUNT(*) FROM likes WHERE liked = 1 GROUP BY content_id \
         ) AS both_sides GROUP BY content_id HAVING SUM(stored_count) <> SUM(actual_count) ORDER BY content_id",
    )
    .fetch_all(pool)
    .await
    .map_err(classify)?;
    rows.iter()
        .map(|r| {
            Ok((
                content(r, 0)?,
                r.try_get(1).map_err(bad_row)?,
                r.try_get(2).map_err(bad_row)?,
            ))
        })
        .collect()
}
