//! The optional backends: one hark transcribing through a second hark (a real server on
//! loopback, not a mock), and summaries from an OpenAI-compatible chat server. No LLM can
//! run here, so that one is a small stand-in speaking the chat-completions wire format.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use common::*;
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(180);

#[tokio::test]
async fn a_hark_can_transcribe_through_another_hark() {
    let engine = TestServer::start().await;
    engine.create_user("svc", "member");
    let key = engine.cli_token("svc", "remote engine", &["--scopes", "batch"]);
    let url = format!("{}/v1", engine.base);
    let front =
        TestServer::start_with(&["--remote-engine-url", &url, "--remote-engine-key", &key]).await;
    front.saw_secret(&key);
    let token = front.user_with_token("ada", "member");
    let res = front
        .upload(&token, &shared_audio("support_02.wav"), None)
        .await;
    let id = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let rec = wait_for_recording(&front, &token, id, LIMIT).await;
    assert_eq!(rec["status"], "COMPLETED", "{rec}");
    let transcript: Value = front
        .get(&format!("/api/recordings/{id}/transcript"), &token)
        .await
        .json()
        .await
        .unwrap();
    let reference = std::fs::read_to_string(shared_audio("support_02.txt")).unwrap();
    let wer = word_error_rate(&reference, transcript["transcript"].as_str().unwrap());
    assert!(wer < 0.2, "WER {wer}: {transcript}");
    assert!(!transcript["segments"].as_array().unwrap().is_empty());
    assert!(
        engine
            .log_text()
            .lines()
            .any(|l| l.contains("/v1/audio/transcriptions") && l.contains("status=200")),
        "the work was done by the engine server"
    );

    // A bad key on the remote side is the server's problem, not the audio's: the job waits.
    let broken = TestServer::start_with(&[
        "--remote-engine-url",
        &url,
        "--remote-engine-key",
        "hark_pat_wrong",
    ])
    .await;
    let token = broken.user_with_token("bob", "member");
    let res = broken
        .upload(&token, &shared_audio("news_01.wav"), None)
        .await;
    let id = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rec: Value = broken
        .get(&format!("/api/recordings/{id}"), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(rec["status"], "COMPLETED");
    assert!(
        broken.log_text().contains("401"),
        "the remote refusal is logged"
    );
}

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(String, Value)>>>);

async fn chat(
    State(seen): State<Seen>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    seen.0.lock().unwrap().push((auth, body));
    Json(json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "The weekly planning covered release two."}}],
    }))
}

#[tokio::test]
async fn summaries_can_come_from_a_chat_completions_server() {
    let seen = Seen::default();
    let app = axum::Router::new()
        .route("/v1/chat/completions", post(chat))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let url = format!("http://{addr}/v1");
    let server = TestServer::start_with(&[
        "--summary-url",
        &url,
        "--summary-key",
        "llm-key",
        "--summary-model",
        "tiny-llm",
    ])
    .await;
    let token = server.user_with_token("ada", "member");
    let res = server
        .upload(&token, &shared_audio("meeting_01.wav"), None)
        .await;
    let id = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    assert_eq!(
        wait_for_recording(&server, &token, id, LIMIT).await["status"],
        "COMPLETED"
    );
    let summary: Value = server
        .get(&format!("/api/recordings/{id}/summary"), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        summary["summary"],
        "The weekly planning covered release two."
    );
    let requests = seen.0.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    let (auth, body) = &requests[0];
    assert_eq!(auth, "Bearer llm-key");
    assert_eq!(body["model"], "tiny-llm");
    assert!(
        body["messages"][1]["content"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("planning meeting")
    );
}
