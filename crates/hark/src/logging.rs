use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

pub use crate::cli::LogFormat as Format;

/// Logs go to stderr; `HARK_LOG` (or `RUST_LOG`) overrides the default level.
pub fn init(format: Format, default_level: &str) {
    let filter = std::env::var("HARK_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        Format::Text => builder.try_init(),
        Format::Json => builder.json().try_init(),
    };
}
