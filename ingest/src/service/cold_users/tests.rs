use super::*;
use async_trait::async_trait;
use likes_shared::store::{ApplyOutcome, HistoryCursor, LikeChange, LikedItem, UserRows};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A store whose user `u` has one row, content `u` at version `u`. Each read of many users
/// takes a while (so fills queue behind it), is recorded, answers at most `answer_at_most`
/// of its users, and fails while `failing` is set.
struct RecordingStore {
    reads: Mutex<Vec<Vec<UserId>>>,
    answer_at_most: usize,
    failing: AtomicBool,
}

impl RecordingStore {
    fn new(answer_at_most: usize) -> Arc<Self> {
        Arc::new(RecordingStore {
            reads: Mutex::default(),
            answer_at_most,
            failing: AtomicBool::new(false),
        })
    }

    fn reads(&self) -> Vec<Vec<UserId>> {
        self.reads.lock().clone()
    }
}

fn row_of(user: UserId) -> Rows {
    let content = ContentId::new(user.get()).expect("non-zero");
    vec![(
        content,
        RowState {
            liked: true,
            version: user.get(),
        },
    )]
}

fn unused() -> StoreError {
    StoreError::Permanent("not used by these tests".into())
}

#[async_trait]
impl LikeStore for RecordingStore {
    async fn apply_window(&self, _: &[LikeChange]) -> Result<ApplyOutcome, StoreError> {
        Err(unused())
    }
    async fn counts(&self, _: &[ContentId]) -> Result<Vec<i64>, StoreError> {
        Err(unused())
    }
    async fn states(
        &self,
        _: UserId,
        _: &[ContentId],
    ) -> Result<Vec<Option<RowState>>, StoreError> {
        Err(unused())
    }
    async fn user_rows(&self, user: UserId, _: usize) -> Result<Rows, StoreError> {
        Ok(row_of(user))
    }
    async fn users_rows(&self, users: &[UserId], _: usize) -> Result<Vec<UserRows>, StoreError> {
        self.reads.lock().push(users.to_vec());
        tokio::time::sleep(Duration::from_millis(20)).await;
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Transient("store away".into()));
        }
        Ok(users
            .iter()
            .take(self.answer_at_most)
            .map(|&u| (u, row_of(u)))
            .collect())
    }
    async fn history(
        &self,
        _: UserId,
        _: Option<HistoryCursor>,
        _: usize,
    ) -> Result<Vec<LikedItem>, StoreError> {
        Err(unused())
    }
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

fn user(n: u64) -> UserId {
    UserId::new(n).expect("non-zero")
}

async fn fill_all(reads: &Arc<ColdUserReads>, users: Vec<UserId>) -> Vec<Result<Rows, StoreError>> {
    let tasks: Vec<_> = users
        .into_iter()
        .map(|u| {
            let reads = reads.clone();
            tokio::spawn(async move { reads.rows(u).await })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("no panic"));
    }
    answers
}

#[tokio::test]
async fn fills_that_arrive_together_share_reads_and_each_gets_its_own_rows() {
    let store = RecordingStore::new(usize::MAX);
    let reads = Arc::new(ColdUserReads::new(store.clone(), 1_001));
    let users: Vec<UserId> = (1..=200).map(user).collect();
    let answers = fill_all(&reads, users.clone()).await;
    for (u, answer) in users.iter().zip(&answers) {
        assert_eq!(answer.as_ref().ok(), Some(&row_of(*u)), "user {u:?}");
    }
    let batches = store.reads();
    assert!(
        batches.iter().all(|b| b.len() <= MAX_USERS_PER_READ),
        "{batches:?}"
    );
    assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 200);
    // 200 users at once: 4 readers, each taking up to 32 a read.
    assert!(batches.len() <= 10, "{} reads for 200 users", batches.len());
    assert_eq!(
        reads.queue.lock().reads_in_flight,
        0,
        "every reader gave its place back"
    );
}

#[tokio::test]
async fn users_a_read_left_out_are_read_again_and_one_user_asked_twice_is_read_once() {
    let store = RecordingStore::new(1);
    let reads = Arc::new(ColdUserReads::new(store.clone(), 1_001));
    let users = vec![user(7), user(8), user(7), user(9), user(8)];
    let answers = fill_all(&reads, users.clone()).await;
    for (u, answer) in users.iter().zip(&answers) {
        assert_eq!(answer.as_ref().ok(), Some(&row_of(*u)), "user {u:?}");
    }
    let asked: usize = store.reads().iter().map(Vec::len).sum();
    // Each read answers one user: at worst 3 + 2 + 1 users asked over three reads per
    // reader, never the duplicate twice in one read.
    assert!(
        store.reads().iter().all(|b| {
            let mut d = b.clone();
            d.sort_unstable();
            d.dedup();
            d.len() == b.len()
        }),
        "{:?}",
        store.reads()
    );
    assert!(asked <= 5 * MAX_READS_IN_FLIGHT, "{:?}", store.reads());
}

#[tokio::test]
async fn a_failed_read_fails_its_users_and_the_queue_goes_on() {
    let store = RecordingStore::new(usize::MAX);
    store.failing.store(true, Ordering::SeqCst);
    let reads = Arc::new(ColdUserReads::new(store.clone(), 1_001));
    let answers = fill_all(&reads, (1..=40).map(user).collect()).await;
    assert!(
        answers
            .iter()
            .all(|a| matches!(a, Err(StoreError::Transient(m)) if m == "store away")),
        "{answers:?}"
    );
    store.failing.store(false, Ordering::SeqCst);
    assert_eq!(reads.rows(user(3)).await.ok(), Some(row_of(user(3))));
    assert_eq!(reads.queue.lock().reads_in_flight, 0);
}
