//! The heart of exactly-once counting (I2, I4), kept free of any database so every backend
//! applies the same rules and a property test can check them alone.
//!
//! Given the rows as they are inside the transaction and a window of changes, decide which rows
//! to write and how far each count moves. A change wins only with a strictly newer version
//! (an equal version is the same event delivered again); counts move only by transitions that
//! are actually written: 0→1 adds one, 1→0 subtracts one. Redelivered windows and replayed dead
//! letters therefore find nothing newer to write and move nothing.

use likes_shared::store::{ApplyOutcome, LikeChange, RowState};
use likes_shared::{ContentId, UserId};
use std::collections::{BTreeMap, HashMap};

/// What one window will write.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WritePlan {
    /// Rows to upsert, one per key, in (content, user) order.
    pub rows: Vec<LikeChange>,
    /// Non-zero count deltas, in content order.
    pub deltas: Vec<(ContentId, i64)>,
    /// How far each content's newest fill epoch moved its count (`crate::epoch_deltas`).
    pub epoch_deltas: Vec<(ContentId, u64, i64)>,
}

pub type RowKey = (ContentId, UserId);

/// The rows a window touches, each once, in key order: what a backend reads (and locks) before
/// planning. Key order also makes two writers of the same rows lock them in the same order.
pub fn row_keys(changes: &[LikeChange]) -> Vec<RowKey> {
    let mut keys: Vec<RowKey> = changes.iter().map(|c| (c.content_id, c.user_id)).collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

impl WritePlan {
    /// What the committed window did, for the worker.
    pub fn into_outcome(self) -> ApplyOutcome {
        ApplyOutcome {
            rows_written: self.rows.len(),
            count_deltas: self.deltas,
        }
    }
}

pub fn plan_writes(current: &HashMap<RowKey, RowState>, changes: &[LikeChange]) -> WritePlan {
    let mut winners: BTreeMap<RowKey, LikeChange> = BTreeMap::new();
    for change in changes {
        let key = (change.content_id, change.user_id);
        let stored = winners
            .get(&key)
            .map(|w| w.version)
            .or_else(|| current.get(&key).map(|row| row.version));
        if stored.is_none_or(|version| change.version > version) {
            winners.insert(key, *change);
        }
    }
    let mut deltas: BTreeMap<ContentId, i64> = BTreeMap::new();
    for (key, change) in &winners {
        let was_liked = current.get(key).is_some_and(|row| row.liked);
        let delta = i64::from(change.liked) - i64::from(was_liked);
        if delta != 0 {
            *deltas.entry(key.0).or_default() += delta;
        }
    }
    WritePlan {
        rows: winners.into_values().collect(),
        deltas: deltas.into_iter().filter(|(_, d)| *d != 0).collect(),
        epoch_deltas: crate::epoch_deltas::epoch_deltas(current, changes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(content: u64, user: u64, liked: bool, version: u64) -> LikeChange {
        LikeChange {
            content_id: ContentId::new(content).expect("non-zero"),
            user_id: UserId::new(user).expect("non-zero"),
            liked,
            version,
            ts_ms: version,
            fill_epoch: 0,
        }
    }

    fn key(content: u64, user: u64) -> RowKey {
        (
            ContentId::new(content).expect("non-zero"),
            UserId::new(user).expect("non-zero"),
        )
    }

    fn c(n: u64) -> ContentId {
        ContentId::new(n).expect("non-zero")
    }

    #[test]
    fn new_likes_count_and_new_unlikes_leave_tombstones_without_counting() {
        let plan = plan_writes(
            &HashMap::new(),
            &[change(1, 1, true, 5), change(1, 2, false, 5)],
        );
        assert_eq!(plan.rows.len(), 2);
        assert_eq!(plan.deltas, vec![(c(1), 1)]);
    }

    #[test]
    fn older_or_equal_versions_write_nothing() {
        let current = HashMap::from([(
            key(1, 1),
            RowState {
                liked: true,
                version: 10,
            },
        )]);
        let plan = plan_writes(&current, &[change(1, 1, false, 10), change(1, 1, false, 3)]);
        assert_eq!(plan, WritePlan::default());
    }

    #[test]
    fn newer_unlike_of_a_like_subtracts_and_a_relike_of_a_tombstone_adds() {
        let current = HashMap::from([
            (
                key(1, 1),
                RowState {
                    liked: true,
                    version: 10,
                },
            ),
            (
                key(2, 1),
                RowState {
                    liked: false,
                    version: 10,
                },
            ),
            (
                key(3, 1),
                RowState {
                    liked: true,
                    version: 10,
                },
            ),
        ]);
        let plan = plan_writes(
            &current,
            &[
                change(1, 1, false, 11),
                change(2, 1, true, 11),
                change(3, 1, true, 11),
            ],
        );
        assert_eq!(
            plan.rows.len(),
            3,
            "a newer same-state change still records its version"
        );
        assert_eq!(plan.deltas, vec![(c(1), -1), (c(2), 1)]);
    }

    #[test]
    fn duplicates_within_a_window_keep_the_newest_whatever_the_order() {
        let plan = plan_writes(
            &HashMap::new(),
            &[
                change(1, 1, true, 7),
                change(1, 1, false, 9),
                change(1, 1, true, 8),
            ],
        );
        assert_eq!(plan.rows, vec![change(1, 1, false, 9)]);
        assert_eq!(plan.deltas, vec![]);
    }
}
