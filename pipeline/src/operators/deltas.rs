//! Per-content net change of a collapsed window, as an *estimate*.
//!
//! Each collapsed change counts +1 if it ends liked and -1 if it ends unliked. That is what the
//! window *asks for*, not what it *does*: a like of an already-liked row (a redelivery, a
//! double tap across windows, a replayed dead letter) changes nothing, and neither does an
//! unlike of a row that was never liked. Only the sink knows, because only it reads the stored
//! rows inside the transaction, so exact counts come from the row transitions it makes (I2) and
//! never from here. Each row's true effect is either 0 or the sign estimated here, so the
//! estimate errs only by over-stating activity, which is the right side to err on for what it
//! feeds: trending and throughput metrics, before the sink has committed.

use likes_shared::cache::like_delta;
use likes_shared::store::LikeChange;
use likes_shared::ContentId;

/// Computes per-content estimated deltas, reusing its output buffer between windows.
#[derive(Debug, Default)]
pub struct ContentDeltas {
    deltas: Vec<(ContentId, i64)>,
}

impl ContentDeltas {
    pub fn new() -> Self {
        Self::default()
    }

    /// The net estimated delta per content of `changes`, sorted by content; contents that net to
    /// zero are left out. Linear when `changes` is sorted by content, as
    /// [`PerUserCollapse`](super::PerUserCollapse) emits it; other orders are sorted first.
    pub fn estimate(&mut self, changes: &[LikeChange]) -> &[(ContentId, i64)] {
        self.deltas.clear();
        for (i, change) in changes.iter().enumerate() {
            // The collapse keeps one change per pair and fill epoch, the newest last: only that
            // one says where the pair ends.
            let pair = (change.content_id, change.user_id);
            if changes
                .get(i + 1)
                .is_some_and(|next| (next.content_id, next.user_id) == pair)
            {
                continue;
            }
            let delta = like_delta(change.liked);
            match self.deltas.last_mut() {
                Some((content, sum)) if *content == change.content_id => *sum += delta,
                _ => self.deltas.push((change.content_id, delta)),
            }
        }
        if !self.deltas.is_sorted_by_key(|&(content, _)| content) {
            self.merge_unsorted_runs();
        }
        self.deltas.retain(|&(_, delta)| delta != 0);
        &self.deltas
    }

    fn merge_unsorted_runs(&mut self) {
        self.deltas.sort_unstable_by_key(|&(content, _)| content);
        let mut merged = 0;
        for i in 1..self.deltas.len() {
            if self.deltas[i].0 == self.deltas[merged].0 {
                self.deltas[merged].1 += self.deltas[i].1;
            } else {
                merged += 1;
                self.deltas[merged] = self.deltas[i];
            }
        }
        self.deltas.truncate(merged + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use likes_shared::UserId;

    fn change(content: u64, user: u64, liked: bool) -> LikeChange {
        LikeChange {
            user_id: UserId::new(user).expect("non-zero"),
            content_id: ContentId::new(content).expect("non-zero"),
            liked,
            version: 1,
            ts_ms: 0,
            fill_epoch: 0,
        }
    }

    fn run(changes: &[(u64, u64, bool)]) -> Vec<(u64, i64)> {
        let changes: Vec<LikeChange> = changes.iter().map(|&(c, u, l)| change(c, u, l)).collect();
        ContentDeltas::new()
            .estimate(&changes)
            .iter()
            .map(|&(content, delta)| (content.get(), delta))
            .collect()
    }

    #[test]
    fn likes_add_unlikes_subtract_per_content() {
        let out = run(&[(1, 1, true), (1, 2, true), (1, 3, false), (4, 1, false)]);
        assert_eq!(out, vec![(1, 1), (4, -1)]);
    }

    #[test]
    fn contents_that_net_to_zero_are_left_out() {
        assert_eq!(
            run(&[(1, 1, true), (1, 2, false), (2, 1, true)]),
            vec![(2, 1)]
        );
    }

    #[test]
    fn unsorted_input_is_merged_and_sorted() {
        let out = run(&[
            (9, 1, true),
            (1, 1, true),
            (9, 2, true),
            (1, 2, false),
            (5, 1, true),
        ]);
        assert_eq!(out, vec![(5, 1), (9, 2)]);
    }

    #[test]
    fn a_pair_kept_twice_counts_where_it_ends() {
        // A like from before a fill epoch and the unlike during it, both kept by the collapse.
        assert_eq!(run(&[(1, 1, true), (1, 1, false), (1, 2, true)]), vec![]);
    }

    #[test]
    fn empty_window_has_no_deltas() {
        assert_eq!(run(&[]), vec![]);
    }

    #[test]
    fn buffer_is_reused_without_leaking_the_previous_window() {
        let mut deltas = ContentDeltas::new();
        deltas.estimate(&[change(1, 1, true)]);
        let second: Vec<_> = deltas.estimate(&[change(2, 1, false)]).to_vec();
        assert_eq!(second, vec![(ContentId::new(2).expect("non-zero"), -1)]);
    }
}
