//! One request, one caller: duplicated credentials are 400, and a user id has one spelling, in
//! the trusted header and in a token's `sub`. Tokens whose time claims do not hold are 401.

use crate::support::{spawn, spawn_app, token, Backend, SECRET};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};

const PATH: &str = "/v1/contents/1";

fn now() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970");
    since_epoch.as_secs() as i64
}

/// An HS256 token signed with the tests' secret, with any header and claims.
fn signed(header: Value, claims: Value) -> String {
    let encode = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let message = format!("{}.{}", encode(&header), encode(&claims));
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(SECRET.as_bytes()),
        Algorithm::HS256,
    )
    .expect("signs");
    format!("{message}.{signature}")
}

fn hs256() -> Value {
    json!({"alg": "HS256", "typ": "JWT"})
}

crate::on_every_backend! {
    async fn two_authorization_headers_are_400(backend: Backend) {
        let t = spawn_app(backend).await;
        let valid = format!("Bearer {}", token(1));
        for second in [valid.clone(), format!("Bearer {}", token(2)), "garbage".into()] {
            let request = t
                .client
                .get(format!("{}{PATH}", t.base))
                .header("authorization", &valid)
                .header("authorization", second);
            t.error(request, 400, "bad_request").await;
        }
        t.stop().await;
    }

    async fn the_trusted_header_is_single_and_canonical(backend: Backend) {
        let t = spawn(backend, |c| {
            c.auth.trusted_user_header = Some("X-User-Id".into());
        })
        .await;
        let url = format!("{}{PATH}", t.base);
        let twice = t
            .client
            .get(&url)
            .header("x-user-id", "1")
            .header("x-user-id", "2");
        t.error(twice, 400, "bad_request").await;
        for spelling in ["042", "+42", "0042", "4 2", "0x2a"] {
            let request = t.client.get(&url).header("x-user-id", spelling);
            t.error(request, 401, "unauthorized").await;
        }
        let canonical = t.client.get(&url).header("x-user-id", "42");
        assert_eq!(t.json(canonical, 200).await["liked"], false);
        t.stop().await;
    }

    async fn tokens_with_unchecked_claims_or_a_second_spelling_are_401(backend: Backend) {
        let t = spawn_app(backend).await;
        let now = now();
        let year = 365 * 24 * 3600;
        let refused = [
            ("a zero-padded sub", hs256(), json!({"sub": "007", "iat": now, "exp": now + 600})),
            ("nbf in an hour", hs256(), json!({"sub": "7", "nbf": now + 3600, "exp": now + 7200})),
            ("iat a year ahead", hs256(), json!({"sub": "7", "iat": now + year, "exp": now + year + 60})),
            (
                "an unknown crit",
                json!({"alg": "HS256", "typ": "JWT", "crit": ["exp-ext"], "exp-ext": true}),
                json!({"sub": "7", "iat": now, "exp": now + 600}),
            ),
            ("a 30-day lifetime", hs256(), json!({"sub": "7", "iat": now, "exp": now + 30 * 24 * 3600})),
            ("a year ahead without iat", hs256(), json!({"sub": "7", "exp": now + year})),
        ];
        for (what, header, claims) in refused {
            let request = t
                .client
                .get(format!("{}{PATH}", t.base))
                .bearer_auth(signed(header, claims));
            let response = t.send(request).await;
            let status = response.status().as_u16();
            let body: Value = response.json().await.expect("a JSON body");
            assert_eq!((status, &body["error"]["code"]), (401, &json!("unauthorized")), "{what}: {body}");
        }
        let fine = t
            .client
            .get(format!("{}{PATH}", t.base))
            .bearer_auth(signed(hs256(), json!({"sub": "7", "iat": now, "exp": now + 600})));
        assert_eq!(t.json(fine, 200).await["liked"], false);
        t.stop().await;
    }
}
