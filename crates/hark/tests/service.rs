//! The service as a whole: errors, limits, probes, the OpenAPI document, logs, load.

mod common;

use std::collections::BTreeSet;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn probes_and_json_errors_everywhere() {
    let server = TestServer::start().await;
    let token = server.user_with_token("ada", "member");
    let health: Value = server
        .client
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health, json!({"status": "ok"}));
    let ready = server
        .client
        .get(server.url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);

    let res = server.get("/no/such/route", &token).await;
    assert_eq!(
        error_code(res).await,
        (StatusCode::NOT_FOUND, "not_found".into())
    );
    let res = server
        .client
        .put(server.url("/api/tokens"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(res).await,
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed".into())
    );
    let res = server.get("/api/recordings/not-a-number", &token).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.json::<Value>().await.unwrap()["error"]["message"].is_string());

    // Just over the 64 KiB JSON limit: small enough to be fully sent before the server
    // answers, so the client reads the 413 rather than a reset connection.
    let huge = json!({"name": "x".repeat(70_000)});
    let res = server.post_json("/api/tokens", &token, huge).await;
    assert_eq!(
        error_code(res).await,
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large".into())
    );
    let res = server
        .client
        .post(server.url("/api/tags"))
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body("name=x")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(res).await,
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type".into()
        )
    );
    let weird = server
        .client
        .get(server.url("/api/recordings?page=%ZZ"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(weird.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn openapi_document_covers_every_route() {
    let server = TestServer::start().await;
    let doc: Value = server
        .client
        .get(server.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    let expected: BTreeSet<String> = [
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
        "GET /api/openapi.json",
        "POST /api/auth/login",
        "POST /api/auth/logout",
        "GET /api/auth/session",
        "GET /api/setup",
        "POST /api/setup",
        "GET /api/tokens",
        "POST /api/tokens",
        "GET /api/tokens/self",
        "DELETE /api/tokens/{id}",
        "POST /api/tokens/{id}/rotate",
        "GET /api/recordings",
        "POST /api/recordings",
        "GET /api/recordings/{id}",
        "DELETE /api/recordings/{id}",
        "GET /api/recordings/{id}/transcript",
        "GET /api/recordings/{id}/summary",
        "GET /api/recordings/{id}/transcript/{format}",
        "GET /api/recordings/{id}/audio",
        "GET /api/tags",
        "POST /api/tags",
        "DELETE /api/tags/{id}",
        "POST /api/recordings/{id}/tags",
        "DELETE /api/recordings/{id}/tags/{tag_id}",
        "POST /api/v3/speech-to-text",
        "GET /api/v3/sessions/{id}",
        "GET /api/v3/documents/{id}",
        "POST /v1/audio/transcriptions",
        "GET /v1/models",
        "GET /v2",
        "GET /v2/{language}",
        "GET /api/v3/realtime",
        "GET /v1/realtime",
        "POST /v1/api_keys",
        "POST /v2/jobs",
        "GET /v2/jobs",
        "GET /v2/jobs/{id}",
        "DELETE /v2/jobs/{id}",
        "GET /v2/jobs/{id}/transcript",
        "GET /api/audit",
        "POST /graphql",
        "GET /api/webhooks",
        "POST /api/webhooks",
        "DELETE /api/webhooks/{id}",
        "POST /api/webhooks/callback-secret",
        "GET /api/webhooks/deliveries",
        "GET /api/manage/members",
        "PATCH /api/manage/members/{id}",
        "DELETE /api/manage/members/{id}",
        "GET /api/manage/projects",
        "POST /api/manage/projects",
        "GET /api/projects",
        "DELETE /api/manage/projects/{id}",
        "GET /api/manage/projects/{id}/keys",
        "POST /api/manage/projects/{id}/keys",
        "DELETE /api/manage/projects/{id}/keys/{key_id}",
        "GET /api/manage/projects/{id}/keys/{key_id}/usage",
        "GET /api/tokens/{id}/usage",
        "PATCH /api/tokens/{id}",
        "POST /api/tokens/revoke-by-value",
        "GET /v1/revocable_token_types",
        "POST /v1/revoke_tokens",
        "POST /api/github/secret-scanning",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(documented, expected);
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    for scheme in [
        "bearer",
        "x_api_token",
        "api_token",
        "query_token",
        "session",
    ] {
        assert!(schemes.contains_key(scheme), "{scheme}");
    }
}

#[tokio::test]
async fn access_log_names_the_token_id_and_never_the_token() {
    let server = TestServer::start().await;
    let token = server.user_with_token("ada", "member");
    let res = server
        .client
        .get(server.url(&format!("/api/recordings?token={token}&page=1")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let id = server
        .get("/api/tokens/self", &token)
        .await
        .json::<Value>()
        .await
        .unwrap()["id"]
        .clone();
    server
        .eventually(std::time::Duration::from_secs(2), || async {
            server.log_text().contains("/api/tokens/self")
        })
        .await;
    let log = server.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("/api/recordings?"))
        .expect("access line");
    assert!(line.contains("token=REDACTED"), "{line}");
    assert!(line.contains("page=1"), "{line}");
    assert!(line.contains(&format!("token_id={id}")), "{line}");
    assert!(
        line.contains("status=200") && line.contains("GET"),
        "{line}"
    );
    assert!(!log.contains(&token));
    assert!(!log.contains(&token[9..41]), "not even the random body");
}

#[tokio::test]
async fn two_hundred_parallel_requests_all_succeed() {
    let server = TestServer::start().await;
    let tokens: Vec<String> = (0..4)
        .map(|i| server.user_with_token(&format!("user{i}"), "member"))
        .collect();
    let requests = (0..200).map(|i| {
        let token = tokens[i % tokens.len()].clone();
        let client = server.client.clone();
        let url = match i % 3 {
            0 => server.url("/api/recordings?per_page=5"),
            1 => server.url("/api/tokens/self"),
            _ => server.url("/api/tokens"),
        };
        tokio::spawn(async move {
            client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .map(|r| r.status())
        })
    });
    let results = futures_util::future::join_all(requests).await;
    let ok = results
        .into_iter()
        .filter(|r| matches!(r, Ok(Ok(status)) if *status == StatusCode::OK))
        .count();
    assert_eq!(ok, 200);
}
