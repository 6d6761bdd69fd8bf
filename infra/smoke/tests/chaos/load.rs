//! The load: likes and unlikes from many users through Nginx, closed loop, while faults come and
//! go. Each user belongs to one task, so each (user, content) pair sees its requests one after
//! another and "the state of the last 2xx" is well defined. An answer that is not a 2xx (a 503,
//! a timeout, a dropped connection) leaves the pair *unsure*: the action may have landed or not,
//! until a later 2xx on the pair settles it; [`Load::settle`] repeats it until it answers.

use jsonwebtoken::{encode, EncodingKey, Header};
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub type Pair = (u64, u64);

/// What the answers said about one pair.
#[derive(Debug, Clone, Default)]
pub struct PairState {
    /// The state the last 2xx reported.
    pub liked: Option<bool>,
    /// An action answered without a 2xx after that: its state, still to be settled.
    pub unsure: Option<bool>,
    /// Every action on the pair, for the report of a pair that ends wrong.
    pub history: Vec<Step>,
}

/// One action on a pair: when it was sent and answered (wall-clock ms), in which phase, and how
/// it was answered (`ok liked=..`, `503`, or what else came back).
#[derive(Debug, Clone)]
pub struct Step {
    pub sent_ms: u64,
    pub answered_ms: u64,
    pub phase: usize,
    pub like: bool,
    pub answer: String,
}

pub fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub requests: u64,
    pub ok: u64,
    pub unavailable: u64,
    pub other: u64,
    /// 2xx answers whose `liked` is not the action's.
    pub wrong: u64,
    /// What the first few `other` answers were.
    pub other_samples: Vec<String>,
}

/// Answers per phase, indexed by the phase current when the request was sent.
pub struct Tallies(Mutex<Vec<Tally>>);

impl Tallies {
    fn record(&self, phase: usize, f: impl FnOnce(&mut Tally)) {
        let mut all = self.0.lock();
        if all.len() <= phase {
            all.resize(phase + 1, Tally::default());
        }
        f(&mut all[phase]);
    }

    pub fn get(&self, phase: usize) -> Tally {
        self.0.lock().get(phase).cloned().unwrap_or_default()
    }
}

pub struct Client {
    http: reqwest::Client,
    url: String,
    key: EncodingKey,
}

#[derive(serde::Serialize)]
struct Claims {
    sub: String,
    iat: u64,
    exp: u64,
}

pub enum Outcome {
    /// `flags`: the answer's `changed` and `stale`, for the report of a pair that ends wrong.
    Ok {
        liked: bool,
        flags: String,
    },
    Unavailable,
    Other(String),
}

/// Past ingest's own bound on one like: a publish may wait the whole send timeout (5 s) for a
/// broker that is going away, then append to the spool and fsync. With a 5 s client timeout,
/// one CI run had one request of 34 838 end in "error sending request" with no status while
/// Pulsar was stopping, most likely that timeout. A request still open after this long is a
/// hang, which the test must still see.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

impl Client {
    pub fn new(url: &str, secret: &str) -> Client {
        Client {
            http: reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .build()
                .expect("http client"),
            url: url.to_owned(),
            key: EncodingKey::from_secret(secret.as_bytes()),
        }
    }

    pub fn token(&self, user: u64) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let claims = Claims {
            sub: user.to_string(),
            iat: now,
            exp: now + 3600,
        };
        encode(&Header::default(), &claims, &self.key).expect("sign")
    }

    pub async fn act(&self, token: &str, content: u64, like: bool) -> Outcome {
        let url = format!("{}/v1/contents/{content}/like", self.url);
        let request = if like {
            self.http.put(url)
        } else {
            self.http.delete(url)
        };
        match request.bearer_auth(token).send().await {
            Ok(r) if r.status().is_success() => match r.json::<serde_json::Value>().await {
                Ok(body) => match body["liked"].as_bool() {
                    Some(liked) => Outcome::Ok {
                        liked,
                        flags: format!("changed={} stale={}", body["changed"], body["stale"]),
                    },
                    None => Outcome::Other(format!("2xx without liked: {body}")),
                },
                Err(e) => Outcome::Other(format!("2xx body: {e}")),
            },
            Ok(r) if r.status().as_u16() == 503 => Outcome::Unavailable,
            Ok(r) => {
                let status = r.status();
                Outcome::Other(format!("{status}: {}", r.text().await.unwrap_or_default()))
            }
            Err(e) => Outcome::Other(format!("no answer: {e}")),
        }
    }

    pub async fn count(&self, content: u64) -> Option<i64> {
        let r = self
            .http
            .get(format!("{}/v1/contents/{content}", self.url))
            .send()
            .await
            .ok()?;
        r.json::<serde_json::Value>().await.ok()?["count"].as_i64()
    }
}

pub struct Load {
    pub phase: Arc<AtomicUsize>,
    pub tallies: Arc<Tallies>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<HashMap<Pair, PairState>>>,
}

impl Load {
    /// `tasks` tasks, each with `users_per_task` users of its own (ids from `first_user`), over
    /// `contents` contents (ids from `first_content`).
    pub fn start(
        client: Arc<Client>,
        tasks: usize,
        users_per_task: u64,
        (first_user, first_content, contents): (u64, u64, u64),
    ) -> Load {
        let phase = Arc::new(AtomicUsize::new(0));
        let tallies = Arc::new(Tallies(Mutex::new(Vec::new())));
        let stop = Arc::new(AtomicBool::new(false));
        let handles = (0..tasks)
            .map(|task| {
                let (client, phase, tallies, stop) =
                    (client.clone(), phase.clone(), tallies.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut rng = rand::rngs::StdRng::seed_from_u64(task as u64);
                    let users: Vec<(u64, String)> = (0..users_per_task)
                        .map(|i| first_user + task as u64 + i * tasks as u64)
                        .map(|u| (u, client.token(u)))
                        .collect();
                    let mut pairs: HashMap<Pair, PairState> = HashMap::new();
                    while !stop.load(Ordering::Relaxed) {
                        let (user, token) = &users[rng.gen_range(0..users.len())];
                        let content = first_content + rng.gen_range(0..contents);
                        let like = rng.gen_bool(0.65);
                        let now = phase.load(Ordering::Relaxed);
                        let sent_ms = wall_ms();
                        let outcome = client.act(token, content, like).await;
                        let state = pairs.entry((*user, content)).or_default();
                        let refused = !matches!(outcome, Outcome::Ok { .. });
                        state.history.push(Step {
                            sent_ms,
                            answered_ms: wall_ms(),
                            phase: now,
                            like,
                            answer: match &outcome {
                                Outcome::Ok { liked, flags } => format!("ok liked={liked} {flags}"),
                                Outcome::Unavailable => "503".into(),
                                Outcome::Other(what) => what.chars().take(120).collect(),
                            },
                        });
                        tallies.record(now, |t| {
                            t.requests += 1;
                            match outcome {
                                Outcome::Ok { liked, .. } => {
                                    t.ok += 1;
                                    if liked != like {
                                        t.wrong += 1;
                                    }
                                    state.liked = Some(liked);
                                    state.unsure = None;
                                }
                                Outcome::Unavailable => {
                                    t.unavailable += 1;
                                    state.unsure = Some(like);
                                }
                                Outcome::Other(what) => {
                                    t.other += 1;
                                    if t.other_samples.len() < 5 {
                                        t.other_samples.push(what.clone());
                                    }
                                    state.unsure = Some(like);
                                }
                            }
                        });
                        if refused {
                            // A refused request is not retried at once: the load stays a load.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                    pairs
                })
            })
            .collect();
        Load {
            phase,
            tallies,
            stop,
            tasks: handles,
        }
    }

    /// Stops the load and returns every pair's state.
    pub async fn finish(self) -> HashMap<Pair, PairState> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = HashMap::new();
        for task in self.tasks {
            all.extend(task.await.expect("load task"));
        }
        all
    }
}

/// Repeats every unsure pair's last action until it answers 2xx: then each pair's expected
/// state is the last 2xx's. Panics if one never does.
pub async fn settle(client: &Client, pairs: &mut HashMap<Pair, PairState>) {
    for ((user, content), state) in pairs.iter_mut() {
        let Some(like) = state.unsure else { continue };
        let token = client.token(*user);
        let mut tries = 0;
        loop {
            let sent_ms = wall_ms();
            let outcome = client.act(&token, *content, like).await;
            state.history.push(Step {
                sent_ms,
                answered_ms: wall_ms(),
                phase: usize::MAX,
                like,
                answer: match &outcome {
                    Outcome::Ok { liked, flags } => format!("settle: ok liked={liked} {flags}"),
                    _ => "settle: refused".into(),
                },
            });
            if let Outcome::Ok { liked, .. } = outcome {
                assert_eq!(liked, like, "the repeated action answered the other state");
                state.liked = Some(liked);
                state.unsure = None;
                break;
            }
            tries += 1;
            assert!(
                tries < 60,
                "user {user} content {content}: no 2xx in 60 tries"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}
