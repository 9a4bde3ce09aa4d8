//! The attacks of the security review (issue 9), each replayed against the real server:
//! served uploads as pages, project keys reading people's recordings, rotation takeover
//! and escalation, management tokens from personal ones, decoder bombs, oversized form
//! fields, parser panics, log redaction by encoding. Each test failed before its fix.

mod common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(120);

/// A WAV header that passes any sniffing, followed by a page that would mint a
/// management token with the viewer's cookie if it ever ran in hark's origin.
fn wav_html_polyglot() -> Vec<u8> {
    let mut bytes = std::fs::read(shared_audio("meeting_01.wav")).expect("clip");
    bytes.truncate(44 + 32_000);
    bytes.extend_from_slice(
        b"<html><body><script>fetch('/api/tokens',{method:'POST',headers:{'content-type':\
          'application/json'},body:JSON.stringify({name:'pwned',kind:'management'})});\
          document.title='pwned'</script></body></html>",
    );
    bytes
}

async fn upload_bytes(
    server: &TestServer,
    token: &str,
    bytes: Vec<u8>,
    name: &str,
    label: &str,
) -> reqwest::Response {
    let form = Form::new().part(
        "file",
        Part::bytes(bytes)
            .file_name(name.to_owned())
            .mime_str(label)
            .unwrap(),
    );
    server.post_form("/api/recordings", token, form).await
}

fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn an_html_upload_is_refused_and_user_audio_is_served_inert() {
    let server = TestServer::start().await;
    let member = server.user_with_token("mallory", "member");
    let page = b"<!doctype html><script>alert(document.cookie)</script>".to_vec();
    for label in ["text/html", "audio/wav"] {
        let res = upload_bytes(&server, &member, page.clone(), "x.html", label).await;
        assert_eq!(
            error_code(res).await,
            (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type".into()
            ),
            "labelled {label}: judged by content"
        );
    }
    let blobs = server.data_dir.path().join("blobs");
    assert_eq!(
        std::fs::read_dir(blobs.join("recordings")).unwrap().count(),
        0
    );
    assert_eq!(std::fs::read_dir(blobs.join("tmp")).unwrap().count(), 0);

    // A real WAV header in front of a page: audio to the sniffer, so it is stored as
    // audio/wav whatever the label — and served so that no browser runs it.
    let res = upload_bytes(&server, &member, wav_html_polyglot(), "x.html", "text/html").await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let recording: Value = res.json().await.unwrap();
    assert_eq!(recording["mime_type"], "audio/wav");
    let audio = format!("/api/recordings/{}/audio", recording["id"]);
    let res = server.get(&audio, &member).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "content-type"), "audio/wav");
    assert_eq!(header(&res, "x-content-type-options"), "nosniff");
    assert!(header(&res, "content-security-policy").contains("sandbox"));
    assert!(header(&res, "content-disposition").starts_with("attachment"));
    let played = server
        .client
        .get(server.url(&audio))
        .bearer_auth(&member)
        .header("sec-fetch-dest", "audio")
        .header("range", "bytes=0-99")
        .send()
        .await
        .unwrap();
    assert_eq!(played.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        header(&played, "content-disposition"),
        "inline",
        "the page's own player"
    );

    // Every API answer carries nosniff and a policy that runs nothing.
    for path in [
        "/api/recordings",
        "/healthz",
        "/api/openapi.json",
        "/no/such/route",
    ] {
        let res = server.get(path, &member).await;
        assert_eq!(header(&res, "x-content-type-options"), "nosniff", "{path}");
        let csp = header(&res, "content-security-policy");
        assert!(
            csp.contains("default-src 'none'") && csp.contains("sandbox"),
            "{path}: {csp}"
        );
    }
}

#[tokio::test]
async fn a_token_in_the_url_never_acts_beside_a_signed_in_session() {
    let server = TestServer::start().await;
    let member = server.user_with_token("mallory", "member");
    server.create_user("root", "admin");
    let cookie = server.login("root").await;
    let url = server.url(&format!("/api/tokens/self?token={member}"));
    let res = server
        .client
        .get(&url)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::BAD_REQUEST,
        "a link with a token, opened signed in"
    );
    let res = server.client.get(&url).send().await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "the same link without a session works"
    );
}

async fn upload(server: &TestServer, token: &str) -> Value {
    let res = server
        .upload(token, &shared_audio("meeting_01.wav"), Some("private"))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json().await.unwrap()
}

#[tokio::test]
async fn project_keys_read_only_what_their_projects_keys_submitted() {
    let server = TestServer::start().await;
    let developer = server.user_with_token("dev", "developer");
    let member = server.user_with_token("ada", "member");
    let key = |name: &'static str| {
        let (server, developer) = (&server, &developer);
        async move {
            server
                .api_token(
                    developer,
                    json!({"name": name, "kind": "project", "project_id": 1, "type": "batch"}),
                )
                .await["token"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let (ingest, reader) = (key("ingest").await, key("reader").await);
    let private = upload(&server, &member).await;
    let own_upload = upload(&server, &developer).await;
    let res = server.submit_batch(&ingest).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let submitted: Value = res.json().await.unwrap();
    // The attack: a default-project key counting through ids.
    for id in [&private["id"], &own_upload["id"]] {
        for key in [&ingest, &reader] {
            let res = server.get(&format!("/api/v3/documents/{id}"), key).await;
            assert_eq!(
                res.status(),
                StatusCode::NOT_FOUND,
                "a person's recording {id}"
            );
        }
    }
    let document = format!("/api/v3/documents/{}", submitted["document_id"]);
    assert_eq!(
        server.get(&document, &reader).await.status(),
        StatusCode::OK,
        "the project's own"
    );
    assert_eq!(
        server
            .get(&format!("/api/v3/documents/{}", private["id"]), &member)
            .await
            .status(),
        StatusCode::OK,
        "the owner still reads it"
    );
}

async fn rotate(server: &TestServer, by: &str, id: &Value, body: Value) -> reqwest::Response {
    server
        .post_json(&format!("/api/tokens/{id}/rotate"), by, body)
        .await
}

#[tokio::test]
async fn rotation_cannot_take_over_escalate_or_impersonate() {
    let server = TestServer::start().await;
    let owner = server.user_with_token("ada", "member");
    let leaked = server
        .api_token(&owner, json!({"name": "ci", "scopes": ["read", "write"]}))
        .await;
    let old = leaked["token"].as_str().unwrap().to_owned();
    let res = rotate(&server, &owner, &leaked["id"], json!({"grace": "1h"})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let new = res.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    server.saw_secret(&new);

    // (a) The retiring secret still does its work, but manages nothing: it can neither
    // rotate the owner out nor mint a token of its own.
    assert_eq!(
        server.get("/api/tokens/self", &old).await.status(),
        StatusCode::OK
    );
    let res = rotate(&server, &old, &leaked["id"], json!({})).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = server
        .post_json("/api/tokens", &old, json!({"name": "x"}))
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        server.get("/api/tokens/self", &new).await.status(),
        StatusCode::OK,
        "owner not locked out"
    );
    let res = rotate(&server, &new, &leaked["id"], json!({})).await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "the new secret rotates the leak away"
    );
    server.saw_secret(
        res.json::<Value>().await.unwrap()["token"]
            .as_str()
            .unwrap(),
    );
    assert_auth_failed(server.get("/api/tokens/self", &old).await).await;

    // (b) A narrower sibling cannot rotate a wider token and receive its secret.
    let narrow = server
        .api_token(
            &owner,
            json!({"name": "narrow", "scopes": ["read", "write"]}),
        )
        .await;
    let wide = server.api_token(&owner, json!({"name": "wide"})).await;
    let res = rotate(
        &server,
        narrow["token"].as_str().unwrap(),
        &wide["id"],
        json!({}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        server
            .get("/api/tokens/self", wide["token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::OK,
        "and it still works"
    );

    // (c) An admin cannot rotate someone else's token (and so act as them) — only revoke.
    let admin = server.user_with_token("root", "admin");
    let res = rotate(&server, &admin, &wide["id"], json!({"grace": "7d"})).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = server
        .delete(&format!("/api/tokens/{}", wide["id"]), &admin)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_auth_failed(
        server
            .get("/api/tokens/self", wide["token"].as_str().unwrap())
            .await,
    )
    .await;
}

/// A FLAC stream of `frames` constant frames of 65,535 samples at 48 kHz: a few bytes per
/// 1.4 s of audio. `declare` puts the true total in STREAMINFO; without it the decoder
/// only learns the length by decoding.
fn flac_bomb(frames: u32, declare: bool) -> Vec<u8> {
    const BLOCK: u64 = 65_535;
    let total = if declare {
        BLOCK * u64::from(frames)
    } else {
        0
    };
    let mut out = b"fLaC".to_vec();
    out.extend_from_slice(&[0x80, 0, 0, 34]);
    out.extend_from_slice(&(BLOCK as u16).to_be_bytes());
    out.extend_from_slice(&(BLOCK as u16).to_be_bytes());
    out.extend_from_slice(&[0; 6]);
    let packed: u64 = (48_000u64 << 44) | (15u64 << 36) | total;
    out.extend_from_slice(&packed.to_be_bytes());
    out.extend_from_slice(&[0; 16]);
    for n in 0..frames {
        let mut frame = vec![0xFF, 0xF8, 0x7A, 0x08];
        frame.extend(utf8_number(n));
        frame.extend_from_slice(&((BLOCK - 1) as u16).to_be_bytes());
        frame.push(crc8(&frame));
        frame.extend_from_slice(&[0x00, 0x01, 0x00]);
        let crc = crc16(&frame);
        frame.extend_from_slice(&crc.to_be_bytes());
        out.extend(frame);
    }
    out
}

fn utf8_number(n: u32) -> Vec<u8> {
    char::from_u32(n)
        .filter(|_| n < 0xD800)
        .map(|c| c.to_string().into_bytes())
        .expect("frame numbers of the test stay below 0xD800")
}

fn crc8(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |mut crc, b| {
        crc ^= b;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x07
            } else {
                crc << 1
            };
        }
        crc
    })
}

fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |mut crc, b| {
        crc ^= u16::from(*b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x8005
            } else {
                crc << 1
            };
        }
        crc
    })
}

/// A 44-byte WAV header declaring `rate` Hz, then `data` bytes of 16-bit PCM.
fn wav_at(rate: u32, data: usize) -> Vec<u8> {
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(36 + data as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data as u32).to_le_bytes());
    out.extend((0..data).map(|i| (i % 7) as u8));
    out
}

async fn failed_once(server: &TestServer, token: &str, bytes: Vec<u8>, name: &str) -> String {
    let res = upload_bytes(server, token, bytes, name, "audio/flac").await;
    assert_eq!(res.status(), StatusCode::CREATED, "{name}");
    let id = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let rec = wait_for_recording(server, token, id, LIMIT).await;
    assert_eq!(rec["status"], "FAILED", "{name}: {rec}");
    let session: Value = server
        .get(&format!("/api/v3/sessions/{id}"), token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        session["attempts"], 1,
        "{name}: failed at once, not retried"
    );
    rec["error"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn decoder_bombs_fail_at_once_with_bounded_memory() {
    // 0.05 h = 3 minutes, so the bomb trips the limit quickly; the default is 4 h.
    let server = TestServer::start_with(&["--max-audio-hours", "0.05"]).await;
    let token = server.user_with_token("ada", "member");
    let before = server.peak_memory_mib();
    // ~18,000 frames: 6.8 hours of audio in a quarter of a megabyte.
    let frames = 18_000;
    let undeclared = failed_once(&server, &token, flac_bomb(frames, false), "bomb.flac").await;
    assert!(
        undeclared.contains("longer than the 3 min limit"),
        "{undeclared}"
    );
    let declared = failed_once(&server, &token, flac_bomb(frames, true), "declared.flac").await;
    assert!(declared.contains("longer than"), "{declared}");
    let one_hertz = failed_once(&server, &token, wav_at(1, 200), "1hz.wav").await;
    assert!(one_hertz.contains("sample rate (1 Hz)"), "{one_hertz}");
    // Loading the engine accounts for most of this; the bomb itself took 6.5 GB before.
    let grown = server.peak_memory_mib().saturating_sub(before);
    assert!(grown < 600, "decoding grew the server by {grown} MiB");
    // Within the limit, real audio still goes through.
    let ok = server
        .upload(&token, &shared_audio("meeting_01.wav"), None)
        .await;
    let id = ok.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    assert_eq!(
        wait_for_recording(&server, &token, id, LIMIT).await["status"],
        "COMPLETED"
    );
}

#[tokio::test]
async fn form_fields_beside_the_file_are_capped() {
    let server = TestServer::start().await;
    let token = server.user_with_token("ada", "member");
    let before = server.peak_memory_mib();
    // 48 MiB of title, streamed: refused without being held.
    let chunk = bytes::Bytes::from(vec![b'a'; 1024 * 1024]);
    let stream =
        futures_util::stream::iter((0..48).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    // The file first: the title is the last thing sent, so the client is done sending
    // once the server has drained it and answered.
    let form = Form::new()
        .part(
            "file",
            Part::bytes(std::fs::read(shared_audio("meeting_01.wav")).unwrap()).file_name("a.wav"),
        )
        .part("title", Part::stream(reqwest::Body::wrap_stream(stream)));
    let res = server.post_form("/api/recordings", &token, form).await;
    let (status, _) = error_code(res).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let grown = server.peak_memory_mib().saturating_sub(before);
    assert!(grown < 32, "a 48 MiB title grew the server by {grown} MiB");

    let prompt = "word ".repeat(4000);
    let form = Form::new()
        .part(
            "file",
            Part::bytes(std::fs::read(shared_audio("meeting_01.wav")).unwrap()).file_name("a.wav"),
        )
        .text("model", "whisper-1")
        .text("prompt", prompt);
    let res = server
        .post_form("/v1/audio/transcriptions", &token, form)
        .await;
    let (status, _) = error_code(res).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "OpenAI form fields too");
    let tmp = server.data_dir.path().join("blobs/tmp");
    assert_eq!(
        std::fs::read_dir(tmp).unwrap().count(),
        0,
        "no upload left behind"
    );
}

#[tokio::test]
async fn malformed_input_is_a_4xx_counted_and_never_a_panic() {
    let server = TestServer::start_with(&["--failed-auth-per-minute", "3"]).await;
    let token = server.user_with_token("ada", "member");
    let created = server.api_token(&token, json!({"name": "r"})).await;
    let res = rotate(
        &server,
        &token,
        &created["id"],
        json!({"grace": "9999999999999999d"}),
    )
    .await;
    assert_eq!(error_code(res).await.0, StatusCode::BAD_REQUEST);
    // 47 bytes, the right length for a token, with a character straddling the checksum.
    let presented = format!("hark_pat_{}é{}", "a".repeat(31), "b".repeat(5));
    assert_eq!(presented.len(), 47);
    let encoded: String = url_encode(&presented);
    // A budget of 3 a minute: the fourth failure locks the address out.
    for _ in 0..4 {
        let res = server
            .get_anonymous(&format!("/api/tokens/self?token={encoded}"))
            .await;
        assert_auth_failed(res).await;
    }
    let res = server
        .get_anonymous(&format!("/api/tokens/self?token={encoded}"))
        .await;
    assert_eq!(
        res.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "counted by the lock-out"
    );

    let log = server.log_text();
    assert!(!log.contains("panicked"), "no panic");
    assert!(
        !log.contains(&presented) && !log.contains("aaaaaaaaaaaaaaaa"),
        "nothing presented is echoed"
    );
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'_' {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn encoded_tokens_in_urls_are_redacted_from_the_log() {
    let server = TestServer::start().await;
    let token = server.user_with_token("ada", "member");
    // `%74oken` decodes to `token`: it authenticates, so it must be redacted just the same.
    let res = server
        .get_anonymous(&format!("/api/tokens/self?%74oken={token}"))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = server
        .client
        .get(server.url(&format!(
            "/api/recordings?q={}",
            url_encode(&token).replace('_', "%5F")
        )))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    server
        .eventually(Duration::from_secs(5), || async {
            server.log_text().matches("REDACTED").count() >= 2
        })
        .await;
    // The drop check asserts the token itself never reached the log.
}
