//! Property test of the whole apply path, collapse then sink, against SQLite: whatever the
//! interleaving, duplication, redelivery and version order, the store ends equal to a simple
//! model and I1 holds for every content.

use likes_pipeline::operators::collapse;
use likes_shared::store::{LikeStore, RowState};
use likes_shared::{Action, ContentId, LikeEvent, UserId};
use likes_sink::SqliteConfig;
use proptest::prelude::*;
use std::collections::BTreeMap;

const USERS: u64 = 12;
const CONTENTS: u64 = 4;

#[derive(Debug, Clone)]
struct Scenario {
    /// Windows in delivery order; a window may be delivered more than once.
    deliveries: Vec<Vec<LikeEvent>>,
    all: Vec<LikeEvent>,
}

fn event(i: usize, user: u64, content: u64, liked: bool, seed: u64) -> LikeEvent {
    LikeEvent {
        event_id: i as u128,
        user_id: UserId::new(user).expect("non-zero"),
        content_id: ContentId::new(content).expect("non-zero"),
        action: if liked { Action::Like } else { Action::Unlike },
        // Unique versions, large and spread like HLC values.
        version: (seed % 1_000_000 + i as u64 + 1) << 16,
        ts_ms: 1_000 + i as u64,
        source: "proptest".into(),
    }
}

fn scenario() -> impl Strategy<Value = Scenario> {
    let actions = prop::collection::vec((1..=USERS, 1..=CONTENTS, any::<bool>()), 1..120);
    let redeliveries =
        prop::collection::vec(any::<(prop::sample::Index, prop::sample::Index)>(), 0..6);
    (
        actions,
        any::<u64>(),
        1usize..20,
        redeliveries,
        any::<u64>(),
    )
        .prop_map(|(actions, seed, window, redeliveries, shuffle)| {
            let all: Vec<LikeEvent> = actions
                .iter()
                .enumerate()
                .map(|(i, (u, c, l))| event(i, *u, *c, *l, seed))
                .collect();
            // Arrival order differs from version order: a seeded Fisher-Yates shuffle.
            let mut arrived = all.clone();
            let mut state = shuffle | 1;
            for i in (1..arrived.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                arrived.swap(i, (state % (i as u64 + 1)) as usize);
            }
            let originals: Vec<Vec<LikeEvent>> = arrived
                .chunks(window)
                .map(|w| {
                    // At-least-once upstream: the first event comes twice within its window.
                    let mut w = w.to_vec();
                    w.push(w[0].clone());
                    w
                })
                .collect();
            let mut deliveries = originals.clone();
            for (which, at) in redeliveries {
                let again = which.get(&originals).clone();
                let at = at.index(deliveries.len() + 1);
                deliveries.insert(at, again);
            }
            Scenario { deliveries, all }
        })
}

/// The newest action of each (content, user) wins.
fn model(all: &[LikeEvent]) -> BTreeMap<(ContentId, UserId), RowState> {
    let mut rows: BTreeMap<(ContentId, UserId), RowState> = BTreeMap::new();
    for e in all {
        let state = RowState {
            liked: e.action == Action::Like,
            version: e.version,
        };
        let row = rows.entry((e.content_id, e.user_id)).or_insert(state);
        if e.version >= row.version {
            *row = state;
        }
    }
    rows
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn store_equals_model_and_counts_are_exact(s in scenario()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            let store = SqliteConfig { path: ":memory:".into(), ..SqliteConfig::default() }
                .build()
                .await
                .expect("store");
            for window in &s.deliveries {
                store.apply_window(&collapse(window)).await.expect("apply");
            }
            let expected = model(&s.all);
            let contents: Vec<ContentId> = (1..=CONTENTS).map(|c| ContentId::new(c).expect("non-zero")).collect();
            let counts = store.counts(&contents).await.expect("counts");
            for (i, content) in contents.iter().enumerate() {
                let liked = expected.iter().filter(|((c, _), r)| c == content && r.liked).count() as i64;
                prop_assert_eq!(counts[i], liked, "count of {:?}", content);
            }
            for user in 1..=USERS {
                let user = UserId::new(user).expect("non-zero");
                let states = store.states(user, &contents).await.expect("states");
                for (i, content) in contents.iter().enumerate() {
                    prop_assert_eq!(states[i], expected.get(&(*content, user)).copied(), "row {:?} {:?}", content, user);
                }
            }
            prop_assert_eq!(store.count_mismatches().await.expect("check"), vec![]);
            Ok(())
        })?;
    }
}
