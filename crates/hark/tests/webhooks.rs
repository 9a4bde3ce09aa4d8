//! Audio by URL behind the SSRF guard, and signed webhooks: registered endpoints and
//! per-job callbacks, delivered to a receiver on loopback, retried after a failure, and
//! recorded.

mod common;

use std::time::Duration;

use common::peer::{Peer, Received};
use common::{TestServer, error_code, shared_audio, wait_for_recording, word_error_rate};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use reqwest::multipart::Form;
use serde_json::{Value, json};
use sha2::Sha256;

fn url_form(url: &str) -> Form {
    Form::new().text("url", url.to_owned())
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn the_guard_refuses_internal_addresses_before_and_after_resolution() {
    let server = TestServer::start().await;
    let token = server.user_with_token("ada", "member");
    for internal in [
        "http://127.0.0.1/a.wav",
        "http://10.0.0.1/a.wav",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/a.wav",
        "http://0x7f000001/a.wav",
        "ftp://example.com/a.wav",
        "http://user:pw@example.com/a.wav",
    ] {
        let res = server
            .post_form("/api/recordings", &token, url_form(internal))
            .await;
        let (status, code) = error_code(res).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{internal}"
        );
    }
    let both = url_form("https://example.com/a.wav").part(
        "file",
        reqwest::multipart::Part::bytes(std::fs::read(shared_audio("support_02.wav")).unwrap())
            .file_name("a.wav"),
    );
    let res = server.post_form("/api/recordings", &token, both).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST, "a file and a url");

    // A name is checked after it resolves: `localhost` is loopback, so the fetch is
    // refused and the job fails with the reason — no retries, no audio.
    let peer = Peer::start().await;
    let by_name = peer.base.replace("127.0.0.1", "localhost") + "/audio/support_02.wav";
    let res = server
        .post_form("/api/recordings", &token, url_form(&by_name))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["original_filename"], "support_02.wav");
    let id = created["id"].as_i64().unwrap();
    let done = wait_for_recording(&server, &token, id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "FAILED", "{done}");
    let reason = done["error"].as_str().unwrap();
    assert!(
        reason.contains("could not be fetched") && reason.contains("refused by hark"),
        "{reason}"
    );
    assert!(peer.received().is_empty());

    let res = server
        .post_json(
            "/api/webhooks",
            &token,
            json!({"url": format!("{}/hooks/x", peer.base)}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST, "loopback webhook");
    let res = server
        .post_json(
            "/api/webhooks",
            &token,
            json!({"url": "https://example.com/hook", "events": ["recording.exploded"]}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST, "unknown event");
    let res = server
        .post_form(
            "/api/recordings",
            &token,
            url_form("https://example.com/a.wav").text("callback_url", "http://10.1.2.3/hook"),
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST, "internal callback");
}

#[tokio::test]
async fn fetched_audio_is_transcribed_and_signed_webhooks_are_retried_and_recorded() {
    let server = TestServer::start_with(&["--fetch-allow-private"]).await;
    let token = server.user_with_token("ada", "member");
    let peer = Peer::start().await;

    let res = server
        .post_json(
            "/api/webhooks",
            &token,
            json!({"url": format!("{}/hooks/registered", peer.base), "description": "ci"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let hook: Value = res.json().await.unwrap();
    let hook_secret = hook["secret"].as_str().unwrap().to_owned();
    server.saw_secret(&hook_secret);
    let listed: Value = server
        .get("/api/webhooks", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["webhooks"][0]["id"], hook["id"]);
    assert!(listed["webhooks"][0].get("secret").is_none(), "shown once");
    assert!(listed["callback_secret_created_at"].is_null());

    let res = server
        .post_json("/api/webhooks/callback-secret", &token, json!({}))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let callback_secret = res.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    server.saw_secret(&callback_secret);

    // The first request to arrive is answered 500: it must come again.
    peer.answer_with(&[500]);
    let form = url_form(&format!("{}/audio/support_02.wav", peer.base))
        .text("callback_url", format!("{}/hooks/job?ref=7", peer.base));
    let res = server.post_form("/api/recordings", &token, form).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let id = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let done = wait_for_recording(&server, &token, id, Duration::from_secs(120)).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(done["mime_type"], "audio/wav");
    let transcript: Value = server
        .get(&format!("/api/recordings/{id}/transcript"), &token)
        .await
        .json()
        .await
        .unwrap();
    let text = transcript["transcript"].as_str().unwrap_or_default();
    let expected = std::fs::read_to_string(shared_audio("support_02.txt")).unwrap();
    assert!(word_error_rate(&expected, text) < 0.3, "{text}");

    let got = peer.wait_for(3, Duration::from_secs(30)).await;
    let signed_with = |r: &Received| {
        if r.uri.starts_with("/hooks/registered") {
            &hook_secret
        } else {
            &callback_secret
        }
    };
    for r in &got {
        let expected = hmac_hex(signed_with(r), &r.body);
        assert_eq!(r.method, "POST");
        assert_eq!(
            r.header("x-hark-signature"),
            Some(format!("sha256={expected}").as_str())
        );
        assert_eq!(r.header("x-hub-signature"), Some(expected.as_str()));
        assert_eq!(r.header("x-hark-event"), Some("transcription.completed"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        let event: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(event["event"], "transcription.completed");
        assert_eq!(event["recording"]["id"], id);
        assert_eq!(event["recording"]["status"], "COMPLETED");
    }
    let to_job = got.iter().filter(|r| r.uri == "/hooks/job?ref=7").count();
    let to_hook = got.iter().filter(|r| r.uri == "/hooks/registered").count();
    assert_eq!(to_job + to_hook, 3);
    assert!(to_job >= 1 && to_hook >= 1, "{to_job} {to_hook}");
    let retried = got[0].header("x-hark-delivery").unwrap().to_owned();
    assert_eq!(
        got.iter()
            .filter(|r| r.header("x-hark-delivery") == Some(retried.as_str()))
            .count(),
        2,
        "the refused delivery came again, with the same id"
    );

    // A URL that fails (404) fails the job and tells the receivers so.
    let form = url_form(&format!("{}/audio/missing.wav", peer.base));
    let res = server.post_form("/api/recordings", &token, form).await;
    let missing = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let failed = wait_for_recording(&server, &token, missing, Duration::from_secs(60)).await;
    assert_eq!(failed["status"], "FAILED");
    assert!(
        failed["error"].as_str().unwrap().contains("HTTP 404"),
        "{failed}"
    );
    let got = peer.wait_for(4, Duration::from_secs(30)).await;
    let last: Value = serde_json::from_slice(&got[3].body).unwrap();
    assert_eq!(last["event"], "transcription.failed");
    assert_eq!(last["recording"]["id"], missing);

    // The receiver has answered; hark records that a moment later.
    let listing = || async {
        server
            .get("/api/webhooks/deliveries", &token)
            .await
            .json::<Value>()
            .await
            .unwrap()
    };
    server
        .eventually(Duration::from_secs(10), || async {
            let listed = listing().await;
            listed["deliveries"]
                .as_array()
                .is_some_and(|d| d.len() == 3 && d.iter().all(|d| d["status"] == "delivered"))
        })
        .await;
    let listed = listing().await;
    let deliveries = listed["deliveries"].as_array().unwrap();
    let twice: Vec<&Value> = deliveries.iter().filter(|d| d["attempts"] == 2).collect();
    assert_eq!(twice.len(), 1, "{listed}");
    assert_eq!(twice[0]["last_status"], 204);
    assert_eq!(twice[0]["id"].to_string(), retried);

    let only_hook: Value = server
        .get(
            &format!("/api/webhooks/deliveries?webhook_id={}", hook["id"]),
            &token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(only_hook["deliveries"].as_array().unwrap().len(), 2);

    let res = server
        .delete(&format!("/api/webhooks/{}", hook["id"]), &token)
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let other = server.user_with_token("bob", "member");
    let res = server
        .delete(&format!("/api/webhooks/{}", hook["id"]), &other)
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}
