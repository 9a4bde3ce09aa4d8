//! Management tokens and the management API: who reaches it, what it changes, what it
//! audits, and that management tokens reach nothing else.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn status(res: reqwest::Response) -> StatusCode {
    res.status()
}

#[tokio::test]
async fn admins_mint_management_tokens_that_reach_only_the_management_api() {
    let server = TestServer::start().await;
    let admin = server.user_with_token("root", "admin");
    let member = server.user_with_token("ada", "member");

    let res = server
        .post_json(
            "/api/tokens",
            &member,
            json!({"name": "nope", "kind": "management"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "members cannot");
    let res = server
        .post_json(
            "/api/tokens",
            &admin,
            json!({"name": "ops", "kind": "management"}),
        )
        .await;
    assert_eq!(
        res.status(),
        StatusCode::FORBIDDEN,
        "an admin's personal token is not a management token: a leaked one must not mint one"
    );
    let cookie = server.login("root").await;
    let res = server
        .post_json_as_session(
            "/api/tokens",
            &cookie,
            json!({"name": "ops", "kind": "management", "scopes": ["read"]}),
        )
        .await;
    assert_eq!(
        res.status(),
        StatusCode::BAD_REQUEST,
        "no scopes on management tokens"
    );
    let res = server
        .post_json_as_session(
            "/api/tokens",
            &cookie,
            json!({"name": "ops", "kind": "management"}),
        )
        .await;
    assert_eq!(
        res.status(),
        StatusCode::CREATED,
        "an admin's web session mints one"
    );
    let created: Value = res.json().await.unwrap();
    let mgt = created["token"].as_str().unwrap();
    server.saw_secret(mgt);
    let second = server
        .api_token(mgt, json!({"name": "ops 2", "kind": "management"}))
        .await;
    assert_eq!(
        second["kind"], "management",
        "and so does a management token"
    );
    let res = server
        .post_json("/api/tokens", mgt, json!({"name": "pat"}))
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "but nothing else");
    assert!(mgt.starts_with("hark_mgt_"), "{mgt}");
    assert_eq!(created["kind"], "management");
    assert_eq!(created["scopes"], json!([]));

    let members: Value = server
        .get("/api/manage/members", mgt)
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["root", "ada"]);

    for path in ["/api/recordings", "/api/tags", "/api/v3/sessions/1"] {
        assert_eq!(
            status(server.get(path, mgt).await).await,
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    let res = server
        .upload(mgt, &shared_audio("support_01.wav"), None)
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "no transcription");
    assert_eq!(
        status(server.get("/api/manage/members", &admin).await).await,
        StatusCode::FORBIDDEN,
        "personal tokens do not reach the management API"
    );
    let res = server
        .client
        .get(server.url("/api/manage/members"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "an admin's web session does");
}

#[tokio::test]
async fn demoting_a_member_to_viewer_stops_their_tokens_and_is_audited() {
    let server = TestServer::start().await;
    let admin = server.user_with_token("root", "admin");
    let member = server.user_with_token("ada", "member");
    let mgt = server.management_token("root").await;
    assert_eq!(
        status(server.get("/api/recordings", &member).await).await,
        StatusCode::OK
    );
    let members: Value = server
        .get("/api/manage/members", &mgt)
        .await
        .json()
        .await
        .unwrap();
    let ada = members["members"][1]["id"].as_i64().unwrap();
    let res = server
        .client
        .patch(server.url(&format!("/api/manage/members/{ada}")))
        .bearer_auth(&mgt)
        .json(&json!({"role": "viewer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let changed: Value = res.json().await.unwrap();
    assert_eq!(changed["role"], "viewer");
    assert_eq!(
        status(server.get("/api/recordings", &member).await).await,
        StatusCode::FORBIDDEN,
        "the very next request"
    );
    let audit: Value = server
        .get("/api/audit?action=member.role_changed", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(audit["events"][0]["target"], format!("user:{ada}"));
    assert_eq!(audit["events"][0]["details"], "member → viewer");
    let added: Value = server
        .get("/api/audit?action=member.added", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        added["pagination"]["total"], 2,
        "root and ada, added with the CLI"
    );
    assert_eq!(added["events"][0]["details"], "ada as member");
    assert_eq!(added["events"][0]["user_agent"], "hark-cli");

    let root = members["members"][0]["id"].as_i64().unwrap();
    let res = server
        .client
        .patch(server.url(&format!("/api/manage/members/{root}")))
        .bearer_auth(&mgt)
        .json(&json!({"role": "member"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT, "the last admin stays");
    let res = server
        .client
        .patch(server.url(&format!("/api/manage/members/{ada}")))
        .bearer_auth(&mgt)
        .json(&json!({"role": "owner"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn projects_are_listed_created_and_audited() {
    let server = TestServer::start().await;
    let admin = server.user_with_token("root", "admin");
    let mgt = server.management_token("root").await;
    let res = server
        .post_json("/api/manage/projects", &mgt, json!({"name": "Call center"}))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let project: Value = res.json().await.unwrap();
    assert_eq!(location, format!("/api/manage/projects/{}", project["id"]));
    let res = server
        .post_json("/api/manage/projects", &mgt, json!({"name": "Call center"}))
        .await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let res = server
        .post_json("/api/manage/projects", &mgt, json!({"name": "  "}))
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let list: Value = server
        .get("/api/manage/projects", &mgt)
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = list["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Default project", "Call center"]);
    let audit: Value = server
        .get("/api/audit?action=project.created", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(audit["pagination"]["total"], 1);
    assert!(audit["events"][0]["actor_token_id"].is_i64());
}

#[tokio::test]
async fn management_tokens_create_list_and_revoke_a_projects_keys() {
    let server = TestServer::start().await;
    let admin = server.user_with_token("root", "admin");
    let mgt = server.management_token("root").await;
    let other: Value = server
        .post_json("/api/manage/projects", &mgt, json!({"name": "Other"}))
        .await
        .json()
        .await
        .unwrap();
    let res = server
        .post_json(
            "/api/manage/projects/1/keys",
            &mgt,
            json!({"name": "ingest", "type": "batch", "expires": "2y"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let created: Value = res.json().await.unwrap();
    let key = created["token"].as_str().unwrap().to_owned();
    server.saw_secret(&key);
    assert!(key.starts_with("hark_key_"));
    assert_eq!(
        (created["project_id"].as_i64(), created["scopes"].clone()),
        (Some(1), json!(["batch"]))
    );
    let id = created["id"].as_i64().unwrap();

    let listed: Value = server
        .get("/api/manage/projects/1/keys", &mgt)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["tokens"][0]["id"], id);
    assert!(
        !listed.to_string().contains(&key),
        "listings never show a key"
    );
    let other_keys: Value = server
        .get(&format!("/api/manage/projects/{}/keys", other["id"]), &mgt)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(other_keys["tokens"], json!([]));
    assert_eq!(
        status(server.get("/api/manage/projects/1/keys", &admin).await).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(server.get("/api/v3/sessions/999999", &key).await).await,
        StatusCode::NOT_FOUND,
        "the key works"
    );
    let wrong = server
        .delete(
            &format!("/api/manage/projects/{}/keys/{id}", other["id"]),
            &mgt,
        )
        .await;
    assert_eq!(
        wrong.status(),
        StatusCode::NOT_FOUND,
        "not that project's key"
    );
    let res = server
        .delete(&format!("/api/manage/projects/1/keys/{id}"), &mgt)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_auth_failed(server.get("/api/v3/sessions/999999", &key).await).await;
    let audit: Value = server
        .get(&format!("/api/audit?target=token:{id}"), &admin)
        .await
        .json()
        .await
        .unwrap();
    let actions: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        // The key's first use from an address is noted too, whenever the flush ran.
        .filter(|action| *action != "token.new_ip")
        .collect();
    assert_eq!(actions, ["key.revoked", "key.created"]);
}

#[tokio::test]
async fn deleting_a_project_revokes_its_keys_and_keeps_recordings_safe() {
    let server = TestServer::start().await;
    let admin = server.user_with_token("root", "admin");
    let mgt = server.management_token("root").await;
    let project = |name: &'static str| {
        let (server, mgt) = (&server, &mgt);
        async move {
            let p: Value = server
                .post_json("/api/manage/projects", mgt, json!({"name": name}))
                .await
                .json()
                .await
                .unwrap();
            p["id"].as_i64().unwrap()
        }
    };
    let temp = project("Temp").await;
    let busy = project("Busy").await;
    let key_for = |id: i64| {
        let (server, mgt) = (&server, &mgt);
        async move {
            let created: Value = server
                .post_json(
                    &format!("/api/manage/projects/{id}/keys"),
                    mgt,
                    json!({"name": "k", "type": "batch"}),
                )
                .await
                .json()
                .await
                .unwrap();
            let key = created["token"].as_str().unwrap().to_owned();
            server.saw_secret(&key);
            key
        }
    };
    let temp_key = key_for(temp).await;
    let busy_key = key_for(busy).await;
    let res = server.submit_batch(&busy_key).await;
    assert_eq!(res.status(), StatusCode::CREATED);

    let res = server
        .delete(&format!("/api/manage/projects/{temp}"), &mgt)
        .await;
    let status = res.status();
    assert_eq!(
        status,
        StatusCode::NO_CONTENT,
        "{}",
        res.text().await.unwrap()
    );
    assert_auth_failed(server.get("/api/v3/sessions/1", &temp_key).await).await;
    let (status, _) = error_code(
        server
            .delete(&format!("/api/manage/projects/{busy}"), &mgt)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "it still holds a recording");
    let (status, _) = error_code(server.delete("/api/manage/projects/1", &mgt).await).await;
    assert_eq!(status, StatusCode::CONFLICT, "the default project stays");
    let list: Value = server
        .get("/api/manage/projects", &mgt)
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = list["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Default project", "Busy"]);
    let audit: Value = server
        .get("/api/audit?action=project.deleted", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(audit["events"][0]["target"], format!("project:{temp}"));
    assert_eq!(audit["events"][0]["details"], "Temp; 1 key(s) revoked");
}

#[tokio::test]
async fn removing_a_member_stops_their_tokens_and_sessions_at_once() {
    let server = TestServer::start().await;
    let admin = server.user_with_token("root", "admin");
    let member = server.user_with_token("ada", "developer");
    let key = server
        .api_token(
            &member,
            json!({"name": "k", "kind": "project", "project_id": 1, "type": "batch"}),
        )
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let cookie = server.login("ada").await;
    let mgt = server.management_token("root").await;
    let members: Value = server
        .get("/api/manage/members", &mgt)
        .await
        .json()
        .await
        .unwrap();
    let ada = members["members"][1]["id"].as_i64().unwrap();
    let root = members["members"][0]["id"].as_i64().unwrap();

    let res = server
        .delete(&format!("/api/manage/members/{ada}"), &mgt)
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_auth_failed(server.get("/api/recordings", &member).await).await;
    assert_auth_failed(server.get("/api/v3/sessions/1", &key).await).await;
    let res = server
        .client
        .get(server.url("/api/recordings"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_auth_failed(res).await;
    let res = server
        .client
        .post(server.url("/api/auth/login"))
        .json(&json!({"username": "ada", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_auth_failed(res).await;
    let members: Value = server
        .get("/api/manage/members", &mgt)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(members["members"].as_array().unwrap().len(), 1);
    let (status, _) = error_code(
        server
            .delete(&format!("/api/manage/members/{ada}"), &mgt)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "already gone");
    let (status, _) = error_code(
        server
            .delete(&format!("/api/manage/members/{root}"), &mgt)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "the last admin stays");
    let audit: Value = server
        .get("/api/audit?action=member.removed", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(audit["events"][0]["target"], format!("user:{ada}"));
    assert_eq!(audit["events"][0]["details"], "ada; 2 token(s) revoked");
}
