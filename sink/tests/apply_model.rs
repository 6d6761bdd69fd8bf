//! Property test of the sink's apply path against SQLite: whatever the interleaving, duplication,
//! redelivery and version order, the store ends equal to a simple model and I1 holds.

use likes_shared::store::{LikeChange, LikeStore, RowState};
use likes_shared::{ContentId, UserId};
use likes_sink::SqliteConfig;
use proptest::prelude::*;
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
struct Scenario {
    /// Windows in delivery order; a window may be delivered more than once.
    deliveries: Vec<Vec<LikeChange>>,
    all: Vec<LikeChange>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    // (user, content, liked) actions; versions are unique, then shuffled so they arrive out of order.
    let actions = prop::collection::vec((1u64..=12, 1u64..=4, any::<bool>()), 1..120);
    (
        actions,
        any::<u64>(),
        1usize..20,
        prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    )
        .prop_flat_map(|(actions, seed, window, redeliver)| {
            let n = actions.len();
            (
                Just(actions),
                Just(seed),
                Just(window),
                Just(redeliver),
                Just(Vec::<usize>::new()).prop_perturb(move |_, mut rng| {
                    let mut order: Vec<usize> = (0..n).collect();
                    for i in (1..n).rev() {
                        order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
                    }
                    order
                }),
            )
        })
        .prop_map(|(actions, seed, window, redeliver, order)| {
            let all: Vec<LikeChange> = actions
                .iter()
                .enumerate()
                .map(|(i, (u, c, liked))| LikeChange {
                    user_id: UserId::new(*u).expect("non-zero"),
                    content_id: ContentId::new(*c).expect("non-zero"),
                    liked: *liked,
                    // Unique versions, large and spread like HLC values.
                    version: (seed % 1_000_000 + i as u64 + 1) << 16,
                    ts_ms: 1_000 + i as u64,
                })
                .collect();
            let arrived: Vec<LikeChange> = order.iter().map(|i| all[*i]).collect();
            let mut deliveries: Vec<Vec<LikeChange>> = arrived
                .chunks(window)
                .map(|w| {
                    // Duplicate the first event of each window inside it (at-least-once upstream).
                    let mut w = w.to_vec();
                    w.push(w[0]);
                    w
                })
                .collect();
            let originals = deliveries.clone();
            for idx in redeliver {
                let w = idx.get(&originals).clone();
                let at = idx.index(deliveries.len() + 1);
                deliveries.insert(at, w);
            }
            Scenario { deliveries, all }
        })
}

fn model(all: &[LikeChange]) -> BTreeMap<(ContentId, UserId), RowState> {
    let mut rows: BTreeMap<(ContentId, UserId), RowState> = BTreeMap::new();
    for c in all {
        let row = rows.entry((c.content_id, c.user_id)).or_insert(RowState {
            liked: c.liked,
            version: c.version,
        });
        if c.version >= row.version {
            *row = RowState {
                liked: c.liked,
                version: c.version,
            };
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
                .build().await.expect("store");
            for window in &s.deliveries {
                store.apply_window(window).await.expect("apply");
            }
            let expected = model(&s.all);
            let contents: Vec<ContentId> = (1..=4).map(|c| ContentId::new(c).expect("non-zero")).collect();
            let counts = store.counts(&contents).await.expect("counts");
            for (i, content) in contents.iter().enumerate() {
                let liked = expected.iter().filter(|((c, _), r)| c == content && r.liked).count() as i64;
                prop_assert_eq!(counts[i], liked, "count of {:?}", content);
            }
            for user in 1..=12u64 {
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
