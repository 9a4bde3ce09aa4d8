//! Rate limits: per token (429, `Retry-After`, `RateLimit-*`, recovery) and per client IP
//! for failed token authentications (brute force), which never reaches the store for
//! malformed tokens — counted through `/metrics`.

mod common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::Value;

fn header(res: &reqwest::Response, name: &str) -> Option<u64> {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

async fn metric(server: &TestServer, name: &str) -> u64 {
    let text = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[tokio::test]
async fn a_token_gets_its_quota_with_headers_then_429_then_recovers() {
    let server = TestServer::start_with(&["--token-rate-per-minute", "60"]).await;
    let token = server.user_with_token("ada", "member");
    let other = server.cli_token("ada", "second", &[]);
    for n in 1..=60u64 {
        let res = server.get("/api/tokens/self", &token).await;
        assert_eq!(res.status(), StatusCode::OK, "request {n}");
        assert_eq!(header(&res, "ratelimit-limit"), Some(60));
        assert_eq!(header(&res, "ratelimit-remaining"), Some(60 - n));
        let reset = header(&res, "ratelimit-reset").expect("reset");
        assert!(reset <= 60, "reset {reset}");
    }
    let res = server.get("/api/tokens/self", &token).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&res, "retry-after"), Some(1));
    assert_eq!(header(&res, "ratelimit-remaining"), Some(0));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    let res = server.get("/api/tokens/self", &other).await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "each token has its own allowance"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let res = server.get("/api/tokens/self", &token).await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "one request a second comes back"
    );
    assert_eq!(header(&res, "ratelimit-remaining"), Some(0));
}

#[tokio::test]
async fn failed_authentications_lock_the_address_out() {
    let server = TestServer::start_with(&["--failed-auth-per-minute", "5"]).await;
    let token = server.user_with_token("ada", "member");
    // Well-formed, then revoked: verifying it fails only after the store answers.
    let unknown = server.cli_token("ada", "soon revoked", &[]);
    let me: Value = server
        .get("/api/tokens/self", &unknown)
        .await
        .json()
        .await
        .unwrap();
    let res = server
        .delete(&format!("/api/tokens/{}", me["id"]), &token)
        .await;
    assert!(res.status().is_success());
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(server.get("/api/tokens/self", &unknown).await.status());
    }
    assert_eq!(
        &statuses[..6],
        &[StatusCode::UNAUTHORIZED; 6],
        "{statuses:?}"
    );
    assert_eq!(
        &statuses[6..],
        &[StatusCode::TOO_MANY_REQUESTS; 2],
        "{statuses:?}"
    );
    let res = server.get("/api/tokens/self", &token).await;
    assert_eq!(
        res.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "a locked-out address is refused even with a good token"
    );
    let wait = header(&res, "retry-after").expect("retry-after");
    assert!((1..=12).contains(&wait), "Retry-After {wait}");
    assert_eq!(metric(&server, "hark_auth_locked_out_addresses").await, 1);
}

#[tokio::test]
async fn ten_thousand_malformed_tokens_never_touch_the_store() {
    let server = TestServer::start().await;
    let before = metric(&server, "hark_token_store_lookups_total").await;
    let mut unauthorized = 0;
    let mut limited = 0;
    let started = std::time::Instant::now();
    for n in 0..10_000 {
        // Wrong checksums, wrong lengths, wrong prefixes.
        let junk = match n % 3 {
            0 => format!("hark_pat_{n:0>38}"),
            1 => format!("hark_pat_{n}"),
            _ => format!("ghp_{n:0>36}"),
        };
        let status = server.get("/api/recordings", &junk).await.status();
        match status {
            StatusCode::UNAUTHORIZED => unauthorized += 1,
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            other => panic!("request {n}: {other}"),
        }
    }
    assert_eq!(unauthorized + limited, 10_000);
    // The default budget: 30 at once, then one more every 2 s (30 a minute); the failure
    // that spends the budget is itself answered 401 before the lockout starts.
    let budget = 31 + 2 * (started.elapsed().as_secs_f64() / 2.0).ceil() as u32;
    assert!(
        unauthorized <= budget,
        "{unauthorized} failures let through, budget {budget}"
    );
    let after = metric(&server, "hark_token_store_lookups_total").await;
    assert_eq!(
        after, before,
        "not one storage lookup for a malformed token"
    );
}

#[tokio::test]
async fn active_tokens_are_capped_per_user_and_per_workspace() {
    let server = TestServer::start_with(&[
        "--max-tokens-per-user",
        "2",
        "--max-tokens-per-workspace",
        "3",
    ])
    .await;
    let ada = server.user_with_token("ada", "member");
    let second = server
        .api_token(&ada, serde_json::json!({"name": "second"}))
        .await;
    let res = server
        .post_json("/api/tokens", &ada, serde_json::json!({"name": "third"}))
        .await;
    let (status, _) = error_code(res).await;
    assert_eq!(status, StatusCode::CONFLICT, "two per user");
    let res = server
        .post_json("/api/tokens", &ada, serde_json::json!({"name": "third"}))
        .await;
    let body: Value = res.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2 active tokens per user"),
        "{body}"
    );
    let res = server
        .delete(&format!("/api/tokens/{}", second["id"]), &ada)
        .await;
    assert!(res.status().is_success());
    server
        .api_token(&ada, serde_json::json!({"name": "third"}))
        .await;

    let bob = server.user_with_token("bob", "member");
    let res = server
        .post_json(
            "/api/tokens",
            &bob,
            serde_json::json!({"name": "bob's second"}),
        )
        .await;
    let body: Value = res.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("3 active tokens in this workspace"),
        "{body}"
    );
}

#[tokio::test]
async fn a_token_can_carry_its_own_budget_and_only_admins_raise_it() {
    let server = TestServer::start_with(&["--token-rate-per-minute", "100"]).await;
    let admin = server.user_with_token("root", "admin");
    let member = server.user_with_token("ada", "member");
    let slow = server
        .api_token(
            &member,
            serde_json::json!({"name": "slow", "requests_per_minute": 3}),
        )
        .await;
    assert_eq!(slow["requests_per_minute"], 3);
    let slow = slow["token"].as_str().unwrap().to_owned();
    for n in 1..=3u64 {
        let res = server.get("/api/tokens/self", &slow).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(header(&res, "ratelimit-limit"), Some(3));
        assert_eq!(header(&res, "ratelimit-remaining"), Some(3 - n));
    }
    let res = server.get("/api/tokens/self", &slow).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&res, "ratelimit-limit"), Some(3));
    let res = server.get("/api/tokens/self", &member).await;
    assert_eq!(
        header(&res, "ratelimit-limit"),
        Some(100),
        "the default for the rest"
    );

    let res = server
        .post_json(
            "/api/tokens",
            &member,
            serde_json::json!({"name": "greedy", "requests_per_minute": 1000}),
        )
        .await;
    let (status, _) = error_code(res).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "members cannot exceed the default"
    );
    let fast = server
        .api_token(
            &admin,
            serde_json::json!({"name": "fast", "requests_per_minute": 1000}),
        )
        .await;
    let res = server
        .get("/api/tokens/self", fast["token"].as_str().unwrap())
        .await;
    assert_eq!(header(&res, "ratelimit-limit"), Some(1000));
    let res = server
        .post_json(
            "/api/tokens",
            &admin,
            serde_json::json!({"name": "zero", "requests_per_minute": 0}),
        )
        .await;
    let (status, _) = error_code(res).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_tokens_budget_holds_across_nodes_sharing_redis() {
    // A prefix of this run's own: other test servers (and other runs) share the Redis.
    let prefix = format!(
        "hark-test-{}-{}:",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let flags = [
        "--token-rate-per-minute",
        "10",
        "--redis-url",
        "redis://127.0.0.1:6379",
        "--redis-prefix",
        prefix.as_str(),
    ];
    let server = TestServer::start_with(&flags).await;
    let token = server.user_with_token("ada", "member");
    let second = server.start_node("serve", &flags);
    let (mut passed, mut refused) = (0, 0);
    for n in 0..20 {
        let base = if n % 2 == 0 {
            &server.base
        } else {
            &second.base
        };
        let res = server
            .client
            .get(format!("{base}/api/tokens/self"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        match res.status() {
            StatusCode::OK => passed += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(res.headers().contains_key("retry-after"));
                refused += 1;
            }
            other => panic!("{other}"),
        }
    }
    // Alone, each node would have let 10 through (20 in all).
    assert_eq!((passed, refused), (10, 10), "one budget for both nodes");
}
