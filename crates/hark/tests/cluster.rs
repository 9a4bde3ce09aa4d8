//! Several hark processes on one PostgreSQL database and one S3-compatible bucket (s3s-fs,
//! which checks request signatures): API nodes that share nothing else, workers that claim
//! jobs with `SKIP LOCKED`, revocations that reach every node within a second, and the
//! failures a cluster meets (a worker killed mid-job, the database or the bucket going away).

mod common;

use std::time::{Duration, Instant};

use common::proxy::Outage;
use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A job's lease in these tests: short, so a killed worker's job is taken over quickly.
const LEASE_SECS: &str = "2";

async fn cluster_storage(s3: &S3Server) -> TestStorage {
    TestStorage::postgres().await.with_s3(s3, "hark")
}

/// The number in `name=N` on a log line.
fn field(line: &str, name: &str) -> Option<i64> {
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(name)?.strip_prefix('='))
        .and_then(|n| n.parse().ok())
}

/// The server's log once `ready` holds (within 10 s), and a moment later, so a line that
/// should not be there has had its chance to appear.
async fn logged(server: &TestServer, ready: impl Fn(&str) -> bool) -> String {
    let started = Instant::now();
    while !ready(&server.log_text()) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.log_text()
}

fn completions(log: &str, job: i64) -> usize {
    log.lines()
        .filter(|l| l.contains("transcription completed") && field(l, "job") == Some(job))
        .count()
}

#[tokio::test]
async fn nodes_share_tokens_recordings_and_revocations_through_postgres_and_s3() {
    let s3 = S3Server::start();
    let a = TestServer::start_on(cluster_storage(&s3).await, &["--workers", "0"]).await;
    let b = a.start_separate_node("serve", &["--workers", "0"]);
    let _worker = a.start_separate_node("worker", &["--workers", "1"]);
    let token = a.user_with_token("ada", "member");
    let on_b = |path: &str| {
        let (client, url, token) = (a.client.clone(), b.url(path), token.clone());
        async move { client.get(url).bearer_auth(token).send().await.unwrap() }
    };
    assert_eq!(on_b("/api/recordings").await.status(), StatusCode::OK);

    // An upload on A, transcribed by the worker, read on B — audio and all.
    let clip = shared_audio("support_02.wav");
    let res = a.upload(&token, &clip, Some("standup")).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let id = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    assert!(
        !s3.objects("hark").is_empty(),
        "the audio is in the bucket before the 201"
    );
    let started = Instant::now();
    let done = loop {
        let rec: Value = on_b(&format!("/api/recordings/{id}"))
            .await
            .json()
            .await
            .unwrap();
        if rec["status"] == "COMPLETED" {
            break rec;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "{rec}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(done["title"], "standup");
    let expected = std::fs::read_to_string(clip.with_extension("txt")).unwrap();
    let transcript: Value = on_b(&format!("/api/recordings/{id}/transcript"))
        .await
        .json()
        .await
        .unwrap();
    let heard = transcript["transcript"].as_str().unwrap();
    assert!(word_error_rate(&expected, heard) < 0.35, "{heard}");
    let original = std::fs::read(&clip).unwrap();
    let ranged = a
        .client
        .get(b.url(&format!("/api/recordings/{id}/audio")))
        .bearer_auth(&token)
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        ranged.headers()["content-range"],
        format!("bytes 100-199/{}", original.len()).as_str()
    );
    assert_eq!(ranged.bytes().await.unwrap(), &original[100..200]);
    // Audio from the bucket is guarded like any other: someone else's token finds nothing.
    let other = a.user_with_token("grace", "member");
    let theirs = a
        .client
        .get(b.url(&format!("/api/recordings/{id}/audio")))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(theirs.status(), StatusCode::NOT_FOUND);

    // A token made on A works on B at once, and stops there within a second of its
    // revocation on A.
    let probe = a.api_token(&token, json!({"name": "probe"})).await;
    let probe_secret = probe["token"].as_str().unwrap().to_owned();
    let check_on_b = || {
        let (client, url, secret) = (
            a.client.clone(),
            b.url("/api/tokens/self"),
            probe_secret.clone(),
        );
        async move {
            client
                .get(url)
                .bearer_auth(secret)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(check_on_b().await, StatusCode::OK, "B caches it now");
    let res = a
        .delete(&format!("/api/tokens/{}", probe["id"]), &token)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let revoked = Instant::now();
    while check_on_b().await != StatusCode::UNAUTHORIZED {
        assert!(
            revoked.elapsed() < Duration::from_secs(5),
            "still accepted on B"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = revoked.elapsed();
    assert!(
        took < Duration::from_millis(1000),
        "B refused it after {took:?}"
    );

    // Deleting the recording on B removes its audio from the bucket.
    let res = a
        .client
        .delete(b.url(&format!("/api/recordings/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    assert!(s3.objects("hark").is_empty(), "{:?}", s3.objects("hark"));
}

#[tokio::test]
async fn a_job_whose_worker_was_killed_is_completed_once_by_another() {
    let s3 = S3Server::start();
    let api = TestServer::start_on(cluster_storage(&s3).await, &["--workers", "0"]).await;
    let token = api.user_with_token("ada", "member");
    let lease = ["--workers", "1", "--job-lease-secs", LEASE_SECS];
    let mut first = api.start_separate_node("worker", &lease);
    let res = api
        .upload(&token, &shared_audio("lecture_01.wav"), None)
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let id = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let started = Instant::now();
    loop {
        let rec: Value = api
            .get(&format!("/api/recordings/{id}"), &token)
            .await
            .json()
            .await
            .unwrap();
        if rec["status"] == "PROCESSING" {
            break;
        }
        assert_ne!(
            rec["status"], "COMPLETED",
            "the clip finished before the kill"
        );
        assert!(started.elapsed() < Duration::from_secs(30), "{rec}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill();
    let _second = api.start_separate_node("worker", &lease);
    let done = wait_for_recording(&api, &token, id, Duration::from_secs(120)).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let jobs: Value = api
        .get("/api/v3/sessions", &token)
        .await
        .json()
        .await
        .unwrap();
    // The worker logs its completion just after committing it: wait for the line.
    let log = logged(&api, |log| {
        log.matches("transcription completed").count() >= 1
    })
    .await;
    let starts: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("transcription started") && field(l, "recording") == Some(id))
        .collect();
    let job = starts
        .first()
        .and_then(|l| field(l, "job"))
        .unwrap_or_else(|| panic!("no start logged for recording {id}: {jobs}"));
    assert_eq!(completions(&log, job), 1, "{log}");
    let attempts: Vec<i64> = starts.iter().filter_map(|l| field(l, "attempt")).collect();
    assert_eq!(
        attempts,
        [1, 2],
        "the second worker took it over as attempt 2"
    );
}

#[tokio::test]
async fn two_workers_racing_over_twenty_jobs_complete_each_once() {
    let s3 = S3Server::start();
    let api = TestServer::start_on(cluster_storage(&s3).await, &["--workers", "0"]).await;
    let token = api.user_with_token("ada", "member");
    let clip = short_clip(api.data_dir.path());
    let mut ids = Vec::new();
    for _ in 0..20 {
        let res = api.upload(&token, &clip, None).await;
        assert_eq!(res.status(), StatusCode::CREATED);
        ids.push(res.json::<Value>().await.unwrap()["id"].as_i64().unwrap());
    }
    let _w1 = api.start_separate_node("worker", &["--workers", "1"]);
    let _w2 = api.start_separate_node("worker", &["--workers", "1"]);
    for id in &ids {
        let done = wait_for_recording(&api, &token, *id, Duration::from_secs(300)).await;
        assert_eq!(done["status"], "COMPLETED", "{done}");
    }
    let log = logged(&api, |log| {
        log.matches("transcription completed").count() >= 20
    })
    .await;
    let completed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("transcription completed"))
        .collect();
    assert_eq!(completed.len(), 20, "{log}");
    let retried = log
        .lines()
        .filter(|l| l.contains("transcription started") && field(l, "attempt") != Some(1))
        .count();
    for id in &ids {
        let mine = completed
            .iter()
            .filter(|l| field(l, "recording") == Some(*id))
            .count();
        assert_eq!(mine, 1, "recording {id}");
    }
    assert_eq!(retried, 0, "no job was claimed twice by live workers");
}

// The forwarder runs on the test's runtime while the helpers block on processes: it needs
// threads of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nodes_ride_out_a_database_outage_without_losing_an_upload() {
    let database = TestStorage::postgres().await;
    let upstream: std::net::SocketAddr = "127.0.0.1:5432".parse().unwrap();
    let outage = Outage::forward_to(upstream).await;
    let mut storage = TestStorage::default();
    storage.env.push((
        "HARK_DATABASE_URL".into(),
        outage.route(database.database_url().unwrap()),
    ));
    let server = TestServer::start_on(storage, &["--workers", "0"]).await;
    let token = server.user_with_token("ada", "member");
    let res = server
        .upload(&token, &shared_audio("support_02.wav"), None)
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let id = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();

    outage.cut();
    let during = server.get("/api/recordings", &token).await.status();
    assert!(
        during == StatusCode::SERVICE_UNAVAILABLE || during == StatusCode::OK,
        "a cached token still reads, or storage is unavailable; never a 500: {during}"
    );
    let res = server
        .upload(&token, &shared_audio("news_01.wav"), None)
        .await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
    // Fail closed: once the change log has gone unread past its bound (3 s), a cached
    // token is no longer trusted — a revocation could be going unseen.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let cached = server.get("/api/tokens/self", &token).await.status();
    assert_eq!(cached, StatusCode::SERVICE_UNAVAILABLE);
    outage.restore().await;

    let started = Instant::now();
    while server.get("/api/recordings", &token).await.status() != StatusCode::OK {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "did not recover"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let listed: Value = server
        .get("/api/recordings", &token)
        .await
        .json()
        .await
        .unwrap();
    let found: Vec<i64> = listed["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        found,
        vec![id],
        "the acknowledged upload is there, the refused one is not"
    );
    let _worker = server.start_node("worker", &["--workers", "1"]);
    let done = wait_for_recording(&server, &token, id, Duration::from_secs(120)).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
}

#[tokio::test]
async fn uploads_get_503_while_the_bucket_is_down_and_leave_nothing_behind() {
    let mut s3 = S3Server::start();
    let server = TestServer::start_on(cluster_storage(&s3).await, &["--workers", "0"]).await;
    let token = server.user_with_token("ada", "member");
    let res = server
        .upload(&token, &shared_audio("news_01.wav"), None)
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let before = s3.objects("hark");
    assert_eq!(before.len(), 1);

    s3.stop();
    let res = server
        .upload(&token, &shared_audio("support_02.wav"), None)
        .await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
    let listed: Value = server
        .get("/api/recordings", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["recordings"].as_array().unwrap().len(),
        1,
        "{listed}"
    );

    s3.resume();
    assert_eq!(
        s3.objects("hark"),
        before,
        "no part of the refused upload remains"
    );
    let res = server
        .upload(&token, &shared_audio("support_02.wav"), None)
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_data_dir_migrates_to_postgres_and_s3_and_everything_still_works() {
    let mut single = TestServer::start_on(TestStorage::default(), &[]).await;
    let token = single.user_with_token("ada", "member");
    single.create_user("grace", "admin");
    let second = single.cli_token("grace", "ops", &[]);
    let clip = shared_audio("support_02.wav");
    let res = single.upload(&token, &clip, Some("before the move")).await;
    let id = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let before = wait_for_recording(&single, &token, id, Duration::from_secs(120)).await;
    assert_eq!(before["status"], "COMPLETED");
    let before_transcript: Value = single
        .get(&format!("/api/recordings/{id}/transcript"), &token)
        .await
        .json()
        .await
        .unwrap();
    single.terminate();

    let s3 = S3Server::start();
    let target = cluster_storage(&s3).await;
    let url = target.database_url().unwrap().to_owned();
    let migrate = |storage: &TestStorage, blobs: &[&str]| {
        let mut command = std::process::Command::new(hark_bin());
        storage.apply(&mut command);
        command
            .arg("--data-dir")
            .arg(single.data_dir.path())
            .args(["admin", "migrate", "--to-database-url", &url])
            .args(blobs)
            .env_remove("HARK_DATABASE_URL")
            .env_remove("HARK_BLOB_URL")
            .output()
            .unwrap()
    };
    let to_bucket = ["--to-blob-url", "s3://hark/audio"];
    let out = migrate(&target, &to_bucket);
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        printed.contains("recordings") && printed.contains("audio"),
        "{printed}"
    );
    for blobs in [&to_bucket[..], &[]] {
        let again = migrate(&target, blobs);
        let said = String::from_utf8_lossy(&again.stderr);
        assert!(
            !again.status.success(),
            "a second migration into the target is refused"
        );
        assert!(said.contains("not empty"), "{said}");
    }

    let cluster = TestServer::start_on(target, &["--workers", "0"]).await;
    for secret in [&token, &second] {
        assert_eq!(
            cluster.get("/api/tokens/self", secret).await.status(),
            StatusCode::OK
        );
    }
    let after: Value = cluster
        .get(&format!("/api/recordings/{id}"), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(after["title"], "before the move");
    assert_eq!(after["status"], "COMPLETED");
    let transcript = |server: &TestServer| {
        let (client, url, token) = (
            server.client.clone(),
            server.url(&format!("/api/recordings/{id}/transcript")),
            token.clone(),
        );
        async move {
            let res = client.get(url).bearer_auth(token).send().await.unwrap();
            res.json::<Value>().await.unwrap()
        }
    };
    let moved = transcript(&cluster).await;
    assert!(
        moved["transcript"].as_str().is_some_and(|t| !t.is_empty()),
        "{moved}"
    );
    assert_eq!(moved["segments"], before_transcript["segments"]);
    let audio = cluster
        .get(&format!("/api/recordings/{id}/audio"), &token)
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(audio, std::fs::read(&clip).unwrap());
    // New rows get ids after the copied ones.
    let res = cluster.upload(&token, &clip, None).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let new_id = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    assert!(new_id > id);
}

/// The first 1.5 s of a clip, as a WAV file: many jobs, little decoding.
fn short_clip(dir: &std::path::Path) -> std::path::PathBuf {
    let source = std::fs::read(shared_audio("support_02.wav")).unwrap();
    // A canonical 44-byte header: 16 kHz mono 16-bit, as the shared clips are.
    let rate = u32::from_le_bytes(source[24..28].try_into().unwrap());
    let channels = u16::from_le_bytes(source[22..24].try_into().unwrap());
    let bytes_per_second = rate as usize * channels as usize * 2;
    let data = &source[44..44 + bytes_per_second * 3 / 2];
    let mut wav = source[..44].to_vec();
    wav[4..8].copy_from_slice(&(36 + data.len() as u32).to_le_bytes());
    wav[40..44].copy_from_slice(&(data.len() as u32).to_le_bytes());
    wav.extend_from_slice(data);
    let path = dir.join("short.wav");
    std::fs::write(&path, wav).unwrap();
    path
}
