//! Any supported audio file → 16 kHz mono f32 samples, the only input Whisper takes.
//!
//! Decoding is symphonia's (WAV, MP3, FLAC, Ogg/Vorbis, M4A/AAC and more); channels are
//! averaged; resampling is rubato's FFT resampler with an anti-aliasing filter, fed chunk
//! by chunk as packets are decoded, so only the 16 kHz result is ever held whole. A file
//! is untrusted input: a few kilobytes of FLAC can declare hours of audio, and a WAV can
//! declare 1 Hz, so rates outside [`RATES`] are refused and decoding stops at
//! [`DecodeLimits::max_seconds`].

use std::fs::File;
use std::ops::RangeInclusive;
use std::path::Path;

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler};
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

use crate::SpeechError;

pub const SAMPLE_RATE: u32 = 16_000;

/// Sample rates accepted: from telephone audio to studio masters.
pub const RATES: RangeInclusive<u32> = 8_000..=192_000;

/// Shorter than this there is no word to hear.
const MIN_SECONDS: f64 = 0.1;

/// Input frames per resampling step.
const CHUNK: usize = 1024;

/// How much audio one file may decode to. At the default (4 hours) the decoded samples
/// take about 0.9 GB; memory grows with the audio, never past this.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecodeLimits {
    pub max_seconds: f64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_seconds: 4.0 * 3600.0,
        }
    }
}

impl DecodeLimits {
    fn too_long(&self) -> SpeechError {
        SpeechError::Audio(format!(
            "the audio is longer than the {} limit for one recording",
            describe_seconds(self.max_seconds)
        ))
    }
}

fn describe_seconds(seconds: f64) -> String {
    let rounded = |x: f64| (x * 100.0).round() / 100.0;
    if seconds >= 3600.0 {
        format!("{} h", rounded(seconds / 3600.0))
    } else if seconds >= 60.0 {
        format!("{} min", rounded(seconds / 60.0))
    } else {
        format!("{} s", rounded(seconds))
    }
}

fn rate_refused(rate: u32) -> SpeechError {
    SpeechError::Audio(format!(
        "the audio's sample rate ({rate} Hz) is outside {}–{} Hz",
        RATES.start(),
        RATES.end()
    ))
}

/// Decodes the first audio track of a file, averaging its channels, and converts it to
/// 16 kHz, within `limits`.
pub fn load_16k(path: &Path, limits: &DecodeLimits) -> Result<Vec<f32>, SpeechError> {
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
    // Refused before a single packet is decoded, when the header already tells.
    if let Some(rate) = params.sample_rate {
        if !RATES.contains(&rate) {
            return Err(rate_refused(rate));
        }
        if declared_frames.is_some_and(|n| n as f64 / f64::from(rate) > limits.max_seconds) {
            return Err(limits.too_long());
        }
    }
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(params, &AudioDecoderOptions::default())
        .map_err(|e| SpeechError::Audio(format!("unsupported audio codec ({e})")))?;

    let mut resampler: Option<To16k> = None;
    let mut interleaved: Vec<f32> = Vec::new();
    let mut mono: Vec<f32> = Vec::new();
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
                let rate = spec.rate();
                let target = match &mut resampler {
                    Some(r) if r.rate == rate => r,
                    Some(r) => {
                        return Err(SpeechError::Audio(format!(
                            "the sample rate changes mid-stream ({} Hz to {rate} Hz)",
                            r.rate
                        )));
                    }
                    None if !RATES.contains(&rate) => return Err(rate_refused(rate)),
                    None => resampler.insert(To16k::new(rate)?),
                };
                let channels = spec.channels().count().max(1);
                interleaved.resize(buffer.samples_interleaved(), 0.0);
                buffer.copy_to_slice_interleaved(&mut interleaved);
                mono.clear();
                mono.extend(
                    interleaved
                        .chunks_exact(channels)
                        .map(|frame| frame.iter().sum::<f32>() / channels as f32),
                );
                target.push(&mono)?;
                if target.seconds_in() > limits.max_seconds {
                    return Err(limits.too_long());
                }
            }
            Err(SymphoniaError::DecodeError(_)) => decode_errors += 1,
            Err(e) => {
                return Err(SpeechError::Audio(format!(
                    "the audio could not be decoded ({e})"
                )));
            }
        }
    }
    let Some(resampler) = resampler.filter(|r| r.frames_in > 0) else {
        let why = if decode_errors > 0 {
            "every packet failed to decode"
        } else {
            "it holds no audio"
        };
        return Err(SpeechError::Audio(format!(
            "the file cannot be transcribed: {why}"
        )));
    };
    let (rate, frames) = (resampler.rate, resampler.frames_in);
    if let Some(declared) = declared_frames.filter(|d| *d > 0 && (frames as u64) < d / 2) {
        return Err(SpeechError::Audio(format!(
            "the file is damaged or truncated: it declares {:.1} s of audio but holds {:.1} s",
            declared as f64 / f64::from(rate),
            frames as f64 / f64::from(rate)
        )));
    }
    let seconds = resampler.seconds_in();
    if seconds < MIN_SECONDS {
        return Err(SpeechError::Audio(format!(
            "the audio is too short to transcribe ({seconds:.3} s)"
        )));
    }
    resampler.finish()
}

/// Mono audio at `rate` in, 16 kHz out, a chunk at a time.
pub(crate) struct To16k {
    rate: u32,
    /// `None` when the audio already is 16 kHz.
    fft: Option<Fft<f32>>,
    /// Input not yet resampled (less than one chunk between calls).
    pending: Vec<f32>,
    out: Vec<f32>,
    scratch: Vec<f32>,
    /// The resampler's start-up delay, dropped from the front of the output.
    to_trim: usize,
    frames_in: usize,
    /// Output already handed out by [`To16k::take`].
    taken: usize,
}

fn resample_error(e: &dyn std::fmt::Display) -> SpeechError {
    SpeechError::Audio(format!("resampling failed: {e}"))
}

impl To16k {
    pub(crate) fn new(rate: u32) -> Result<Self, SpeechError> {
        let fft = if rate == SAMPLE_RATE {
            None
        } else {
            Some(
                Fft::<f32>::new(
                    rate as usize,
                    SAMPLE_RATE as usize,
                    CHUNK,
                    1,
                    FixedSync::Both,
                )
                .map_err(|e| resample_error(&e))?,
            )
        };
        let to_trim = fft.as_ref().map_or(0, |f| f.output_delay());
        let scratch = vec![0.0; fft.as_ref().map_or(0, |f| f.output_frames_max())];
        Ok(To16k {
            rate,
            fft,
            pending: Vec::new(),
            out: Vec::new(),
            scratch,
            to_trim,
            frames_in: 0,
            taken: 0,
        })
    }

    fn seconds_in(&self) -> f64 {
        self.frames_in as f64 / f64::from(self.rate)
    }

    /// The 16 kHz samples resampled so far and not yet taken (for streams).
    pub(crate) fn take(&mut self) -> Vec<f32> {
        self.taken += self.out.len();
        std::mem::take(&mut self.out)
    }

    pub(crate) fn push(&mut self, samples: &[f32]) -> Result<(), SpeechError> {
        self.frames_in += samples.len();
        if self.fft.is_none() {
            self.out.extend_from_slice(samples);
            return Ok(());
        }
        self.pending.extend_from_slice(samples);
        let mut used = 0;
        loop {
            let needed = self
                .fft
                .as_ref()
                .map_or(usize::MAX, |f| f.input_frames_next());
            if self.pending.len() - used < needed {
                break;
            }
            used += self.step(used, None)?;
        }
        self.pending.drain(..used);
        Ok(())
    }

    /// Resamples one chunk starting at `offset` of `pending` (or the `partial` frames
    /// left at the end); returns how many input frames it used.
    fn step(&mut self, offset: usize, partial: Option<usize>) -> Result<usize, SpeechError> {
        let Some(fft) = self.fft.as_mut() else {
            return Ok(0);
        };
        let input = InterleavedSlice::new(&self.pending[offset..], 1, self.pending.len() - offset)
            .map_err(|e| resample_error(&e))?;
        let frames_out = self.scratch.len();
        let mut output = InterleavedSlice::new_mut(&mut self.scratch[..], 1, frames_out)
            .map_err(|e| resample_error(&e))?;
        let mut indexing = Indexing::new();
        if let Some(n) = partial {
            indexing = indexing.partial_len(n);
        }
        let (used, produced) = fft
            .process_into_buffer(&input, &mut output, Some(&indexing))
            .map_err(|e| resample_error(&e))?;
        let trim = self.to_trim.min(produced);
        self.to_trim -= trim;
        self.out.extend_from_slice(&self.scratch[trim..produced]);
        Ok(used)
    }

    /// What is left: all the output when nothing was taken.
    pub(crate) fn finish(mut self) -> Result<Vec<f32>, SpeechError> {
        let Some(fft) = self.fft.as_ref() else {
            return Ok(self.out);
        };
        let expected = ((fft.resample_ratio() * self.frames_in as f64).ceil() as usize)
            .saturating_sub(self.taken);
        let left = self.pending.len();
        if left > 0 {
            self.step(0, Some(left))?;
            self.pending.clear();
        }
        // Zeros pushed through until the delayed tail is out.
        while self.out.len() < expected {
            self.pending.resize(1, 0.0);
            self.step(0, Some(0))?;
        }
        self.out.truncate(expected);
        Ok(self.out)
    }
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
        let wav = load_16k(&shared("meeting_01.wav"), &DecodeLimits::default()).unwrap();
        let seconds = wav.len() as f64 / 16_000.0;
        assert!(seconds > 5.0 && seconds < 15.0, "{seconds}");
        for name in [
            "meeting_01.flac",
            "meeting_01.ogg",
            "meeting_01_stereo44k.mp3",
        ] {
            let other = load_16k(&shared(name), &DecodeLimits::default()).unwrap();
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
        let mut resampler = To16k::new(rate).unwrap();
        // Fed in uneven pieces, as packets arrive.
        for piece in tone.chunks(777) {
            resampler.push(piece).unwrap();
        }
        let out = resampler.finish().unwrap();
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
            match load_16k(&path, &DecodeLimits::default()) {
                Err(SpeechError::Audio(msg)) => assert!(!msg.is_empty()),
                other => panic!("{path:?}: {other:?}"),
            }
        }
    }
}
