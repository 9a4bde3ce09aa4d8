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
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the HTTP server.
    Serve(ServeArgs),
    /// Administer users and tokens directly on the data dir (works while a server runs).
    #[command(subcommand)]
    Admin(AdminCommand),
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
    /// Log format.
    #[arg(long, env = "HARK_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
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
}
