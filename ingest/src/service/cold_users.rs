//! [`ColdUserReads`]: the store reads that fill cold users, many users to a read.
//!
//! A user absent from the state cache is filled from the store before the cache may say "not
//! liked" (DESIGN section 7). On a platform most likes come from users the cache has not seen
//! for a while, so these reads arrive by the thousand a second, and on TiDB each one is a
//! coprocessor range scan that costs several times a point read (measured: 32 users in one
//! statement cost the server about what 1.3 single-user reads do). So reads of users that
//! arrive while others are in flight wait in one queue and go to the store together
//! ([`LikeStore::users_rows`]), up to [`MAX_USERS_PER_READ`] users a read and
//! [`MAX_READS_IN_FLIGHT`] reads at once. A lone read goes at once: batching adds no wait, it
//! only takes what queued up behind the reads in flight.
//!
//! The reads run in tasks of their own, so a request that gives up (its client left) does not
//! cancel a read other requests wait on. The queue is bounded: past it a fill fails as a
//! store that is unavailable does (an action answers 503).

use likes_shared::store::{LikeStore, RowState, StoreError};
use likes_shared::{ContentId, UserId};
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use tokio::sync::oneshot;

/// Users in one store read.
pub const MAX_USERS_PER_READ: usize = 32;
/// Store reads of cold users at once (each holds one connection of the store's pool).
pub const MAX_READS_IN_FLIGHT: usize = 4;
/// Users waiting for a read; past this a fill fails at once.
pub const MAX_QUEUED: usize = 4_096;

type Rows = Vec<(ContentId, RowState)>;
type Reply = oneshot::Sender<Result<Rows, StoreError>>;

pub struct ColdUserReads {
    store: Arc<dyn LikeStore>,
    /// Rows read per user (the caller's bound plus one, to tell a complete fill).
    limit: usize,
    queue: Arc<Mutex<Queue>>,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<(UserId, Reply)>,
    reads_in_flight: usize,
}

impl ColdUserReads {
    pub fn new(store: Arc<dyn LikeStore>, limit: usize) -> Self {
        ColdUserReads {
            store,
            limit,
            queue: Arc::default(),
        }
    }

    /// `user`'s rows, most recently changed first, at most `limit` (as
    /// [`LikeStore::user_rows`]), read together with the other cold users queued meanwhile.
    pub async fn rows(&self, user: UserId) -> Result<Rows, StoreError> {
        let (reply, answer) = oneshot::channel();
        let start_read = {
            let mut queue = self.queue.lock();
            if queue.waiting.len() >= MAX_QUEUED {
                return Err(StoreError::Transient(format!(
                    "{MAX_QUEUED} cold users already wait for the store"
                )));
            }
            queue.waiting.push_back((user, reply));
            let start = queue.reads_in_flight < MAX_READS_IN_FLIGHT;
            if start {
                queue.reads_in_flight += 1;
            }
            start
        };
        if start_read {
            let reader = Reader {
                store: self.store.clone(),
                limit: self.limit,
                queue: self.queue.clone(),
            };
            tokio::spawn(reader.run());
        }
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::Transient(
                "the cold-user read ended without an answer".into(),
            ))
        })
    }
}

/// One read in flight: takes what is queued, reads it, and goes on until the queue is empty.
struct Reader {
    store: Arc<dyn LikeStore>,
    limit: usize,
    queue: Arc<Mutex<Queue>>,
}

impl Reader {
    async fn run(self) {
        // Given back however the task ends (a panicking store included), so the queue never
        // waits for a reader that is gone.
        let mut slot = Slot(Some(self.queue.clone()));
        loop {
            let batch: Vec<(UserId, Reply)> = {
                let mut queue = self.queue.lock();
                if queue.waiting.is_empty() {
                    // Under the lock that saw the queue empty: a user queued after this
                    // starts a reader of its own.
                    queue.reads_in_flight -= 1;
                    slot.0 = None;
                    return;
                }
                let n = queue.waiting.len().min(MAX_USERS_PER_READ);
                queue.waiting.drain(..n).collect()
            };
            self.answer(batch).await;
        }
    }

    async fn answer(&self, batch: Vec<(UserId, Reply)>) {
        let mut replies: HashMap<UserId, Vec<Reply>> = HashMap::with_capacity(batch.len());
        for (user, reply) in batch {
            replies.entry(user).or_default().push(reply);
        }
        while !replies.is_empty() {
            let users: Vec<UserId> = replies.keys().copied().collect();
            let outcome = self.store.users_rows(&users, self.limit).await;
            let before = replies.len();
            match outcome {
                Ok(answered) => {
                    for (user, rows) in answered {
                        for reply in replies.remove(&user).unwrap_or_default() {
                            // A requester that left does not take its answer: nothing to do.
                            let _ = reply.send(Ok(rows.clone()));
                        }
                    }
                    if replies.len() < before {
                        continue;
                    }
                    let stuck =
                        StoreError::Transient("the store answered none of the users".into());
                    fail_all(replies, &stuck);
                }
                Err(error) => fail_all(replies, &error),
            }
            return;
        }
    }
}

fn fail_all(replies: HashMap<UserId, Vec<Reply>>, error: &StoreError) {
    for reply in replies.into_values().flatten() {
        let _ = reply.send(Err(error.clone()));
    }
}

/// A reader's place among [`MAX_READS_IN_FLIGHT`]: a reader gives it back when it finds the
/// queue empty; this gives it back if the task ends any other way (a panic). The users that
/// reader held then fail, as their replies drop; the ones still queued wait for the next fill
/// to start a reader.
struct Slot(Option<Arc<Mutex<Queue>>>);

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(queue) = self.0.take() {
            queue.lock().reads_in_flight -= 1;
        }
    }
}

#[cfg(test)]
#[path = "cold_users/tests.rs"]
mod tests;
