//! The token lifecycle over HTTP and the CLI: create once, list, revoke, rotate, last use.

mod common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn the_plaintext_is_shown_once_and_only_its_hash_is_stored() {
    let server = TestServer::start().await;
    let admin = server.user_with_token("ada", "member");
    let created = server
        .api_token(
            &admin,
            json!({"name": "n8n automation", "expires": "30d", "scopes": ["read", "batch"]}),
        )
        .await;
    let secret = created["token"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("hark_pat_") && secret.len() == 47);
    assert_eq!(created["name"], "n8n automation");
    assert_eq!(created["scopes"], json!(["read", "batch"]));
    assert_eq!(created["status"], "active");
    assert_eq!(created["last_used_at"], Value::Null);
    assert_eq!(created["hint"], format!("hark_pat_…{}", &secret[43..]));
    let expires = time::OffsetDateTime::parse(
        created["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let days = (expires - time::OffsetDateTime::now_utc()).whole_hours();
    assert!(
        (29 * 24..=30 * 24).contains(&days),
        "30d expiry, got {days}h"
    );

    let listed = server
        .get("/api/tokens", &admin)
        .await
        .text()
        .await
        .unwrap();
    assert!(listed.contains("n8n automation"));
    assert!(!listed.contains(&secret), "listings never show the token");
    let own = server
        .get("/api/tokens/self", &secret)
        .await
        .text()
        .await
        .unwrap();
    assert!(!own.contains(&secret));

    server.assert_not_stored(&secret);
}

#[tokio::test]
async fn bad_create_requests_are_400_with_clear_messages() {
    let server = TestServer::start().await;
    let token = server.user_with_token("ada", "member");
    let cases = [
        (json!({"name": ""}), "name"),
        (json!({"name": "x".repeat(101)}), "name"),
        (json!({"name": "ok", "expires": "2001-01-01"}), "expires"),
        (json!({"name": "ok", "expires": "forever"}), "expires"),
        (json!({"name": "ok", "scopes": ["admin"]}), "scope"),
        (json!({"name": "ok", "scopes": []}), "scope"),
        (json!({"name": "ok", "kind": "root"}), "kind"),
        (json!({"name": "ok", "colour": "red"}), "colour"),
        (json!({"nam": "typo"}), "nam"),
    ];
    for (body, mentions) in cases {
        let res = server.post_json("/api/tokens", &token, body.clone()).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{body}");
        let error: Value = res.json().await.unwrap();
        assert_eq!(error["error"]["code"], "invalid_request", "{body}");
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains(mentions),
            "{body}: {error}"
        );
    }
    let res = server
        .client
        .post(server.url("/api/tokens"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(res).await,
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );
    let listed: Value = server
        .get("/api/tokens", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["tokens"].as_array().unwrap().len(),
        1,
        "nothing was created"
    );
}

#[tokio::test]
async fn revoking_stops_the_very_next_request() {
    let server = TestServer::start().await;
    let admin = server.user_with_token("ada", "member");
    let created = server.api_token(&admin, json!({"name": "doomed"})).await;
    let secret = created["token"].as_str().unwrap();
    assert_eq!(
        server.get("/api/recordings", secret).await.status(),
        StatusCode::OK
    );
    let res = server
        .delete(&format!("/api/tokens/{}", created["id"]), &admin)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "revoked");
    assert_auth_failed(server.get("/api/recordings", secret).await).await;
    let again = server
        .delete(&format!("/api/tokens/{}", created["id"]), &admin)
        .await;
    assert_eq!(again.status(), StatusCode::OK, "revoking twice is harmless");
    let row = server.listed_token(&admin, &created["id"]).await;
    assert_eq!(row["status"], "revoked");
    assert!(row["revoked_at"].is_string());
    assert_eq!(
        server.delete("/api/tokens/424242", &admin).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_token_revoked_from_the_cli_stops_working_on_the_running_server() {
    let server = TestServer::start().await;
    let token = server.user_with_token("ada", "member");
    // Warm the server's cache so the CLI revocation has something to invalidate.
    for _ in 0..3 {
        assert_eq!(
            server.get("/api/recordings", &token).await.status(),
            StatusCode::OK
        );
    }
    let id = server
        .get("/api/tokens/self", &token)
        .await
        .json::<Value>()
        .await
        .unwrap()["id"]
        .to_string();
    server.admin_ok(&["revoke-token", &id], None);
    let took = server
        .eventually(Duration::from_secs(2), || async {
            server.get("/api/recordings", &token).await.status() == StatusCode::UNAUTHORIZED
        })
        .await;
    eprintln!("CLI revocation took effect after {took:?}");
    let listed = server.admin_ok(&["list-tokens", "--json"], None);
    let rows: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(rows[0]["status"], "revoked");
    assert!(!listed.contains(&token));
}

#[tokio::test]
async fn rotation_without_grace_replaces_the_secret_at_once() {
    let server = TestServer::start().await;
    let admin = server.user_with_token("ada", "member");
    let created = server
        .api_token(
            &admin,
            json!({"name": "rotating", "scopes": ["read"], "expires": "1y"}),
        )
        .await;
    let old = created["token"].as_str().unwrap();
    assert_eq!(
        server.get("/api/recordings", old).await.status(),
        StatusCode::OK
    );
    let res = server
        .client
        .post(server.url(&format!("/api/tokens/{}/rotate", created["id"])))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let rotated: Value = res.json().await.unwrap();
    let new = rotated["token"].as_str().unwrap();
    server.saw_secret(new);
    assert_ne!(new, old);
    assert_eq!(rotated["id"], created["id"]);
    assert_eq!(rotated["scopes"], created["scopes"], "same settings");
    assert_eq!(
        rotated["expires_at"], created["expires_at"],
        "same settings"
    );
    assert_auth_failed(server.get("/api/recordings", old).await).await;
    assert_eq!(
        server.get("/api/recordings", new).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn rotation_with_grace_keeps_the_old_secret_for_a_while() {
    let server = TestServer::start().await;
    let admin = server.user_with_token("ada", "member");
    let created = server.api_token(&admin, json!({"name": "graceful"})).await;
    let old = created["token"].as_str().unwrap();
    let path = format!("/api/tokens/{}/rotate", created["id"]);
    let rotated: Value = server
        .post_json(&path, &admin, json!({"grace": "2s"}))
        .await
        .json()
        .await
        .unwrap();
    let new = rotated["token"].as_str().unwrap();
    server.saw_secret(new);
    assert_eq!(
        server.get("/api/recordings", old).await.status(),
        StatusCode::OK,
        "old works during grace"
    );
    assert_eq!(
        server.get("/api/recordings", new).await.status(),
        StatusCode::OK
    );
    server
        .eventually(Duration::from_secs(4), || async {
            server.get("/api/recordings", old).await.status() == StatusCode::UNAUTHORIZED
        })
        .await;
    assert_eq!(
        server.get("/api/recordings", new).await.status(),
        StatusCode::OK
    );

    let res = server
        .post_json(&path, &admin, json!({"grace": "1 week"}))
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    server
        .delete(&format!("/api/tokens/{}", created["id"]), &admin)
        .await;
    let res = server.post_json(&path, &admin, json!({})).await;
    assert_eq!(
        error_code(res).await,
        (StatusCode::CONFLICT, "conflict".into()),
        "revoked tokens cannot be rotated"
    );
}

#[tokio::test]
async fn last_use_is_recorded_after_a_flush() {
    let server = TestServer::start().await;
    let token = server.user_with_token("ada", "member");
    let stored = || {
        let rows: Value =
            serde_json::from_str(&server.admin_ok(&["list-tokens", "--json"], None)).unwrap();
        rows[0].clone()
    };
    assert_eq!(stored()["last_used_at"], Value::Null, "unused so far");
    let me: Value = server
        .get("/api/tokens/self", &token)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        me["last_used_at"].is_string(),
        "self reports the request it answers"
    );
    assert_eq!(me["last_used_ip"], "127.0.0.1");
    let seen = server
        .eventually(Duration::from_secs(3), || async {
            stored()["last_used_at"].is_string()
        })
        .await;
    eprintln!("last_used_at written within {seen:?}");
    let listed: Value = server
        .get("/api/tokens", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["tokens"][0]["last_used_ip"], "127.0.0.1");
}

#[tokio::test]
async fn graceful_shutdown_writes_buffered_last_use() {
    let mut server = TestServer::start_with(&["--last-used-flush-secs", "3600"]).await;
    let token = server.user_with_token("ada", "member");
    assert_eq!(
        server.get("/api/recordings", &token).await.status(),
        StatusCode::OK
    );
    let status = server.terminate();
    assert!(status.success(), "SIGTERM exits cleanly: {status:?}");
    let listed = server.admin_ok(&["list-tokens", "--json"], None);
    let rows: Value = serde_json::from_str(&listed).unwrap();
    assert!(
        rows[0]["last_used_at"].is_string(),
        "flushed at shutdown: {rows}"
    );
}

#[tokio::test]
async fn cli_lists_and_filters_tokens() {
    let server = TestServer::start().await;
    server.user_with_token("ada", "member");
    server.user_with_token("bob", "developer");
    server.cli_token("bob", "second", &["--expires", "never", "--scopes", "read"]);
    let all: Value =
        serde_json::from_str(&server.admin_ok(&["list-tokens", "--json"], None)).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 3);
    let bobs: Value = serde_json::from_str(
        &server.admin_ok(&["list-tokens", "--username", "bob", "--json"], None),
    )
    .unwrap();
    assert_eq!(bobs.as_array().unwrap().len(), 2);
    let second = bobs
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "second")
        .unwrap();
    assert_eq!(second["expires_at"], Value::Null);
    assert_eq!(second["scopes"], json!(["read"]));
    let table = server.admin_ok(&["list-tokens"], None);
    assert!(table.contains("second") && table.contains("never"));
    let bad = server.admin(
        &[
            "create-token",
            "--username",
            "ada",
            "--name",
            "x",
            "--expires",
            "1999-01-01",
        ],
        None,
    );
    assert!(!bad.status.success());
    assert!(
        bad.stdout.is_empty(),
        "nothing on stdout when creation fails"
    );
}
