//! What each connection sends: the baseline's `GET /hello`, content reads (Zipf ids, or only the
//! hottest few: what a local cache serves), `batchGet` pages, and like/unlike writes that keep a
//! model of every (user, content) pair they touched, so the run can be checked for exactness
//! afterwards.
//!
//! Users are partitioned over connections (user `u` belongs to connection `(u - 1) % conns`), so a
//! pair's requests are sequential and the last answer for it is its final state.

use crate::driver::{Body, Session};
use bytes::Bytes;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Content ids `1..=n` drawn with probability ∝ 1/rank^s (rank = id).
#[derive(Debug)]
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub fn new(n: usize, s: f64) -> Zipf {
        let mut total = 0.0;
        let mut cdf: Vec<f64> = (1..=n.max(1))
            .map(|k| {
                total += 1.0 / (k as f64).powf(s);
                total
            })
            .collect();
        for c in &mut cdf {
            *c /= total;
        }
        Zipf { cdf }
    }

    pub fn sample(&self, rng: &mut impl Rng) -> u64 {
        let u: f64 = rng.gen();
        let i = self.cdf.partition_point(|c| *c < u).min(self.cdf.len() - 1);
        i as u64 + 1
    }
}

fn get(host: &HeaderValue, path: String) -> Result<Request<Body>, hyper::http::Error> {
    Request::get(path).header(HOST, host).body(Body::default())
}

/// The baseline: `GET /hello`.
pub struct HelloSession {
    pub host: HeaderValue,
}

impl Session for HelloSession {
    fn request(&mut self) -> Result<Request<Body>, hyper::http::Error> {
        get(&self.host, "/hello".to_owned())
    }
    fn answered(&mut self, _: u16, _: &[u8]) {}
    fn failed(&mut self) {}
}

/// Which contents a read names.
#[derive(Debug, Clone)]
pub enum ReadIds {
    /// Zipf over all contents: the hot head and the long tail, as a feed reads.
    Zipf(Arc<Zipf>),
    /// Uniform over ids `1..=n`, the `n` most liked (and most read): a local hot-key cache's
    /// share of the reads alone.
    Hottest(u64),
}

impl ReadIds {
    fn sample(&self, rng: &mut impl Rng) -> u64 {
        match self {
            ReadIds::Zipf(zipf) => zipf.sample(rng),
            ReadIds::Hottest(n) => rng.gen_range(1..=(*n).max(1)),
        }
    }
}

/// Anonymous `GET /v1/contents/{id}`.
pub struct ReadSession {
    pub host: HeaderValue,
    pub ids: ReadIds,
    pub rng: SmallRng,
}

impl Session for ReadSession {
    fn request(&mut self) -> Result<Request<Body>, hyper::http::Error> {
        let id = self.ids.sample(&mut self.rng);
        get(&self.host, format!("/v1/contents/{id}"))
    }
    fn answered(&mut self, _: u16, _: &[u8]) {}
    fn failed(&mut self) {}
}

/// Anonymous `POST /v1/contents:batchGet` of `page` distinct ids (a feed page's counts).
pub struct BatchGetSession {
    pub host: HeaderValue,
    pub ids: ReadIds,
    pub page: usize,
    pub rng: SmallRng,
}

impl Session for BatchGetSession {
    fn request(&mut self) -> Result<Request<Body>, hyper::http::Error> {
        let mut page: Vec<u64> = Vec::with_capacity(self.page);
        // Distinct ids, as a page shows each item once; a bounded number of draws, so a tiny
        // id space gives a shorter page rather than an endless loop.
        for _ in 0..self.page * 8 {
            if page.len() == self.page {
                break;
            }
            let id = self.ids.sample(&mut self.rng);
            if !page.contains(&id) {
                page.push(id);
            }
        }
        let ids: Vec<String> = page.iter().map(u64::to_string).collect();
        let body = format!("{{\"content_ids\":[{}]}}", ids.join(","));
        Request::post("/v1/contents:batchGet")
            .header(HOST, &self.host)
            .header(CONTENT_TYPE, "application/json")
            .body(Body::from(Bytes::from(body)))
    }
    fn answered(&mut self, _: u16, _: &[u8]) {}
    fn failed(&mut self) {}
}

/// A pair's state as this run saw it: before its first request, and after its last answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairState {
    pub initial: bool,
    pub current: bool,
}

/// Authenticated `PUT`/`DELETE /v1/contents/{id}/like` for random users of this connection on
/// Zipf ids: a pair known liked is unliked, otherwise liked, so nearly every request changes
/// state and publishes an event.
pub struct WriteSession {
    host: HeaderValue,
    zipf: Arc<Zipf>,
    rng: SmallRng,
    /// This connection's users and their `Bearer` headers.
    users: Vec<(u64, HeaderValue)>,
    pub pairs: HashMap<(u64, u64), PairState>,
    /// Contents whose model is unsure (an answer that was not 200, or none at all).
    pub tainted: HashSet<u64>,
    /// Requests sent: likes (`PUT`) and unlikes (`DELETE`).
    pub puts: u64,
    pub deletes: u64,
    pending: Option<(u64, u64)>,
}

impl WriteSession {
    /// One session per connection; `bearer[u - 1]` is user `u`'s `Authorization` header.
    pub fn partition(
        host: &HeaderValue,
        zipf: &Arc<Zipf>,
        bearer: &[HeaderValue],
        connections: usize,
        seed: u64,
    ) -> Vec<WriteSession> {
        (0..connections)
            .map(|c| WriteSession {
                host: host.clone(),
                zipf: zipf.clone(),
                rng: SmallRng::seed_from_u64(seed ^ (c as u64).wrapping_mul(0x9E37_79B9)),
                users: bearer
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| i % connections == c)
                    .map(|(i, h)| (i as u64 + 1, h.clone()))
                    .collect(),
                pairs: HashMap::new(),
                tainted: HashSet::new(),
                puts: 0,
                deletes: 0,
                pending: None,
            })
            .collect()
    }
}

impl Session for WriteSession {
    fn request(&mut self) -> Result<Request<Body>, hyper::http::Error> {
        let content = self.zipf.sample(&mut self.rng);
        let path = format!("/v1/contents/{content}/like");
        if self.users.is_empty() {
            // More connections than users: this one has nobody to act for; it reads instead.
            self.pending = None;
            return get(&self.host, path.replace("/like", ""));
        }
        let (user, bearer) = &self.users[self.rng.gen_range(0..self.users.len())];
        let liked = self.pairs.get(&(*user, content)).is_some_and(|p| p.current);
        self.pending = Some((*user, content));
        let method = if liked {
            self.deletes += 1;
            Method::DELETE
        } else {
            self.puts += 1;
            Method::PUT
        };
        Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, &self.host)
            .header(AUTHORIZATION, bearer)
            .body(Body::default())
    }

    fn answered(&mut self, status: u16, body: &[u8]) {
        let Some((user, content)) = self.pending.take() else {
            return;
        };
        if status != 200 {
            // 429/503 leave the state as it was, but stay conservative: don't model this content.
            self.tainted.insert(content);
            return;
        }
        let liked = contains(body, b"\"liked\":true");
        let changed = contains(body, b"\"changed\":true");
        self.pairs
            .entry((user, content))
            // First sight: a change means the pair was the opposite before.
            .or_insert(PairState {
                initial: if changed { !liked } else { liked },
                current: liked,
            })
            .current = liked;
    }

    fn failed(&mut self) {
        if let Some((_, content)) = self.pending.take() {
            self.tainted.insert(content);
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// What the writes should have done to each content's count (`final - initial` summed over its
/// pairs), and the contents left out because some answer was unsure.
pub fn expected_deltas(sessions: &[WriteSession]) -> (HashMap<u64, i64>, HashSet<u64>) {
    let mut deltas: HashMap<u64, i64> = HashMap::new();
    let mut tainted = HashSet::new();
    for s in sessions {
        tainted.extend(s.tainted.iter().copied());
        for (&(_, content), p) in &s.pairs {
            *deltas.entry(content).or_default() += i64::from(p.current) - i64::from(p.initial);
        }
    }
    deltas.retain(|c, _| !tainted.contains(c));
    (deltas, tainted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_favours_low_ids_and_stays_in_range() {
        let z = Zipf::new(1000, 1.0);
        let mut rng = SmallRng::seed_from_u64(7);
        let draws: Vec<u64> = (0..100_000).map(|_| z.sample(&mut rng)).collect();
        assert!(draws.iter().all(|d| (1..=1000).contains(d)));
        let ones = draws.iter().filter(|d| **d == 1).count() as f64 / 1e5;
        // P(1) = 1 / H(1000) ≈ 0.134.
        assert!((0.12..0.15).contains(&ones), "{ones}");
    }

    #[test]
    fn first_answer_tells_the_initial_state() {
        let host = HeaderValue::from_static("x");
        let zipf = Arc::new(Zipf::new(1, 1.0));
        let bearer = [HeaderValue::from_static("Bearer t")];
        let mut s = WriteSession::partition(&host, &zipf, &bearer, 1, 1).remove(0);
        // Liked already (no change), then unliked.
        let _ = s.request();
        s.answered(
            200,
            br#"{"content_id":1,"liked":true,"count":1,"changed":false}"#,
        );
        assert_eq!(
            s.request().map(|r| r.method().clone()).ok(),
            Some(Method::DELETE)
        );
        s.answered(
            200,
            br#"{"content_id":1,"liked":false,"count":0,"changed":true}"#,
        );
        let (deltas, tainted) = expected_deltas(std::slice::from_ref(&s));
        assert_eq!(deltas.get(&1), Some(&-1));
        assert!(tainted.is_empty());
        let _ = s.request();
        s.failed();
        assert!(expected_deltas(&[s]).0.is_empty());
    }
}
