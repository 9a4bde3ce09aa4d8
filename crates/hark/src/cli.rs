use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// hark: self-hosted speech-to-text behind first-class API tokens.
#[derive(Parser)]
#[command(name = "hark", version, about)]
pub struct Cli {
    /// Where the database and audio live.
    #[arg(
        long,
        global = true,
        env = "HARK_DATA_DIR",
        default_value = "./hark-data"
    )]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub storage: StorageArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Where state lives when it is not the data dir: PostgreSQL and an S3-compatible bucket,
/// shared by every node of a cluster. Unset, the data dir holds both (SQLite, files).
#[derive(Args, Clone)]
pub struct StorageArgs {
    /// PostgreSQL for users, tokens, recordings and jobs (postgres://USER@HOST:PORT/DB);
    /// without it, SQLite in the data dir.
    #[arg(long, global = true, env = "HARK_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Connections this process keeps to PostgreSQL at most.
    #[arg(
        long,
        global = true,
        env = "HARK_DATABASE_MAX_CONNECTIONS",
        default_value_t = 16
    )]
    pub database_max_connections: u32,
    /// S3-compatible bucket for audio (s3://BUCKET[/PREFIX]); without it, files in the data dir.
    #[arg(long, global = true, env = "HARK_BLOB_URL")]
    pub blob_url: Option<String>,
    /// The S3 API's address, for servers other than AWS (http://HOST:PORT).
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL")]
    pub s3_endpoint: Option<String>,
    #[arg(long, global = true, env = "AWS_REGION")]
    pub s3_region: Option<String>,
    #[arg(long, global = true, env = "AWS_ACCESS_KEY_ID", hide_env_values = true)]
    pub s3_access_key_id: Option<String>,
    /// Prefer the environment variable: a flag's value shows in the process list.
    #[arg(
        long,
        global = true,
        env = "AWS_SECRET_ACCESS_KEY",
        hide_env_values = true
    )]
    pub s3_secret_access_key: Option<String>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the HTTP server (with `--workers 0`, an API-only node: `hark worker` processes
    /// sharing its data dir do the transcribing).
    Serve(ServeArgs),
    /// Run transcription workers and webhook delivery without the HTTP API, sharing the
    /// data dir of a `hark serve` node; `--listen` serves only /healthz, /readyz and /metrics.
    Worker(ServeArgs),
    /// Transcribe an audio file, locally or on a hark server, and print the transcript.
    Transcribe(TranscribeArgs),
    /// Stream an audio file to a hark server's live transcription (the Speechmatics
    /// real-time protocol at /v2) and print the transcript as it comes.
    Listen(ListenArgs),
    /// Administer users and tokens directly on the data dir (works while a server runs).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Print the Fireflies-compatible GraphQL schema served at /graphql (SDL).
    GraphqlSchema,
}

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "HARK_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Refuse tokens in the `?token=` query parameter.
    #[arg(long, env = "HARK_NO_QUERY_TOKEN")]
    pub no_query_token: bool,
    /// Seconds between writes of buffered last-used times.
    #[arg(long, env = "HARK_LAST_USED_FLUSH_SECS", default_value_t = 5.0)]
    pub last_used_flush_secs: f64,
    /// Largest accepted upload, in megabytes.
    #[arg(long, env = "HARK_MAX_UPLOAD_MB", default_value_t = 512)]
    pub max_upload_mb: usize,
    /// Mark the session cookie Secure (when hark is served over HTTPS).
    #[arg(long, env = "HARK_SECURE_COOKIES")]
    pub secure_cookies: bool,
    /// Let audio fetched by URL and webhooks reach loopback, private, link-local and cloud
    /// metadata addresses. UNSAFE on a server others can use: it lets them reach your
    /// internal network through hark (server-side request forgery).
    #[arg(long, env = "HARK_FETCH_ALLOW_PRIVATE")]
    pub fetch_allow_private: bool,
    /// On PostgreSQL, do not LISTEN for other nodes' changes: revocations and queued jobs
    /// are then seen at the next poll (half a second). For connection poolers that do not
    /// pass LISTEN through, such as PgBouncer in transaction mode.
    #[arg(long, env = "HARK_NO_LISTEN")]
    pub no_listen: bool,
    /// Redis (redis://HOST:PORT[/DB]) holding each token's per-minute budget for every node
    /// that names it, so the budget holds cluster-wide; without it each node limits on its own.
    #[arg(long, env = "HARK_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// What hark's Redis keys start with (deployments sharing one Redis need different ones).
    #[arg(long, env = "HARK_REDIS_PREFIX", default_value = "hark:")]
    pub redis_prefix: String,
    /// Answer GraphQL introspection queries at /graphql (`--graphql-introspection false`
    /// or `--no-graphql-introspection` to hide the schema from clients).
    #[arg(long, env = "HARK_GRAPHQL_INTROSPECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub graphql_introspection: bool,
    /// The same as `--graphql-introspection false`.
    #[arg(long)]
    pub no_graphql_introspection: bool,
    /// Reverse proxies (addresses or CIDR networks, comma-separated) whose `Forwarded` /
    /// `X-Forwarded-For` headers name the real client. Without it the peer is the client,
    /// whatever headers say: IP allow-lists, lock-outs and audit addresses use it.
    #[arg(long, env = "HARK_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,
    /// The header the trusted proxies write the client into: `x-forwarded-for` (nginx,
    /// HAProxy, cloud load balancers) or `forwarded` (RFC 7239). The other is never read.
    #[arg(long, env = "HARK_FORWARDED_HEADER", value_enum, default_value_t = ForwardedHeaderArg::XForwardedFor)]
    pub forwarded_header: ForwardedHeaderArg,
    /// Days per-minute token usage is kept (hourly views come from it).
    #[arg(long, env = "HARK_USAGE_MINUTES_DAYS", default_value_t = 7)]
    pub usage_minutes_days: u32,
    /// Days per-day token usage is kept.
    #[arg(long, env = "HARK_USAGE_DAYS_KEPT", default_value_t = 400)]
    pub usage_days_kept: u32,
    /// Turns on GitLab's Token Revocation API (`/v1/revocable_token_types`,
    /// `/v1/revoke_tokens`) with this pre-shared secret (GitLab sends it as `Authorization`).
    #[arg(long, env = "HARK_GITLAB_REVOCATION_SECRET", hide_env_values = true)]
    pub gitlab_revocation_secret: Option<String>,
    /// Turns on GitHub secret-scanning alerts (`/api/github/secret-scanning`): a file
    /// holding GitHub's signing keys, as `GET https://api.github.com/meta/public_keys/secret_scanning`
    /// returns them (read at start; nothing is fetched at run time).
    #[arg(long, env = "HARK_GITHUB_ALERT_KEYS")]
    pub github_alert_keys: Option<PathBuf>,
    /// Requests a minute each API token may make (0: unlimited).
    #[arg(long, env = "HARK_TOKEN_RATE_PER_MINUTE", default_value_t = 600)]
    pub token_rate_per_minute: u32,
    /// Failed token authentications a minute one client IP may make before it is locked
    /// out with 429 (0: unlimited).
    #[arg(long, env = "HARK_FAILED_AUTH_PER_MINUTE", default_value_t = 30)]
    pub failed_auth_per_minute: u32,
    /// Most active API tokens one user may hold.
    #[arg(long, env = "HARK_MAX_TOKENS_PER_USER", default_value_t = 50)]
    pub max_tokens_per_user: u32,
    /// Most active API tokens in the workspace.
    #[arg(long, env = "HARK_MAX_TOKENS_PER_WORKSPACE", default_value_t = 1000)]
    pub max_tokens_per_workspace: u32,
    /// Log format.
    #[arg(long, env = "HARK_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Seconds a worker waits before trying again when the speech engine cannot load (no
    /// model installed): jobs stay queued meanwhile, their attempts untouched.
    #[arg(long, env = "HARK_MODEL_RETRY_SECS", default_value_t = 30.0)]
    pub model_retry_secs: f64,
    /// Transcription workers in this process (0 with `serve`: an API-only node).
    #[arg(long, env = "HARK_WORKERS", default_value_t = 1)]
    pub workers: usize,
    /// Seconds a worker's claim on a job lasts without a heartbeat; after that another
    /// worker (or this server after a restart) takes the job again.
    #[arg(long, env = "HARK_JOB_LEASE_SECS", default_value_t = 30.0)]
    pub job_lease_secs: f64,
    /// How many times a job is tried before its recording is marked FAILED.
    #[arg(long, env = "HARK_JOB_ATTEMPTS", default_value_t = 3)]
    pub job_attempts: i64,
    /// Send transcription to this OpenAI-compatible server instead of the embedded engine
    /// (base URL up to /v1, e.g. http://10.0.0.5:8080/v1).
    #[arg(long, env = "HARK_REMOTE_ENGINE_URL")]
    pub remote_engine_url: Option<String>,
    /// API key for the remote engine.
    #[arg(
        long,
        env = "HARK_REMOTE_ENGINE_KEY",
        hide_env_values = true,
        default_value = ""
    )]
    pub remote_engine_key: String,
    /// Model name to ask the remote engine for.
    #[arg(long, env = "HARK_REMOTE_ENGINE_MODEL", default_value = "whisper-1")]
    pub remote_engine_model: String,
    /// Write summaries with this OpenAI-compatible chat-completions server (base URL up to
    /// /v1) instead of the embedded extractive summarizer.
    #[arg(long, env = "HARK_SUMMARY_URL")]
    pub summary_url: Option<String>,
    /// API key for the summary server.
    #[arg(
        long,
        env = "HARK_SUMMARY_KEY",
        hide_env_values = true,
        default_value = ""
    )]
    pub summary_key: String,
    /// Chat model to ask for summaries.
    #[arg(long, env = "HARK_SUMMARY_MODEL", default_value = "gpt-4o-mini")]
    pub summary_model: String,
    #[command(flatten)]
    pub streams: StreamArgs,
}

/// Live transcription: caps, timeouts and the voice detector.
#[derive(Args, Clone)]
pub struct StreamArgs {
    /// Open real-time streams per API key (a temporary key counts against its parent; 0: no cap).
    #[arg(long, env = "HARK_MAX_STREAMS_PER_KEY", default_value_t = 4)]
    pub max_streams_per_key: u32,
    /// Open real-time streams per workspace (0: no cap).
    #[arg(long, env = "HARK_MAX_STREAMS_PER_WORKSPACE", default_value_t = 16)]
    pub max_streams_per_workspace: u32,
    /// Open real-time streams on this server; more are refused as over capacity rather
    /// than letting every stream fall behind. Default: one per CPU core (2 cores sustain 2
    /// real-time streams, BENCHMARKS.md); 0: no cap.
    #[arg(long, env = "HARK_MAX_STREAMS")]
    pub max_streams: Option<u32>,
    /// Seconds without audio after which a stream is closed.
    #[arg(long, env = "HARK_STREAM_IDLE_SECS", default_value_t = 60)]
    pub stream_idle_secs: u64,
    /// Longest stream, in minutes.
    #[arg(long, env = "HARK_STREAM_MAX_MINUTES", default_value_t = 240)]
    pub stream_max_minutes: u64,
    /// Silero VAD weights (silero_vad_16k.safetensors). Default: silero-vad/ beside the
    /// Whisper model folder.
    #[arg(long, env = "HARK_VAD_MODEL")]
    pub vad_model: Option<PathBuf>,
}

/// The speech engine's settings, shared by `serve` and `transcribe`.
#[derive(Args, Clone)]
pub struct EngineArgs {
    /// Whisper model folder: CTranslate2 (model.bin, config.json, tokenizer.json) or
    /// Hugging Face (model.safetensors, config.json, tokenizer.json).
    /// Default: DATA_DIR/models/whisper-tiny.en.
    #[arg(long, env = "HARK_MODEL_DIR")]
    pub model_dir: Option<PathBuf>,
    /// Beam size; 1 decodes greedily (faster, slightly less accurate).
    #[arg(long, env = "HARK_BEAM_SIZE", default_value_t = 5)]
    pub beam_size: usize,
    /// Threads for the tensor maths (default: every core).
    #[arg(long, env = "HARK_THREADS")]
    pub threads: Option<usize>,
    /// Longest audio one file may decode to, in hours; longer files fail at once with a
    /// clear reason (a few kilobytes of FLAC can declare hours).
    #[arg(long, env = "HARK_MAX_AUDIO_HOURS", default_value_t = 4.0)]
    pub max_audio_hours: f64,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum TranscriptFormat {
    Txt,
    Srt,
    Vtt,
    Json,
}

#[derive(Args)]
pub struct TranscribeArgs {
    /// The audio file.
    pub file: PathBuf,
    /// A hark server to send it to (otherwise it is transcribed here, with the embedded engine).
    #[arg(long, env = "HARK_SERVER")]
    pub server: Option<String>,
    /// API token for --server (a token with the batch scope).
    #[arg(long, env = "HARK_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[arg(long, value_enum, default_value_t = TranscriptFormat::Txt)]
    pub format: TranscriptFormat,
    /// Language code, e.g. en.
    #[arg(long)]
    pub language: Option<String>,
    #[command(flatten)]
    pub engine: EngineArgs,
}

#[derive(Args)]
pub struct ListenArgs {
    /// The audio file (any format `transcribe` reads); it is sent as 16 kHz pcm_s16le.
    pub file: PathBuf,
    /// The hark server's base URL (http://; no TLS is built in); the stream goes to ws://…/v2.
    #[arg(long, env = "HARK_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// API token with real-time rights: a realtime project key (or a personal token with
    /// the realtime scope).
    #[arg(long, env = "HARK_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Send the audio at 1x, as a live source would (default: as fast as the server takes it).
    #[arg(long)]
    pub realtime_pace: bool,
    /// Print every server message as one JSON line instead of the transcript.
    #[arg(long)]
    pub json: bool,
    /// Seconds the server may wait before finalising words (0.7 to 4).
    #[arg(long, default_value_t = 2.0)]
    pub max_delay: f64,
    /// Language code, e.g. en.
    #[arg(long, default_value = "en")]
    pub language: String,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Create a user. Without --password-stdin a random password is generated and printed.
    CreateUser {
        #[arg(long)]
        username: String,
        /// Read the password from standard input (one line).
        #[arg(long)]
        password_stdin: bool,
        /// admin, developer, member or viewer.
        #[arg(long, default_value = "member")]
        role: String,
    },
    /// Change a user's role; demoting to viewer stops their tokens within a second.
    SetRole {
        #[arg(long)]
        username: String,
        /// admin, developer, member or viewer.
        #[arg(long)]
        role: String,
    },
    /// Create a personal access token and print only the token on stdout.
    CreateToken {
        #[arg(long)]
        username: String,
        #[arg(long)]
        name: String,
        /// never, 30d, 90d, 1y, 2y, 5y or YYYY-MM-DD.
        #[arg(long, default_value = "90d")]
        expires: String,
        /// Comma-separated: read, write, batch, realtime (default: all).
        #[arg(long, value_delimiter = ',')]
        scopes: Option<Vec<String>>,
    },
    /// List tokens (never their secrets).
    ListTokens {
        #[arg(long)]
        username: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id; a running server stops accepting it within a second.
    RevokeToken { id: i64 },
    /// Copy this data dir (its SQLite database and, with --to-blob-url, its audio) into
    /// an empty PostgreSQL database and bucket for a cluster; verifies row counts and
    /// checksums and refuses a target that holds anything. The data dir is left as it was.
    /// Stop the server first, so nothing changes during the copy.
    Migrate {
        /// The new database (postgres://…); it must be empty.
        #[arg(long, env = "HARK_TO_DATABASE_URL", hide_env_values = true)]
        to_database_url: String,
        /// The new bucket for the audio (s3://BUCKET[/PREFIX]), reached with the --s3-*
        /// settings; without it the audio stays in the data dir.
        #[arg(long)]
        to_blob_url: Option<String>,
    },
}

impl Command {
    pub fn engine_threads(&self) -> Option<usize> {
        match self {
            Command::Serve(a) | Command::Worker(a) => a.engine.threads,
            Command::Transcribe(a) => a.engine.threads,
            Command::Admin(_) | Command::Listen(_) | Command::GraphqlSchema => None,
        }
        .filter(|t| *t > 0)
    }
}

impl EngineArgs {
    pub fn decode_limits(&self) -> anyhow::Result<hark_speech::audio::DecodeLimits> {
        if !(self.max_audio_hours > 0.0 && self.max_audio_hours <= 100.0) {
            anyhow::bail!("--max-audio-hours must be more than 0 and at most 100");
        }
        Ok(hark_speech::audio::DecodeLimits {
            max_seconds: self.max_audio_hours * 3600.0,
        })
    }

    pub fn model_dir(&self, data_dir: &std::path::Path) -> PathBuf {
        self.model_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("models").join("whisper-tiny.en"))
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ForwardedHeaderArg {
    XForwardedFor,
    Forwarded,
}
