//! The HTTP API end to end on the embedded all-in-one: every route, every kind of bad input,
//! and authentication that cannot be borrowed.

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use support::{spawn, spawn_app, spawn_embedded, token, Backend};

on_every_backend! {
    async fn like_and_unlike_are_idempotent_and_counted_at_once(backend: Backend) {
        let t = spawn_app(backend).await;
        let first = t.like(1, 42).await;
        assert_eq!(
            first,
            json!({"content_id": 42, "liked": true, "count": 1, "changed": true})
        );
        let again = t.like(1, 42).await;
        assert_eq!(
            again,
            json!({"content_id": 42, "liked": true, "count": 1, "changed": false})
        );
        assert_eq!(t.like(2, 42).await["count"], 2);
        let got = t
            .json(t.request(Method::GET, "/v1/contents/42", Some(1)), 200)
            .await;
        assert_eq!(got, json!({"content_id": 42, "count": 2, "liked": true}));
        let anonymous = t
            .json(t.request(Method::GET, "/v1/contents/42", None), 200)
            .await;
        assert_eq!(
            anonymous,
            json!({"content_id": 42, "count": 2}),
            "no `liked` without a caller"
        );
        let unliked = t.unlike(1, 42).await;
        assert_eq!(
            unliked,
            json!({"content_id": 42, "liked": false, "count": 1, "changed": true})
        );
        assert_eq!(t.unlike(1, 42).await["changed"], false);
        let never = t.unlike(3, 43).await;
        assert_eq!(
            never,
            json!({"content_id": 43, "liked": false, "count": 0, "changed": false})
        );
        t.eventually("the store to match", || async {
            t.count_mismatches().await == 0 && t.stored_counts(&[42]).await == vec![1]
        })
        .await;
        t.stop().await;
    }

    async fn another_users_token_acts_as_that_user_never_as_you(backend: Backend) {
        let t = spawn_app(backend).await;
        t.like(1, 5).await;
        let as_b = t
            .json(t.request(Method::GET, "/v1/contents/5", Some(2)), 200)
            .await;
        assert_eq!(as_b["liked"], false);
        let b_unlikes = t.unlike(2, 5).await;
        assert_eq!(
            (b_unlikes["changed"].clone(), b_unlikes["count"].clone()),
            (json!(false), json!(1))
        );
        let as_a = t
            .json(t.request(Method::GET, "/v1/contents/5", Some(1)), 200)
            .await;
        assert_eq!(as_a["liked"], true);
    }

    async fn credentials_that_do_not_verify_are_refused(backend: Backend) {
        let t = spawn_app(backend).await;
        t.error(
            t.request(Method::PUT, "/v1/contents/1/like", None),
            401,
            "unauthorized",
        )
        .await;
        let garbage = t
            .request(Method::PUT, "/v1/contents/1/like", None)
            .bearer_auth("not.a.token");
        t.error(garbage, 401, "unauthorized").await;
        let forged = likes_ingest::auth::Authenticator::new(b"another-secret", None)
            .issue(likes_shared::UserId::new(1).expect("id"), 60)
            .expect("token");
        let forged = t
            .request(Method::PUT, "/v1/contents/1/like", None)
            .bearer_auth(forged);
        t.error(forged, 401, "unauthorized").await;
        let basic = t
            .request(Method::GET, "/v1/contents/1", None)
            .header("authorization", "Basic dTpw");
        t.error(basic, 401, "unauthorized").await;
        t.error(
            t.request(Method::GET, "/v1/me/likes", None),
            401,
            "unauthorized",
        )
        .await;
        let count = t
            .json(t.request(Method::GET, "/v1/contents/1", None), 200)
            .await;
        assert_eq!(count["count"], 0, "nothing was applied");
    }

    async fn bad_ids_are_400_with_a_json_error(backend: Backend) {
        let t = spawn_app(backend).await;
        for bad in ["0", "-1", "abc", "18446744073709551616", "1.5", "%2B1"] {
            t.error(
                t.request(Method::PUT, &format!("/v1/contents/{bad}/like"), Some(1)),
                400,
                "bad_request",
            )
            .await;
            t.error(
                t.request(Method::GET, &format!("/v1/contents/{bad}"), None),
                400,
                "bad_request",
            )
            .await;
        }
        let max = t.like(1, u64::MAX).await;
        assert_eq!(max["content_id"], json!(u64::MAX));
    }

    async fn batch_get_answers_counts_and_states_in_order(backend: Backend) {
        let t = spawn_app(backend).await;
        t.like(1, 10).await;
        t.like(2, 10).await;
        t.like(1, 12).await;
        let body = json!({"content_ids": [12, 10, 11]});
        let got = t
            .json(
                t.request(Method::POST, "/v1/contents:batchGet", Some(1))
                    .json(&body),
                200,
            )
            .await;
        assert_eq!(
            got,
            json!({"items": [
                {"content_id": 12, "count": 1, "liked": true},
                {"content_id": 10, "count": 2, "liked": true},
                {"content_id": 11, "count": 0, "liked": false},
            ]})
        );
        let anonymous = t
            .json(
                t.request(Method::POST, "/v1/contents:batchGet", None)
                    .json(&body),
                200,
            )
            .await;
        assert_eq!(anonymous["items"][1], json!({"content_id": 10, "count": 2}));
    }

    async fn batch_get_refuses_bad_bodies(backend: Backend) {
        let t = spawn_app(backend).await;
        let post = || t.request(Method::POST, "/v1/contents:batchGet", Some(1));
        let ids: Vec<u64> = (1..=101).collect();
        let too_many = t
            .error(
                post().json(&json!({"content_ids": ids})),
                400,
                "bad_request",
            )
            .await;
        assert!(
            too_many["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("100")),
            "{too_many}"
        );
        let hundred: Vec<u64> = (1..=100).collect();
        let ok = t
            .json(post().json(&json!({"content_ids": hundred})), 200)
            .await;
        assert_eq!(ok["items"].as_array().map(Vec::len), Some(100));
        t.error(
            post().json(&json!({"content_ids": [0]})),
            400,
            "bad_request",
        )
        .await;
        t.error(
            post().json(&json!({"content_ids": [-3]})),
            400,
            "bad_request",
        )
        .await;
        t.error(
            post().json(&json!({"content_ids": ["7"]})),
            400,
            "bad_request",
        )
        .await;
        let unknown = t
            .error(
                post().json(&json!({"content_ids": [1], "extra": true})),
                400,
                "bad_request",
            )
            .await;
        assert!(
            unknown["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("extra")),
            "{unknown}"
        );
        t.error(post().json(&json!({})), 400, "bad_request").await;
        let broken = post()
            .header("content-type", "application/json")
            .body("{\"content_ids\": [1,");
        t.error(broken, 400, "bad_request").await;
        let text = post()
            .header("content-type", "text/plain")
            .body("{\"content_ids\": [1]}");
        t.error(text, 415, "unsupported_media_type").await;
        t.error(
            post().body("{\"content_ids\": [1]}"),
            415,
            "unsupported_media_type",
        )
        .await;
        let huge = format!("{{\"content_ids\": [{}]}}", vec!["1"; 20_000].join(","));
        t.error(
            post().header("content-type", "application/json").body(huge),
            413,
            "payload_too_large",
        )
        .await;
    }

    async fn my_likes_pages_newest_first_with_an_opaque_cursor(backend: Backend) {
        let t = spawn_app(backend).await;
        for content in 1..=5 {
            t.like(9, content).await;
            tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        }
        t.unlike(9, 3).await;
        t.like(8, 100).await;
        let page = |cursor: Option<String>| {
            let path = match cursor {
                Some(c) => format!("/v1/me/likes?limit=2&cursor={c}"),
                None => "/v1/me/likes?limit=2".to_string(),
            };
            t.request(Method::GET, &path, Some(9))
        };
        t.eventually("the history to be committed", || async {
            let all = t
                .json(t.request(Method::GET, "/v1/me/likes", Some(9)), 200)
                .await;
            all["items"].as_array().map(|items| {
                items
                    .iter()
                    .filter_map(|i| i["content_id"].as_u64())
                    .collect::<Vec<_>>()
            }) == Some(vec![5, 4, 2, 1])
        })
        .await;
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let body: Value = t.json(page(cursor.clone()), 200).await;
            for item in body["items"].as_array().expect("items") {
                seen.push(item["content_id"].as_u64().expect("id"));
            }
            match body["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => break,
            }
        }
        assert_eq!(seen, vec![5, 4, 2, 1]);
        let me = |q: &str| t.request(Method::GET, &format!("/v1/me/likes{q}"), Some(9));
        t.error(me("?cursor=garbage!"), 400, "bad_request").await;
        t.error(me("?limit=0"), 400, "bad_request").await;
        t.error(me("?limit=101"), 400, "bad_request").await;
        t.error(me("?limit=x"), 400, "bad_request").await;
        t.error(me("?colour=red"), 400, "bad_request").await;
    }

    async fn trending_lists_the_most_liked_contents(backend: Backend) {
        let t = spawn_app(backend).await;
        for user in 1..=6 {
            t.like(user, 77).await;
        }
        for user in 1..=3 {
            t.like(user, 78).await;
        }
        t.like(1, 79).await;
        t.eventually("trending to be posted", || async {
            let body = t
                .json(t.request(Method::GET, "/v1/trending?limit=2", None), 200)
                .await;
            let ids: Vec<u64> = body["items"]
                .as_array()
                .map(|a| a.iter().filter_map(|i| i["content_id"].as_u64()).collect())
                .unwrap_or_default();
            ids == vec![77, 78]
        })
        .await;
        t.error(
            t.request(Method::GET, "/v1/trending?limit=1000", None),
            400,
            "bad_request",
        )
        .await;
    }

    async fn per_user_rate_limit_answers_429_with_retry_after(backend: Backend) {
        let t = spawn(backend, |c| {
            c.rate.per_user_per_sec = 1;
            c.rate.per_user_burst = 2;
        })
        .await;
        t.like(1, 1).await;
        t.like(1, 2).await;
        // The bucket refills a token a second: a slow machine may let one more through, never ten.
        // Each attempt likes another content, so the refused one can be checked alone.
        let mut refused = None;
        for content in 100..110u64 {
            let path = format!("/v1/contents/{content}/like");
            let response = t.send(t.request(Method::PUT, &path, Some(1))).await;
            if response.status().as_u16() == 429 {
                refused = Some((content, response));
                break;
            }
        }
        let (content, response) = refused.expect("a 429 within ten requests past the burst");
        let retry: u64 = response.headers()["retry-after"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("seconds");
        assert!((1..=2).contains(&retry), "{retry}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"]["code"], "rate_limited");
        t.like(2, content).await; // another user is unaffected
        let count = t
            .json(
                t.request(Method::GET, &format!("/v1/contents/{content}"), None),
                200,
            )
            .await;
        assert_eq!(count["count"], 1, "the refused like was not applied");
    }

    async fn dev_tokens_only_when_enabled(backend: Backend) {
        let t = spawn_app(backend).await;
        let issued = t
            .json(
                t.request(Method::POST, "/v1/dev/token", None)
                    .json(&json!({"user_id": 31})),
                200,
            )
            .await;
        let token_31 = issued["token"].as_str().expect("token").to_string();
        let liked = t
            .json(
                t.request(Method::PUT, "/v1/contents/8/like", None)
                    .bearer_auth(&token_31),
                200,
            )
            .await;
        assert_eq!(liked["changed"], true);
        t.error(
            t.request(Method::POST, "/v1/dev/token", None)
                .json(&json!({"user_id": 0})),
            400,
            "bad_request",
        )
        .await;
        let off = spawn(backend, |c| c.auth.dev_tokens = false).await;
        off.error(
            off.request(Method::POST, "/v1/dev/token", None)
                .json(&json!({"user_id": 31})),
            404,
            "not_found",
        )
        .await;
        assert!(!token(1).is_empty());
    }

    async fn dev_tokens_are_refused_to_requests_a_proxy_forwarded(backend: Backend) {
        // A loopback-bound demo behind a local Nginx sees every request from 127.0.0.1; the
        // forwarding header is what tells a remote caller apart.
        let t = spawn_app(backend).await;
        for (header, value) in [
            ("x-forwarded-for", "198.51.100.1"),
            ("forwarded", "for=198.51.100.1"),
            ("x-real-ip", "198.51.100.1"),
        ] {
            let forwarded = t
                .request(Method::POST, "/v1/dev/token", None)
                .header(header, value)
                .json(&json!({"user_id": 31}));
            t.error(forwarded, 404, "not_found").await;
        }
        let direct = t
            .request(Method::POST, "/v1/dev/token", None)
            .json(&json!({"user_id": 31}));
        assert!(t.json(direct, 200).await["token"].is_string());
    }

    async fn operational_endpoints_answer(backend: Backend) {
        let t = spawn_app(backend).await;
        assert_eq!(
            t.json(t.request(Method::GET, "/healthz", None), 200).await["status"],
            "ok"
        );
        let ready = t.json(t.request(Method::GET, "/readyz", None), 200).await;
        assert_eq!(ready["ready"], true);
        t.like(1, 1).await;
        let metrics = t
            .send(t.request(Method::GET, "/metrics", None))
            .await
            .text()
            .await
            .expect("text");
        assert!(
            metrics.contains(
                "http_server_request_duration_seconds_count{http_request_method=\"PUT\",\
                 http_response_status_code=\"200\",http_route=\"like\"} 1"
            ),
            "{metrics}"
        );
        assert!(
            metrics.contains("likes_ingest_events_published_total 1"),
            "{metrics}"
        );
        let spec = t
            .json(t.request(Method::GET, "/openapi.json", None), 200)
            .await;
        for path in [
            "/v1/contents/{content_id}/like",
            "/v1/contents/{content_id}",
            "/v1/contents:batchGet",
            "/v1/me/likes",
            "/v1/trending",
        ] {
            assert!(spec["paths"].get(path).is_some(), "openapi lacks {path}");
        }
        let index = t.json(t.request(Method::GET, "/", None), 200).await;
        assert_eq!(index["openapi"], "/openapi.json");
        // A browser gets the web page at the same URL, its script under the page's policy.
        let page = t
            .send(t.request(Method::GET, "/", None).header("accept", "text/html"))
            .await;
        assert_eq!(page.status(), 200);
        assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
        let policy = page.headers()["content-security-policy"].to_str().expect("ascii");
        assert!(policy.contains("script-src 'self'"), "{policy}");
        assert!(page.text().await.expect("text").contains("/assets/js/main.js"));
        let script = t.send(t.request(Method::GET, "/assets/js/main.js", None)).await;
        assert_eq!(script.status(), 200);
        assert_eq!(
            script.headers()["content-type"],
            "text/javascript; charset=utf-8"
        );
        t.error(t.request(Method::GET, "/v1/nope", None), 404, "not_found")
            .await;
        t.error(
            t.request(Method::POST, "/v1/contents/1/like", Some(1)),
            405,
            "method_not_allowed",
        )
        .await;
    }

    async fn a_trusted_gateway_header_identifies_the_caller_when_configured(backend: Backend) {
        let t = spawn(backend, |c| {
            c.auth.trusted_user_header = Some("X-User-Id".into())
        })
        .await;
        let as_5 = t
            .request(Method::PUT, "/v1/contents/6/like", None)
            .header("x-user-id", "5");
        assert_eq!(t.json(as_5, 200).await["liked"], true);
        let read = t
            .request(Method::GET, "/v1/contents/6", None)
            .header("x-user-id", "5");
        assert_eq!(
            t.json(read, 200).await,
            json!({"content_id": 6, "count": 1, "liked": true})
        );
        let zero = t
            .request(Method::PUT, "/v1/contents/6/like", None)
            .header("x-user-id", "0");
        t.error(zero, 401, "unauthorized").await;
        // Without the setting the header means nothing.
        let plain = spawn_app(backend).await;
        let ignored = plain
            .request(Method::PUT, "/v1/contents/6/like", None)
            .header("x-user-id", "5");
        plain.error(ignored, 401, "unauthorized").await;
    }

    async fn per_ip_limit_follows_x_forwarded_for_only_when_trusted(backend: Backend) {
        let limited = |c: &mut likes_ingest::IngestConfig| {
            c.rate.per_ip_per_sec = 1;
            c.rate.per_ip_burst = 1;
        };
        let trusted = spawn(backend, |c| {
            limited(c);
            c.trust_forwarded_for = true;
        })
        .await;
        assert_eq!(
            statuses_forwarded_for(&trusted, &["10.0.0.1".to_string()]).await,
            vec![200]
        );
        let via_proxy = vec!["10.0.0.2, 10.0.0.1".to_string(); 10];
        let statuses = statuses_forwarded_for(&trusted, &via_proxy).await;
        assert!(
            statuses.contains(&429),
            "the rightmost address is the client: {statuses:?}"
        );
        assert_eq!(
            statuses_forwarded_for(&trusted, &["10.0.0.2".to_string()]).await,
            vec![200]
        );
        // Not trusted: whatever the header says, every request comes from the same peer.
        let untrusted = spawn(backend, limited).await;
        let rotating: Vec<String> = (1..=10).map(|i| format!("10.0.1.{i}")).collect();
        let statuses = statuses_forwarded_for(&untrusted, &rotating).await;
        assert!(
            statuses.contains(&429),
            "an untrusted header chose the bucket: {statuses:?}"
        );
    }

    async fn per_ip_limit_counts_trusted_proxy_hops_from_the_right(backend: Backend) {
        let t = spawn(backend, |c| {
            c.rate.per_ip_per_sec = 1;
            c.rate.per_ip_burst = 2;
            c.trust_forwarded_for = true;
            c.trusted_proxy_hops = 2;
        })
        .await;
        // A CDN appended the client (203.0.113.7), then Nginx appended the CDN (10.0.0.2).
        let spoofed: Vec<String> = (1..=10)
            .map(|i| format!("198.51.100.{i}, 203.0.113.7, 10.0.0.2"))
            .collect();
        let statuses = statuses_forwarded_for(&t, &spoofed).await;
        assert!(statuses.contains(&429), "{statuses:?}");
        let other_client = ["198.51.100.1, 203.0.113.8, 10.0.0.2".to_string()];
        assert_eq!(statuses_forwarded_for(&t, &other_client).await, vec![200]);
    }

    async fn per_ip_limit_keys_on_the_address_the_proxy_appended_not_on_what_the_client_wrote(backend: Backend) {
        let t = spawn(backend, |c| {
            c.rate.per_ip_per_sec = 1;
            c.rate.per_ip_burst = 2;
            c.trust_forwarded_for = true;
        })
        .await;
        // One real client, seen by the proxy as 203.0.113.7, writes a new leftmost entry each time.
        let spoofed: Vec<String> = (1..=10)
            .map(|i| format!("198.51.100.{i}, 203.0.113.7"))
            .collect();
        let statuses = statuses_forwarded_for(&t, &spoofed).await;
        assert!(
            statuses.contains(&429),
            "rotating the leftmost entry escaped the limit: {statuses:?}"
        );
        let other_client = ["198.51.100.1, 203.0.113.8".to_string()];
        assert_eq!(statuses_forwarded_for(&t, &other_client).await, vec![200]);
    }

    async fn per_ip_limit_keys_ipv6_clients_on_their_64_prefix(backend: Backend) {
        let t = spawn(backend, |c| {
            c.rate.per_ip_per_sec = 1;
            c.rate.per_ip_burst = 2;
            c.trust_forwarded_for = true;
        })
        .await;
        // A host owns its whole /64: rotating the interface bits must not buy new buckets.
        let same_prefix: Vec<String> = (1..=10).map(|i| format!("2001:db8:1:2::{i:x}")).collect();
        let statuses = statuses_forwarded_for(&t, &same_prefix).await;
        assert!(
            statuses.contains(&429),
            "rotating addresses within one /64 escaped the limit: {statuses:?}"
        );
        let next_prefix = ["2001:db8:1:3::1".to_string()];
        assert_eq!(statuses_forwarded_for(&t, &next_prefix).await, vec![200]);
    }
}

#[tokio::test]
async fn a_publish_that_cannot_be_made_durable_is_503_and_undone() {
    // A zero-byte log budget takes one append, then refuses: the refused like must vanish.
    let t = spawn_embedded(|c| c.log_max_bytes = 0).await;
    t.like(1, 1).await;
    let response = t
        .send(t.request(Method::PUT, "/v1/contents/2/like", Some(1)))
        .await;
    assert_eq!(response.status().as_u16(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let got = t
        .json(t.request(Method::GET, "/v1/contents/2", Some(1)), 200)
        .await;
    assert_eq!(got, json!({"content_id": 2, "count": 0, "liked": false}));
}

#[tokio::test]
async fn a_short_jwt_secret_refuses_to_start_even_behind_a_trusted_header() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = support::config(dir.path());
    config.ingest.auth.jwt_secret = "sixteen-bytes!!!".into();
    config.ingest.auth.trusted_user_header = Some("X-User-Id".into());
    match likes::Embedded::start(config).await {
        Ok(app) => panic!("started on a 16-byte secret at {}", app.addr),
        Err(error) => assert!(
            format!("{error:#}").contains("LIKES_AUTH__JWT_SECRET"),
            "{error:#}"
        ),
    }
}

/// Statuses of `GET /v1/contents/1` sent once with each `X-Forwarded-For` value.
async fn statuses_forwarded_for(t: &support::TestApp, values: &[String]) -> Vec<u16> {
    let mut statuses = Vec::new();
    for value in values {
        let request = t
            .request(Method::GET, "/v1/contents/1", None)
            .header("x-forwarded-for", value);
        statuses.push(t.send(request).await.status().as_u16());
    }
    statuses
}
