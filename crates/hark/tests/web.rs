//! The web UI: what it is served with, the API it relies on (first run, session, audio,
//! downloads, filters, sign-in throttling), and the whole flow in Debian's Chromium
//! (`tests/browser/ui.mjs`, driven by playwright-core; both installed by scripts/test.sh).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Runs `ui.mjs` in `mode` against `server`; returns its JSON report.
fn run_browser(server: &TestServer, mode: &str, username: &str, audio: &str) -> Value {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists()
            && browser_dir().join("node_modules/playwright-core").exists(),
        "Chromium ({chromium}) and playwright-core are needed: ./scripts/test.sh installs both"
    );
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/browser-artifacts")
        .join(mode);
    let out = Command::new("node")
        .arg(browser_dir().join("ui.mjs"))
        .args([mode, &server.url(""), username, PASSWORD, audio])
        .arg(&artifacts)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| {
            panic!(
                "no report from ui.mjs\nstdout: {stdout}\nstderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert!(
        out.status.success() && report["ok"] == true,
        "browser check failed (screenshots in {}): {report:#}",
        artifacts.display()
    );
    report
}

#[tokio::test]
async fn in_chromium_a_token_is_created_shown_once_used_and_revoked_and_a_clip_is_transcribed() {
    let server = TestServer::start().await;
    server.create_user("ada", "admin");
    let clip = shared_audio("support_01.wav");
    let report = run_browser(&server, "tokens", "ada", &clip.to_string_lossy());
    let token = report["token"].as_str().expect("token");
    server.saw_secret(token);
    server.saw_secret(report["key"].as_str().expect("project key"));
    server.saw_secret(report["hookSecret"].as_str().expect("webhook secret"));
    let reference = std::fs::read_to_string(clip.with_extension("txt")).expect("reference");
    let transcript = report["transcript"].as_str().expect("transcript");
    let heard: String = transcript
        .split_whitespace()
        .filter(|word| !word.contains(':'))
        .collect::<Vec<_>>()
        .join(" ");
    let wer = word_error_rate(&reference, &heard);
    assert!(wer < 0.15, "WER {wer:.2}: {heard}");
}

/// A project besides the default one, made by the admin `username` in the web UI's way.
async fn second_project(server: &TestServer, username: &str, name: &str) -> i64 {
    let cookie = server.login(username).await;
    let res = server
        .post_json_as_session("/api/manage/projects", &cookie, json!({ "name": name }))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
}

#[tokio::test]
async fn in_chromium_the_live_page_streams_the_microphone_and_saves_a_recording() {
    let server = TestServer::start().await;
    let token = server.user_with_token("ada", "admin");
    let project = second_project(&server, "ada", "Standups").await;
    // Chromium's microphone plays meeting_02.wav in a loop; its first sentence has these.
    // (Chromium reads a path with `..` in it as silence: hence canonical.)
    let clip = shared_audio("meeting_02.wav").canonicalize().unwrap();
    let plan = json!({"clip": clip, "project": "Standups",
                      "words": ["marketing", "landing"]});
    let report = run_browser(&server, "live", "ada", &plan.to_string());
    let key = report["key"]
        .as_str()
        .expect("the key the page streamed with");
    server.saw_secret(key);
    assert_auth_failed(server.get("/api/tokens/self", key).await).await;
    let id = report["recording"].as_i64().expect("the saved recording");
    let recording: Value = server
        .get(&format!("/api/recordings/{id}"), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(recording["project_id"], project, "{recording}");
    assert_eq!(recording["mime_type"], "audio/wav");
    let wav = server
        .get(&format!("/api/recordings/{id}/audio"), &token)
        .await
        .bytes()
        .await
        .unwrap();
    let word = |at: usize| u16::from_le_bytes([wav[at], wav[at + 1]]);
    let long = |at: usize| u32::from_le_bytes(wav[at..at + 4].try_into().unwrap());
    assert_eq!(
        (&wav[..4], &wav[8..16], &wav[36..40]),
        (&b"RIFF"[..], &b"WAVEfmt "[..], &b"data"[..])
    );
    assert_eq!(
        (word(20), word(22), word(34)),
        (1, 1, 16),
        "16-bit mono PCM"
    );
    assert_eq!(long(40) as usize, wav.len() - 44);
    let seconds = f64::from(long(40)) / 2.0 / f64::from(long(24));
    let heard = report["seconds"].as_f64().unwrap();
    assert!(
        seconds > 2.0 && seconds < heard + 5.0,
        "{seconds:.1} s saved, {heard:.1} s live"
    );
    // A recording like any upload: transcribed again from the saved audio.
    let done = wait_for_recording(&server, &token, id, Duration::from_secs(120)).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let transcript: Value = server
        .get(&format!("/api/recordings/{id}/transcript"), &token)
        .await
        .json()
        .await
        .unwrap();
    let text = transcript["transcript"].as_str().unwrap().to_lowercase();
    assert!(text.contains("landing page"), "{text}");
}

#[tokio::test]
async fn uploads_go_into_a_chosen_project_of_the_workspace() {
    let server = TestServer::start().await;
    let token = server.user_with_token("ada", "admin");
    let project = second_project(&server, "ada", "Standups").await;
    let key = server
        .api_token(
            &token,
            json!({"name": "ingest", "kind": "project", "project_id": 1, "type": "batch"}),
        )
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut clip = std::fs::read(shared_audio("meeting_01.wav")).unwrap();
    clip.truncate(44 + 3200);
    let upload = |route: &'static str, who: String, project_id: String| {
        let form = reqwest::multipart::Form::new()
            .part(
                "file",
                reqwest::multipart::Part::bytes(clip.clone()).file_name("x.wav"),
            )
            .text("project_id", project_id);
        let server = &server;
        async move { server.post_form(route, &who, form).await }
    };
    let res = upload("/api/recordings", token.clone(), project.to_string()).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.json::<Value>().await.unwrap()["project_id"], project);
    for (id, status, code) in [
        ("999", StatusCode::NOT_FOUND, "not_found"),
        ("two", StatusCode::BAD_REQUEST, "invalid_request"),
    ] {
        let res = upload("/api/recordings", token.clone(), id.into()).await;
        assert_eq!(error_code(res).await, (status, code.to_owned()), "{id}");
    }
    let res = upload("/api/v3/speech-to-text", key.clone(), project.to_string()).await;
    assert_eq!(
        res.status(),
        StatusCode::FORBIDDEN,
        "a key uploads into its own project only"
    );
    let res = upload("/api/v3/speech-to-text", key, "1".into()).await;
    assert_eq!(res.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn in_chromium_an_uploaded_page_never_runs_in_harks_origin() {
    let server = TestServer::start().await;
    server.create_user("root", "admin");
    let member = server.user_with_token("mallory", "member");
    let html = b"<!doctype html><script>document.title='pwned'</script>".to_vec();
    let upload = |bytes: Vec<u8>, label: &'static str| {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(bytes)
                .file_name("x.html")
                .mime_str(label)
                .unwrap(),
        );
        server.post_form("/api/recordings", &member, form)
    };
    let res = upload(html, "text/html").await;
    assert_eq!(
        res.status(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "a page is not audio"
    );
    // A WAV header in front of a page that mints a management token with the cookie.
    let mut polyglot = std::fs::read(shared_audio("meeting_01.wav")).unwrap();
    polyglot.truncate(44 + 16_000);
    polyglot.extend_from_slice(
        b"<html><script>fetch('/api/tokens',{method:'POST',headers:{'content-type':\
          'application/json'},body:JSON.stringify({name:'pwned',kind:'management'})});\
          document.title='pwned'</script></html>",
    );
    let res = upload(polyglot, "text/html").await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let id = res.json::<Value>().await.unwrap()["id"].clone();
    let path = format!("/api/recordings/{id}/audio");
    let plan = json!({"link": format!("{path}?token={member}"), "path": path, "member": "mallory"});
    run_browser(&server, "inert", "root", &plan.to_string());
}

#[tokio::test]
async fn in_chromium_the_first_run_screen_creates_the_admin() {
    let server = TestServer::start().await;
    run_browser(&server, "setup", "owner", "-");
    let (status, _) = error_code(
        server
            .client
            .post(server.url("/api/setup"))
            .json(&json!({"username": "second", "password": "another password"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "setup works only once");
}

#[tokio::test]
async fn pages_are_served_with_a_strict_content_security_policy() {
    let server = TestServer::start().await;
    for (path, kind) in [
        ("/", "text/html"),
        ("/assets/app.js", "text/javascript"),
        ("/assets/live.js", "text/javascript"),
        ("/assets/live-worklet.js", "text/javascript"),
        ("/assets/app.css", "text/css"),
        ("/assets/icon.svg", "image/svg+xml"),
    ] {
        let res = server.client.get(server.url(path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let header = |name: &str| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert!(header("content-type").starts_with(kind), "{path}");
        let csp = header("content-security-policy");
        assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("http"),
            "{csp}"
        );
        assert_eq!(header("x-frame-options"), "DENY");
    }
    let html = server
        .client
        .get(server.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !html.contains("<script>") && !html.contains("style="),
        "no inline code"
    );
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no other origin"
    );
}

#[tokio::test]
async fn first_run_setup_is_offered_only_while_nobody_exists() {
    let server = TestServer::start().await;
    let state: Value = server
        .client
        .get(server.url("/api/setup"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state, json!({"needed": true}));
    let post = |body: Value| {
        server
            .client
            .post(server.url("/api/setup"))
            .json(&body)
            .send()
    };
    let (status, code) = error_code(
        post(json!({"username": "root", "password": "short"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    let res = post(json!({"username": "root", "password": "long enough"}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    server.saw_secret(cookie.split(';').next().unwrap().split_once('=').unwrap().1);
    let who: Value = res.json().await.unwrap();
    let pair = cookie.split(';').next().unwrap().to_owned();
    let audit: Value = server
        .client
        .get(server.url("/api/audit?action=member.added"))
        .header("cookie", pair)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(audit["events"][0]["details"], "root as admin (first run)");
    assert_eq!(
        (who["username"].as_str(), who["role"].as_str()),
        (Some("root"), Some("admin"))
    );
    let (status, _) = error_code(
        post(json!({"username": "mallory", "password": "long enough"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let state: Value = server
        .client
        .get(server.url("/api/setup"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state, json!({"needed": false}));
}

#[tokio::test]
async fn sign_in_attempts_are_throttled_per_address() {
    let server = TestServer::start().await;
    server.create_user("ada", "member");
    let attempt = || {
        server
            .client
            .post(server.url("/api/auth/login"))
            .json(&json!({"username": "ada", "password": "wrong guess"}))
            .send()
    };
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(attempt().await.unwrap().status());
    }
    assert!(
        statuses[..10]
            .iter()
            .all(|s| *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    let res = attempt().await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&wait), "Retry-After {wait}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
}

#[tokio::test]
async fn the_session_says_who_is_signed_in() {
    let server = TestServer::start().await;
    let token = server.user_with_token("ada", "developer");
    let who: Value = server
        .get("/api/auth/session", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (who["username"].as_str(), who["role"].as_str()),
        (Some("ada"), Some("developer"))
    );
    let res = server
        .client
        .get(server.url("/api/auth/session"))
        .send()
        .await
        .unwrap();
    assert_auth_failed(res).await;
}

#[tokio::test]
async fn audio_streams_with_ranges_and_transcripts_download_as_files() {
    let server = TestServer::start().await;
    let token = server.user_with_token("ada", "member");
    let clip = shared_audio("support_02.wav");
    let created: Value = server
        .upload(&token, &clip, Some("Support call"))
        .await
        .json()
        .await
        .unwrap();
    let id = created["id"].as_i64().unwrap();
    let audio = server
        .client
        .get(server.url(&format!("/api/recordings/{id}/audio")))
        .bearer_auth(&token)
        .header("range", "bytes=0-99")
        .send()
        .await
        .unwrap();
    assert_eq!(audio.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(audio.headers()["content-type"], "audio/wav");
    let bytes = audio.bytes().await.unwrap();
    assert_eq!(bytes.as_ref(), &std::fs::read(&clip).unwrap()[..100]);

    let other = server.user_with_token("bob", "member");
    let res = server
        .get(&format!("/api/recordings/{id}/audio"), &other)
        .await;
    assert_eq!(
        res.status(),
        StatusCode::NOT_FOUND,
        "only the owner hears it"
    );

    wait_for_recording(&server, &token, id, Duration::from_secs(180)).await;
    let res = server
        .get(&format!("/api/recordings/{id}/transcript/srt"), &token)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()["content-disposition"],
        "attachment; filename=\"Support_call.srt\""
    );
    let srt = res.text().await.unwrap();
    assert!(srt.starts_with("1\n00:00:"), "{srt}");
    let (status, _) = error_code(
        server
            .get(&format!("/api/recordings/{id}/transcript/doc"), &token)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn recordings_filter_by_title_and_tag() {
    let server = TestServer::start().await;
    let token = server.user_with_token("ada", "member");
    let clip = shared_audio("support_01.wav");
    let mut ids = Vec::new();
    for title in ["Weekly sync", "Customer call 100%", "weekly retro"] {
        let created: Value = server
            .upload(&token, &clip, Some(title))
            .await
            .json()
            .await
            .unwrap();
        ids.push(created["id"].as_i64().unwrap());
    }
    let titles = |page: Value| -> Vec<String> {
        page["recordings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["title"].as_str().unwrap().to_owned())
            .collect()
    };
    let page: Value = server
        .get("/api/recordings?q=WEEKLY", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(titles(page.clone()), ["weekly retro", "Weekly sync"]);
    assert_eq!(page["pagination"]["total"], 2);
    let page: Value = server
        .get("/api/recordings?q=100%25", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        titles(page),
        ["Customer call 100%"],
        "% is matched literally"
    );
    let tag: Value = server
        .post_json("/api/tags", &token, json!({"name": "sales"}))
        .await
        .json()
        .await
        .unwrap();
    let tag_id = tag["id"].as_i64().unwrap();
    let res = server
        .post_json(
            &format!("/api/recordings/{}/tags", ids[1]),
            &token,
            json!({"tag_id": tag_id}),
        )
        .await;
    assert!(res.status().is_success());
    let page: Value = server
        .get(&format!("/api/recordings?tag={tag_id}"), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(titles(page), ["Customer call 100%"]);
    let page: Value = server
        .get(&format!("/api/recordings?tag={tag_id}&q=weekly"), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["pagination"]["total"], 0);
    let (status, _) = error_code(server.get("/api/recordings?tag=sales", &token).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
