//! `hark listen`: a file streamed over the Speechmatics real-time protocol to a running
//! server, as a realtime key; refusals at the handshake as clear errors.

mod common;

use std::process::Output;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

async fn listen(server: &TestServer, token: &str, extra: &[&str]) -> Output {
    let run = tokio::process::Command::new(hark_bin())
        .arg("listen")
        .arg(shared_audio("meeting_02.wav"))
        .args(["--server", &server.base, "--token", token])
        .args(extra)
        .env_remove("HARK_SERVER")
        .env_remove("HARK_TOKEN")
        .output();
    tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("hark listen finished within 2 minutes")
        .expect("spawn hark listen")
}

async fn key(server: &TestServer, admin: &str, key_type: &str) -> String {
    let created = server
        .api_token(
            admin,
            json!({"name": "rt", "kind": "project", "project_id": 1, "type": key_type, "expires": "1y"}),
        )
        .await;
    created["token"].as_str().expect("token").to_owned()
}

#[tokio::test]
async fn a_file_streams_to_a_transcript_and_bad_tokens_are_refused() {
    let server = TestServer::start().await;
    let admin = server.user_with_token("adm", "admin");
    let realtime = key(&server, &admin, "realtime").await;

    let out = listen(&server, &realtime, &["--json"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "hark listen failed: {stderr}");
    assert!(!stderr.contains(&realtime), "the token was printed");
    let messages: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON message a line"))
        .collect();
    let kind = |m: &Value| m["message"].as_str().unwrap_or("").to_owned();
    assert_eq!(kind(&messages[0]), "RecognitionStarted", "{stdout}");
    assert_eq!(
        messages.last().map(kind).as_deref(),
        Some("EndOfTranscript"),
        "{stdout}"
    );
    // 8.13 s in 100 ms frames, every one acknowledged.
    let acks = messages.iter().filter(|m| kind(m) == "AudioAdded").count();
    assert_eq!(acks, 82, "{stdout}");
    let text = messages
        .iter()
        .filter(|m| kind(m) == "AddTranscript")
        .filter_map(|m| m["metadata"]["transcript"].as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let reference = std::fs::read_to_string(shared_audio("meeting_02.txt")).expect("reference");
    let wer = word_error_rate(&reference, &text);
    assert!(wer < 0.2, "WER {wer:.3}: {text:?}");

    // Without --json and not on a terminal: only the finals, as `[mm:ss.s] text` lines.
    let out = listen(&server, &realtime, &[]).await;
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains('\r') && !stdout.contains('\x1b'),
        "{stdout:?}"
    );
    let mut finals = Vec::new();
    for line in stdout.lines() {
        let (stamp, words) = line.split_once("] ").expect("[mm:ss.s] text");
        assert!(stamp.starts_with('[') && stamp.len() == 8, "{line}");
        finals.push(words);
    }
    let wer = word_error_rate(&reference, &finals.join(" "));
    assert!(wer < 0.2, "WER {wer:.3}: {stdout}");

    // An unknown token: 401 at the handshake.
    let out = listen(&server, "hark_key_notarealtokenatall", &["--json"]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refused the token (401)"), "{stderr}");
    assert!(out.stdout.is_empty());

    // A batch key is a real token without real-time rights: 403.
    let batch = key(&server, &admin, "batch").await;
    let out = listen(&server, &batch, &[]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("(403)"), "{stderr}");
}
