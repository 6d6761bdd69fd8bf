//! One function per route: take validated input, call [`LikeService`], shape the JSON answer.

use crate::error::ApiError;
use crate::filters::Context;
use crate::service::Answer;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use likes_shared::store::HistoryCursor;
use likes_shared::{Action, ContentId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use warp::http::StatusCode;
use warp::reply::{json as reply_json, with_status, Json, WithStatus};

pub const MAX_BATCH: usize = 100;
const MAX_PAGE: usize = 100;

fn require(user: Option<UserId>) -> Result<UserId, ApiError> {
    user.ok_or_else(|| {
        ApiError::Unauthorized("this endpoint needs `Authorization: Bearer <token>`".into())
    })
}

pub async fn act(
    ctx: Arc<Context>,
    content: ContentId,
    user: Option<UserId>,
    action: Action,
) -> Result<Json, ApiError> {
    let user = require(user)?;
    ctx.admission.check_user(user)?;
    let outcome = ctx.service.act(user, content, action).await?;
    Ok(reply_json(&ActView {
        content_id: content,
        liked: outcome.liked,
        count: outcome.count,
        changed: outcome.changed,
        stale: outcome.stale,
    }))
}

// The answers of the hot routes are typed, not `json!` values: a value is a map of boxed
// values built per answer, and a page of 100 items paid more for those maps than for its
// counts.

/// A like's or unlike's answer.
#[derive(Serialize)]
struct ActView {
    content_id: ContentId,
    count: i64,
    changed: bool,
    liked: bool,
    #[serde(skip_serializing_if = "is_false")]
    stale: bool,
}

/// One content as a read shows it; `liked` only for a caller.
#[derive(Serialize)]
struct ContentView {
    content_id: ContentId,
    count: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    liked: Option<bool>,
    #[serde(skip_serializing_if = "is_false")]
    stale: bool,
}

#[derive(Serialize)]
struct PageView {
    items: Vec<ContentView>,
    #[serde(skip_serializing_if = "is_false")]
    stale: bool,
}

/// `"stale": true` on an answer given without the state cache (DESIGN section 8); absent
/// otherwise, so fresh answers keep their shape.
fn is_false(stale: &bool) -> bool {
    !*stale
}

/// The counts of `ids` and, for a caller, their states: read at once (two independent round
/// trips to the cache, so a page costs one round trip of latency, not two).
async fn counts_and_states(
    ctx: &Context,
    ids: &[ContentId],
    user: Option<UserId>,
) -> Result<(Answer<Vec<i64>>, Option<Answer<Vec<bool>>>), ApiError> {
    let Some(user) = user else {
        return Ok((ctx.service.read_counts(ids).await?, None));
    };
    ctx.admission.check_user(user)?;
    let (counts, liked) = tokio::join!(
        ctx.service.read_counts(ids),
        ctx.service.read_liked(user, ids)
    );
    Ok((counts?, Some(liked?)))
}

pub async fn get_content(
    ctx: Arc<Context>,
    content: ContentId,
    user: Option<UserId>,
) -> Result<Json, ApiError> {
    let (counts, liked) = counts_and_states(&ctx, &[content], user).await?;
    Ok(reply_json(&ContentView {
        content_id: content,
        count: counts.value[0],
        liked: liked.as_ref().map(|l| l.value[0]),
        stale: counts.stale || liked.is_some_and(|l| l.stale),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchGetRequest {
    pub content_ids: Vec<ContentId>,
}

pub async fn batch_get(
    ctx: Arc<Context>,
    request: BatchGetRequest,
    user: Option<UserId>,
) -> Result<Json, ApiError> {
    let ids = request.content_ids;
    if ids.len() > MAX_BATCH {
        return Err(ApiError::bad_request(format!(
            "content_ids has {} ids; at most {MAX_BATCH} per call",
            ids.len()
        )));
    }
    let (counts, liked) = counts_and_states(&ctx, &ids, user).await?;
    let stale = counts.stale || liked.as_ref().is_some_and(|l| l.stale);
    let liked = liked.map(|l| l.value);
    let items = ids
        .iter()
        .zip(counts.value)
        .enumerate()
        .map(|(i, (id, count))| ContentView {
            content_id: *id,
            count,
            liked: liked.as_ref().map(|l| l[i]),
            stale: false,
        })
        .collect();
    Ok(reply_json(&PageView { items, stale }))
}

fn parse_limit(query: &HashMap<String, String>, default: usize) -> Result<usize, ApiError> {
    match query.get("limit") {
        None => Ok(default),
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            _ => Err(ApiError::bad_request(format!(
                "limit must be an integer from 1 to {MAX_PAGE}"
            ))),
        },
    }
}

fn only_params(query: &HashMap<String, String>, allowed: &[&str]) -> Result<(), ApiError> {
    match query.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(unknown) => Err(ApiError::bad_request(format!(
            "unknown query parameter `{unknown}`"
        ))),
        None => Ok(()),
    }
}

/// Cursors are opaque to clients: base64url of `<liked_at_ms>:<content_id>`.
fn encode_cursor(cursor: HistoryCursor) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}", cursor.liked_at_ms, cursor.content_id))
}

fn decode_cursor(text: &str) -> Result<HistoryCursor, ApiError> {
    let bad = || ApiError::bad_request("cursor is not one this API returned");
    let raw = URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let (at, content) = raw.split_once(':').ok_or_else(bad)?;
    Ok(HistoryCursor {
        liked_at_ms: at.parse().map_err(|_| bad())?,
        content_id: ContentId::parse(content).map_err(|_| bad())?,
    })
}

pub async fn my_likes(
    ctx: Arc<Context>,
    query: HashMap<String, String>,
    user: Option<UserId>,
) -> Result<Json, ApiError> {
    let user = require(user)?;
    ctx.admission.check_user(user)?;
    only_params(&query, &["cursor", "limit"])?;
    let limit = parse_limit(&query, 20)?;
    let cursor = query
        .get("cursor")
        .filter(|c| !c.is_empty())
        .map(|c| decode_cursor(c))
        .transpose()?;
    let items = ctx.service.history(user, cursor, limit).await?;
    let next_cursor = (items.len() == limit).then(|| {
        let last = items[items.len() - 1];
        encode_cursor(HistoryCursor {
            liked_at_ms: last.liked_at_ms,
            content_id: last.content_id,
        })
    });
    let items: Vec<Value> = items
        .iter()
        .map(|i| json!({ "content_id": i.content_id, "liked_at_ms": i.liked_at_ms }))
        .collect();
    Ok(reply_json(
        &json!({ "items": items, "next_cursor": next_cursor }),
    ))
}

pub async fn trending(ctx: Arc<Context>, query: HashMap<String, String>) -> Result<Json, ApiError> {
    only_params(&query, &["limit"])?;
    let limit = parse_limit(&query, 10)?;
    let items: Vec<Value> = ctx
        .service
        .trending(limit)
        .await
        .iter()
        .map(|e| json!({ "content_id": e.content_id, "score": e.score }))
        .collect();
    Ok(reply_json(&json!({ "items": items })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevTokenRequest {
    pub user_id: UserId,
}

pub async fn dev_token(ctx: Arc<Context>, request: DevTokenRequest) -> Result<Json, ApiError> {
    let ttl_secs = ctx.dev_token_mint.admit(request.user_id)?;
    let token = ctx.auth.issue(request.user_id, ttl_secs)?;
    Ok(reply_json(
        &json!({ "token": token, "user_id": request.user_id }),
    ))
}

/// Answers from the shared, briefly cached probe: never a store round trip per call.
pub async fn readyz(ctx: Arc<Context>) -> Result<WithStatus<Json>, ApiError> {
    let readiness = ctx.readiness.check().await;
    let status = if readiness.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "ready": readiness.is_ready(),
        "checks": { "bus": readiness.bus, "cache": readiness.cache, "store": readiness.store },
        "spool_depth": readiness.spool_depth,
    });
    Ok(with_status(reply_json(&body), status))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stub_backends::{self, PingOnlyStore};
    use std::time::Duration;
    use warp::Reply;

    #[tokio::test]
    async fn concurrent_readiness_checks_share_one_store_probe() {
        let store = Arc::new(PingOnlyStore::with_ping_delay(Duration::from_millis(50)));
        let ctx = stub_backends::context(stub_backends::backends_with_store(store.clone()));
        let answers = futures::future::join_all((0..32).map(|_| readyz(ctx.clone()))).await;
        for answer in answers {
            let status = answer.expect("readyz answers").into_response().status();
            assert_eq!(status, StatusCode::OK);
        }
        assert_eq!(store.pings(), 1, "store pings for 32 concurrent /readyz");
        let again = readyz(ctx.clone()).await.expect("readyz answers");
        assert_eq!(again.into_response().status(), StatusCode::OK);
        assert_eq!(store.pings(), 1, "a fresh probe result is reused");
    }

    /// A primary publisher that is down: everything it is given goes to the spool.
    struct DownPublisher;

    #[async_trait::async_trait]
    impl likes_shared::bus::EventPublisher for DownPublisher {
        async fn publish(
            &self,
            _: &likes_shared::LikeEvent,
        ) -> Result<likes_shared::bus::DurableMark, likes_shared::bus::BusError> {
            Err(likes_shared::bus::BusError::Unavailable("down".into()))
        }

        fn is_ready(&self) -> bool {
            false
        }
    }

    #[tokio::test]
    async fn readiness_reports_the_spool_depth_and_stays_ready_while_the_spool_has_room() {
        use crate::spool::{SpoolConfig, SpooledPublisher};
        use likes_shared::bus::EventPublisher;
        let dir = tempfile::tempdir().expect("tempdir");
        let (_trigger, shutdown) = likes_shared::shutdown::channel();
        let config = SpoolConfig {
            dir: dir.path().to_path_buf(),
            ..SpoolConfig::default()
        };
        let (spool, _drainer) =
            SpooledPublisher::open(Arc::new(DownPublisher), config, shutdown).expect("spool");
        for n in 1..=3 {
            let event = likes_shared::LikeEvent {
                event_id: u128::from(n),
                user_id: UserId::new(1).expect("user id"),
                content_id: ContentId::new(9).expect("content id"),
                action: Action::Like,
                version: n,
                ts_ms: 1,
                source: "readyz-test".into(),
                fill_epoch: 0,
            };
            spool.publish(&event).await.expect("spooled");
        }
        let mut backends = stub_backends::backends();
        backends.publisher = Arc::new(spool);
        let routes = crate::filters::routes(stub_backends::context(backends));
        let answer = warp::test::request().path("/readyz").reply(&routes).await;
        assert_eq!(answer.status(), StatusCode::OK);
        let body: serde_json::Value = serde_json::from_slice(answer.body()).expect("json");
        assert_eq!(body["spool_depth"], 3, "{body}");
        assert_eq!(body["checks"]["bus"], true, "{body}");
    }
}
