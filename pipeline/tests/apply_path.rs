//! Property test of the whole apply path, collapse then sink, against SQLite, TiDB and MariaDB
//! (the real servers, `infra/dev/services up tidb mariadb`): whatever the interleaving,
//! duplication, redelivery and version order, the store ends equal to a simple model and I1
//! holds for every content.

use likes_pipeline::operators::collapse;
use likes_shared::store::{LikeStore, RowState};
use likes_shared::{Action, ContentId, LikeEvent, UserId};
use likes_sink::{MySqlConfig, SqliteConfig};
use likes_smoke::{fresh_database, ServicesEnv};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

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
        fill_epoch: 0,
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

/// Applies the scenario's deliveries with contents shifted by `base` (each case of a shared
/// database gets contents of its own), then compares the store with the model.
async fn check_scenario<S: LikeStore>(
    store: &S,
    s: &Scenario,
    base: u64,
) -> Result<(), TestCaseError> {
    let shift = |e: &LikeEvent| LikeEvent {
        content_id: ContentId::new(e.content_id.get() + base).expect("non-zero"),
        ..e.clone()
    };
    for window in &s.deliveries {
        let shifted: Vec<LikeEvent> = window.iter().map(shift).collect();
        store
            .apply_window(&collapse(&shifted))
            .await
            .expect("apply");
    }
    let all: Vec<LikeEvent> = s.all.iter().map(shift).collect();
    let expected = model(&all);
    let contents: Vec<ContentId> = (1..=CONTENTS)
        .map(|c| ContentId::new(base + c).expect("non-zero"))
        .collect();
    let counts = store.counts(&contents).await.expect("counts");
    for (i, content) in contents.iter().enumerate() {
        let liked = expected
            .iter()
            .filter(|((c, _), r)| c == content && r.liked)
            .count() as i64;
        prop_assert_eq!(counts[i], liked, "count of {:?}", content);
    }
    for user in 1..=USERS {
        let user = UserId::new(user).expect("non-zero");
        let states = store.states(user, &contents).await.expect("states");
        for (i, content) in contents.iter().enumerate() {
            prop_assert_eq!(
                states[i],
                expected.get(&(*content, user)).copied(),
                "row {:?} {:?}",
                content,
                user
            );
        }
    }
    Ok(())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// One database per server for the whole property test, created on first use; cases are
/// kept apart by their contents.
fn database_on(server: &'static str) -> String {
    static URLS: Mutex<BTreeMap<&'static str, String>> = Mutex::new(BTreeMap::new());
    let mut urls = URLS.lock().expect("urls");
    urls.entry(server)
        .or_insert_with(|| runtime().block_on(fresh_database(&ServicesEnv::load().get(server))))
        .clone()
}

/// The property on a real server: fewer cases than on SQLite (each costs round trips).
fn check_on_mysql(server: &'static str, s: &Scenario) -> Result<(), TestCaseError> {
    static CASES: AtomicU64 = AtomicU64::new(0);
    let base = CASES.fetch_add(1, Ordering::Relaxed) * 1_000;
    let url = database_on(server);
    runtime().block_on(async {
        let store = MySqlConfig {
            url,
            max_connections: 2,
            ..MySqlConfig::default()
        }
        .build()
        .await
        .unwrap_or_else(|e| panic!("{server}: {e}"));
        check_scenario(&store, s, base).await?;
        // I1 by SQL over every content of the database: all cases so far.
        prop_assert_eq!(store.count_mismatches().await.expect("check"), vec![]);
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn store_equals_model_and_counts_are_exact(s in scenario()) {
        runtime().block_on(async {
            let store = SqliteConfig { path: ":memory:".into(), ..SqliteConfig::default() }
                .build()
                .await
                .expect("store");
            check_scenario(&store, &s, 0).await?;
            prop_assert_eq!(store.count_mismatches().await.expect("check"), vec![]);
            Ok(())
        })?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn on_tidb_the_store_equals_model_and_counts_are_exact(s in scenario()) {
        check_on_mysql("LIKES_DATABASE_URL", &s)?;
    }

    #[test]
    fn on_mariadb_the_store_equals_model_and_counts_are_exact(s in scenario()) {
        check_on_mysql("LIKES_MARIADB_URL", &s)?;
    }
}
