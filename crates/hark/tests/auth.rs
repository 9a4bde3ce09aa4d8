//! Every way to authenticate, every way to fail, and what a valid caller may not do.

mod common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn every_documented_auth_method_works() {
    let server = TestServer::start().await;
    let token = server.user_with_token("ada", "member");
    let url = server.url("/api/recordings");

    let bearer = server
        .client
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let x_api = server
        .client
        .get(&url)
        .header("X-API-Token", &token)
        .send()
        .await
        .unwrap();
    let api = server
        .client
        .get(&url)
        .header("API-Token", &token)
        .send()
        .await
        .unwrap();
    let query = server
        .client
        .get(format!("{url}?token={token}"))
        .send()
        .await
        .unwrap();
    let cookie = server.login("ada").await;
    let session = server
        .client
        .get(&url)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    for res in [bearer, x_api, api, query, session] {
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["pagination"]["total"], 0);
    }
}

#[tokio::test]
async fn query_tokens_can_be_switched_off() {
    let server = TestServer::start_with(&["--no-query-token"]).await;
    let token = server.user_with_token("ada", "member");
    let res = server
        .client
        .get(server.url(&format!("/api/recordings?token={token}")))
        .send()
        .await
        .unwrap();
    assert_auth_failed(res).await;
    assert_eq!(
        server.get("/api/recordings", &token).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn every_failure_gets_the_same_401_body() {
    let server = TestServer::start().await;
    let good = server.user_with_token("ada", "member");
    let revoked = server.cli_token("ada", "to revoke", &[]);
    let id = server
        .get("/api/tokens/self", &revoked)
        .await
        .json::<Value>()
        .await
        .unwrap()["id"]
        .to_string();
    server.admin_ok(&["revoke-token", &id], None);
    let soon = (time::OffsetDateTime::now_utc() + time::Duration::seconds(2))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let expiring = server.cli_token("ada", "short-lived", &["--expires", &soon]);
    assert_eq!(
        server.get("/api/tokens/self", &expiring).await.status(),
        StatusCode::OK
    );

    // Same shape and checksum rules, but never issued.
    let unknown = {
        let mut t = String::from("hark_pat_");
        t.push_str(&"A".repeat(32));
        let crc = crc32(&t);
        t.push_str(&crc);
        t
    };
    let mut bad_checksum = good.clone();
    bad_checksum.replace_range(
        good.len() - 1..,
        if good.ends_with('a') { "b" } else { "a" },
    );

    tokio::time::sleep(Duration::from_millis(2100)).await;
    let url = server.url("/api/recordings");
    let cases: Vec<(&str, reqwest::RequestBuilder)> = vec![
        ("missing", server.client.get(&url)),
        (
            "empty bearer",
            server.client.get(&url).header("authorization", "Bearer "),
        ),
        (
            "wrong scheme",
            server
                .client
                .get(&url)
                .header("authorization", format!("Basic {good}")),
        ),
        (
            "malformed",
            server.client.get(&url).bearer_auth("hark_pat_short"),
        ),
        (
            "foreign prefix",
            server
                .client
                .get(&url)
                .bearer_auth(good.replacen("hark_pat_", "hark_xyz_", 1)),
        ),
        (
            "bad checksum",
            server.client.get(&url).bearer_auth(&bad_checksum),
        ),
        ("unknown", server.client.get(&url).bearer_auth(&unknown)),
        ("revoked", server.client.get(&url).bearer_auth(&revoked)),
        ("expired", server.client.get(&url).bearer_auth(&expiring)),
        (
            "revoked via header",
            server.client.get(&url).header("X-API-Token", &revoked),
        ),
    ];
    for (name, request) in cases {
        let res = request.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{name}");
        assert_eq!(
            res.json::<Value>().await.unwrap(),
            auth_failed_body(),
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_bad_token_beats_a_good_cookie() {
    let server = TestServer::start().await;
    server.create_user("ada", "member");
    let cookie = server.login("ada").await;
    let res = server
        .client
        .get(server.url("/api/recordings"))
        .header("cookie", &cookie)
        .bearer_auth("hark_pat_nonsense")
        .send()
        .await
        .unwrap();
    assert_auth_failed(res).await;
}

#[tokio::test]
async fn logout_ends_the_session_and_bad_passwords_fail() {
    let server = TestServer::start().await;
    server.create_user("ada", "member");
    let cookie = server.login("ada").await;
    let res = server
        .client
        .post(server.url("/api/auth/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let after = server
        .client
        .get(server.url("/api/tokens"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_auth_failed(after).await;
    for (user, password) in [("ada", "wrong password"), ("nobody", PASSWORD)] {
        let res = server
            .client
            .post(server.url("/api/auth/login"))
            .json(&json!({"username": user, "password": password}))
            .send()
            .await
            .unwrap();
        assert_auth_failed(res).await;
    }
}

#[tokio::test]
async fn cookie_sessions_refuse_cross_site_changes() {
    let server = TestServer::start().await;
    server.create_user("ada", "member");
    let cookie = server.login("ada").await;
    let res = server
        .client
        .post(server.url("/api/tokens"))
        .header("cookie", &cookie)
        .header("origin", "http://evil.example")
        .json(&json!({"name": "csrf"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(res).await,
        (StatusCode::FORBIDDEN, "forbidden".into())
    );
}

#[tokio::test]
async fn scopes_and_roles_give_403() {
    let server = TestServer::start().await;
    server.create_user("ada", "member");
    let read_only = server.cli_token("ada", "reader", &["--scopes", "read"]);
    assert_eq!(
        server.get("/api/recordings", &read_only).await.status(),
        StatusCode::OK
    );
    let res = server
        .post_json("/api/tags", &read_only, json!({"name": "x"}))
        .await;
    assert_eq!(
        error_code(res).await,
        (StatusCode::FORBIDDEN, "forbidden".into())
    );
    let res = server
        .post_json(
            "/api/tokens",
            &read_only,
            json!({"name": "escalate", "scopes": ["read"]}),
        )
        .await;
    assert_eq!(
        res.status(),
        StatusCode::FORBIDDEN,
        "read-only tokens cannot manage tokens"
    );

    let writer = server.cli_token("ada", "writer", &["--scopes", "read,write"]);
    let res = server
        .post_json(
            "/api/tokens",
            &writer,
            json!({"name": "wider", "scopes": ["batch"]}),
        )
        .await;
    assert_eq!(
        res.status(),
        StatusCode::FORBIDDEN,
        "a token cannot mint wider scopes"
    );
    server
        .api_token(&writer, json!({"name": "narrower", "scopes": ["read"]}))
        .await;
}

#[tokio::test]
async fn viewers_can_neither_create_nor_use_tokens() {
    let server = TestServer::start().await;
    let token = server.user_with_token("vic", "member");
    assert_eq!(
        server.get("/api/recordings", &token).await.status(),
        StatusCode::OK
    );
    server.admin_ok(&["set-role", "--username", "vic", "--role", "viewer"], None);
    server
        .eventually(Duration::from_secs(2), || async {
            server.get("/api/recordings", &token).await.status() == StatusCode::FORBIDDEN
        })
        .await;
    let out = server.admin(&["create-token", "--username", "vic", "--name", "x"], None);
    assert!(!out.status.success(), "the CLI refuses tokens for viewers");

    let cookie = server.login("vic").await;
    let list = server
        .client
        .get(server.url("/api/recordings"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), StatusCode::OK, "viewers can read");
    let create = server
        .client
        .post(server.url("/api/tokens"))
        .header("cookie", &cookie)
        .json(&json!({"name": "mine"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(create).await,
        (StatusCode::FORBIDDEN, "forbidden".into())
    );
}

#[tokio::test]
async fn other_users_things_are_404() {
    let server = TestServer::start().await;
    let ada = server.user_with_token("ada", "member");
    let bob = server.user_with_token("bob", "member");
    let res = server
        .upload(&ada, &shared_audio("meeting_01.wav"), None)
        .await;
    let id = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    for path in [
        format!("/api/recordings/{id}"),
        format!("/api/recordings/{id}/transcript"),
        format!("/api/recordings/{id}/summary"),
        "/api/recordings/999999".to_owned(),
    ] {
        assert_eq!(
            error_code(server.get(&path, &bob).await).await,
            (StatusCode::NOT_FOUND, "not_found".into()),
            "{path}"
        );
    }
    assert_eq!(
        server
            .delete(&format!("/api/recordings/{id}"), &bob)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let ada_token_id = server
        .get("/api/tokens/self", &ada)
        .await
        .json::<Value>()
        .await
        .unwrap()["id"]
        .clone();
    let res = server
        .delete(&format!("/api/tokens/{ada_token_id}"), &bob)
        .await;
    assert_eq!(
        res.status(),
        StatusCode::NOT_FOUND,
        "members cannot revoke others' tokens"
    );
    assert_eq!(
        server
            .get(&format!("/api/recordings/{id}"), &ada)
            .await
            .status(),
        StatusCode::OK
    );

    let admin = server.user_with_token("root", "admin");
    let res = server
        .delete(&format!("/api/tokens/{ada_token_id}"), &admin)
        .await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "admins may revoke any token in the workspace"
    );
    assert_auth_failed(server.get("/api/recordings", &ada).await).await;
}

/// CRC32 of `text` in hark's 6-character base62 form (an independent implementation).
fn crc32(text: &str) -> String {
    let mut crc: u32 = !0;
    for b in text.bytes() {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    let mut value = !crc;
    let alphabet = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = [b'0'; 6];
    for slot in out.iter_mut().rev() {
        *slot = alphabet[(value % 62) as usize];
        value /= 62;
    }
    String::from_utf8(out.to_vec()).unwrap()
}
