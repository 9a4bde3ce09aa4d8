//! hark's speech engine: audio in, timed transcript segments out. Knows nothing of HTTP
//! or SQL.

pub mod audio;
pub mod ct2;
mod decode;
pub mod engine;
pub mod eval;
mod few_rows;
pub mod hf;
mod kv_cache;
pub mod mel;
pub mod remote;
pub mod sniff;
pub mod stream_audio;
pub mod streaming;
pub mod summary;
mod timing;
pub mod tokenizer;
pub mod vad;
pub mod weights;
pub mod whisper;

pub use engine::Word;
pub use engine::{Engine, Options, Segment, Transcript};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum SpeechError {
    /// The input cannot be turned into audio: the message is fit to show the uploader.
    #[error("{0}")]
    Audio(String),
    /// The model files are missing or unreadable.
    #[error("model: {0}")]
    Model(String),
    /// A remote engine could not do the work this time; worth another try.
    #[error("{0}")]
    Remote(String),
    #[error("tensor computation failed: {0}")]
    Tensor(#[from] candle_core::Error),
}
