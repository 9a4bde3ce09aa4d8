//! The audit log over HTTP: token actions are recorded with actor, target, IP and user
//! agent; use of an expired token is recorded; admins read it with filters and pages;
//! nobody else can; no event ever holds a token.

mod common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

async fn audit(server: &TestServer, token: &str, query: &str) -> Value {
    let res = server.get(&format!("/api/audit{query}"), token).await;
    assert_eq!(res.status(), StatusCode::OK, "{query}");
    res.json().await.unwrap()
}

fn actions(page: &Value) -> Vec<String> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn token_actions_are_audited_and_admins_can_filter_and_page_them() {
    let server = TestServer::start().await;
    let admin = server.user_with_token("root", "admin");
    let member = server.user_with_token("ada", "member");

    let created = server
        .client
        .post(server.url("/api/tokens"))
        .bearer_auth(&member)
        .header("user-agent", "audit-test/1.0")
        .json(&json!({"name": "ci", "expires": "30d"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    let secret = created["token"].as_str().unwrap().to_owned();
    server.saw_secret(&secret);
    let id = created["id"].as_i64().unwrap();
    let res = server
        .post_json(&format!("/api/tokens/{id}/rotate"), &member, json!({}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let rotated: Value = res.json().await.unwrap();
    server.saw_secret(rotated["token"].as_str().unwrap());
    assert!(
        server
            .delete(&format!("/api/tokens/{id}"), &member)
            .await
            .status()
            .is_success()
    );

    let page = audit(&server, &admin, &format!("?target=token:{id}")).await;
    assert_eq!(
        actions(&page),
        ["token.revoked", "token.rotated", "token.created"],
        "newest first"
    );
    let created_event = &page["events"][2];
    assert_eq!(created_event["actor_username"], "ada");
    assert_eq!(created_event["ip"], "127.0.0.1");
    assert_eq!(created_event["user_agent"], "audit-test/1.0");
    assert!(
        created_event["actor_token_id"].is_i64(),
        "made with a token: its id is named"
    );

    let revoked = audit(&server, &admin, "?action=token.revoked").await;
    assert_eq!(revoked["pagination"]["total"], 1);
    let ada_id = created_event["actor_user_id"].as_i64().unwrap();
    let by_ada = audit(&server, &admin, &format!("?actor={ada_id}&per_page=2")).await;
    assert_eq!(by_ada["events"].as_array().unwrap().len(), 2);
    assert_eq!(by_ada["pagination"]["total_pages"], 2);
    let future = (OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&Rfc3339)
        .unwrap();
    let later = audit(&server, &admin, &format!("?since={}", urlencode(&future))).await;
    assert_eq!(later["pagination"]["total"], 0);

    let everything = audit(&server, &admin, "?per_page=100").await.to_string();
    assert!(!everything.contains("hark_pat_"), "no event holds a token");

    let (status, _) = error_code(server.get("/api/audit", &member).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "members cannot read it");
    let (status, _) = error_code(server.get("/api/audit?since=yesterday", &admin).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn using_an_expired_token_is_audited() {
    let server = TestServer::start().await;
    let admin = server.user_with_token("root", "admin");
    let soon = (OffsetDateTime::now_utc() + time::Duration::seconds(2))
        .format(&Rfc3339)
        .unwrap();
    let created = server
        .api_token(&admin, json!({"name": "short-lived", "expires": soon}))
        .await;
    let secret = created["token"].as_str().unwrap();
    assert_eq!(
        server.get("/api/tokens/self", secret).await.status(),
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_auth_failed(server.get("/api/tokens/self", secret).await).await;
    let page = audit(&server, &admin, "?action=token.expired_use").await;
    assert_eq!(page["pagination"]["total"], 1);
    let event = &page["events"][0];
    assert_eq!(event["target"], format!("token:{}", created["id"]));
    assert_eq!(event["ip"], "127.0.0.1");
}

fn urlencode(text: &str) -> String {
    text.replace(':', "%3A").replace('+', "%2B")
}
