//! The letters' life on the topic: listed without being consumed, replayed once, purged by age.

use crate::support::{
    event, events_consumer, expect_quiet, letters, listed, receive, Topics, OLD_MS, WAIT,
};
use futures::TryStreamExt;
use likes_shared::LikeEvent;
use likes_sink::dead_letter::{DeadLetter, DeadLetterKind, MAX_EVENTS_PER_MESSAGE};
use likes_sink::dlq::topic::TopicDlqError;
use pulsar::consumer::InitialPosition;
use pulsar::{Consumer, ConsumerOptions, SubType, TokioExecutor};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

#[tokio::test]
async fn letters_are_listed_in_order_with_properties_and_stay_until_acknowledged() {
    let topics = Topics::create().await;
    let written = letters();
    topics.publish(&written).await;

    let dlq = topics.dlq().await;
    assert_eq!(listed(&dlq).await, written);
    assert_eq!(listed(&dlq).await, written, "listing consumed nothing");
    assert_eq!(dlq.letter(2).await.expect("show 2"), written[1]);
    let missing = dlq.letter(4).await.err();
    assert!(matches!(
        missing,
        Some(TopicDlqError::NoLetter { n: 4, count: 3 })
    ));

    // The properties, read on a subscription of the test's own.
    let client = topics.client().await;
    let mut peek: Consumer<Vec<u8>, TokioExecutor> = client
        .consumer()
        .with_topic(Topics::name(&topics.topics.dlq_topic).to_string())
        .with_subscription("test-peek")
        .with_subscription_type(SubType::Exclusive)
        .with_options(ConsumerOptions::default().with_initial_position(InitialPosition::Earliest))
        .build()
        .await
        .expect("peek consumer");
    let first = tokio::time::timeout(WAIT, peek.try_next())
        .await
        .expect("in time")
        .expect("receive")
        .expect("open");
    let properties: BTreeMap<String, String> = first
        .metadata()
        .properties
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.clone()))
        .collect();
    assert_eq!(properties["error_kind"], "store_refused");
    assert_eq!(properties["attempts"], "3");
    assert_eq!(properties["first_failed_at_ms"], OLD_MS.to_string());
    drop(peek);
    topics.delete().await;
}

#[tokio::test]
async fn replay_republishes_exactly_the_chosen_events_once() {
    let topics = Topics::create().await;
    let written = letters();
    topics.publish(&written).await;
    let client = topics.client().await;
    let mut events = events_consumer(&client, &topics).await;
    let dlq = topics.dlq().await;

    let dry = dlq
        .replay(Some(DeadLetterKind::StoreRefused), true)
        .await
        .expect("dry run");
    assert_eq!((dry.letters, dry.events, dry.kept), (2, 4, 1));
    assert_eq!(
        listed(&dlq).await,
        written,
        "a dry run acknowledges nothing"
    );
    expect_quiet(&mut events).await;

    let report = dlq
        .replay(Some(DeadLetterKind::StoreRefused), false)
        .await
        .expect("replay");
    assert_eq!((report.letters, report.events, report.kept), (2, 4, 1));
    let got = receive(&mut events, 4).await;
    let mut replayed: Vec<LikeEvent> = got.iter().map(|(_, _, e)| e.clone()).collect();
    replayed.sort_by_key(|e| e.event_id);
    let mut expected: Vec<LikeEvent> = written.iter().flat_map(|l| l.events.clone()).collect();
    expected.sort_by_key(|e| e.event_id);
    assert_eq!(replayed, expected);
    let mut partitions: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (key, partition, event) in &got {
        assert_eq!(key, &event.content_id.to_string(), "key = content id");
        partitions
            .entry(key.clone())
            .or_default()
            .insert(partition.clone());
    }
    assert!(partitions.values().all(|p| p.len() == 1), "{partitions:?}");

    assert_eq!(
        listed(&dlq).await,
        vec![written[2].clone()],
        "the undecodable letter stays"
    );
    let second = dlq.replay(None, false).await.expect("second replay");
    assert_eq!((second.letters, second.events, second.kept), (0, 0, 1));
    expect_quiet(&mut events).await;
    topics.delete().await;
}

#[tokio::test]
async fn purge_removes_only_the_old_letters() {
    let topics = Topics::create().await;
    let written = letters();
    topics.publish(&written).await;
    let dlq = topics.dlq().await;
    let now = likes_shared::hlc::now_ms();
    let purged = dlq
        .purge(Duration::from_secs(30 * 86_400), now)
        .await
        .expect("purge");
    assert_eq!(purged, 1);
    assert_eq!(listed(&dlq).await, written[1..].to_vec());
    assert_eq!(
        dlq.purge(Duration::from_secs(30 * 86_400), now).await.ok(),
        Some(0)
    );
    topics.delete().await;
}

#[tokio::test]
async fn a_big_letter_travels_in_parts_and_replays_whole() {
    let topics = Topics::create().await;
    let count = MAX_EVENTS_PER_MESSAGE * 2 + 1;
    let events: Vec<LikeEvent> = (1..=count as u64).map(|u| event(u, 1 + u % 7)).collect();
    let letter = DeadLetter::store_refused(events.clone(), "too big".into(), 1, OLD_MS);
    topics.publish(std::slice::from_ref(&letter)).await;
    let client = topics.client().await;
    let mut consumer = events_consumer(&client, &topics).await;
    let dlq = topics.dlq().await;
    let parts = listed(&dlq).await;
    assert_eq!(parts.len(), 3);
    assert_eq!(
        parts
            .iter()
            .flat_map(|p| p.events.clone())
            .collect::<Vec<_>>(),
        events
    );
    let report = dlq.replay(None, false).await.expect("replay");
    assert_eq!((report.letters, report.events), (3, count));
    let mut got: Vec<LikeEvent> = receive(&mut consumer, count)
        .await
        .into_iter()
        .map(|(_, _, e)| e)
        .collect();
    got.sort_by_key(|e| e.event_id);
    let mut expected = events;
    expected.sort_by_key(|e| e.event_id);
    assert_eq!(got, expected);
    topics.delete().await;
}
