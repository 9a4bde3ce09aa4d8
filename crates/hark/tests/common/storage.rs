//! Where a test server keeps its state: SQLite in its data dir (the default), or a scratch
//! PostgreSQL database (`HARK_TEST_DATABASE=postgres` runs every test that way), optionally
//! with its audio in a real S3-compatible server (s3s-fs, which checks SigV4 signatures).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hark_store::testing::ScratchDatabase;

/// Settings every hark process of one test server gets, as environment variables.
#[derive(Clone, Default)]
pub struct TestStorage {
    database: Option<Arc<ScratchDatabase>>,
    pub env: Vec<(String, String)>,
}

impl TestStorage {
    /// SQLite, unless `HARK_TEST_DATABASE=postgres` asks for PostgreSQL.
    pub async fn from_environment() -> Self {
        match std::env::var("HARK_TEST_DATABASE").as_deref() {
            Ok("postgres") => Self::postgres().await,
            _ => Self::default(),
        }
    }

    /// A scratch PostgreSQL database of its own, dropped with the last clone.
    pub async fn postgres() -> Self {
        let database = ScratchDatabase::create()
            .await
            .expect("a scratch PostgreSQL database (is PostgreSQL running?)");
        let env = vec![("HARK_DATABASE_URL".to_owned(), database.url().to_owned())];
        TestStorage {
            database: Some(Arc::new(database)),
            env,
        }
    }

    /// Audio in `bucket` of `s3`.
    pub fn with_s3(mut self, s3: &S3Server, bucket: &str) -> Self {
        s3.create_bucket(bucket);
        self.env.extend(
            [
                ("HARK_BLOB_URL", format!("s3://{bucket}/audio")),
                ("AWS_ENDPOINT_URL", s3.endpoint.clone()),
                ("AWS_REGION", "us-east-1".to_owned()),
                ("AWS_ACCESS_KEY_ID", S3Server::ACCESS_KEY.to_owned()),
                ("AWS_SECRET_ACCESS_KEY", S3Server::SECRET_KEY.to_owned()),
            ]
            .map(|(k, v)| (k.to_owned(), v)),
        );
        self
    }

    pub fn database_url(&self) -> Option<&str> {
        self.database.as_deref().map(ScratchDatabase::url)
    }

    pub fn is_postgres(&self) -> bool {
        self.database.is_some()
    }

    pub fn apply(&self, command: &mut Command) {
        for (key, value) in &self.env {
            command.env(key, value);
        }
    }
}

/// s3s-fs on a free loopback port, serving a temp directory; killed when dropped.
pub struct S3Server {
    pub endpoint: String,
    pub root: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl S3Server {
    pub const ACCESS_KEY: &'static str = "hark-test-access";
    pub const SECRET_KEY: &'static str = "hark-test-secret-key-0123456789";

    pub fn binary() -> PathBuf {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/tools/bin/s3s-fs");
        assert!(
            path.exists(),
            "{} is missing: scripts/test.sh installs it",
            path.display()
        );
        path
    }

    pub fn start() -> Self {
        let root = tempfile::tempdir().expect("temp dir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = S3Server {
            endpoint: format!("http://127.0.0.1:{port}"),
            root,
            port,
            child: None,
        };
        server.resume();
        server
    }

    /// Stops the server (SIGKILL): the bucket becomes unreachable, its files stay.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and directory.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "stop it first");
        let child = Command::new(Self::binary())
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--access-key",
                Self::ACCESS_KEY,
                "--secret-key",
                Self::SECRET_KEY,
            ])
            .arg(self.root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn s3s-fs");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A bucket is a folder of the served directory.
    pub fn create_bucket(&self, bucket: &str) {
        std::fs::create_dir_all(self.root.path().join(bucket)).expect("bucket folder");
    }

    /// Every object file under a bucket (s3s-fs keeps each object as a file of that path).
    pub fn objects(&self, bucket: &str) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.push(path);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root.path().join(bucket), &mut out);
        out.retain(|p| !p.to_string_lossy().contains(".s3s"));
        out
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}
