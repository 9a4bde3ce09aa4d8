//! Real audio through the real engine, over HTTP: the recordings API, the Scriptix-style
//! batch API, the OpenAI-compatible endpoint, failures and crash recovery.

mod common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(180);

fn reference(name: &str) -> String {
    std::fs::read_to_string(shared_audio(name)).unwrap()
}

#[tokio::test]
async fn an_uploaded_recording_gets_a_transcript_and_a_summary() {
    let server = TestServer::start().await;
    let token = server.user_with_token("ada", "member");
    let res = server
        .upload(&token, &shared_audio("meeting_01.wav"), Some("Planning"))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let id = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let rec = wait_for_recording(&server, &token, id, LIMIT).await;
    assert_eq!(rec["status"], "COMPLETED", "{rec}");
    assert_eq!(rec["language"], "en");
    assert!(rec["duration_seconds"].as_f64().unwrap() > 5.0);

    let transcript: Value = server
        .get(&format!("/api/recordings/{id}/transcript"), &token)
        .await
        .json()
        .await
        .unwrap();
    let text = transcript["transcript"].as_str().unwrap();
    let wer = word_error_rate(&reference("meeting_01.txt"), text);
    eprintln!("meeting_01 WER {:.1}%: {text}", wer * 100.0);
    assert!(wer < 0.15, "WER {wer} for {text:?}");
    let segments = transcript["segments"].as_array().unwrap();
    assert!(!segments.is_empty());
    let mut last_end = 0.0;
    for s in segments {
        let (start, end) = (s["start"].as_f64().unwrap(), s["end"].as_f64().unwrap());
        assert!(
            start >= last_end - 0.01 && end >= start && end <= 9.0,
            "{s}"
        );
        last_end = end;
    }
    let summary: Value = server
        .get(&format!("/api/recordings/{id}/summary"), &token)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        summary["summary"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("planning meeting"),
        "{summary}"
    );
}

#[tokio::test]
async fn batch_sessions_need_the_batch_scope_and_serve_every_format() {
    let server = TestServer::start().await;
    server.create_user("ada", "member");
    let batch = server.cli_token("ada", "batch", &["--scopes", "batch"]);
    let reader = server.cli_token("ada", "reader", &["--scopes", "read,write"]);
    let form = || {
        let bytes = std::fs::read(shared_audio("support_02.wav")).unwrap();
        reqwest::multipart::Form::new()
            .part(
                "file",
                reqwest::multipart::Part::bytes(bytes).file_name("support_02.wav"),
            )
            .text("language", "en")
            .text("document_type", "document")
    };
    let url = server.url("/api/v3/speech-to-text");
    let denied = server
        .client
        .post(&url)
        .bearer_auth(&reader)
        .multipart(form())
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(denied).await,
        (StatusCode::FORBIDDEN, "forbidden".into())
    );

    let res = server
        .client
        .post(&url)
        .bearer_auth(&batch)
        .multipart(form())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let created: Value = res.json().await.unwrap();
    let session = format!("/api/v3/sessions/{}", created["session_id"]);
    let document = format!("/api/v3/documents/{}", created["document_id"]);
    let early = server.get(&format!("{document}?format=srt"), &batch).await;
    assert!(matches!(
        early.status(),
        StatusCode::CONFLICT | StatusCode::OK
    ));

    let seen = std::sync::Mutex::new(Vec::new());
    server
        .eventually(LIMIT, || async {
            let s: Value = server.get(&session, &batch).await.json().await.unwrap();
            let status = s["status"].as_str().unwrap().to_owned();
            seen.lock().unwrap().push(status.clone());
            status == "completed"
        })
        .await;
    let seen = seen.into_inner().unwrap();
    assert!(
        seen.iter()
            .all(|s| ["queued", "processing", "summarizing", "completed"].contains(&s.as_str())),
        "{seen:?}"
    );
    let s: Value = server.get(&session, &batch).await.json().await.unwrap();
    assert_eq!(s["progress"], 100);

    let doc: Value = server.get(&document, &batch).await.json().await.unwrap();
    let wer = word_error_rate(&reference("support_02.txt"), doc["text"].as_str().unwrap());
    assert!(wer < 0.15, "{doc}");
    let txt = server
        .get(&format!("{document}?format=txt"), &batch)
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(txt, doc["text"].as_str().unwrap());
    let srt = server
        .get(&format!("{document}?format=srt"), &batch)
        .await
        .text()
        .await
        .unwrap();
    assert!(srt.starts_with("1\n00:00:00,000 --> "), "{srt}");
    let vtt = server
        .get(&format!("{document}?format=vtt"), &batch)
        .await
        .text()
        .await
        .unwrap();
    assert!(vtt.starts_with("WEBVTT\n\n00:00:"), "{vtt}");
    let bad = server.get(&format!("{document}?format=pdf"), &batch).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    let other = server.user_with_token("bob", "member");
    assert_eq!(
        server.get(&session, &other).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        server.get(&document, &other).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_corrupt_file_fails_with_a_reason_and_nothing_panics() {
    let server = TestServer::start().await;
    let token = server.user_with_token("ada", "member");
    let dir = tempfile::tempdir().unwrap();
    let corrupt = dir.path().join("broken.wav");
    let mut bytes = std::fs::read(shared_audio("meeting_02.wav")).unwrap();
    bytes.truncate(44);
    bytes.extend(b"definitely not PCM audio".repeat(10));
    std::fs::write(&corrupt, &bytes).unwrap();
    let noise = dir.path().join("noise.mp3");
    std::fs::write(&noise, b"ID3 this is text pretending to be an mp3").unwrap();
    for file in [corrupt, noise] {
        let res = server.upload(&token, &file, None).await;
        assert_eq!(
            res.status(),
            StatusCode::CREATED,
            "accepted first, judged by the engine"
        );
        let id = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
        let rec = wait_for_recording(&server, &token, id, LIMIT).await;
        assert_eq!(rec["status"], "FAILED", "{rec}");
        let reason = rec["error"].as_str().unwrap();
        assert!(
            !reason.is_empty() && !reason.contains("panicked"),
            "{reason}"
        );
    }
    assert!(!server.log_text().contains("panicked"));
    let ok = server
        .upload(&token, &shared_audio("news_01.wav"), None)
        .await;
    let id = ok.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    assert_eq!(
        wait_for_recording(&server, &token, id, LIMIT).await["status"],
        "COMPLETED",
        "the worker lives on"
    );
}

#[tokio::test]
async fn a_job_whose_worker_died_completes_after_restart() {
    let mut server = TestServer::start_with(&["--job-lease-secs", "2"]).await;
    let token = server.user_with_token("ada", "member");
    let res = server
        .upload(&token, &shared_audio("long_mix.wav"), None)
        .await;
    let id = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    server
        .eventually(Duration::from_secs(60), || async {
            let rec: Value = server
                .get(&format!("/api/recordings/{id}"), &token)
                .await
                .json()
                .await
                .unwrap();
            rec["status"] == "PROCESSING"
        })
        .await;
    server.kill();
    server.restart(&["--job-lease-secs", "2"]);
    let rec = wait_for_recording(&server, &token, id, Duration::from_secs(300)).await;
    assert_eq!(rec["status"], "COMPLETED", "{rec}");
    let transcript: Value = server
        .get(&format!("/api/recordings/{id}/transcript"), &token)
        .await
        .json()
        .await
        .unwrap();
    let wer = word_error_rate(
        &reference("long_mix.txt"),
        transcript["transcript"].as_str().unwrap(),
    );
    assert!(wer < 0.25, "WER {wer}");
    assert!(
        server.log_text().contains("attempt=2"),
        "the second attempt did the work"
    );
}

#[tokio::test]
async fn the_openai_compatible_endpoint_answers_in_every_format() {
    let server = TestServer::start().await;
    let token = server.user_with_token("ada", "member");
    let models: Value = server.get("/v1/models", &token).await.json().await.unwrap();
    assert_eq!(models["data"][0]["id"], "whisper-1");
    let ask = |format: &'static str| {
        let bytes = std::fs::read(shared_audio("lecture_02.wav")).unwrap();
        let form = reqwest::multipart::Form::new()
            .part(
                "file",
                reqwest::multipart::Part::bytes(bytes).file_name("lecture_02.wav"),
            )
            .text("model", "whisper-1")
            .text("response_format", format);
        server
            .client
            .post(server.url("/v1/audio/transcriptions"))
            .bearer_auth(&token)
            .multipart(form)
            .send()
    };
    let json: Value = ask("json").await.unwrap().json().await.unwrap();
    let wer = word_error_rate(&reference("lecture_02.txt"), json["text"].as_str().unwrap());
    assert!(wer < 0.2, "{json}");
    let text = ask("text").await.unwrap().text().await.unwrap();
    assert_eq!(text, json["text"].as_str().unwrap());
    let verbose: Value = ask("verbose_json").await.unwrap().json().await.unwrap();
    assert_eq!(verbose["task"], "transcribe");
    assert!(!verbose["segments"].as_array().unwrap().is_empty());
    assert!(
        ask("srt")
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .contains(" --> ")
    );
    assert_eq!(ask("docx").await.unwrap().status(), StatusCode::BAD_REQUEST);
    let none_left = std::fs::read_dir(server.data_dir.path().join("blobs/recordings"))
        .unwrap()
        .count();
    assert_eq!(none_left, 0, "synchronous transcriptions keep no audio");
}

/// The words of one answer, as (word, start, end).
fn timed_words(words: &Value) -> Vec<(String, f64, f64)> {
    words
        .as_array()
        .expect("a words list")
        .iter()
        .map(|w| {
            (
                w["word"].as_str().expect("word").to_owned(),
                w["start"].as_f64().expect("start"),
                w["end"].as_f64().expect("end"),
            )
        })
        .collect()
}

fn assert_ordered(words: &[(String, f64, f64)], duration: f64) {
    let mut previous_end = 0.0;
    for (word, start, end) in words {
        assert!(
            *start >= previous_end && end >= start && *end <= duration + 0.01,
            "{word:?} {start}-{end} after {previous_end}"
        );
        previous_end = *end;
    }
}

#[tokio::test]
async fn word_timestamps_come_back_in_verbose_json_and_in_documents() {
    let server = TestServer::start().await;
    let token = server.user_with_token("ada", "member");
    let ask = |granularities: &'static [&'static str], format: &'static str| {
        let bytes = std::fs::read(shared_audio("news_01.wav")).unwrap();
        let mut form = reqwest::multipart::Form::new()
            .part(
                "file",
                reqwest::multipart::Part::bytes(bytes).file_name("news_01.wav"),
            )
            .text("model", "whisper-1")
            .text("response_format", format);
        for g in granularities {
            form = form.text("timestamp_granularities[]", *g);
        }
        server.post_form("/v1/audio/transcriptions", &token, form)
    };

    let both: Value = ask(&["word", "segment"], "verbose_json")
        .await
        .json()
        .await
        .unwrap();
    let words = timed_words(&both["words"]);
    assert!(words.len() >= 15, "{both}");
    assert_ordered(&words, both["duration"].as_f64().unwrap());
    let joined = words
        .iter()
        .map(|(w, _, _)| w.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(joined, both["text"].as_str().unwrap());
    assert!(
        words.iter().all(|(w, _, _)| w.trim() == w && !w.is_empty()),
        "OpenAI's words carry no spaces: {words:?}"
    );
    assert!(!both["segments"].as_array().unwrap().is_empty());

    let only_words: Value = ask(&["word"], "verbose_json").await.json().await.unwrap();
    assert!(only_words.get("segments").is_none(), "{only_words}");
    assert_eq!(timed_words(&only_words["words"]), words);
    let plain: Value = ask(&[], "verbose_json").await.json().await.unwrap();
    assert!(
        plain.get("words").is_none(),
        "words only when asked: {plain}"
    );
    assert_eq!(
        ask(&["word"], "json").await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        ask(&["syllable"], "verbose_json").await.status(),
        StatusCode::BAD_REQUEST
    );

    // Background jobs keep their words with the transcript; the documents API serves them
    // per segment, leading spaces kept so they join back into the segment's text.
    let batch = server.cli_token("ada", "batch", &["--scopes", "batch"]);
    let created: Value = server.submit_batch(&batch).await.json().await.unwrap();
    let document = format!("/api/v3/documents/{}", created["document_id"]);
    server
        .eventually(LIMIT, || async {
            let doc: Value = server.get(&document, &batch).await.json().await.unwrap();
            doc["status"] == "COMPLETED"
        })
        .await;
    let doc: Value = server.get(&document, &batch).await.json().await.unwrap();
    let segments = doc["segments"].as_array().unwrap();
    assert!(!segments.is_empty(), "{doc}");
    let mut all = Vec::new();
    for segment in segments {
        let words = timed_words(&segment["words"]);
        let joined: String = words.iter().map(|(w, _, _)| w.as_str()).collect();
        assert_eq!(joined.trim(), segment["text"].as_str().unwrap());
        let (start, end) = (
            segment["start"].as_f64().unwrap(),
            segment["end"].as_f64().unwrap(),
        );
        assert!(
            words.iter().all(|(_, s, e)| *s >= start && *e <= end),
            "{segment}"
        );
        all.extend(words);
    }
    assert_ordered(&all, doc["duration_seconds"].as_f64().unwrap());
    let probabilities = segments
        .iter()
        .flat_map(|s| s["words"].as_array().unwrap())
        .map(|w| w["probability"].as_f64().unwrap());
    assert!(probabilities.into_iter().all(|p| (0.0..=1.0).contains(&p)));
}

#[tokio::test]
async fn an_api_only_node_queues_and_a_worker_process_transcribes() {
    let server = TestServer::start_with(&["--workers", "0"]).await;
    let token = server.user_with_token("ada", "member");
    let res = server
        .upload(&token, &shared_audio("support_02.wav"), None)
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let id = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let waiting: Value = server
        .get(&format!("/api/recordings/{id}"), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(waiting["status"], "PENDING", "no worker on the API node");

    let worker = server.start_node("worker", &[]);
    let probe = |path: &str| {
        let url = format!("{}{path}", worker.base);
        let client = server.client.clone();
        async move { client.get(url).send().await.unwrap().status() }
    };
    assert_eq!(probe("/healthz").await, StatusCode::OK);
    assert_eq!(probe("/readyz").await, StatusCode::OK);
    assert_eq!(probe("/metrics").await, StatusCode::OK);
    assert_eq!(probe("/api/recordings").await, StatusCode::NOT_FOUND);
    let done = wait_for_recording(&server, &token, id, Duration::from_secs(120)).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
}

#[tokio::test]
async fn without_a_model_jobs_wait_visibly_and_run_once_one_is_installed() {
    let models = tempfile::tempdir().unwrap();
    let dir = models.path().join("whisper");
    let server = TestServer::start_with(&[
        "--model-dir",
        dir.to_str().unwrap(),
        "--job-attempts",
        "1",
        "--model-retry-secs",
        "0.3",
    ])
    .await;
    let token = server.user_with_token("ada", "member");
    let res = server
        .upload(&token, &shared_audio("meeting_03.wav"), None)
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let id = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    // Claimed and handed back several times over: none may use up its one attempt.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let waiting: Value = server
        .get(&format!("/api/recordings/{id}"), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(waiting["status"], "PENDING", "{waiting}");
    assert!(
        waiting["error"].as_str().unwrap().contains("speech engine"),
        "{waiting}"
    );
    let ready: Value = server.get_anonymous("/readyz").await.json().await.unwrap();
    assert_eq!(ready["status"], "degraded", "{ready}");
    assert!(
        ready["reason"]
            .as_str()
            .unwrap()
            .contains("transcriptions wait")
    );

    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(model_dir()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    let done = wait_for_recording(&server, &token, id, LIMIT).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let ready: Value = server.get_anonymous("/readyz").await.json().await.unwrap();
    assert_eq!(ready["status"], "ready");
}
