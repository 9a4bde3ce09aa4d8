//! The Speakr-compatible recordings and tags API with real audio files.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn upload_is_durable_and_starts_pending() {
    let server = TestServer::start().await;
    let token = server.user_with_token("ada", "member");
    let clip = shared_audio("meeting_01.wav");
    let res = server.upload(&token, &clip, Some("Weekly planning")).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let rec: Value = res.json().await.unwrap();
    assert_eq!(location, format!("/api/recordings/{}", rec["id"]));
    assert_eq!(rec["status"], "PENDING");
    assert_eq!(rec["title"], "Weekly planning");
    assert_eq!(rec["original_filename"], "meeting_01.wav");
    let size = std::fs::metadata(&clip).unwrap().len();
    assert_eq!(rec["size_bytes"], size);

    let stored: Vec<_> = std::fs::read_dir(server.data_dir.path().join("blobs/recordings"))
        .unwrap()
        .collect();
    assert_eq!(stored.len(), 1);
    let stored = stored[0].as_ref().unwrap().path();
    assert_eq!(
        std::fs::read(stored).unwrap(),
        std::fs::read(&clip).unwrap(),
        "bytes kept exactly"
    );

    let got: Value = server.get(&location, &token).await.json().await.unwrap();
    for field in [
        "id",
        "title",
        "original_filename",
        "size_bytes",
        "created_at",
        "project_id",
    ] {
        assert_eq!(got[field], rec[field], "{field}");
    }
    // The engine may already be at work; until it is done there is no transcript or summary.
    let transcript: Value = server
        .get(&format!("{location}/transcript"), &token)
        .await
        .json()
        .await
        .unwrap();
    if transcript["status"] != "COMPLETED" {
        assert_eq!(transcript["transcript"], Value::Null);
        assert_eq!(transcript["segments"], json!([]));
    }
    let summary: Value = server
        .get(&format!("{location}/summary"), &token)
        .await
        .json()
        .await
        .unwrap();
    if summary["status"] != "COMPLETED" {
        assert_eq!(summary["summary"], Value::Null);
    }

    assert_eq!(
        server.delete(&location, &token).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        server.get(&location, &token).await.status(),
        StatusCode::NOT_FOUND
    );
    let left = std::fs::read_dir(server.data_dir.path().join("blobs/recordings"))
        .unwrap()
        .count();
    assert_eq!(left, 0, "the audio goes with the recording");
}

#[tokio::test]
async fn bad_uploads_are_refused_and_leave_nothing_behind() {
    let server = TestServer::start_with(&["--max-upload-mb", "1"]).await;
    let token = server.user_with_token("ada", "member");
    let url = server.url("/api/recordings");

    let no_file = reqwest::multipart::Form::new().text("title", "nothing");
    let res = server
        .client
        .post(&url)
        .bearer_auth(&token)
        .multipart(no_file)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(res).await,
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );

    let empty = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(Vec::new()).file_name("a.wav"),
    );
    let res = server
        .client
        .post(&url)
        .bearer_auth(&token)
        .multipart(empty)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    let res = server
        .upload(&token, &shared_audio("long_mix.wav"), None)
        .await;
    assert_eq!(
        error_code(res).await,
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large".into())
    );

    let not_multipart = server
        .client
        .post(&url)
        .bearer_auth(&token)
        .body("raw")
        .send()
        .await
        .unwrap();
    assert!(not_multipart.status().is_client_error());
    assert!(not_multipart.json::<Value>().await.unwrap()["error"]["code"].is_string());

    let mut wav = std::fs::read(shared_audio("meeting_01.wav")).unwrap();
    wav.truncate(4096);
    let blank_title = reqwest::multipart::Form::new().text("title", "   ").part(
        "file",
        reqwest::multipart::Part::bytes(wav).file_name("a.wav"),
    );
    let res = server
        .client
        .post(&url)
        .bearer_auth(&token)
        .multipart(blank_title)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    let blobs = server.data_dir.path().join("blobs");
    assert_eq!(
        std::fs::read_dir(blobs.join("recordings")).unwrap().count(),
        0
    );
    assert_eq!(std::fs::read_dir(blobs.join("tmp")).unwrap().count(), 0);
    let page: Value = server
        .get("/api/recordings", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["pagination"]["total"], 0);
}

#[tokio::test]
async fn pagination_edges() {
    let server = TestServer::start().await;
    let token = server.user_with_token("ada", "member");
    for name in ["meeting_01.wav", "meeting_02.wav", "meeting_03.wav"] {
        assert_eq!(
            server
                .upload(&token, &shared_audio(name), None)
                .await
                .status(),
            StatusCode::CREATED
        );
    }
    let page = |q: &'static str| {
        let server = &server;
        let token = &token;
        async move { server.get(&format!("/api/recordings{q}"), token).await }
    };
    let first: Value = page("?page=1&per_page=2").await.json().await.unwrap();
    assert_eq!(
        first["pagination"],
        json!({"page": 1, "per_page": 2, "total": 3, "total_pages": 2, "has_next": true, "has_prev": false})
    );
    assert_eq!(
        first["recordings"][0]["original_filename"], "meeting_03.wav",
        "newest first"
    );
    let second: Value = page("?page=2&per_page=2").await.json().await.unwrap();
    assert_eq!(second["recordings"].as_array().unwrap().len(), 1);
    assert_eq!(
        (
            second["pagination"]["has_next"].clone(),
            second["pagination"]["has_prev"].clone()
        ),
        (json!(false), json!(true))
    );
    let beyond: Value = page("?page=9").await.json().await.unwrap();
    assert_eq!(beyond["recordings"], json!([]));
    let default: Value = page("").await.json().await.unwrap();
    assert_eq!(default["pagination"]["per_page"], 25);
    let max: Value = page("?per_page=100").await.json().await.unwrap();
    assert_eq!(max["pagination"]["per_page"], 100);

    for (q, field) in [
        ("?per_page=0", "per_page"),
        ("?per_page=101", "per_page"),
        ("?per_page=abc", "per_page"),
        ("?page=0", "page"),
        ("?page=-1", "page"),
        ("?page=1.5", "page"),
    ] {
        let res = page(q).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{q}");
        let body: Value = res.json().await.unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with(field),
            "{q}: {body}"
        );
    }
}

#[tokio::test]
async fn tags_attach_and_detach() {
    let server = TestServer::start().await;
    let token = server.user_with_token("ada", "member");
    let rec: Value = server
        .upload(&token, &shared_audio("support_01.wav"), None)
        .await
        .json()
        .await
        .unwrap();
    let res = server
        .post_json(
            "/api/tags",
            &token,
            json!({"name": "support", "color": "#AA0000"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let tag: Value = res.json().await.unwrap();
    assert_eq!(tag["color"], "#aa0000");
    let dup = server
        .post_json("/api/tags", &token, json!({"name": "support"}))
        .await;
    assert_eq!(
        error_code(dup).await,
        (StatusCode::CONFLICT, "conflict".into())
    );
    let bad = server
        .post_json("/api/tags", &token, json!({"name": "x", "color": "red"}))
        .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    let path = format!("/api/recordings/{}/tags", rec["id"]);
    let tagged: Value = server
        .post_json(&path, &token, json!({"tag_id": tag["id"]}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(tagged["tags"], json!([tag.clone()]));
    let listed: Value = server
        .get("/api/recordings", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["recordings"][0]["tags"], json!([tag.clone()]));
    let tags: Value = server.get("/api/tags", &token).await.json().await.unwrap();
    assert_eq!(tags, json!({"tags": [tag.clone()]}));

    let missing = server
        .post_json(&path, &token, json!({"tag_id": 999}))
        .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let untagged: Value = server
        .delete(&format!("{path}/{}", tag["id"]), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(untagged["tags"], json!([]));
    assert_eq!(
        server
            .delete(&format!("/api/tags/{}", tag["id"]), &token)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        server
            .delete(&format!("/api/tags/{}", tag["id"]), &token)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn every_audio_format_in_the_corpus_uploads() {
    let server = TestServer::start().await;
    let token = server.user_with_token("ada", "member");
    for name in [
        "meeting_01.flac",
        "meeting_01.ogg",
        "meeting_01_stereo44k.mp3",
        "news_01.wav",
    ] {
        let res = server.upload(&token, &shared_audio(name), None).await;
        assert_eq!(res.status(), StatusCode::CREATED, "{name}");
    }
    let page: Value = server
        .get("/api/recordings", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["pagination"]["total"], 4);
}
