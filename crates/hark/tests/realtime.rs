//! Live transcription through the official clients (speechmatics-rt, the older
//! speechmatics-python, openai) and a raw
//! WebSocket: who may open a stream, what the protocol answers to bad input, revocation
//! ending a stream, temporary keys and the stream cap.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Runs one of the client scripts in tests/clients and parses the JSON it prints.
async fn client_script(script: &str, args: Vec<String>) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(script);
    let mut all = vec![path.display().to_string()];
    all.extend(args);
    let stdout = run_test_python(all).await;
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

async fn realtime_key(server: &TestServer, admin: &str) -> (String, i64) {
    let created = server
        .api_token(
            admin,
            json!({"name": "live", "kind": "project", "project_id": 1, "type": "realtime"}),
        )
        .await;
    (
        created["token"].as_str().unwrap().to_owned(),
        created["id"].as_i64().unwrap(),
    )
}

/// What the batch API makes of a clip, as the yardstick for streaming.
/// How much worse than batch a streamed transcript may be. Streaming commits words before it
/// hears what follows them, and how far ahead it hears depends on how busy the cores are
/// (the suite runs tests side by side): a word or two of a 20-word clip may differ.
const STREAMED_WER_MARGIN: f64 = 0.15;

async fn batch_wer(server: &TestServer, token: &str, clip: &str) -> f64 {
    let form = reqwest::multipart::Form::new()
        .text("model", "whisper-1")
        .text("response_format", "text")
        .part(
            "file",
            reqwest::multipart::Part::bytes(std::fs::read(shared_audio(clip)).unwrap())
                .file_name(clip.to_owned()),
        );
    let res = server
        .client
        .post(server.url("/v1/audio/transcriptions"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.unwrap();
    word_error_rate(&reference(clip), &text)
}

fn reference(clip: &str) -> String {
    std::fs::read_to_string(shared_audio(&clip.replace(".wav", ".txt"))).unwrap()
}

fn ws_url(server: &TestServer, path: &str) -> String {
    server.url(path).replacen("http://", "ws://", 1)
}

async fn connect(server: &TestServer, path: &str, token: Option<&str>) -> Result<Socket, u16> {
    let mut request = ws_url(server, path).into_client_request().unwrap();
    if let Some(token) = token {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(e) => panic!("connecting: {e}"),
    }
}

async fn send_json(socket: &mut Socket, value: Value) {
    socket
        .send(Message::Text(value.to_string().into()))
        .await
        .unwrap();
}

fn start_raw() -> Value {
    json!({"message": "StartRecognition",
           "audio_format": {"type": "raw", "encoding": "pcm_s16le", "sample_rate": 16000},
           "transcription_config": {"language": "en", "enable_partials": true}})
}

/// Reads until the server closes; returns the JSON messages and the close code.
async fn until_closed(socket: &mut Socket, limit: Duration) -> (Vec<Value>, Option<u16>) {
    let mut messages = Vec::new();
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                messages.push(serde_json::from_str(text.as_str()).unwrap())
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                return (messages, frame.map(|f| u16::from(f.code)));
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) => return (messages, None),
            Err(_) => panic!("no close within {limit:?}; got {messages:?}"),
        }
    }
}

fn pcm_s16(clip: &str) -> Vec<u8> {
    let bytes = std::fs::read(shared_audio(clip)).unwrap();
    bytes[44..].to_vec()
}

#[tokio::test]
async fn the_official_speechmatics_client_streams_through_hark() {
    let server = TestServer::start().await;
    let admin = server.user_with_token("adm", "admin");
    let (key, _) = realtime_key(&server, &admin).await;
    let clip = "meeting_02.wav";
    let batch = batch_wer(&server, &admin, clip).await;
    for mode in ["raw", "file", "jwt"] {
        let out = client_script(
            "speechmatics_rt.py",
            vec![
                ws_url(&server, "/v2"),
                key.clone(),
                shared_audio(clip).display().to_string(),
                mode.into(),
                server.base.clone(),
            ],
        )
        .await;
        assert!(out.get("error").is_none(), "{mode}: {out}");
        let wer = word_error_rate(&reference(clip), out["text"].as_str().unwrap());
        assert!(
            wer <= batch + STREAMED_WER_MARGIN,
            "{mode}: WER {wer} vs batch {batch}: {out}"
        );
        assert_eq!(out["ordered"], true, "{mode}: {out}");
    }
    // The older speechmatics-python puts the language in the path (/v2/en).
    let legacy = client_script(
        "speechmatics_legacy.py",
        vec![
            ws_url(&server, "/v2"),
            key.clone(),
            shared_audio(clip).display().to_string(),
        ],
    )
    .await;
    assert!(legacy.get("error").is_none(), "legacy: {legacy}");
    let wer = word_error_rate(&reference(clip), legacy["text"].as_str().unwrap());
    assert!(
        wer <= batch + STREAMED_WER_MARGIN,
        "legacy: WER {wer} vs batch {batch}: {legacy}"
    );
    let metrics = server.get_anonymous("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("hark_streams_opened_total 4"), "{metrics}");
    assert!(metrics.contains("hark_streams_open 0"), "{metrics}");
    server.saw_secret(&key);
    assert!(!server.log_text().contains(&key));
}

#[tokio::test]
async fn the_official_openai_sdk_transcribes_a_realtime_session() {
    let server = TestServer::start().await;
    let admin = server.user_with_token("adm", "admin");
    let (key, _) = realtime_key(&server, &admin).await;
    let clip = "support_01.wav";
    let batch = batch_wer(&server, &admin, clip).await;
    for mode in ["vad", "manual"] {
        let out = client_script(
            "openai_realtime.py",
            vec![
                server.base.clone(),
                key.clone(),
                shared_audio(clip).display().to_string(),
                mode.into(),
            ],
        )
        .await;
        assert!(
            out.get("exception").is_none() && out.get("error").is_none(),
            "{out}"
        );
        let wer = word_error_rate(&reference(clip), out["text"].as_str().unwrap());
        assert!(
            wer <= batch + STREAMED_WER_MARGIN,
            "{mode}: WER {wer} vs batch {batch}: {out}"
        );
        let events = out["events"].as_array().unwrap();
        for expected in [
            "session.updated",
            "input_audio_buffer.committed",
            "conversation.item.input_audio_transcription.delta",
        ] {
            assert!(events.iter().any(|e| e == expected), "{mode}: {out}");
        }
        if mode == "vad" {
            assert!(
                events
                    .iter()
                    .any(|e| e == "input_audio_buffer.speech_started")
            );
        }
    }
    let refused = client_script(
        "openai_realtime.py",
        vec![
            server.base.clone(),
            "hark_key_notarealkeyatall".into(),
            shared_audio(clip).display().to_string(),
            "manual".into(),
        ],
    )
    .await;
    assert!(
        refused["exception"].as_str().unwrap().contains("401"),
        "{refused}"
    );
}

#[tokio::test]
async fn handshakes_are_refused_with_http_statuses() {
    let server = TestServer::start().await;
    let admin = server.user_with_token("adm", "admin");
    let (key, key_id) = realtime_key(&server, &admin).await;
    let batch_key = server
        .api_token(
            &admin,
            json!({"name": "b", "kind": "project", "project_id": 1, "type": "batch"}),
        )
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let read_only = server.cli_token("adm", "ro", &["--scopes", "read"]);
    let management = server.management_token("adm").await;
    for path in [
        "/v2",
        "/v2/",
        "/v2/en?sm-sdk=python-rt-sdk-v1.2.1",
        "/api/v3/realtime",
        "/v1/realtime?intent=transcription",
    ] {
        assert!(connect(&server, path, Some(&key)).await.is_ok(), "{path}");
        assert_eq!(
            connect(&server, path, None).await.err(),
            Some(401),
            "{path}"
        );
        assert_eq!(
            connect(&server, path, Some("hark_key_bad")).await.err(),
            Some(401)
        );
        for refused in [&batch_key, &read_only, &management] {
            assert_eq!(
                connect(&server, path, Some(refused)).await.err(),
                Some(403),
                "{path}"
            );
        }
    }
    let jwt = format!("/v2?jwt={key}");
    assert!(connect(&server, &jwt, None).await.is_ok());
    assert_eq!(
        server
            .delete(&format!("/api/tokens/{key_id}"), &admin)
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(connect(&server, "/v2", Some(&key)).await.err(), Some(401));
    assert_eq!(connect(&server, &jwt, None).await.err(), Some(401));
    let plain = server.get("/v2", &key).await;
    assert_eq!(plain.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_input_gets_the_documented_answer_and_the_server_carries_on() {
    let server = TestServer::start_with(&["--stream-idle-secs", "2"]).await;
    let admin = server.user_with_token("adm", "admin");
    let (key, _) = realtime_key(&server, &admin).await;
    let limit = Duration::from_secs(30);

    let mut socket = connect(&server, "/v2", Some(&key)).await.unwrap();
    socket
        .send(Message::Text("{not json".into()))
        .await
        .unwrap();
    let (messages, code) = until_closed(&mut socket, limit).await;
    assert_eq!(
        (messages[0]["type"].as_str(), code),
        (Some("invalid_message"), Some(1003))
    );

    let mut socket = connect(&server, "/v2", Some(&key)).await.unwrap();
    send_json(&mut socket, json!({"message": "DoSomethingElse"})).await;
    let (messages, code) = until_closed(&mut socket, limit).await;
    assert_eq!(
        (messages[0]["type"].as_str(), code),
        (Some("invalid_message"), Some(1003))
    );
    assert!(messages[0]["reason"].is_string());

    let mut socket = connect(&server, "/v2", Some(&key)).await.unwrap();
    socket
        .send(Message::Binary(vec![0u8; 3200].into()))
        .await
        .unwrap();
    let (messages, code) = until_closed(&mut socket, limit).await;
    assert_eq!(
        (messages[0]["type"].as_str(), code),
        (Some("protocol_error"), Some(1003))
    );

    let mut socket = connect(&server, "/v2", Some(&key)).await.unwrap();
    send_json(&mut socket, start_raw()).await;
    socket
        .send(Message::Binary(vec![0u8; 1024 * 1024 + 2].into()))
        .await
        .unwrap();
    let (messages, code) = until_closed(&mut socket, limit).await;
    assert_eq!(messages[0]["message"], "RecognitionStarted");
    assert_eq!(
        (messages[1]["type"].as_str(), code),
        (Some("protocol_error"), Some(1003))
    );

    let mut socket = connect(&server, "/v2", Some(&key)).await.unwrap();
    send_json(
        &mut socket,
        json!({"message": "StartRecognition", "audio_format": {"type": "raw", "encoding": "opus", "sample_rate": 16000}}),
    )
    .await;
    let (messages, code) = until_closed(&mut socket, limit).await;
    assert_eq!(
        (messages[0]["type"].as_str(), code),
        (Some("invalid_audio_type"), Some(1003))
    );

    // Silence only: every frame acknowledged, no transcript, a clean end; then audio after
    // EndOfStream is a warning.
    let mut socket = connect(&server, "/v2", Some(&key)).await.unwrap();
    send_json(&mut socket, start_raw()).await;
    for _ in 0..30 {
        socket
            .send(Message::Binary(vec![0u8; 3200].into()))
            .await
            .unwrap();
    }
    send_json(
        &mut socket,
        json!({"message": "EndOfStream", "last_seq_no": 30}),
    )
    .await;
    socket
        .send(Message::Binary(vec![0u8; 3200].into()))
        .await
        .unwrap();
    let (messages, code) = until_closed(&mut socket, limit).await;
    let kinds: Vec<&str> = messages
        .iter()
        .filter_map(|m| m["message"].as_str())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "AudioAdded").count(),
        30,
        "{messages:?}"
    );
    assert!(!kinds.contains(&"AddTranscript"), "{messages:?}");
    assert!(kinds.contains(&"EndOfTranscript"), "{messages:?}");
    assert_eq!(code, Some(1000));
    let acks: Vec<u64> = messages
        .iter()
        .filter_map(|m| m["seq_no"].as_u64())
        .collect();
    assert_eq!(acks, (1..=30).collect::<Vec<_>>());

    // Nothing sent at all: the idle timeout closes the session.
    let mut socket = connect(&server, "/v2", Some(&key)).await.unwrap();
    let (messages, code) = until_closed(&mut socket, limit).await;
    assert_eq!(messages.last().unwrap()["type"], "idle_timeout");
    assert_eq!(code, Some(4006));

    assert_eq!(
        server.get_anonymous("/healthz").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn revoking_a_key_or_its_parent_ends_the_stream_within_a_second() {
    let server = TestServer::start_with(&["--max-streams-per-key", "1"]).await;
    let admin = server.user_with_token("adm", "admin");
    let (key, key_id) = realtime_key(&server, &admin).await;
    let pcm = pcm_s16("meeting_02.wav");

    // A temporary key: Speechmatics' shape, only what its parent can do, gone with it.
    let res = server
        .post_json("/v1/api_keys?type=rt", &key, json!({"ttl": 60}))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let temporary: Value = res.json().await.unwrap();
    let temp_key = temporary["key_value"].as_str().unwrap().to_owned();
    server.saw_secret(&temp_key);
    assert!(temporary["apikey_id"].is_string());
    for (ttl, kind) in [(59, "rt"), (86_401, "rt"), (60, "video")] {
        let res = server
            .post_json(
                &format!("/v1/api_keys?type={kind}"),
                &key,
                json!({"ttl": ttl}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{ttl} {kind}");
    }
    let batch_from_rt = server
        .post_json("/v1/api_keys?type=batch", &key, json!({"ttl": 60}))
        .await;
    assert_eq!(batch_from_rt.status(), StatusCode::FORBIDDEN);
    let listed: Value = server
        .get("/api/tokens", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        !listed.to_string().contains("temporary"),
        "temporary keys are not listed"
    );

    // The cap counts a temporary key against its parent.
    let mut first = connect(&server, "/v2", Some(&temp_key)).await.unwrap();
    send_json(&mut first, start_raw()).await;
    // Streams are admitted at StartRecognition: wait until the first holds its place.
    let started = tokio::time::timeout(Duration::from_secs(10), first.next())
        .await
        .expect("RecognitionStarted within 10s");
    let Some(Ok(Message::Text(started))) = started else {
        panic!("expected RecognitionStarted, got {started:?}");
    };
    assert!(started.as_str().contains("RecognitionStarted"), "{started}");
    let mut second = connect(&server, "/v2", Some(&key)).await.unwrap();
    send_json(&mut second, start_raw()).await;
    let (messages, code) = until_closed(&mut second, Duration::from_secs(10)).await;
    assert_eq!(
        (messages[0]["type"].as_str(), code),
        (Some("quota_exceeded"), Some(4005))
    );

    for chunk in pcm.chunks(3200).take(20) {
        first
            .send(Message::Binary(chunk.to_vec().into()))
            .await
            .unwrap();
    }
    let revoked = server
        .delete(&format!("/api/tokens/{key_id}"), &admin)
        .await;
    assert_eq!(revoked.status(), StatusCode::OK);
    let at = Instant::now();
    let (messages, code) = until_closed(&mut first, Duration::from_secs(10)).await;
    let took = at.elapsed();
    assert_eq!(code, Some(4001), "{messages:?}");
    assert_eq!(messages.last().unwrap()["type"], "not_authorised");
    assert!(
        took < Duration::from_secs(1),
        "closed {took:?} after the revocation"
    );
    assert_eq!(
        connect(&server, "/v2", Some(&temp_key)).await.err(),
        Some(401)
    );

    let events: Value = server.get("/api/audit", &admin).await.json().await.unwrap();
    let issued = events.to_string();
    assert!(issued.contains("key.temporary_created"), "{issued}");
    assert!(
        issued.contains(&format!("parent token:{key_id}")),
        "{issued}"
    );
}

#[tokio::test]
async fn a_signed_in_member_mints_a_temporary_key_for_a_project() {
    let server = TestServer::start().await;
    server.create_user("ada", "member");
    let cookie = server.login("ada").await;
    let res = server
        .post_json_as_session(
            "/v1/api_keys?type=rt",
            &cookie,
            json!({"ttl": 120, "project_id": 1}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let key: Value = res.json().await.unwrap();
    let key = key["key_value"].as_str().unwrap().to_owned();
    server.saw_secret(&key);
    let me: Value = server
        .get("/api/tokens/self", &key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["kind"], "project");
    assert_eq!(me["scopes"], json!(["realtime"]));
    let expires = time::OffsetDateTime::parse(
        me["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let left = (expires - time::OffsetDateTime::now_utc()).whole_seconds();
    assert!((100..=121).contains(&left), "expires in {left} s");
    assert!(
        connect(&server, &format!("/v2?jwt={key}"), None)
            .await
            .is_ok()
    );
    assert_eq!(
        server.get("/api/recordings", &key).await.status(),
        StatusCode::FORBIDDEN
    );
    // Demoting the member stops it at once.
    server.admin_ok(&["set-role", "--username", "ada", "--role", "viewer"], None);
    server
        .eventually(Duration::from_secs(5), || async {
            connect(&server, "/v2", Some(&key)).await.err() == Some(403)
        })
        .await;
}

#[tokio::test]
async fn a_temporary_key_expires_and_its_stream_ends() {
    let server = TestServer::start().await;
    let admin = server.user_with_token("adm", "admin");
    let soon = (time::OffsetDateTime::now_utc() + Duration::from_secs(4))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let parent = server
        .api_token(
            &admin,
            json!({"name": "short", "kind": "project", "project_id": 1, "type": "realtime",
                   "expires": soon}),
        )
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = server
        .post_json("/v1/api_keys?type=rt", &parent, json!({"ttl": 3600}))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let temporary: Value = res.json().await.unwrap();
    let temp_key = temporary["key_value"].as_str().unwrap().to_owned();
    server.saw_secret(&temp_key);
    // Its lifetime is capped by its parent's: it expires in seconds, not in an hour.
    let mut socket = connect(&server, "/v2", Some(&temp_key)).await.unwrap();
    send_json(&mut socket, start_raw()).await;
    let (messages, code) = until_closed(&mut socket, Duration::from_secs(20)).await;
    assert_eq!(code, Some(4001), "{messages:?}");
    assert_eq!(messages.last().unwrap()["type"], "not_authorised");
    assert_eq!(
        connect(&server, "/v2", Some(&temp_key)).await.err(),
        Some(401)
    );
}
