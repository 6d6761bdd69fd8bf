//! The SQL of [`super::SqliteStore`], one function per statement shape.

use super::{classify, from_db, to_db};
use crate::transitions::RowKey;
use likes_shared::store::{
    HistoryCursor, LikeChange, LikedItem, RowState, StoreError, StoredCount,
};
use likes_shared::{ContentId, UserId};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};
use std::collections::HashMap;

fn content(n: i64) -> Result<ContentId, StoreError> {
    ContentId::new(from_db(n)).map_err(|e| StoreError::Permanent(format!("stored row: {e}")))
}

fn user(n: i64) -> Result<UserId, StoreError> {
    UserId::new(from_db(n)).map_err(|e| StoreError::Permanent(format!("stored row: {e}")))
}

pub(super) async fn read_rows(
    conn: &mut SqliteConnection,
    keys: &[RowKey],
    out: &mut HashMap<RowKey, RowState>,
) -> Result<(), StoreError> {
    let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
        "SELECT content_id, user_id, liked, version FROM likes WHERE (content_id, user_id) IN (VALUES ",
    );
    let mut sep = q.separated(", ");
    for (c, u) in keys {
        sep.push("(")
            .push_bind_unseparated(to_db(c.get()))
            .push_unseparated(", ")
            .push_bind_unseparated(to_db(u.get()))
            .push_unseparated(")");
    }
    q.push(")");
    for row in q.build().fetch_all(&mut *conn).await.map_err(classify)? {
        let key = (content(row.get(0))?, user(row.get(1))?);
        out.insert(
            key,
            RowState {
                liked: row.get::<i64, _>(2) == 1,
                version: from_db(row.get(3)),
            },
        );
    }
    Ok(())
}

pub(super) async fn upsert_rows(
    conn: &mut SqliteConnection,
    rows: &[LikeChange],
) -> Result<(), StoreError> {
    let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
        "INSERT INTO likes (content_id, user_id, liked, version, updated_at_ms) ",
    );
    q.push_values(rows, |mut b, r| {
        b.push_bind(to_db(r.content_id.get()))
            .push_bind(to_db(r.user_id.get()))
            .push_bind(i64::from(r.liked))
            .push_bind(to_db(r.version))
            .push_bind(to_db(r.ts_ms));
    });
    q.push(
        " ON CONFLICT (content_id, user_id) DO UPDATE SET liked = excluded.liked, \
         version = excluded.version, updated_at_ms = excluded.updated_at_ms",
    );
    q.build().execute(&mut *conn).await.map_err(classify)?;
    Ok(())
}

pub(super) async fn add_counts(
    conn: &mut SqliteConnection,
    deltas: &[(ContentId, i64)],
    now_ms: u64,
) -> Result<(), StoreError> {
    let mut q: QueryBuilder<Sqlite> =
        QueryBuilder::new("INSERT INTO like_counts (content_id, count, updated_at_ms) ");
    q.push_values(deltas, |mut b, (c, d)| {
        b.push_bind(to_db(c.get()))
            .push_bind(*d)
            .push_bind(to_db(now_ms));
    });
    q.push(
        " ON CONFLICT (content_id) DO UPDATE SET count = like_counts.count + excluded.count, \
         updated_at_ms = excluded.updated_at_ms",
    );
    q.build().execute(&mut *conn).await.map_err(classify)?;
    Ok(())
}

/// Adds each content's fill-epoch delta to its count row (see the MySQL statement of the same
/// name). SQLite's `DO UPDATE SET` reads the old row in every assignment.
pub(super) async fn add_epoch_deltas(
    conn: &mut SqliteConnection,
    deltas: &[(ContentId, u64, i64)],
    now_ms: u64,
) -> Result<(), StoreError> {
    let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
        "INSERT INTO like_counts (content_id, count, updated_at_ms, fill_epoch, epoch_delta) ",
    );
    q.push_values(deltas, |mut b, (c, epoch, delta)| {
        b.push_bind(to_db(c.get()))
            .push_bind(0i64)
            .push_bind(to_db(now_ms))
            .push_bind(to_db(*epoch))
            .push_bind(*delta);
    });
    q.push(
        " ON CONFLICT (content_id) DO UPDATE SET epoch_delta = CASE \
         WHEN excluded.fill_epoch = like_counts.fill_epoch \
         THEN like_counts.epoch_delta + excluded.epoch_delta \
         WHEN excluded.fill_epoch > like_counts.fill_epoch THEN excluded.epoch_delta \
         ELSE like_counts.epoch_delta END, \
         fill_epoch = MAX(like_counts.fill_epoch, excluded.fill_epoch)",
    );
    q.build().execute(&mut *conn).await.map_err(classify)?;
    Ok(())
}

pub(super) async fn read_fill_counts(
    pool: &SqlitePool,
    ids: &[ContentId],
    out: &mut HashMap<ContentId, StoredCount>,
) -> Result<(), StoreError> {
    let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
        "SELECT content_id, count, fill_epoch, epoch_delta FROM like_counts WHERE content_id IN ",
    );
    push_id_list(&mut q, ids);
    for row in q.build().fetch_all(pool).await.map_err(classify)? {
        let stored = StoredCount {
            count: row.get(1),
            fill_epoch: from_db(row.get(2)),
            epoch_delta: row.get(3),
        };
        out.insert(content(row.get(0))?, stored);
    }
    Ok(())
}

fn push_id_list(q: &mut QueryBuilder<Sqlite>, ids: &[ContentId]) {
    q.push("(");
    let mut sep = q.separated(", ");
    for c in ids {
        sep.push_bind(to_db(c.get()));
    }
    q.push(")");
}

pub(super) async fn read_counts(
    pool: &SqlitePool,
    ids: &[ContentId],
    out: &mut HashMap<ContentId, i64>,
) -> Result<(), StoreError> {
    let mut q: QueryBuilder<Sqlite> =
        QueryBuilder::new("SELECT content_id, count FROM like_counts WHERE content_id IN ");
    push_id_list(&mut q, ids);
    for row in q.build().fetch_all(pool).await.map_err(classify)? {
        out.insert(content(row.get(0))?, row.get(1));
    }
    Ok(())
}

pub(super) async fn read_states(
    pool: &SqlitePool,
    user_id: UserId,
    ids: &[ContentId],
    out: &mut HashMap<ContentId, RowState>,
) -> Result<(), StoreError> {
    let mut q: QueryBuilder<Sqlite> =
        QueryBuilder::new("SELECT content_id, liked, version FROM likes WHERE user_id = ");
    q.push_bind(to_db(user_id.get()))
        .push(" AND content_id IN ");
    push_id_list(&mut q, ids);
    for row in q.build().fetch_all(pool).await.map_err(classify)? {
        let state = RowState {
            liked: row.get::<i64, _>(1) == 1,
            version: from_db(row.get(2)),
        };
        out.insert(content(row.get(0))?, state);
    }
    Ok(())
}

pub(super) async fn user_rows(
    pool: &SqlitePool,
    user_id: UserId,
    limit: usize,
) -> Result<Vec<(ContentId, RowState)>, StoreError> {
    sqlx::query(
        "SELECT content_id, liked, version FROM likes WHERE user_id = ? \
         ORDER BY updated_at_ms DESC, content_id DESC LIMIT ?",
    )
    .bind(to_db(user_id.get()))
    .bind(limit as i64)
    .fetch_all(pool)
    .await
    .map_err(classify)?
    .into_iter()
    .map(|row| {
        let state = RowState {
            liked: row.get::<i64, _>(1) == 1,
            version: from_db(row.get(2)),
        };
        Ok((content(row.get(0))?, state))
    })
    .collect()
}

pub(super) async fn history(
    pool: &SqlitePool,
    user_id: UserId,
    cursor: Option<HistoryCursor>,
    limit: usize,
) -> Result<Vec<LikedItem>, StoreError> {
    let mut q: QueryBuilder<Sqlite> =
        QueryBuilder::new("SELECT content_id, updated_at_ms FROM likes WHERE user_id = ");
    q.push_bind(to_db(user_id.get())).push(" AND liked = 1");
    if let Some(at) = cursor {
        q.push(" AND (updated_at_ms, content_id) < (")
            .push_bind(to_db(at.liked_at_ms))
            .push(", ")
            .push_bind(to_db(at.content_id.get()))
            .push(")");
    }
    q.push(" ORDER BY updated_at_ms DESC, content_id DESC LIMIT ")
        .push_bind(limit as i64);
    q.build()
        .fetch_all(pool)
        .await
        .map_err(classify)?
        .into_iter()
        .map(|row| {
            Ok(LikedItem {
                content_id: content(row.get(0))?,
                liked_at_ms: from_db(row.get(1)),
            })
        })
        .collect()
}

pub(super) async fn count_mismatches(
    pool: &SqlitePool,
) -> Result<Vec<(ContentId, i64, i64)>, StoreError> {
    let rows = sqlx::query(
        "SELECT content_id, SUM(stored), SUM(actual) FROM ( \
           SELECT content_id, count AS stored, 0 AS actual FROM like_counts \
           UNION ALL SELECT content_id, 0, COUNT(*) FROM likes WHERE liked = 1 GROUP BY content_id \
         ) GROUP BY content_id HAVING SUM(stored) != SUM(actual) ORDER BY content_id",
    )
    .fetch_all(pool)
    .await
    .map_err(classify)?;
    rows.into_iter()
        .map(|r| Ok((content(r.get(0))?, r.get(1), r.get(2))))
        .collect()
}
