//! Leaked tokens: revoke-by-value (hark's own, GitLab's Token Revocation API, GitHub's
//! secret-scanning partner alerts with a key pair made here), what a rotated-away secret
//! can no longer do, and finding everything a leaked token did by its hash.

mod common;

use std::time::Duration;

use common::peer::Peer;
use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn a_token_reported_by_value_is_revoked_and_its_owner_told() {
    let server = TestServer::start_with(&["--fetch-allow-private"]).await;
    let admin = server.user_with_token("adm", "admin");
    let owner = server.user_with_token("ana", "member");
    let peer = Peer::start().await;
    server
        .webhook(
            &owner,
            &format!("{}/hooks/tokens", peer.base),
            &["token.revoked_by_value"],
        )
        .await;
    let leaked = server
        .api_token(&owner, json!({"name": "pushed by mistake"}))
        .await;
    let leaked_token = leaked["token"].as_str().unwrap().to_owned();
    // It does something first, so its hash has a history to search.
    assert_eq!(
        server.get("/api/tags", &leaked_token).await.status(),
        StatusCode::OK
    );
    let rotated = server
        .post_json("/api/webhooks/callback-secret", &leaked_token, json!({}))
        .await;
    assert!(rotated.status().is_success());
    let rotated: Value = rotated.json().await.unwrap();
    server.saw_secret(rotated["secret"].as_str().unwrap());
    // ...and mints itself a successor, the first thing to look for after a leak.
    let successor = server
        .api_token(&leaked_token, json!({"name": "persistence"}))
        .await;

    let report = |tokens: Value| {
        server
            .client
            .post(server.url("/api/tokens/revoke-by-value"))
            .json(&json!({"tokens": tokens, "source": "trufflehog", "url": "https://example.com/repo/blob/main/.env"}))
            .send()
    };
    let forged = format!("{}A", &leaked_token[..leaked_token.len() - 1]);
    let mut bodies = Vec::new();
    for tokens in [
        json!(["not a token"]),
        json!([forged]),
        json!([leaked_token.clone()]),
    ] {
        let res = report(tokens).await.unwrap();
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        bodies.push(res.text().await.unwrap());
    }
    assert!(
        bodies.iter().all(|b| b == &bodies[0]),
        "the same answer: {bodies:?}"
    );
    server
        .eventually(Duration::from_secs(10), || async {
            server.get("/api/tags", &leaked_token).await.status() == StatusCode::UNAUTHORIZED
        })
        .await;
    let row = server.listed_token(&owner, &leaked["id"]).await;
    assert_eq!(
        (row["status"].as_str(), row["revoked_reason"].as_str()),
        (Some("revoked"), Some("leaked"))
    );
    let delivered = peer.wait_for(1, Duration::from_secs(20)).await;
    let event: Value = serde_json::from_slice(&delivered[0].body).unwrap();
    assert_eq!(event["event"], "token.revoked_by_value");
    assert_eq!(event["token"]["id"], leaked["id"]);
    assert_eq!(event["details"]["source"], "trufflehog");
    assert!(!String::from_utf8_lossy(&delivered[0].body).contains(&leaked_token));

    // Everything the leaked token did, and what was done to it, by its SHA-256.
    let hash = sha256_hex(&leaked_token);
    let found = server
        .audit_events(&admin, &format!("token_hash={hash}"))
        .await;
    let actions: Vec<&str> = found
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for expected in [
        "token.created",
        "webhook.callback_secret_rotated",
        "token.revoked_by_value",
    ] {
        assert!(actions.contains(&expected), "{expected} in {actions:?}");
    }
    assert!(
        found
            .iter()
            .all(|e| e["hashed_token"] == hash || e["target"] == format!("token:{}", leaked["id"]))
    );
    let minted = found
        .iter()
        .find(|e| e["target"] == format!("token:{}", successor["id"]))
        .expect("the token it created is found");
    assert_eq!(minted["action"], "token.created");
    assert_eq!(minted["hashed_token"], hash);
    let revocation = found
        .iter()
        .find(|e| e["action"] == "token.revoked_by_value")
        .unwrap();
    assert_eq!(revocation["subject_hashed_token"], hash);
    assert_eq!(revocation["ip"], "127.0.0.1");
    assert!(
        revocation["details"]
            .as_str()
            .unwrap()
            .contains("trufflehog")
    );
    // Nothing the watching wrote (usage, addresses, audit, webhook deliveries) holds it.
    server.assert_not_stored(&leaked_token);
    let bad = server.get("/api/audit?token_hash=xyz", &admin).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    // Malformed reports are refused; a flood from one address is slowed.
    assert_eq!(
        report(json!([])).await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    let many: Vec<String> = (0..101).map(|i| format!("t{i}")).collect();
    assert_eq!(
        report(json!(many)).await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    let mut limited = false;
    for _ in 0..20 {
        if report(json!(["x"])).await.unwrap().status() == StatusCode::TOO_MANY_REQUESTS {
            limited = true;
            break;
        }
    }
    assert!(limited, "reports from one address are rate limited");
}

#[tokio::test]
async fn gitlab_and_github_reports_revoke_with_their_own_credentials() {
    use base64::Engine as _;
    use p256::ecdsa::signature::Signer;
    use p256::ecdsa::{DerSignature, SigningKey};
    use p256::pkcs8::{EncodePublicKey, LineEnding};

    let signing = SigningKey::from_slice(&rand::random::<[u8; 32]>()).unwrap();
    let pem = signing
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let keys = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        keys.path(),
        json!({"public_keys": [{"key_identifier": "test-key-1", "key": pem, "is_current": true}]})
            .to_string(),
    )
    .unwrap();
    let secret = "gitlab-shared-secret-for-tests";
    let server = TestServer::start_with(&[
        "--gitlab-revocation-secret",
        secret,
        "--github-alert-keys",
        keys.path().to_str().unwrap(),
    ])
    .await;
    let owner = server.user_with_token("ana", "member");
    let from_gitlab = server.api_token(&owner, json!({"name": "gl"})).await;
    let from_github = server.api_token(&owner, json!({"name": "gh"})).await;

    let types = server
        .client
        .get(server.url("/v1/revocable_token_types"))
        .header("authorization", secret)
        .send()
        .await
        .unwrap();
    assert_eq!(types.status(), StatusCode::OK);
    let types: Value = types.json().await.unwrap();
    let kind = types["types"][0].as_str().unwrap().to_owned();
    let gitlab = |auth: &str, body: Value| {
        server
            .client
            .post(server.url("/v1/revoke_tokens"))
            .header("authorization", auth)
            .json(&body)
            .send()
    };
    let leak = json!([{"type": kind, "token": from_gitlab["token"], "location": "https://gitlab.example/p/-/blob/main/a.env"}]);
    assert_eq!(
        gitlab("wrong-secret", leak.clone()).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        gitlab(secret, json!([{"type": "aws_key", "token": "x"}]))
            .await
            .unwrap()
            .status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        gitlab(secret, leak.clone()).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        gitlab(secret, leak).await.unwrap().status(),
        StatusCode::NO_CONTENT,
        "idempotent"
    );
    let gl_token = from_gitlab["token"].as_str().unwrap();
    server
        .eventually(Duration::from_secs(10), || async {
            server.get("/api/tags", gl_token).await.status() == StatusCode::UNAUTHORIZED
        })
        .await;

    let body = json!([
        {"token": from_github["token"], "type": "hark_api_token", "url": "https://github.com/o/r/blob/x/.env", "source": "content"},
        {"token": "hark_pat_notarealtokenatall000000000000000", "type": "hark_api_token", "url": "https://github.com/o/r", "source": "content"}
    ])
    .to_string();
    let sign = |bytes: &[u8]| {
        let signature: DerSignature = signing.sign(bytes);
        base64::engine::general_purpose::STANDARD.encode(signature.as_bytes())
    };
    let github = |signature: String, key: &str| {
        server
            .client
            .post(server.url("/api/github/secret-scanning"))
            .header("github-public-key-identifier", key)
            .header("github-public-key-signature", signature)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
    };
    let forged = sign(b"some other body");
    assert_eq!(
        github(forged, "test-key-1").await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        github(sign(body.as_bytes()), "other-key")
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let gh_token = from_github["token"].as_str().unwrap();
    assert_eq!(
        server.get("/api/tags", gh_token).await.status(),
        StatusCode::OK,
        "forgeries change nothing"
    );
    let res = github(sign(body.as_bytes()), "test-key-1").await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let labels: Value = res.json().await.unwrap();
    assert_eq!(labels[0]["label"], "true_positive");
    assert_eq!(labels[0]["token_hash"], sha256_hex(gh_token));
    assert_eq!(labels[1]["label"], "false_positive");
    assert_eq!(
        server.get("/api/tags", gh_token).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn revocation_endpoints_that_are_not_configured_are_not_there() {
    let server = TestServer::start().await;
    let res = server.get_anonymous("/v1/revocable_token_types").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = server
        .client
        .post(server.url("/api/github/secret-scanning"))
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_rotated_away_secret_reported_leaked_does_not_revoke_its_successor() {
    let server = TestServer::start().await;
    let owner = server.user_with_token("ana", "member");
    let token = server.api_token(&owner, json!({"name": "rotated"})).await;
    let old = token["token"].as_str().unwrap().to_owned();
    let res = server
        .post_json(
            &format!("/api/tokens/{}/rotate", token["id"]),
            &owner,
            json!({"grace": "1s"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let rotated: Value = res.json().await.unwrap();
    let new = rotated["token"].as_str().unwrap().to_owned();
    server.saw_secret(&new);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        server.get("/api/tags", &old).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let res = server
        .client
        .post(server.url("/api/tokens/revoke-by-value"))
        .json(&json!({"tokens": [old], "source": "git history"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        server.get("/api/tags", &new).await.status(),
        StatusCode::OK,
        "the successor lives"
    );
    // The same report of the live secret does revoke it.
    let res = server
        .client
        .post(server.url("/api/tokens/revoke-by-value"))
        .json(&json!({"tokens": [new.clone()]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    server
        .eventually(Duration::from_secs(10), || async {
            server.get("/api/tags", &new).await.status() == StatusCode::UNAUTHORIZED
        })
        .await;
}
