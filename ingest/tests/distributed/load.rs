//! A steady load of likes and unlikes for the outage tests, recording every answer.
//!
//! Each task owns its users and sends one request at a time, so one (user, content)'s requests
//! never overlap: its k-th change answered is its k-th transition, which the topic must hold
//! in that order.

use super::support::token;
use reqwest::{Client, Method};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Answer {
    pub user: u64,
    pub content: u64,
    pub status: u16,
    pub liked: Option<bool>,
    pub changed: bool,
    pub stale: bool,
    pub sent: Instant,
    pub answered: Instant,
}

pub struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Vec<Answer>>>,
}

impl Load {
    /// `tasks` loops over users `base_user + task * 10 ..` and `contents` contents from
    /// `base_content`, against `base` (an `http://addr`).
    pub fn start(base: &str, base_user: u64, base_content: u64, tasks: u64, contents: u64) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let client = Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        let tasks = (0..tasks)
            .map(|task| {
                let (stop, client, base) = (stop.clone(), client.clone(), base.to_owned());
                tokio::spawn(async move {
                    let mut answers = Vec::new();
                    let mut i = 0u64;
                    while !stop.load(Ordering::Acquire) {
                        i += 1;
                        let user = base_user + task * 10 + i % 10;
                        let content = base_content + (i / 10 + task) % contents;
                        let method = if rand::random::<bool>() {
                            Method::PUT
                        } else {
                            Method::DELETE
                        };
                        let url = format!("{base}/v1/contents/{content}/like");
                        let sent = Instant::now();
                        let response = client
                            .request(method, url)
                            .bearer_auth(token(user))
                            .send()
                            .await;
                        let answered = Instant::now();
                        let (status, body) = match response {
                            Ok(r) => {
                                let status = r.status().as_u16();
                                (status, r.json::<Value>().await.unwrap_or(Value::Null))
                            }
                            Err(_) => (0, Value::Null),
                        };
                        answers.push(Answer {
                            user,
                            content,
                            status,
                            liked: body["liked"].as_bool(),
                            changed: body["changed"].as_bool() == Some(true),
                            stale: body["stale"].as_bool() == Some(true),
                            sent,
                            answered,
                        });
                        if status != 200 {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                    answers
                })
            })
            .collect();
        Load { stop, tasks }
    }

    pub async fn finish(self) -> Vec<Answer> {
        self.stop.store(true, Ordering::Release);
        let mut all = Vec::new();
        for task in self.tasks {
            all.extend(task.await.expect("load task"));
        }
        all
    }
}
