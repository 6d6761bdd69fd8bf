//! How far the changes of a content's newest count fill moved its count: what
//! `like_counts.epoch_delta` adds up beside `count`.
//!
//! # Why the store keeps it
//! The state cache moves a cached count with every change it applies, but a count it lost is
//! only ever refilled from the store, which lags the changes on their way to it. A content that
//! keeps changing never has a moment when the store holds all of them. So the cache starts a
//! *fill epoch* instead: from then on it adds up, beside the missing count, the moves of the
//! changes it applies, and tags their events with the epoch. Once every change from before the
//! epoch is in the store (the lag bound), the count is `store count − epoch_delta + the
//! cache's sum`: the store's count holds the epoch's changes that already landed, and
//! `epoch_delta` says how far exactly those moved it.
//!
//! A change's share is its transition from the state before it *in version order*: an untagged
//! change (from before the epoch) in the same window still moves the running state, so the
//! tagged change after it counts from there (the collapse keeps the two apart for this). Only the
//! newest epoch of the window is counted; older tags are changes from before it. A change that is
//! not newer than the state before it writes nothing and moves nothing (I2, I4).

use crate::transitions::RowKey;
use likes_shared::store::{LikeChange, RowState};
use likes_shared::ContentId;
use std::collections::HashMap;

/// `(content, epoch, delta)` for each content whose newest epoch in `changes` moved its count,
/// in content order. `current` holds the rows as they are inside the transaction.
pub fn epoch_deltas(
    current: &HashMap<RowKey, RowState>,
    changes: &[LikeChange],
) -> Vec<(ContentId, u64, i64)> {
    let mut tagged: Vec<&LikeChange> = Vec::new();
    let mut newest: HashMap<ContentId, u64> = HashMap::new();
    for change in changes.iter().filter(|c| c.fill_epoch != 0) {
        let epoch = newest.entry(change.content_id).or_default();
        *epoch = (*epoch).max(change.fill_epoch);
    }
    if newest.is_empty() {
        return Vec::new();
    }
    // Every change of a (content, user) that has a tagged change, untagged ones included.
    tagged.extend(
        changes
            .iter()
            .filter(|c| newest.contains_key(&c.content_id)),
    );
    tagged.sort_unstable_by_key(|c| (c.content_id, c.user_id, c.version));
    let mut out: Vec<(ContentId, u64, i64)> = Vec::new();
    for pair in tagged.chunk_by(|a, b| (a.content_id, a.user_id) == (b.content_id, b.user_id)) {
        let key = (pair[0].content_id, pair[0].user_id);
        let epoch = newest[&key.0];
        let mut running = current.get(&key).copied();
        let mut moved = 0i64;
        for change in pair {
            if running.is_some_and(|row| change.version <= row.version) {
                continue;
            }
            let was = running.is_some_and(|row| row.liked);
            if change.fill_epoch == epoch {
                moved += i64::from(change.liked) - i64::from(was);
            }
            running = Some(RowState {
                liked: change.liked,
                version: change.version,
            });
        }
        match out.last_mut() {
            Some((content, _, delta)) if *content == key.0 => *delta += moved,
            _ => out.push((key.0, epoch, moved)),
        }
    }
    out.retain(|(_, _, delta)| *delta != 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use likes_shared::UserId;

    fn change(user: u64, liked: bool, version: u64, fill_epoch: u64) -> LikeChange {
        LikeChange {
            content_id: c(1),
            user_id: UserId::new(user).expect("non-zero"),
            liked,
            version,
            ts_ms: version,
            fill_epoch,
        }
    }

    fn c(n: u64) -> ContentId {
        ContentId::new(n).expect("non-zero")
    }

    fn row(user: u64, liked: bool, version: u64) -> (RowKey, RowState) {
        (
            (c(1), UserId::new(user).expect("non-zero")),
            RowState { liked, version },
        )
    }

    #[test]
    fn untagged_windows_count_nothing() {
        assert_eq!(
            epoch_deltas(&HashMap::new(), &[change(1, true, 5, 0)]),
            vec![]
        );
    }

    #[test]
    fn a_tagged_change_counts_its_transition_from_the_stored_row() {
        let current = HashMap::from([row(1, true, 4)]);
        let changes = [change(1, false, 9, 70), change(2, true, 9, 70)];
        // User 1: 1 → 0, user 2: nothing → 1; together nothing.
        assert_eq!(epoch_deltas(&current, &changes), vec![]);
        let changes = [change(1, false, 9, 70), change(2, false, 9, 70)];
        assert_eq!(epoch_deltas(&current, &changes), vec![(c(1), 70, -1)]);
    }

    #[test]
    fn a_change_from_before_the_epoch_in_the_same_window_moves_the_start() {
        // Stored: not liked. Before the epoch the user liked (v3), during it unliked (v9): the
        // epoch's change is 1 → 0, whatever the store's row said before the window.
        let current = HashMap::from([row(1, false, 2)]);
        let changes = [change(1, false, 9, 70), change(1, true, 3, 0)];
        assert_eq!(epoch_deltas(&current, &changes), vec![(c(1), 70, -1)]);
    }

    #[test]
    fn older_or_equal_versions_and_older_epochs_move_nothing() {
        let current = HashMap::from([row(1, true, 10)]);
        let changes = [
            change(1, false, 10, 70),
            change(1, false, 7, 70),
            change(2, true, 5, 60),
            change(2, false, 6, 70),
            change(2, true, 8, 70),
        ];
        // User 1: nothing newer. User 2: 60's like is before epoch 70; 70's changes end where
        // they started (1 → 0 → 1).
        assert_eq!(epoch_deltas(&current, &changes), vec![]);
        let changes = [change(2, true, 5, 60), change(3, true, 6, 70)];
        assert_eq!(epoch_deltas(&current, &changes), vec![(c(1), 70, 1)]);
    }
}
