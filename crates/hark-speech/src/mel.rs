//! The log-mel spectrogram Whisper was trained on: 25 ms Hann windows every 10 ms
//! (n_fft 400, hop 160 at 16 kHz) centred on each frame (reflect padding, as `torch.stft`
//! with `center=True`), a Slaney-style mel filterbank, log10, clamped to 8 below the peak
//! and scaled to about [-1, 1]. Computed as OpenAI's and faster-whisper's feature
//! extractors compute it, so the model sees what it saw in training.

use std::sync::Arc;

use rayon::prelude::*;
use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};

pub const N_FFT: usize = 400;
pub const HOP: usize = 160;
/// Mel frames per 30-second window.
pub const WINDOW_FRAMES: usize = 3000;

/// Mel filterbank, [n_mels × (n_fft/2 + 1)], as librosa's `mel(sr=16000, n_fft=400,
/// htk=False, norm="slaney")` computes it.
pub fn filterbank(n_mels: usize) -> Vec<f32> {
    let sample_rate = 16_000.0f64;
    let bins = N_FFT / 2 + 1;
    let fft_freqs: Vec<f64> = (0..bins)
        .map(|i| i as f64 * sample_rate / N_FFT as f64)
        .collect();
    let mel_max = hz_to_mel(sample_rate / 2.0);
    let points: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(mel_max * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut filters = vec![0f32; n_mels * bins];
    for m in 0..n_mels {
        let (lo, center, hi) = (points[m], points[m + 1], points[m + 2]);
        let norm = 2.0 / (hi - lo);
        for (k, &f) in fft_freqs.iter().enumerate() {
            let rising = (f - lo) / (center - lo);
            let falling = (hi - f) / (hi - center);
            let weight = rising.min(falling).max(0.0);
            filters[m * bins + k] = (weight * norm) as f32;
        }
    }
    filters
}

fn hz_to_mel(hz: f64) -> f64 {
    const F_SP: f64 = 200.0 / 3.0;
    const MIN_LOG_HZ: f64 = 1000.0;
    let min_log_mel = MIN_LOG_HZ / F_SP;
    let logstep = 6.4f64.ln() / 27.0;
    if hz >= MIN_LOG_HZ {
        min_log_mel + (hz / MIN_LOG_HZ).ln() / logstep
    } else {
        hz / F_SP
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    const F_SP: f64 = 200.0 / 3.0;
    const MIN_LOG_HZ: f64 = 1000.0;
    let min_log_mel = MIN_LOG_HZ / F_SP;
    let logstep = 6.4f64.ln() / 27.0;
    if mel >= min_log_mel {
        MIN_LOG_HZ * (logstep * (mel - min_log_mel)).exp()
    } else {
        F_SP * mel
    }
}

/// The spectrogram of 16 kHz samples: `n_mels` rows of `frames` values each, row-major.
/// The audio is padded with silence to whole windows plus one, as Whisper pads it.
pub struct Spectrogram {
    pub n_mels: usize,
    pub frames: usize,
    /// Frames that hold audio (the rest is padding).
    pub content_frames: usize,
    pub data: Vec<f32>,
}

impl Spectrogram {
    pub fn compute(samples: &[f32], filters: &[f32], n_mels: usize) -> Self {
        // One hop of silence after the audio, then frames centred every HOP samples; the
        // last frame (centred past the end) is dropped, as the reference extractors do.
        let mut padded = samples.to_vec();
        padded.extend(std::iter::repeat_n(0.0, HOP));
        let frames = padded.len() / HOP;
        let centred = reflect_pad(&padded, N_FFT / 2);
        let bins = N_FFT / 2 + 1;
        let window: Vec<f32> = (0..N_FFT)
            .map(|i| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * i as f32 / N_FFT as f32).cos())
            .collect();
        let fft: Arc<dyn Fft<f32>> = FftPlanner::new().plan_fft_forward(N_FFT);
        let mut by_frame = vec![0f32; frames * n_mels];
        by_frame.par_chunks_mut(n_mels).enumerate().for_each_init(
            || (vec![Complex::default(); N_FFT], vec![0f32; bins]),
            |(buffer, power), (frame, mels)| {
                let start = frame * HOP;
                for (i, value) in buffer.iter_mut().enumerate() {
                    *value = Complex::new(centred.get(start + i).unwrap_or(&0.0) * window[i], 0.0);
                }
                fft.process(buffer);
                for (p, c) in power.iter_mut().zip(buffer.iter()) {
                    *p = c.norm_sqr();
                }
                for (m, mel) in mels.iter_mut().enumerate() {
                    let energy: f32 = filters[m * bins..(m + 1) * bins]
                        .iter()
                        .zip(power.iter())
                        .map(|(f, p)| f * p)
                        .sum();
                    *mel = energy.max(1e-10).log10();
                }
            },
        );
        let peak = by_frame.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut data = vec![0f32; n_mels * frames];
        for (frame, mels) in by_frame.chunks_exact(n_mels).enumerate() {
            for (m, value) in mels.iter().enumerate() {
                data[m * frames + frame] = (value.max(peak - 8.0) + 4.0) / 4.0;
            }
        }
        Spectrogram {
            n_mels,
            frames,
            content_frames: frames.saturating_sub(1),
            data,
        }
    }

    /// `length` frames from `start` (`WINDOW_FRAMES` for a whole 30-second window), padded
    /// with zeros when the spectrogram ends early (as faster-whisper's and OpenAI's
    /// `pad_or_trim` pad). Row-major [n_mels × length].
    pub fn window(&self, start: usize, length: usize) -> Vec<f32> {
        let mut out = vec![0f32; self.n_mels * length];
        let available = self.frames.saturating_sub(start).min(length);
        for m in 0..self.n_mels {
            let src = &self.data[m * self.frames + start..][..available];
            out[m * length..][..available].copy_from_slice(src);
        }
        out
    }
}

/// `samples` with `pad` samples mirrored at each end (the edge sample not repeated), as
/// numpy's and torch's "reflect" padding. Short inputs reflect as far as they can.
fn reflect_pad(samples: &[f32], pad: usize) -> Vec<f32> {
    let n = samples.len();
    let mut out = Vec::with_capacity(n + 2 * pad);
    out.extend((1..=pad).rev().map(|i| {
        samples
            .get(i.min(n.saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    }));
    out.extend_from_slice(samples);
    out.extend((1..=pad).map(|i| {
        n.checked_sub(1 + i)
            .and_then(|at| samples.get(at))
            .copied()
            .unwrap_or(0.0)
    }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filterbank_matches_librosa_shape_and_values() {
        let f = filterbank(80);
        assert_eq!(f.len(), 80 * 201);
        // Each filter is a triangle: non-negative, one peak, non-empty.
        for m in 0..80 {
            let row = &f[m * 201..(m + 1) * 201];
            assert!(row.iter().all(|w| *w >= 0.0));
            assert!(row.iter().any(|w| *w > 0.0), "filter {m} is empty");
        }
        // librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)[0, 1] = 0.02486259
        assert!((f[1] - 0.024_862_59).abs() < 1e-5, "{}", f[1]);
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-9);
        assert!((mel_to_hz(hz_to_mel(3210.0)) - 3210.0).abs() < 1e-6);
    }

    #[test]
    fn matches_faster_whispers_feature_extractor() {
        // faster_whisper.feature_extractor.FeatureExtractor(feature_size=80)(x) for this x,
        // computed with faster-whisper 1.1.1 (numpy): shape (80, 101) and these values.
        let samples: Vec<f32> = (0..16_000)
            .map(|i| {
                let t = i as f32;
                (t * 0.05).sin() * 0.3 + (t * 0.31).sin() * 0.1 * (t / 16_000.0)
            })
            .collect();
        let spec = Spectrogram::compute(&samples, &filterbank(80), 80);
        assert_eq!(
            (spec.n_mels, spec.frames, spec.content_frames),
            (80, 101, 100)
        );
        let at = |m: usize, t: usize| spec.data[m * spec.frames + t];
        for (m, t, expected) in [
            (0, 0, 1.196_865_8),
            (5, 0, 1.067_280_4),
            (10, 3, -0.321_808_8),
            (20, 50, 0.913_342_6),
            (40, 99, -0.033_078_79),
            (79, 100, 0.214_198_1),
            (3, 100, 1.184_082_3),
        ] {
            assert!(
                (at(m, t) - expected).abs() < 2e-3,
                "mel {m} frame {t}: {}",
                at(m, t)
            );
        }
    }

    #[test]
    fn windows_are_padded_with_zeros() {
        let samples: Vec<f32> = (0..16_000).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
        let spec = Spectrogram::compute(&samples, &filterbank(80), 80);
        let w = spec.window(0, WINDOW_FRAMES);
        assert_eq!(w.len(), 80 * WINDOW_FRAMES);
        assert_eq!(w[5 * WINDOW_FRAMES + 10], spec.data[5 * spec.frames + 10]);
        assert!(
            w[5 * WINDOW_FRAMES + 101..6 * WINDOW_FRAMES]
                .iter()
                .all(|v| *v == 0.0)
        );
        let tail = spec.window(spec.frames - 10, WINDOW_FRAMES);
        assert_eq!(tail.len(), 80 * WINDOW_FRAMES);
        // A trimmed window: its own frames, then zeros, in rows of the asked length.
        let short = spec.window(0, 128);
        assert_eq!(short.len(), 80 * 128);
        assert_eq!(short[5 * 128 + 100], spec.data[5 * spec.frames + 100]);
        assert!(short[5 * 128 + 101..6 * 128].iter().all(|v| *v == 0.0));
    }

    #[test]
    fn reflect_padding_mirrors_without_repeating_the_edge() {
        assert_eq!(
            reflect_pad(&[1.0, 2.0, 3.0, 4.0], 2),
            vec![3.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 2.0]
        );
        assert_eq!(reflect_pad(&[], 2).len(), 4);
    }
}
