//! The log-mel spectrogram Whisper was trained on: 25 ms Hann windows every 10 ms
//! (n_fft 400, hop 160 at 16 kHz), a Slaney-style mel filterbank, log10, clamped to 8 below
//! the peak and scaled to about [-1, 1].

use candle_transformers::models::whisper::audio::log_mel_spectrogram_;

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
        let data = log_mel_spectrogram_(samples, filters, N_FFT, HOP, n_mels, false);
        let frames = data.len() / n_mels;
        Spectrogram {
            n_mels,
            frames,
            content_frames: samples.len() / HOP,
            data,
        }
    }

    /// `WINDOW_FRAMES` frames from `start`, zero-padded (the padding value of silence) when
    /// the spectrogram ends early. Row-major [n_mels × WINDOW_FRAMES].
    pub fn window(&self, start: usize) -> Vec<f32> {
        let silence = self.data.iter().copied().fold(f32::INFINITY, f32::min);
        let mut out = vec![silence; self.n_mels * WINDOW_FRAMES];
        let available = self.frames.saturating_sub(start).min(WINDOW_FRAMES);
        for m in 0..self.n_mels {
            let src = &self.data[m * self.frames + start..m * self.frames + start + available];
            out[m * WINDOW_FRAMES..m * WINDOW_FRAMES + available].copy_from_slice(src);
        }
        out
    }
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
    fn windows_are_padded_with_silence() {
        let samples: Vec<f32> = (0..16_000).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
        let spec = Spectrogram::compute(&samples, &filterbank(80), 80);
        assert_eq!(spec.content_frames, 100);
        assert!(spec.frames >= WINDOW_FRAMES);
        let w = spec.window(0);
        assert_eq!(w.len(), 80 * WINDOW_FRAMES);
        let tail = spec.window(spec.frames - 10);
        assert_eq!(tail.len(), 80 * WINDOW_FRAMES);
    }
}
