//! `likes-ingest` on the real Redis, Pulsar and TiDB (issue 7): what only the distributed
//! deployment has to show.

mod kill;
mod load;
mod outages;
mod support;

use reqwest::{Client, Method};
use serde_json::Value;
use std::collections::HashMap;
use support::{exclusive, token, Stack};

/// 200 concurrent likes and unlikes by a few users of one content, spread over two ingest
/// instances sharing one Redis: Redis decides each transition once, every answer stands on an
/// event that is on the topic, and the events replay to the state and count Redis shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_actions_across_two_instances_replay_to_the_cached_state_and_count() {
    const USERS: u64 = 5;
    const REQUESTS: u64 = 200;
    let _exclusive = exclusive().await;
    let mut stack = Stack::new().await;
    let a = stack.start_ingest().await;
    let b = stack.start_ingest().await;
    let bases = [format!("http://{}", a.addr), format!("http://{}", b.addr)];
    let base_user = rand::random::<u64>() >> 16 | 1;
    let content = rand::random::<u64>() >> 16 | 1;
    let client = Client::new();
    let requests = (0..REQUESTS).map(|i| {
        let user = base_user + i % USERS;
        let method = if rand::random::<bool>() {
            Method::PUT
        } else {
            Method::DELETE
        };
        let url = format!("{}/v1/contents/{content}/like", bases[(i % 2) as usize]);
        let request = client.request(method, url).bearer_auth(token(user));
        async move {
            let response = request.send().await.expect("request");
            let status = response.status().as_u16();
            let body: Value = response.json().await.expect("JSON");
            (user, status, body)
        }
    });
    let answers = futures::future::join_all(requests).await;
    let events = stack.events().await;

    // Per user: every answered state is one an event on the topic carried, and the newest
    // event per user is the final state.
    let mut published: HashMap<u64, Vec<(u64, bool)>> = HashMap::new();
    for event in &events {
        assert_eq!(event.content_id.get(), content);
        published
            .entry(event.user_id.get())
            .or_default()
            .push((event.version, event.action.liked()));
    }
    for (user, status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        let liked = body["liked"].as_bool().expect("liked");
        let states = published.get(user).map(Vec::as_slice).unwrap_or_default();
        // "Not liked" with no event is the stored state of a user who never liked it.
        assert!(
            states.iter().any(|(_, l)| *l == liked) || (!liked && states.is_empty()),
            "user {user} was told liked={liked} without a durable event saying so"
        );
    }
    let mut liked_users = 0;
    for user in base_user..base_user + USERS {
        let mut states = published.get(&user).cloned().unwrap_or_default();
        states.sort_unstable();
        states.dedup();
        for pair in states.windows(2) {
            assert_ne!(
                pair[0].1, pair[1].1,
                "user {user}: two transitions to one state"
            );
        }
        let last = states.last().is_some_and(|(_, liked)| *liked);
        let got = read(
            client
                .get(format!("{}/v1/contents/{content}", bases[0]))
                .bearer_auth(token(user)),
        )
        .await;
        assert_eq!(
            got["liked"], last,
            "user {user}: cached state vs the newest event"
        );
        liked_users += i64::from(last);
    }
    let got = read(client.get(format!("{}/v1/contents/{content}", bases[1]))).await;
    assert_eq!(
        got["count"], liked_users,
        "the cached count vs the liked users"
    );
    a.stop().await;
    b.stop().await;
}

async fn read(request: reqwest::RequestBuilder) -> Value {
    request
        .send()
        .await
        .expect("read")
        .json()
        .await
        .expect("JSON")
}
