//! The one way integration tests start hark: the real binary on a random loopback port
//! with a temp data dir, its stderr captured so every test can check that no token it
//! saw was ever logged.

#![allow(dead_code)]

pub mod peer;
pub mod proxy;
pub mod storage;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
#[allow(unused_imports)]
pub use storage::{S3Server, TestStorage};

pub const PASSWORD: &str = "correct horse battery";

pub fn hark_bin() -> &'static str {
    env!("CARGO_BIN_EXE_hark")
}

/// The test venv's Python, where scripts/test.sh installs the official client libraries.
pub fn test_python() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-venv/bin/python");
    assert!(
        path.exists(),
        "{} is missing: scripts/test.sh creates it",
        path.display()
    );
    path
}

/// Runs the test venv's Python with `args` off the async threads; fails the test unless it
/// exits 0, and returns what it printed.
pub async fn run_test_python(args: Vec<String>) -> String {
    let output = tokio::task::spawn_blocking(move || {
        Command::new(test_python()).args(args).output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The clips and transcripts in ../shared/audio.
pub fn shared_audio(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/audio")
        .join(name)
}

pub struct TestServer {
    pub base: String,
    pub data_dir: tempfile::TempDir,
    pub client: Client,
    /// The database (and bucket) every process of this server uses.
    pub storage: TestStorage,
    child: Option<Child>,
    log: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
    secrets: Mutex<Vec<String>>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts `hark serve` with extra flags; last-used times flush every 200 ms unless a
    /// flag says otherwise. The engine decodes greedily (beam 1) to keep tests quick.
    pub async fn start_with(extra: &[&str]) -> Self {
        Self::start_on(TestStorage::from_environment().await, extra).await
    }

    /// Starts `hark serve` on the given storage (a cluster's PostgreSQL and bucket).
    pub async fn start_on(storage: TestStorage, extra: &[&str]) -> Self {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let log = Arc::new(Mutex::new(String::new()));
        let (child, reader, base) =
            spawn_node("serve", data_dir.path(), &storage, extra, log.clone());
        TestServer {
            base,
            data_dir,
            storage,
            client: Client::builder()
                .timeout(Duration::from_secs(120))
                // A server that answers early (a 413) closes the connection: never reuse one.
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
            child: Some(child),
            log,
            reader: Some(reader),
            secrets: Mutex::new(Vec::new()),
        }
    }

    /// Kills the server without warning (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }

    /// Starts a new server process on the same data dir (after `kill` or `terminate`).
    pub fn restart(&mut self, extra: &[&str]) {
        assert!(self.child.is_none(), "stop the server first");
        let (child, reader, base) = spawn_node(
            "serve",
            self.data_dir.path(),
            &self.storage,
            extra,
            self.log.clone(),
        );
        self.child = Some(child);
        self.reader = Some(reader);
        self.base = base;
    }

    /// The server's peak resident memory so far (VmHWM), in MiB.
    pub fn peak_memory_mib(&self) -> u64 {
        let pid = self.child.as_ref().expect("server running").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmHWM")
            / 1024
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Fails if `secret` appears anywhere in what the database holds (every table): the
    /// SQLite file and its WAL, or PostgreSQL's data as pg_dump writes it.
    pub fn assert_not_stored(&self, secret: &str) {
        let stored = match self.storage.database_url() {
            Some(url) => {
                let dump = std::process::Command::new("pg_dump")
                    .args(["--data-only", url])
                    .output()
                    .unwrap();
                assert!(
                    dump.status.success(),
                    "{}",
                    String::from_utf8_lossy(&dump.stderr)
                );
                vec![dump.stdout]
            }
            None => vec![
                std::fs::read(self.data_dir.path().join("hark.db")).unwrap(),
                std::fs::read(self.data_dir.path().join("hark.db-wal")).unwrap_or_default(),
            ],
        };
        assert!(stored.iter().any(|bytes| !bytes.is_empty()));
        for bytes in stored {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "plaintext in the database"
            );
        }
    }

    /// The row of token `id` in `GET /api/tokens` as `token` lists it.
    pub async fn listed_token(&self, token: &str, id: &Value) -> Value {
        let listed: Value = self.get("/api/tokens", token).await.json().await.unwrap();
        listed["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == *id)
            .unwrap_or_else(|| panic!("token {id} is listed: {listed}"))
            .clone()
    }

    /// Registers a webhook for `events` with `token`'s owner; remembers its secret.
    pub async fn webhook(&self, token: &str, url: &str, events: &[&str]) -> Value {
        let res = self
            .post_json(
                "/api/webhooks",
                token,
                json!({"url": url, "events": events}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let hook: Value = res.json().await.unwrap();
        self.saw_secret(hook["secret"].as_str().unwrap());
        hook
    }

    /// One page (up to 100) of the audit log as `admin` reads it, narrowed by `query`.
    pub async fn audit_events(&self, admin: &str, query: &str) -> Vec<Value> {
        let page: Value = self
            .get(&format!("/api/audit?per_page=100&{query}"), admin)
            .await
            .json()
            .await
            .unwrap();
        page["events"].as_array().unwrap().clone()
    }

    /// Remembers a secret so the log check at drop looks for it.
    pub fn saw_secret(&self, secret: &str) {
        self.secrets.lock().unwrap().push(secret.to_owned());
    }

    /// Runs `hark admin …` against this server's data dir.
    pub fn admin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut command = Command::new(hark_bin());
        self.storage.apply(&mut command);
        let mut child = command
            .arg("--data-dir")
            .arg(self.data_dir.path())
            .arg("admin")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn hark admin");
        {
            use std::io::Write;
            let mut input = child.stdin.take().unwrap();
            if let Some(text) = stdin {
                input.write_all(text.as_bytes()).unwrap();
            }
        }
        child.wait_with_output().expect("hark admin output")
    }

    pub fn admin_ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.admin(args, stdin);
        assert!(
            out.status.success(),
            "hark admin {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn create_user(&self, username: &str, role: &str) {
        self.admin_ok(
            &[
                "create-user",
                "--username",
                username,
                "--role",
                role,
                "--password-stdin",
            ],
            Some(&format!("{PASSWORD}\n")),
        );
    }

    /// A token made with the admin CLI (prints only the token on stdout).
    pub fn cli_token(&self, username: &str, name: &str, extra: &[&str]) -> String {
        let mut args = vec!["create-token", "--username", username, "--name", name];
        args.extend_from_slice(extra);
        let token = self.admin_ok(&args, None).trim().to_owned();
        self.saw_secret(&token);
        token
    }

    /// A user with a full-scope token: the usual start of a test.
    pub fn user_with_token(&self, username: &str, role: &str) -> String {
        self.create_user(username, role);
        self.cli_token(username, "test", &[])
    }

    pub async fn login(&self, username: &str) -> String {
        let res = self
            .client
            .post(self.url("/api/auth/login"))
            .json(&json!({"username": username, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let cookie = res
            .headers()
            .get("set-cookie")
            .expect("session cookie")
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
            "{cookie}"
        );
        let pair = cookie.split(';').next().unwrap().to_owned();
        self.saw_secret(pair.split_once('=').unwrap().1);
        pair
    }

    /// `GET path` with no credential at all (URL tokens, public routes).
    pub async fn get_anonymous(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_json(&self, path: &str, token: &str, body: Value) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn delete(&self, path: &str, token: &str) -> Response {
        self.client
            .delete(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// Creates a token over HTTP and remembers its secret.
    pub async fn api_token(&self, token: &str, body: Value) -> Value {
        let res = self.post_json("/api/tokens", token, body).await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let created: Value = res.json().await.unwrap();
        self.saw_secret(created["token"].as_str().unwrap());
        created
    }

    /// `POST path` with a JSON body as a signed-in browser (the `cookie` from [`login`]).
    pub async fn post_json_as_session(&self, path: &str, cookie: &str, body: Value) -> Response {
        self.client
            .post(self.url(path))
            .header("cookie", cookie)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// A management token made by the admin `username` signed in to the web UI — the only
    /// way to mint the first one (personal tokens cannot).
    pub async fn management_token(&self, username: &str) -> String {
        let cookie = self.login(username).await;
        let res = self
            .post_json_as_session(
                "/api/tokens",
                &cookie,
                json!({"name": "ops", "kind": "management"}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let created: Value = res.json().await.unwrap();
        let token = created["token"].as_str().expect("token").to_owned();
        self.saw_secret(&token);
        token
    }

    /// `POST path` with a multipart form, as `token`.
    pub async fn post_form(
        &self,
        path: &str,
        token: &str,
        form: reqwest::multipart::Form,
    ) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .unwrap()
    }

    /// Submits support_02.wav to the Scriptix-style batch API (`/api/v3/speech-to-text`).
    pub async fn submit_batch(&self, token: &str) -> Response {
        let bytes = std::fs::read(shared_audio("support_02.wav")).expect("clip");
        let form = reqwest::multipart::Form::new()
            .part(
                "file",
                reqwest::multipart::Part::bytes(bytes).file_name("support_02.wav"),
            )
            .text("language", "en");
        self.post_form("/api/v3/speech-to-text", token, form).await
    }

    pub async fn upload(&self, token: &str, file: &Path, title: Option<&str>) -> Response {
        let bytes = std::fs::read(file).expect("audio file");
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let mut form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(bytes)
                .file_name(name)
                .mime_str("audio/wav")
                .unwrap(),
        );
        if let Some(t) = title {
            form = form.text("title", t.to_owned());
        }
        self.post_form("/api/recordings", token, form).await
    }

    /// Retries `check` until it holds or `limit` passes; returns how long it took.
    pub async fn eventually<F, Fut>(&self, limit: Duration, mut check: F) -> Duration
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let started = Instant::now();
        loop {
            if check().await {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < limit,
                "condition not met within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Sends SIGTERM and waits for a clean exit (the graceful path).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("server running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let status = child.wait().expect("wait for server");
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        status
    }
}

/// The bundled model, fetched by scripts/fetch-model.sh (the test command runs it).
pub fn model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/whisper-tiny.en")
}

/// Starts `hark serve` or `hark worker`; returns once it says where it listens.
fn spawn_node(
    command: &str,
    data_dir: &Path,
    storage: &TestStorage,
    extra: &[&str],
    log: Arc<Mutex<String>>,
) -> (Child, JoinHandle<()>, String) {
    let mut process = Command::new(hark_bin());
    storage.apply(&mut process);
    process.args([command, "--listen", "127.0.0.1:0", "--beam-size", "1"]);
    // The bundled model, unless the test names a model folder of its own.
    if !extra.contains(&"--model-dir") {
        process.arg("--model-dir").arg(model_dir());
    }
    let mut child = process
        .env("HARK_LAST_USED_FLUSH_SECS", "0.2")
        .env("RAYON_NUM_THREADS", "2")
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        .env("HARK_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hark");
    let stderr = child.stderr.take().expect("stderr");
    let (addr_tx, addr_rx) = mpsc::channel();
    let sink = log.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let _ = addr_tx.send(
                    rest.split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                );
            }
            let mut log = sink.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("server did not start; log:\n{}", log.lock().unwrap()));
    (child, reader, format!("http://{addr}"))
}

/// Another hark process beside a test server (`hark worker`, or a second `hark serve`),
/// killed when dropped. Its log goes into the server's, so the secret checks cover it too.
pub struct TestNode {
    /// Where it listens (a worker: `/healthz`, `/readyz`, `/metrics` only).
    pub base: String,
    child: Child,
    /// A node of its own has its own (otherwise unused) data dir.
    _data_dir: Option<tempfile::TempDir>,
}

impl TestServer {
    /// Starts `hark COMMAND` (`worker` or `serve`) on this server's data dir and storage.
    pub fn start_node(&self, command: &str, extra: &[&str]) -> TestNode {
        let (child, _reader, base) = spawn_node(
            command,
            self.data_dir.path(),
            &self.storage,
            extra,
            self.log.clone(),
        );
        TestNode {
            base,
            child,
            _data_dir: None,
        }
    }

    /// Starts `hark COMMAND` with a data dir of its own, sharing only this server's
    /// database and bucket: a node on another machine of a cluster.
    pub fn start_separate_node(&self, command: &str, extra: &[&str]) -> TestNode {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let (child, _reader, base) = spawn_node(
            command,
            data_dir.path(),
            &self.storage,
            extra,
            self.log.clone(),
        );
        TestNode {
            base,
            child,
            _data_dir: Some(data_dir),
        }
    }
}

impl TestNode {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Kills the process without warning (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.terminate();
        }
        if std::thread::panicking() {
            return;
        }
        let log = self.log_text();
        for secret in self.secrets.lock().unwrap().iter() {
            assert!(
                !log.contains(secret.as_str()),
                "a secret appeared in the server log"
            );
        }
    }
}

/// The uniform 401 body.
pub async fn assert_auth_failed(res: Response) {
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body, auth_failed_body());
}

pub fn auth_failed_body() -> Value {
    json!({"error": {"code": "auth_failed", "message": "Authentication failed: send a valid, active API token or sign in."}})
}

pub async fn error_code(res: Response) -> (StatusCode, String) {
    let status = res.status();
    let body: Value = res.json().await.expect("JSON error body");
    (
        status,
        body["error"]["code"]
            .as_str()
            .expect("error.code")
            .to_owned(),
    )
}

/// Word error rate of `hypothesis` against `reference`, after hark's evaluation
/// normalisation (case, punctuation, number words).
pub fn word_error_rate(reference: &str, hypothesis: &str) -> f64 {
    hark_speech::eval::word_error_rate(reference, hypothesis)
}

/// Polls a recording until it leaves PENDING/PROCESSING/SUMMARIZING.
pub async fn wait_for_recording(
    server: &TestServer,
    token: &str,
    id: i64,
    limit: Duration,
) -> Value {
    let started = Instant::now();
    loop {
        let rec: Value = server
            .get(&format!("/api/recordings/{id}"), token)
            .await
            .json()
            .await
            .unwrap();
        if matches!(rec["status"].as_str(), Some("COMPLETED" | "FAILED")) {
            return rec;
        }
        assert!(
            started.elapsed() < limit,
            "still {} after {limit:?}",
            rec["status"]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// SHA-256 in hex, as `sha256sum` prints it and the audit log's `hashed_token` holds it.
pub fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}
