//! Any supported audio file → 16 kHz mono f32 samples, the only input Whisper takes.
//!
//! Decoding is symphonia's (WAV, MP3, FLAC, Ogg/Vorbis, M4A/AAC and more); channels are
//! averaged; resampling is rubato's FFT resampler with an anti-aliasing filter.

use std::fs::File;
use std::path::Path;

use rubato::audioadapter_buffers::owned::InterleavedOwned;
use rubato::{Fft, FixedSync, Resampler};
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

use crate::SpeechError;

pub const SAMPLE_RATE: u32 = 16_000;

/// Shorter than this there is no word to hear.
const MIN_SECONDS: f64 = 0.1;

/// Decoded, downmixed audio at its original rate.
#[derive(Debug, Clone)]
pub struct MonoAudio {
    pub rate: u32,
    pub samples: Vec<f32>,
}

impl MonoAudio {
    pub fn duration_seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.rate.max(1))
    }
}

/// Decodes a file and converts it to 16 kHz mono.
pub fn load_16k(path: &Path) -> Result<Vec<f32>, SpeechError> {
    let audio = decode(path)?;
    resample_to_16k(&audio)
}

/// Decodes the first audio track of a file, averaging its channels.
pub fn decode(path: &Path) -> Result<MonoAudio, SpeechError> {
    let file = File::open(path)
        .map_err(|e| SpeechError::Audio(format!("cannot open the audio file: {e}")))?;
    let mss = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let mut format = symphonia::default::get_probe()
        .probe(
            &hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| SpeechError::Audio(format!("not a recognised audio format ({e})")))?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| SpeechError::Audio("the file has no audio track".into()))?;
    let track_id = track.id;
    let declared_frames = track.num_frames;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| SpeechError::Audio("the audio track has no codec parameters".into()))?;
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(params, &AudioDecoderOptions::default())
        .map_err(|e| SpeechError::Audio(format!("unsupported audio codec ({e})")))?;

    let mut rate = 0u32;
    let mut samples = Vec::new();
    let mut interleaved: Vec<f32> = Vec::new();
    let mut decode_errors = 0usize;
    loop {
        let packet = match format.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break;
            }
            Err(e) => {
                return Err(SpeechError::Audio(format!(
                    "the audio stream is damaged ({e})"
                )));
            }
        };
        if packet.track_id != track_id {
            continue;
        }
        match decoder.decode(&packet) {
            Ok(buffer) => {
                let spec = buffer.spec();
                rate = spec.rate();
                let channels = spec.channels().count().max(1);
                interleaved.resize(buffer.samples_interleaved(), 0.0);
                buffer.copy_to_slice_interleaved(&mut interleaved);
                samples.extend(
                    interleaved
                        .chunks_exact(channels)
                        .map(|frame| frame.iter().sum::<f32>() / channels as f32),
                );
            }
            Err(SymphoniaError::DecodeError(_)) => decode_errors += 1,
            Err(e) => {
                return Err(SpeechError::Audio(format!(
                    "the audio could not be decoded ({e})"
                )));
            }
        }
    }
    if samples.is_empty() || rate == 0 {
        let why = if decode_errors > 0 {
            "every packet failed to decode"
        } else {
            "it holds no audio"
        };
        return Err(SpeechError::Audio(format!(
            "the file cannot be transcribed: {why}"
        )));
    }
    if let Some(declared) = declared_frames.filter(|d| *d > 0 && (samples.len() as u64) < d / 2) {
        return Err(SpeechError::Audio(format!(
            "the file is damaged or truncated: it declares {:.1} s of audio but holds {:.1} s",
            declared as f64 / f64::from(rate),
            samples.len() as f64 / f64::from(rate)
        )));
    }
    let audio = MonoAudio { rate, samples };
    if audio.duration_seconds() < MIN_SECONDS {
        return Err(SpeechError::Audio(format!(
            "the audio is too short to transcribe ({:.3} s)",
            audio.duration_seconds()
        )));
    }
    Ok(audio)
}

pub fn resample_to_16k(audio: &MonoAudio) -> Result<Vec<f32>, SpeechError> {
    if audio.rate == SAMPLE_RATE {
        return Ok(audio.samples.clone());
    }
    let frames = audio.samples.len();
    let resample_err =
        |e: &dyn std::fmt::Display| SpeechError::Audio(format!("resampling failed: {e}"));
    let mut resampler = Fft::<f32>::new(
        audio.rate as usize,
        SAMPLE_RATE as usize,
        1024,
        1,
        FixedSync::Both,
    )
    .map_err(|e| resample_err(&e))?;
    let input = InterleavedOwned::new_from(audio.samples.clone(), 1, frames)
        .map_err(|e| resample_err(&e))?;
    let output = resampler
        .process_all(&input, frames, None)
        .map_err(|e| resample_err(&e))?;
    Ok(output.take_data())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/audio")
            .join(name)
    }

    #[test]
    fn every_corpus_format_decodes_to_the_same_length() {
        let wav = load_16k(&shared("meeting_01.wav")).unwrap();
        let seconds = wav.len() as f64 / 16_000.0;
        assert!(seconds > 5.0 && seconds < 15.0, "{seconds}");
        for name in [
            "meeting_01.flac",
            "meeting_01.ogg",
            "meeting_01_stereo44k.mp3",
        ] {
            let other = load_16k(&shared(name)).unwrap();
            let diff = (other.len() as f64 - wav.len() as f64).abs() / 16_000.0;
            assert!(
                diff < 0.2,
                "{name}: {diff} s longer or shorter than the WAV"
            );
            let rms = (other.iter().map(|s| s * s).sum::<f32>() / other.len() as f32).sqrt();
            assert!(rms > 0.005, "{name}: silent after decoding ({rms})");
        }
    }

    #[test]
    fn resampling_keeps_duration_and_frequency() {
        let rate = 44_100u32;
        let tone: Vec<f32> = (0..rate)
            .map(|i| (2.0 * std::f32::consts::PI * 440.0 * i as f32 / rate as f32).sin())
            .collect();
        let out = resample_to_16k(&MonoAudio {
            rate,
            samples: tone,
        })
        .unwrap();
        assert!((out.len() as i64 - 16_000).abs() <= 16, "{}", out.len());
        // Count zero crossings in the middle: 440 Hz gives ~880 per second.
        let mid = &out[2000..14000];
        let crossings = mid
            .windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count();
        let per_second = crossings as f64 / (mid.len() as f64 / 16_000.0);
        assert!((per_second - 880.0).abs() < 10.0, "{per_second}");
    }

    #[test]
    fn garbage_and_empty_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.wav");
        std::fs::write(&junk, b"this is not audio at all").unwrap();
        let empty = dir.path().join("empty.mp3");
        std::fs::write(&empty, b"").unwrap();
        for path in [junk, empty, dir.path().join("missing.wav")] {
            match load_16k(&path) {
                Err(SpeechError::Audio(msg)) => assert!(!msg.is_empty()),
                other => panic!("{path:?}: {other:?}"),
            }
        }
    }
}
