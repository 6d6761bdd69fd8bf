//! A window the store refuses for good: only the changes it refuses on their own are
//! dead-lettered, the good events around them commit, outages during the search are waited out,
//! and shutdown during the search acks nothing.

use super::scripted::{
    delivery, harness, mixed_window, rows_after, shut_down_during_retries, Script,
};
use std::sync::atomic::Ordering::Relaxed;

#[tokio::test(start_paused = true)]
async fn a_permanent_error_dead_letters_only_the_refused_event_and_the_stream_goes_on() {
    let deliveries = vec![
        delivery(1, 1),
        delivery(2, 1),
        delivery(3, 13),
        delivery(4, 1),
        delivery(5, 1),
        delivery(6, 1),
    ];
    let h = harness(Script {
        deliveries,
        poison: vec![(3, 13)],
        ..Script::default()
    });
    let (_trigger, shutdown) = likes_shared::shutdown::channel();
    h.worker.run(shutdown).await.expect("worker");
    let letters = h.letters.0.lock().clone();
    assert_eq!(letters.len(), 1);
    let users: Vec<u64> = letters[0].events.iter().map(|e| e.user_id.get()).collect();
    assert_eq!(users, vec![3], "the refused event only, not its window");
    assert!(
        letters[0].error.contains("out of range"),
        "{}",
        letters[0].error
    );
    assert_eq!(
        letters[0].attempts, 4,
        "the window's call, then three calls holding the event on its own"
    );
    let stored: Vec<u64> = h.store.rows.lock().values().map(|row| row.1).collect();
    assert_eq!(
        stored,
        vec![1, 2, 4, 5, 6],
        "the other event of its window and the windows around it commit"
    );
    assert_eq!(
        *h.acked.lock(),
        vec![1, 2, 3, 4, 5, 6],
        "dead-lettered events are acked once stored"
    );
}

#[tokio::test(start_paused = true)]
async fn a_poison_key_in_a_big_window_dead_letters_its_events_and_commits_the_rest() {
    let deliveries = mixed_window(64);
    let poison = (3, 2); // events 10, 34 and 58
    let h = harness(Script {
        deliveries: deliveries.clone(),
        window_events: 64,
        poison: vec![poison],
        ..Script::default()
    });
    let stats = h.worker.stats();
    let (_trigger, shutdown) = likes_shared::shutdown::channel();
    h.worker.run(shutdown).await.expect("worker");

    assert_eq!(
        *h.store.rows.lock(),
        rows_after(&deliveries, &[poison]),
        "every other key holds its newest event"
    );
    let letters = h.letters.0.lock().clone();
    assert_eq!(letters.len(), 1, "one letter for the window");
    let ids: Vec<u128> = letters[0].events.iter().map(|e| e.event_id).collect();
    assert_eq!(
        ids,
        vec![10, 34, 58],
        "every event of the poison key, no other"
    );
    assert!(letters[0].attempts >= 3, "{}", letters[0].attempts);
    assert_eq!(*h.acked.lock(), (1..=64).collect::<Vec<u64>>());
    // 24 changes: the window's call, two halves per level down to the poison (5 levels), and two
    // more tries of the poison on its own. Per-row retries would take 24 calls or more.
    let calls = *h.store.calls.lock();
    assert!(calls <= 1 + 2 * 5 + 2, "{calls} apply calls");
    assert_eq!(stats.bisections.load(Relaxed), 1);
    assert_eq!(stats.poison_changes.load(Relaxed), 1);
    assert_eq!(stats.dead_letters.load(Relaxed), 1);
}

#[tokio::test(start_paused = true)]
async fn a_window_refused_only_as_a_whole_commits_in_parts_and_dead_letters_nothing() {
    let deliveries = mixed_window(64);
    let h = harness(Script {
        deliveries: deliveries.clone(),
        window_events: 64,
        max_changes: 5, // the window's 24 changes are "too big", any 5 of them are not
        ..Script::default()
    });
    let stats = h.worker.stats();
    let (_trigger, shutdown) = likes_shared::shutdown::channel();
    h.worker.run(shutdown).await.expect("worker");

    assert_eq!(*h.store.rows.lock(), rows_after(&deliveries, &[]));
    assert!(
        h.letters.0.lock().is_empty(),
        "no change was refused on its own"
    );
    assert_eq!(*h.acked.lock(), (1..=64).collect::<Vec<u64>>());
    assert_eq!(stats.bisections.load(Relaxed), 1);
    assert_eq!(stats.poison_changes.load(Relaxed), 0);
}

#[tokio::test(start_paused = true)]
async fn two_poison_keys_and_an_outage_during_the_search() {
    let deliveries = mixed_window(64);
    let poison = [(3, 2), (8, 1)]; // events 10, 34, 58 and 15, 39, 63
    let h = harness(Script {
        deliveries: deliveries.clone(),
        window_events: 64,
        poison: poison.to_vec(),
        // The window's own call is refused; the next two (the search's first) meet an outage.
        transient_calls: 1..3,
        ..Script::default()
    });
    let stats = h.worker.stats();
    let (_trigger, shutdown) = likes_shared::shutdown::channel();
    h.worker.run(shutdown).await.expect("worker");

    assert_eq!(stats.retries.load(Relaxed), 2, "the outage was waited out");
    assert_eq!(
        *h.store.rows.lock(),
        rows_after(&deliveries, &poison),
        "every other key holds its newest event"
    );
    let letters = h.letters.0.lock().clone();
    assert_eq!(
        letters.len(),
        1,
        "one letter for the window, none for the outage"
    );
    let mut ids: Vec<u128> = letters[0].events.iter().map(|e| e.event_id).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![10, 15, 34, 39, 58, 63]);
    assert_eq!(*h.acked.lock(), (1..=64).collect::<Vec<u64>>());
}

#[tokio::test(start_paused = true)]
async fn shutdown_while_the_search_waits_out_an_outage_acks_nothing() {
    let h = harness(Script {
        deliveries: mixed_window(64),
        stay_open: true,
        window_events: 64,
        poison: vec![(3, 2)],
        // The window's own call is refused; every call of the search meets an outage.
        transient_calls: 1..usize::MAX,
        ..Script::default()
    });
    shut_down_during_retries(h.worker).await;
    assert!(
        h.acked.lock().is_empty(),
        "a window whose search did not finish is never acked; it comes back after restart"
    );
    assert!(
        h.letters.0.lock().is_empty(),
        "an outage is never dead-lettered"
    );
}

/// An outage the store misreads as a refusal (an error code it does not know) must not turn a
/// window into dead letters: before declaring a change poison the worker pings the store, and a
/// store that cannot even answer a ping is down, not refusing. DESIGN section 8.
#[tokio::test(start_paused = true)]
async fn an_outage_misread_as_a_refusal_is_waited_out_not_dead_lettered() {
    let deliveries = vec![delivery(1, 1), delivery(2, 2)];
    let h = harness(Script {
        deliveries,
        // Enough refused calls for the old search to declare both changes poison (the window,
        // then three calls per change) and more.
        down_for_calls: 12,
        ..Script::default()
    });
    let (_trigger, shutdown) = likes_shared::shutdown::channel();
    h.worker.run(shutdown).await.expect("worker");
    assert_eq!(
        h.letters.0.lock().clone(),
        vec![],
        "no dead letter for an outage"
    );
    let stored: Vec<u64> = h.store.rows.lock().values().map(|row| row.1).collect();
    assert_eq!(stored, vec![1, 2], "both land once the store is back");
    assert_eq!(*h.acked.lock(), vec![1, 2]);
}
