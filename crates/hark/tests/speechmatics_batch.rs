//! Speechmatics' batch API at `/v2/jobs`, through the official `speechmatics-batch` client
//! (its async aiohttp client and its sync httpx one, unmodified), the legacy
//! `speechmatics-python` BatchClient, and at the HTTP level:
//! jobs, json-v2/txt/srt transcripts, listing, deletion, refusals in Speechmatics' error
//! shape, and `notification_config` callbacks to a receiver on loopback.

mod common;

use std::path::Path;
use std::time::Duration;

use common::peer::Peer;
use common::*;
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

const CLIP: &str = "support_02.wav";

fn reference(clip: &str) -> String {
    std::fs::read_to_string(shared_audio(&clip.replace(".wav", ".txt"))).unwrap()
}

async fn project_key(server: &TestServer, admin: &str, project: i64, key_type: &str) -> String {
    let created = server
        .api_token(
            admin,
            json!({"name": key_type, "kind": "project", "project_id": project, "type": key_type}),
        )
        .await;
    created["token"].as_str().unwrap().to_owned()
}

/// `POST /v2/jobs` with `config` as a text field and, when given, a clip as `data_file`.
async fn submit(
    server: &TestServer,
    token: &str,
    config: &Value,
    clip: Option<&str>,
) -> reqwest::Response {
    let mut form = Form::new().text("config", config.to_string());
    if let Some(clip) = clip {
        let bytes = std::fs::read(shared_audio(clip)).unwrap();
        form = form.part(
            "data_file",
            Part::bytes(bytes)
                .file_name(clip.to_owned())
                .mime_str("audio/wav")
                .unwrap(),
        );
    }
    server.post_form("/v2/jobs", token, form).await
}

async fn submitted_id(res: reqwest::Response) -> String {
    assert_eq!(res.status(), StatusCode::CREATED);
    let body: Value = res.json().await.unwrap();
    body["id"].as_str().expect("a string id").to_owned()
}

/// Speechmatics' error body, checked for its shape; returns the status and `detail`.
async fn sm_error(res: reqwest::Response) -> (StatusCode, String) {
    let status = res.status();
    let body: Value = res.json().await.expect("a JSON error");
    assert_eq!(body["code"], status.as_u16(), "{body}");
    assert!(body["error"].is_string(), "{body}");
    (status, body["detail"].as_str().expect("detail").to_owned())
}

async fn job(server: &TestServer, token: &str, id: &str) -> Value {
    let res = server.get(&format!("/v2/jobs/{id}"), token).await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json::<Value>().await.unwrap()["job"].clone()
}

async fn wait_for_job(server: &TestServer, token: &str, id: &str) -> Value {
    let started = std::time::Instant::now();
    loop {
        let job = job(server, token, id).await;
        if job["status"] != "running" {
            return job;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "still running: {job}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn transcription_config() -> Value {
    json!({"type": "transcription", "transcription_config": {"language": "en"}})
}

#[tokio::test]
async fn the_official_batch_client_transcribes_lists_and_deletes_jobs() {
    let server = TestServer::start().await;
    let admin = server.user_with_token("adm", "admin");
    let batch = project_key(&server, &admin, 1, "batch").await;
    let realtime = project_key(&server, &admin, 1, "realtime").await;
    let other_project: Value = server
        .post_json(
            "/api/manage/projects",
            &server.management_token("adm").await,
            json!({"name": "Other"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let other_batch = project_key(
        &server,
        &admin,
        other_project["id"].as_i64().unwrap(),
        "batch",
    )
    .await;
    let bad = hark_core::tokens::generate(hark_core::tokens::TokenKind::Project)
        .secret
        .into_exposed();
    server.saw_secret(&bad);

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/speechmatics_batch.py");
    let stdout = run_test_python(vec![
        script.display().to_string(),
        server.base.clone(),
        batch.clone(),
        shared_audio(CLIP).display().to_string(),
        bad,
        realtime.clone(),
    ])
    .await;
    let out: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));

    let reference = reference(CLIP);
    let text = out["text"].as_str().unwrap();
    let wer = word_error_rate(&reference, text);
    assert!(wer < 0.2, "WER {wer}: {text}");
    assert!(
        out["early_transcript"]
            .as_str()
            .unwrap()
            .starts_with("TranscriptNotReadyError"),
        "{out}"
    );
    assert_eq!(out["format"], "2.9");
    assert_eq!(out["metadata_type"], "transcription");
    assert_eq!(out["job_block"]["id"], out["id"]);
    assert_eq!(out["job_block"]["data_name"], CLIP);
    assert_eq!(out["status"], "done");
    assert_eq!(out["data_name"], CLIP);
    assert!(out["duration"].as_f64().unwrap() >= 7.0, "{out}");
    assert_eq!(out["echoed_config"], out["submitted_config"]);

    // Word items carry the engine's own timings: increasing, and not spread evenly.
    let results = out["results"].as_array().unwrap();
    let words: Vec<&Value> = results.iter().filter(|r| r["type"] == "word").collect();
    assert!(words.len() >= 15, "{results:?}");
    assert!(
        results
            .iter()
            .any(|r| r["type"] == "punctuation" && r["content"] == ".")
    );
    let mut last_end = 0.0;
    for w in &words {
        let (start, end) = (w["start"].as_f64().unwrap(), w["end"].as_f64().unwrap());
        assert!(
            start >= last_end - 1e-6 && end >= start,
            "{w} after {last_end}"
        );
        last_end = end;
        assert_eq!(w["language"], "en");
        let confidence = w["confidence"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&confidence), "{w}");
    }
    let lengths: Vec<f64> = words
        .iter()
        .map(|w| w["end"].as_f64().unwrap() - w["start"].as_f64().unwrap())
        .collect();
    let (shortest, longest) = lengths
        .iter()
        .fold((f64::MAX, 0.0f64), |(lo, hi), l| (lo.min(*l), hi.max(*l)));
    assert!(longest - shortest > 0.1, "evenly spread words: {lengths:?}");
    assert!(
        words
            .iter()
            .any(|w| w["confidence"].as_f64().unwrap() < 1.0)
    );

    let txt = out["txt"].as_str().unwrap();
    assert!(word_error_rate(&reference, txt) < 0.2, "{txt}");
    let srt = out["srt"].as_str().unwrap();
    assert!(srt.starts_with("1\n") && srt.contains(" --> "), "{srt}");
    assert!(word_error_rate(&reference, text) <= word_error_rate(&reference, txt) + 0.05);
    assert!(
        out["listed"].as_array().unwrap().contains(&out["id"]),
        "{out}"
    );
    let guarded = out["guarded_fetch"].as_str().unwrap_or_default();
    assert!(
        guarded.contains("400") && guarded.contains("fetch_data.url"),
        "{out}"
    );
    assert!(
        out["after_delete"].as_str().unwrap().contains("404"),
        "{out}"
    );
    for refused in ["bad_key", "realtime_key"] {
        assert!(
            out[refused]
                .as_str()
                .unwrap()
                .starts_with("AuthenticationError"),
            "{refused}: {out}"
        );
    }
    let sync_text = out["sync_text"].as_str().unwrap();
    assert!(word_error_rate(&reference, sync_text) < 0.2, "{sync_text}");
    assert_eq!(out["sync_status"], true);
    let legacy = out["legacy_text"].as_str().unwrap();
    assert!(word_error_rate(&reference, legacy) < 0.2, "{legacy}");
    assert!(out["legacy_words"].as_u64().unwrap() >= 15, "{out}");
    assert!(
        out["legacy_deleted"].as_str().unwrap().ends_with("deleted"),
        "{out}"
    );

    // The same at the HTTP level: content types, refusals and their shape.
    let id = submitted_id(submit(&server, &batch, &transcription_config(), Some(CLIP)).await).await;
    let done = wait_for_job(&server, &batch, &id).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["config"], transcription_config());
    let transcript = |format: &'static str| {
        let (server, batch, id) = (&server, &batch, &id);
        async move {
            server
                .get(&format!("/v2/jobs/{id}/transcript{format}"), batch)
                .await
        }
    };
    let res = transcript("").await;
    assert_eq!(res.headers()["content-type"], "application/json");
    let doc: Value = res.json().await.unwrap();
    assert_eq!(doc["metadata"]["language_pack_info"]["word_delimiter"], " ");
    assert_eq!(
        doc["metadata"]["transcription_config"],
        json!({"language": "en"})
    );
    for format in ["?format=txt", "?format=srt"] {
        let res = transcript(format).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
    }
    assert_eq!(
        sm_error(transcript("?format=docx").await).await.0,
        StatusCode::BAD_REQUEST
    );
    // GET /v2/jobs is the listing, not the real-time handshake behind /v2/{language}.
    let res = server.get("/v2/jobs?limit=1", &batch).await;
    assert_eq!(res.status(), StatusCode::OK);
    let listed: Value = res.json().await.unwrap();
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(listed["jobs"][0]["id"], id.as_str());
    let res = server
        .get("/v2/jobs?created_before=2000-01-01T00:00:00Z", &batch)
        .await;
    assert_eq!(res.json::<Value>().await.unwrap()["jobs"], json!([]));
    // Another project's key sees none of it.
    assert_eq!(
        sm_error(server.get(&format!("/v2/jobs/{id}"), &other_batch).await)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let res = server.get("/v2/jobs", &other_batch).await;
    assert_eq!(res.json::<Value>().await.unwrap()["jobs"], json!([]));
    assert_eq!(
        sm_error(server.get("/v2/jobs", &realtime).await).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, detail) = sm_error(
        server
            .client
            .get(server.url("/v2/jobs"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{detail}");

    for (config, clip, expected) in [
        (json!("not json"), Some(CLIP), "config"),
        (
            json!({"transcription_config": {"language": "en"}}),
            Some(CLIP),
            "config.type",
        ),
        (transcription_config(), None, "data_file"),
        (
            json!({"type": "transcription", "transcription_config": {"language": "de"}}),
            Some(CLIP),
            "language",
        ),
    ] {
        let mut form = Form::new().text(
            "config",
            config
                .as_str()
                .map_or_else(|| config.to_string(), str::to_owned),
        );
        if let Some(clip) = clip {
            form = form.part(
                "data_file",
                Part::bytes(std::fs::read(shared_audio(clip)).unwrap()).file_name(clip),
            );
        }
        let (status, detail) = sm_error(server.post_form("/v2/jobs", &batch, form).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{config}: {detail}");
        assert!(detail.contains(expected), "{config}: {detail}");
    }

    // A running job is locked unless forced; deleting it takes its recording and audio.
    let blobs = server.data_dir.path().join("blobs/recordings");
    let before = walk_files(&blobs);
    let config = json!({"type": "transcription", "transcription_config": {"language": "en"},
                        "tracking": {"title": "locked"}});
    let id = submitted_id(submit(&server, &admin, &config, Some(CLIP)).await).await;
    assert_eq!(walk_files(&blobs).len(), before.len() + 1);
    let (status, detail) = sm_error(server.delete(&format!("/v2/jobs/{id}"), &admin).await).await;
    assert_eq!(status, StatusCode::LOCKED, "{detail}");
    let res = server
        .delete(&format!("/v2/jobs/{id}?force=true"), &admin)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let deleted: Value = res.json().await.unwrap();
    assert_eq!(deleted["job"]["status"], "deleted");
    assert_eq!(deleted["job"]["config"], config);
    assert_eq!(
        sm_error(server.get(&format!("/v2/jobs/{id}"), &admin).await)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let recordings: Value = server
        .get("/api/recordings?q=locked", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(recordings["recordings"], json!([]), "{recordings}");
    assert_eq!(walk_files(&blobs), before, "the audio went with the job");
}

/// Every file under `dir`, recursively and sorted (empty when it does not exist).
fn walk_files(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                found.extend(walk_files(&path));
            } else {
                found.push(path.display().to_string());
            }
        }
    }
    found.sort();
    found
}

#[tokio::test]
async fn notifications_carry_the_requested_contents_to_the_receiver() {
    let server = TestServer::start_with(&["--fetch-allow-private", "--workers", "2"]).await;
    let admin = server.user_with_token("adm", "admin");
    let batch = project_key(&server, &admin, 1, "batch").await;
    let peer = Peer::start().await;

    // One item: the transcript as text, the receiver's header added.
    let config = json!({
        "type": "transcription",
        "transcription_config": {"language": "en"},
        "fetch_data": {"url": format!("{}/audio/{CLIP}", peer.base)},
        "notification_config": [{
            "url": format!("{}/hooks/done", peer.base),
            "contents": ["transcript.txt"],
            "auth_headers": ["Authorization: Bearer receiver-secret"],
        }],
    });
    let done_id = submitted_id(submit(&server, &batch, &config, None).await).await;
    // Two items, the job failing: PUT, multipart, the transcript left out.
    let config = json!({
        "type": "transcription",
        "transcription_config": {"language": "en"},
        "fetch_data": {"url": format!("{}/audio/missing.wav", peer.base)},
        "notification_config": [{
            "url": format!("{}/hooks/failed?from=hark", peer.base),
            "method": "put",
            "contents": ["jobinfo", "transcript.txt"],
        }],
    });
    let failed_id = submitted_id(submit(&server, &admin, &config, None).await).await;

    let received = peer.wait_for(2, Duration::from_secs(120)).await;
    let hook = |path: &str| {
        received
            .iter()
            .find(|r| r.uri.starts_with(path))
            .unwrap_or_else(|| panic!("nothing at {path}: {received:?}"))
            .clone()
    };
    let done = hook("/hooks/done");
    assert_eq!(done.method, "POST");
    assert_eq!(done.uri, format!("/hooks/done?id={done_id}&status=success"));
    assert!(
        done.header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(done.header("authorization"), Some("Bearer receiver-secret"));
    let text = String::from_utf8(done.body.clone()).unwrap();
    assert!(word_error_rate(&reference(CLIP), &text) < 0.2, "{text}");
    assert_eq!(
        wait_for_job(&server, &batch, &done_id).await["data_name"],
        CLIP
    );

    let failed = hook("/hooks/failed");
    assert_eq!(failed.method, "PUT");
    assert_eq!(
        failed.uri,
        format!("/hooks/failed?from=hark&id={failed_id}&status=error")
    );
    assert!(failed.header("authorization").is_none());
    let content_type = failed.header("content-type").unwrap();
    assert!(
        content_type.starts_with("multipart/form-data; boundary="),
        "{content_type}"
    );
    let body = String::from_utf8(failed.body.clone()).unwrap();
    assert!(body.contains("name=\"jobinfo\""), "{body}");
    assert!(!body.contains("name=\"transcript.txt\""), "{body}");
    assert!(body.contains("\"status\":\"rejected\""), "{body}");
    let job = wait_for_job(&server, &admin, &failed_id).await;
    assert_eq!(job["status"], "rejected");
    let message = job["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("could not be fetched"), "{message}");
    assert!(
        job["errors"][0]["timestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    // The batch key does not see the admin's own job.
    assert_eq!(
        sm_error(server.get(&format!("/v2/jobs/{failed_id}"), &batch).await)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}
