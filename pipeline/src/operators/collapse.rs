//! Collapsing a window to one change per (user, content).
//!
//! A window may hold several events for one pair: a user toggling, or a redelivery after a
//! failover. Only the newest matters (I4, last writer wins), so the sink gets one row per pair
//! and does one write per row instead of one per event.
//!
//! "Newest" is the highest HLC `version`, not the latest arrival: events of one content share a
//! partition, but ingest instances stamp versions, and a retried publish can land after a newer
//! event. On equal versions the later event in the window wins; equal versions only arise for
//! redeliveries of the same event (the HLC is strictly increasing per instance and the state
//! script bumps past the stored version), where either copy is the same change.
//!
//! One exception keeps two changes for a pair: changes of different [`LikeEvent::fill_epoch`]s
//! stay apart, the newest of each. The sink counts how far a fill's own changes moved the count
//! (`likes_sink::transitions`), and for that it must see the state a fill's first change started
//! from: a like from before the fill, collapsed into an unlike during it, would hide it.
//!
//! The output is sorted by `(content_id, user_id)`, the table's primary key order: the sink
//! writes rows in key order, which makes windows deterministic and lowers TiDB write conflicts
//! between concurrent transactions touching neighbouring keys.

use likes_shared::fast_hash::BuildFoldHasher;
use likes_shared::store::LikeChange;
use likes_shared::LikeEvent;
use std::collections::hash_map::Entry;
use std::collections::HashMap;

/// Collapses windows, reusing its index between windows so a steady stream allocates nothing.
///
/// Memory is bounded by the largest window seen (the window's `max_events`, I7).
#[derive(Debug, Default)]
pub struct PerUserCollapse {
    /// (content, user, fill epoch) → position of that change in the output.
    position_of: HashMap<(u64, u64, u64), usize, BuildFoldHasher>,
}

impl PerUserCollapse {
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces `out` with one change per (user, content) of `events`: the highest version, ties
    /// to the later event; sorted by `(content_id, user_id)`.
    pub fn collapse_into(&mut self, events: &[LikeEvent], out: &mut Vec<LikeChange>) {
        out.clear();
        self.position_of.clear();
        self.position_of.reserve(events.len());
        for event in events {
            let key = (
                event.content_id.get(),
                event.user_id.get(),
                event.fill_epoch,
            );
            match self.position_of.entry(key) {
                Entry::Occupied(position) => {
                    let kept = &mut out[*position.get()];
                    if event.version >= kept.version {
                        *kept = change_of(event);
                    }
                }
                Entry::Vacant(slot) => {
                    slot.insert(out.len());
                    out.push(change_of(event));
                }
            }
        }
        // Pairs are unique now, so an unstable sort is deterministic; one u128 compare per step
        // is cheaper than comparing the two ids in turn.
        out.sort_unstable_by_key(|c| {
            (
                ((c.content_id.get() as u128) << 64) | c.user_id.get() as u128,
                c.version,
            )
        });
    }

    /// [`collapse_into`](Self::collapse_into) into a new `Vec`.
    pub fn collapse(&mut self, events: &[LikeEvent]) -> Vec<LikeChange> {
        let mut out = Vec::with_capacity(events.len());
        self.collapse_into(events, &mut out);
        out
    }
}

/// One-off collapse; prefer a long-lived [`PerUserCollapse`] in a loop.
pub fn collapse(events: &[LikeEvent]) -> Vec<LikeChange> {
    PerUserCollapse::new().collapse(events)
}

fn change_of(event: &LikeEvent) -> LikeChange {
    LikeChange {
        user_id: event.user_id,
        content_id: event.content_id,
        liked: event.action.liked(),
        version: event.version,
        ts_ms: event.ts_ms,
        fill_epoch: event.fill_epoch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use likes_shared::{Action, ContentId, UserId};
    use proptest::prelude::*;

    /// (user, content, like?, version, ts_ms)
    fn event((user, content, like, version, ts_ms): (u64, u64, bool, u64, u64)) -> LikeEvent {
        LikeEvent {
            event_id: 0,
            user_id: UserId::new(user).expect("non-zero"),
            content_id: ContentId::new(content).expect("non-zero"),
            action: if like { Action::Like } else { Action::Unlike },
            version,
            ts_ms,
            source: String::new(),
            fill_epoch: 0,
        }
    }

    /// Collapses and returns (user, content, liked, version, ts_ms) tuples.
    fn run(input: &[(u64, u64, bool, u64, u64)]) -> Vec<(u64, u64, bool, u64, u64)> {
        let events: Vec<LikeEvent> = input.iter().copied().map(event).collect();
        collapse(&events)
            .into_iter()
            .map(|c| {
                (
                    c.user_id.get(),
                    c.content_id.get(),
                    c.liked,
                    c.version,
                    c.ts_ms,
                )
            })
            .collect()
    }

    #[test]
    fn highest_version_wins_regardless_of_arrival_order() {
        let out = run(&[
            (1, 5, true, 3, 30),
            (1, 5, false, 9, 90),
            (1, 5, true, 4, 40),
        ]);
        assert_eq!(out, vec![(1, 5, false, 9, 90)]);
    }

    #[test]
    fn equal_versions_keep_the_later_event() {
        let out = run(&[(1, 5, true, 7, 1), (1, 5, false, 7, 2)]);
        assert_eq!(out, vec![(1, 5, false, 7, 2)]);
    }

    #[test]
    fn changes_of_different_fills_stay_apart_the_newest_of_each() {
        let tagged = |user, like, version, fill_epoch| LikeEvent {
            fill_epoch,
            ..event((user, 5, like, version, version))
        };
        let out: Vec<(bool, u64, u64)> = collapse(&[
            tagged(1, false, 2, 0),
            tagged(1, true, 3, 0),
            tagged(1, false, 9, 70),
            tagged(1, true, 8, 70),
        ])
        .into_iter()
        .map(|c| (c.liked, c.version, c.fill_epoch))
        .collect();
        assert_eq!(out, vec![(true, 3, 0), (false, 9, 70)]);
    }

    #[test]
    fn output_is_sorted_by_content_then_user() {
        let out = run(&[
            (2, 9, true, 1, 0),
            (3, 1, true, 1, 0),
            (1, 9, true, 1, 0),
            (2, 1, false, 1, 0),
        ]);
        let keys: Vec<(u64, u64)> = out.iter().map(|c| (c.1, c.0)).collect();
        assert_eq!(keys, vec![(1, 2), (1, 3), (9, 1), (9, 2)]);
    }

    #[test]
    fn reuse_across_windows_does_not_leak_state() {
        let mut collapse = PerUserCollapse::new();
        let mut out = Vec::new();
        collapse.collapse_into(&[event((1, 1, true, 9, 0))], &mut out);
        collapse.collapse_into(&[event((1, 1, false, 2, 0))], &mut out);
        assert_eq!(out.len(), 1);
        assert!(
            !out[0].liked,
            "an older window's version must not shadow this one"
        );
    }

    proptest! {
        #[test]
        fn matches_a_naive_last_writer_wins(
            input in proptest::collection::vec((1u64..4, 1u64..4, any::<bool>(), 0u64..6, 0u64..100), 0..60)
        ) {
            let mut expected: std::collections::BTreeMap<(u64, u64), (bool, u64, u64)> =
                Default::default();
            for &(user, content, like, version, ts) in &input {
                let slot = expected.entry((content, user)).or_insert((like, version, ts));
                if version >= slot.1 {
                    *slot = (like, version, ts);
                }
            }
            let expected: Vec<_> = expected
                .into_iter()
                .map(|((content, user), (like, version, ts))| (user, content, like, version, ts))
                .collect();
            prop_assert_eq!(run(&input), expected);
        }
    }
}
