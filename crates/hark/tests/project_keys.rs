//! Project API keys (`hark_key_`): who may make them, what a batch key and a realtime key
//! reach, the project boundary, and who may revoke them.

mod common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn key(server: &TestServer, by: &str, project: i64, key_type: &str) -> Value {
    server
        .api_token(
            by,
            json!({"name": format!("{key_type} key"), "kind": "project",
                   "project_id": project, "type": key_type, "expires": "1y"}),
        )
        .await
}

#[tokio::test]
async fn admins_and_developers_make_project_keys_members_cannot() {
    let server = TestServer::start().await;
    let developer = server.user_with_token("dev", "developer");
    let member = server.user_with_token("ada", "member");
    let created = key(&server, &developer, 1, "batch").await;
    assert!(created["token"].as_str().unwrap().starts_with("hark_key_"));
    assert_eq!(created["kind"], "project");
    assert_eq!(created["project_id"], 1);
    assert_eq!(created["scopes"], json!(["batch"]));

    let attempt = |token: String, body: Value| {
        let server = &server;
        async move { error_code(server.post_json("/api/tokens", &token, body).await).await }
    };
    let (status, _) = attempt(
        member.clone(),
        json!({"name": "k", "kind": "project", "project_id": 1, "type": "batch"}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for (body, expected) in [
        (
            json!({"name": "k", "kind": "project", "project_id": 1}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"name": "k", "kind": "project", "project_id": 1, "type": "read"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"name": "k", "kind": "project", "type": "batch"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"name": "k", "kind": "project", "project_id": 999, "type": "batch"}),
            StatusCode::NOT_FOUND,
        ),
        (
            json!({"name": "k", "type": "batch"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"name": "k", "project_id": 1}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (status, _) = attempt(developer.clone(), body.clone()).await;
        assert_eq!(status, expected, "{body}");
    }
}

#[tokio::test]
async fn a_batch_key_reaches_only_its_projects_batch_api() {
    let server = TestServer::start().await;
    let admin = server.user_with_token("root", "admin");
    let mgt = server.management_token("root").await;
    let other: Value = server
        .post_json("/api/manage/projects", &mgt, json!({"name": "Other"}))
        .await
        .json()
        .await
        .unwrap();
    let other_id = other["id"].as_i64().unwrap();
    let batch = key(&server, &admin, 1, "batch").await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let other_batch = key(&server, &admin, other_id, "batch").await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let realtime = key(&server, &admin, 1, "realtime").await["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let res = server.submit_batch(&batch).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let created: Value = res.json().await.unwrap();
    let session = format!("/api/v3/sessions/{}", created["session_id"]);
    let document = format!("/api/v3/documents/{}", created["document_id"]);
    // Stored in the key's project, visible to the workspace's people as usual.
    let rec = wait_for_recording(
        &server,
        &admin,
        created["document_id"].as_i64().unwrap(),
        Duration::from_secs(180),
    )
    .await;
    assert_eq!(rec["project_id"], 1);
    assert_eq!(rec["status"], "COMPLETED");
    assert_eq!(server.get(&session, &batch).await.status(), StatusCode::OK);
    let doc: Value = server.get(&document, &batch).await.json().await.unwrap();
    assert!(!doc["text"].as_str().unwrap().is_empty());

    for (token, path, expected) in [
        (&other_batch, session.as_str(), StatusCode::NOT_FOUND),
        (&other_batch, document.as_str(), StatusCode::NOT_FOUND),
        (&realtime, session.as_str(), StatusCode::FORBIDDEN),
        (&batch, "/api/recordings", StatusCode::FORBIDDEN),
        (&batch, "/api/tags", StatusCode::FORBIDDEN),
        (&batch, "/api/manage/members", StatusCode::FORBIDDEN),
    ] {
        let (status, _) = error_code(server.get(path, token).await).await;
        assert_eq!(status, expected, "{path}");
    }
    assert_eq!(
        server.submit_batch(&realtime).await.status(),
        StatusCode::FORBIDDEN
    );
    let res = server
        .upload(&batch, &shared_audio("support_02.wav"), None)
        .await;
    assert_eq!(
        res.status(),
        StatusCode::FORBIDDEN,
        "not the recordings API"
    );
    let res = server.submit_batch(&other_batch).await;
    let created: Value = res.json().await.unwrap();
    let rec: Value = server
        .get(
            &format!("/api/recordings/{}", created["document_id"]),
            &admin,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        rec["project_id"], other_id,
        "uploads land in the key's project"
    );
}

#[tokio::test]
async fn developers_revoke_project_keys_members_cannot() {
    let server = TestServer::start().await;
    let admin = server.user_with_token("root", "admin");
    let developer = server.user_with_token("dev", "developer");
    let member = server.user_with_token("ada", "member");
    let created = key(&server, &admin, 1, "batch").await;
    let id = created["id"].as_i64().unwrap();
    let secret = created["token"].as_str().unwrap();
    let (status, _) = error_code(server.delete(&format!("/api/tokens/{id}"), &member).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not theirs to see");
    let res = server
        .delete(&format!("/api/tokens/{id}"), &developer)
        .await;
    assert!(res.status().is_success());
    assert_auth_failed(server.submit_batch(secret).await).await;
    // A developer cannot revoke someone else's personal token.
    let admins_pat: Value = server
        .get("/api/tokens/self", &admin)
        .await
        .json()
        .await
        .unwrap();
    let (status, _) = error_code(
        server
            .delete(&format!("/api/tokens/{}", admins_pat["id"]), &developer)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
