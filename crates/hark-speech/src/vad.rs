//! Voice activity detection: Silero VAD (v6, 16 kHz, MIT) from its
//! `silero_vad_16k.safetensors` (put in place by `scripts/fetch-vad.sh`).
//!
//! One [`Silero`] holds the weights and is shared by every stream; each stream keeps a
//! [`VadState`] (the LSTM's `h` and `c` and the last 64 samples it saw). For every
//! [`VAD_CHUNK`] samples the net runs once:
//!
//! 1. the chunk with the previous chunk's last 64 samples in front (576 samples),
//!    reflect-padded by 64 on the right (640);
//! 2. an STFT as a stride-128 convolution with the file's fixed 258×256 basis (real and
//!    imaginary parts of 129 bins, 4 frames), then the magnitude of each bin;
//! 3. four kernel-3 convolutions with ReLU (129→128, 128→64 stride 2, 64→64 stride 2,
//!    64→128), which leave one frame;
//! 4. an LSTM cell (128) carried across chunks, ReLU, a 1×1 convolution to one value and
//!    a sigmoid: the probability that the chunk is speech.
//!
//! The layers are so small (about 0.7 M multiply-adds a chunk) that candle's per-call
//! overhead for a conv1d would outweigh the arithmetic, so candle only reads the file
//! and the forward pass is plain f32 loops over the weights, laid out for contiguous dot
//! products (see the `per_chunk_time` test, which times both).

use std::path::Path;

use candle_core::{DType, Device, Tensor};

use crate::SpeechError;

/// Samples (16 kHz) in one chunk given to [`Silero::probability`]: 32 ms.
pub const VAD_CHUNK: usize = 512;

/// Samples of the previous chunk put in front of each chunk.
const CONTEXT: usize = 64;
const WINDOW: usize = CONTEXT + VAD_CHUNK;
/// Reflect padding on the right, as Silero's STFT pads.
const RIGHT_PAD: usize = 64;
const PADDED: usize = WINDOW + RIGHT_PAD;
const N_FFT: usize = 256;
const HOP: usize = 128;
const BINS: usize = N_FFT / 2 + 1;
const FRAMES: usize = (PADDED - N_FFT) / HOP + 1;
const HIDDEN: usize = 128;
const KERNEL: usize = 3;

/// One kernel-3, padding-1 convolution followed by ReLU.
struct Conv {
    /// `[outputs][inputs * KERNEL]`, as the file stores `[out, in, k]`.
    weight: Vec<f32>,
    bias: Vec<f32>,
    inputs: usize,
    outputs: usize,
    stride: usize,
}

impl Conv {
    fn out_len(&self, t_in: usize) -> usize {
        (t_in + 2 - KERNEL) / self.stride + 1
    }

    /// `x` is `[inputs][t_in]`; writes `[outputs][t_out]` into `out` and returns `t_out`.
    fn forward_relu(&self, x: &[f32], t_in: usize, out: &mut [f32]) -> usize {
        let t_out = self.out_len(t_in);
        let width = self.inputs * KERNEL;
        // One column of the input (im2col) at a time, so each output is one dot product
        // of two contiguous rows.
        let mut col = [0f32; BINS * KERNEL];
        let col = &mut col[..width];
        for t in 0..t_out {
            for i in 0..self.inputs {
                for k in 0..KERNEL {
                    // Input position t*stride + k - 1 (padding 1 on both sides).
                    let pos = (t * self.stride + k).checked_sub(1).filter(|p| *p < t_in);
                    col[i * KERNEL + k] = pos.map_or(0.0, |p| x[i * t_in + p]);
                }
            }
            for o in 0..self.outputs {
                let row = &self.weight[o * width..(o + 1) * width];
                out[o * t_out + t] = (self.bias[o] + dot(row, col)).max(0.0);
            }
        }
        t_out
    }
}

/// The Silero VAD weights, loaded once and shared (read-only) by any number of streams.
pub struct Silero {
    /// `[2 * BINS][N_FFT]`: real parts of the 129 bins, then imaginary parts.
    stft: Vec<f32>,
    encoder: [Conv; 4],
    /// `[4 * HIDDEN][2 * HIDDEN]`: each gate row is `weight_ih` then `weight_hh`, so a
    /// gate is one dot product with `[x, h]`. Gates in PyTorch's order: i, f, g, o.
    lstm: Vec<f32>,
    /// `bias_ih + bias_hh`.
    lstm_bias: Vec<f32>,
    head: Vec<f32>,
    head_bias: f32,
}

/// One stream's memory between chunks. Cheap to create; [`VadState::reset`] when the
/// stream starts over (a new utterance after a gap, a new connection).
#[derive(Clone, Debug)]
pub struct VadState {
    h: [f32; HIDDEN],
    c: [f32; HIDDEN],
    context: [f32; CONTEXT],
}

impl VadState {
    fn new() -> Self {
        VadState {
            h: [0.0; HIDDEN],
            c: [0.0; HIDDEN],
            context: [0.0; CONTEXT],
        }
    }

    /// Forgets everything heard so far, as a fresh [`Silero::state`] would.
    pub fn reset(&mut self) {
        *self = VadState::new();
    }
}

/// Reads one tensor by name, checks its shape and returns its values (row-major, f32).
fn take(
    tensors: &std::collections::HashMap<String, Tensor>,
    name: &str,
    shape: &[usize],
) -> Result<Vec<f32>, SpeechError> {
    let t = tensors
        .get(name)
        .ok_or_else(|| SpeechError::Model(format!("Silero VAD weights lack `{name}`")))?;
    if t.dims() != shape {
        return Err(SpeechError::Model(format!(
            "Silero VAD weight `{name}` has shape {:?}, expected {shape:?}",
            t.dims()
        )));
    }
    Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
}

impl Silero {
    /// Loads `silero_vad_16k.safetensors`, checking every tensor's name and shape.
    pub fn load(path: &Path) -> Result<Self, SpeechError> {
        if !path.is_file() {
            return Err(SpeechError::Model(format!(
                "no Silero VAD weights at {} (run scripts/fetch-vad.sh {} to get them)",
                path.display(),
                path.parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."))
                    .display()
            )));
        }
        let tensors = candle_core::safetensors::load(path, &Device::Cpu)
            .map_err(|e| SpeechError::Model(format!("cannot read {}: {e}", path.display())))?;
        let conv = |i: usize, inputs: usize, outputs: usize, stride: usize| {
            Ok::<_, SpeechError>(Conv {
                weight: take(
                    &tensors,
                    &format!("conv{i}.weight"),
                    &[outputs, inputs, KERNEL],
                )?,
                bias: take(&tensors, &format!("conv{i}.bias"), &[outputs])?,
                inputs,
                outputs,
                stride,
            })
        };
        let encoder = [
            conv(1, BINS, 128, 1)?,
            conv(2, 128, 64, 2)?,
            conv(3, 64, 64, 2)?,
            conv(4, 64, HIDDEN, 1)?,
        ];
        let gates = 4 * HIDDEN;
        let w_ih = take(&tensors, "lstm_cell.weight_ih", &[gates, HIDDEN])?;
        let w_hh = take(&tensors, "lstm_cell.weight_hh", &[gates, HIDDEN])?;
        let b_ih = take(&tensors, "lstm_cell.bias_ih", &[gates])?;
        let b_hh = take(&tensors, "lstm_cell.bias_hh", &[gates])?;
        let mut lstm = Vec::with_capacity(gates * 2 * HIDDEN);
        for j in 0..gates {
            lstm.extend_from_slice(&w_ih[j * HIDDEN..(j + 1) * HIDDEN]);
            lstm.extend_from_slice(&w_hh[j * HIDDEN..(j + 1) * HIDDEN]);
        }
        let head_bias = take(&tensors, "final_conv.bias", &[1])?;
        Ok(Silero {
            stft: take(&tensors, "stft_conv.weight", &[2 * BINS, 1, N_FFT])?,
            encoder,
            lstm,
            lstm_bias: b_ih.iter().zip(&b_hh).map(|(a, b)| a + b).collect(),
            head: take(&tensors, "final_conv.weight", &[1, HIDDEN, 1])?,
            head_bias: head_bias[0],
        })
    }

    /// A fresh per-stream state (silence before the first chunk).
    pub fn state(&self) -> VadState {
        VadState::new()
    }

    /// The probability that `chunk` — exactly [`VAD_CHUNK`] samples of 16 kHz audio,
    /// nominally in [-1, 1] — is speech, given what `state` heard before; advances
    /// `state`. A wrong length or a non-finite sample is an error and leaves `state` as
    /// it was (a NaN would otherwise stay in the LSTM for the rest of the stream).
    /// Samples a little past ±1 (resampler overshoot) are taken as they are.
    pub fn probability(&self, state: &mut VadState, chunk: &[f32]) -> Result<f32, SpeechError> {
        if chunk.len() != VAD_CHUNK {
            return Err(SpeechError::Audio(format!(
                "voice activity detection takes chunks of {VAD_CHUNK} samples, not {}",
                chunk.len()
            )));
        }
        if !chunk.iter().all(|s| s.is_finite()) {
            return Err(SpeechError::Audio(
                "voice activity detection got a sample that is not a finite number".into(),
            ));
        }

        let mut x = [0f32; PADDED];
        x[..CONTEXT].copy_from_slice(&state.context);
        x[CONTEXT..WINDOW].copy_from_slice(chunk);
        // Reflect (the edge sample itself is not repeated): x[W-1+k] = x[W-1-k].
        for k in 1..=RIGHT_PAD {
            x[WINDOW - 1 + k] = x[WINDOW - 1 - k];
        }

        // STFT magnitudes, [BINS][FRAMES].
        let mut mag = [0f32; BINS * FRAMES];
        for t in 0..FRAMES {
            let frame = &x[t * HOP..t * HOP + N_FFT];
            for b in 0..BINS {
                let re = dot(&self.stft[b * N_FFT..(b + 1) * N_FFT], frame);
                let im = dot(
                    &self.stft[(BINS + b) * N_FFT..(BINS + b + 1) * N_FFT],
                    frame,
                );
                mag[b * FRAMES + t] = (re * re + im * im).sqrt();
            }
        }

        let mut a = [0f32; 128 * FRAMES];
        let mut b = [0f32; 128 * FRAMES];
        let t1 = self.encoder[0].forward_relu(&mag, FRAMES, &mut a);
        let t2 = self.encoder[1].forward_relu(&a, t1, &mut b);
        let t3 = self.encoder[2].forward_relu(&b, t2, &mut a);
        let t4 = self.encoder[3].forward_relu(&a, t3, &mut b);
        debug_assert_eq!(t4, 1, "the encoder leaves one frame per chunk");

        // LSTM cell on [x, h].
        let mut xh = [0f32; 2 * HIDDEN];
        xh[..HIDDEN].copy_from_slice(&b[..HIDDEN]);
        xh[HIDDEN..].copy_from_slice(&state.h);
        let width = 2 * HIDDEN;
        let gate = |j: usize| self.lstm_bias[j] + dot(&self.lstm[j * width..(j + 1) * width], &xh);
        let mut out = 0f32;
        for u in 0..HIDDEN {
            let i = sigmoid(gate(u));
            let f = sigmoid(gate(HIDDEN + u));
            let g = gate(2 * HIDDEN + u).tanh();
            let o = sigmoid(gate(3 * HIDDEN + u));
            let c = f * state.c[u] + i * g;
            let h = o * c.tanh();
            state.c[u] = c;
            state.h[u] = h;
            out += self.head[u] * h.max(0.0);
        }
        state.context.copy_from_slice(&chunk[VAD_CHUNK - CONTEXT..]);
        // The mean over time of the net is over its single remaining frame.
        Ok(sigmoid(out + self.head_bias))
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Dot product with eight independent sums, so the compiler can keep them in vector
/// registers (a single running sum has to be added in order and stays scalar).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 8];
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let tail = n - n % 8;
    let mut sum: f32 = acc.iter().sum();
    for (x, y) in a[tail..].iter().zip(&b[tail..]) {
        sum += x * y;
    }
    sum
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::PathBuf;
    use std::time::Instant;

    use super::*;
    use crate::audio::{DecodeLimits, load_16k};

    fn weights_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../models/silero-vad/silero_vad_16k.safetensors")
    }

    /// The fetched model, or `None` (with a note) where `scripts/fetch-vad.sh` has not run.
    fn model() -> Option<Silero> {
        let path = weights_path();
        if !path.is_file() {
            eprintln!(
                "skipped: no {} (bash scripts/fetch-vad.sh models/silero-vad)",
                path.display()
            );
            return None;
        }
        Some(Silero::load(&path).expect("the fetched Silero VAD weights load"))
    }

    fn clip(name: &str) -> Option<Vec<f32>> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/audio")
            .join(name);
        if !path.is_file() {
            eprintln!("skipped: no {}", path.display());
            return None;
        }
        Some(load_16k(&path, &DecodeLimits::default()).expect("the clip decodes"))
    }

    fn probabilities(vad: &Silero, audio: &[f32]) -> Vec<f32> {
        let mut state = vad.state();
        audio
            .chunks_exact(VAD_CHUNK)
            .map(|c| vad.probability(&mut state, c).expect("a whole chunk"))
            .collect()
    }

    /// Uniform white noise in [-amplitude, amplitude], the same every run.
    fn noise(samples: usize, amplitude: f32) -> Vec<f32> {
        let mut seed: u32 = 0x2545_f491;
        (0..samples)
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (seed as f32 / u32::MAX as f32 * 2.0 - 1.0) * amplitude
            })
            .collect()
    }

    #[test]
    fn is_send_and_sync() {
        fn shared<T: Send + Sync>() {}
        shared::<Silero>();
        shared::<VadState>();
    }

    #[test]
    fn a_missing_file_names_the_script() {
        let err = Silero::load(Path::new("/nonexistent/silero_vad_16k.safetensors"))
            .err()
            .expect("no such file");
        let msg = err.to_string();
        assert!(matches!(err, SpeechError::Model(_)), "{msg}");
        assert!(msg.contains("scripts/fetch-vad.sh /nonexistent"), "{msg}");
    }

    #[test]
    fn a_broken_file_is_a_model_error() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("garbage.safetensors");
        std::fs::write(&garbage, b"not a safetensors file").unwrap();
        assert!(matches!(Silero::load(&garbage), Err(SpeechError::Model(_))));
        let wrong = dir.path().join("wrong.safetensors");
        let basis = Tensor::zeros((2 * BINS, N_FFT), DType::F32, &Device::Cpu).unwrap();
        candle_core::safetensors::save(&HashMap::from([("stft_conv.weight", basis)]), &wrong)
            .unwrap();
        let msg = Silero::load(&wrong).err().expect("incomplete").to_string();
        assert!(msg.contains("lack `conv1.weight`"), "{msg}");
    }

    /// Values from Silero's own exported graph (`silero_vad_16k_op15.onnx` from the same
    /// wheel) run by onnxruntime with this file's weights put in (the wheel's ONNX and JIT
    /// models carry a different checkpoint), chunk by chunk over the whole clip.
    #[test]
    fn matches_silero_s_graph_on_news_01() {
        let (Some(vad), Some(audio)) = (model(), clip("news_01.wav")) else {
            return;
        };
        let p = probabilities(&vad, &audio);
        assert_eq!(p.len(), 230);
        let pinned = [
            (0, 0.0595015),
            (26, 0.9789391),
            (34, 0.6362956),
            (99, 0.2009985),
            (103, 0.0303384),
            (107, 0.1726256),
            (167, 0.9515453),
            (220, 0.9634994),
            (224, 0.0422407),
            (228, 0.0272433),
        ];
        for (i, want) in pinned {
            assert!((p[i] - want).abs() < 1e-5, "chunk {i}: {} vs {want}", p[i]);
        }
    }

    #[test]
    fn speech_is_likely_and_silence_and_noise_are_not() {
        let Some(vad) = model() else { return };
        for name in ["news_01.wav", "meeting_01.wav", "lecture_01.wav"] {
            let Some(audio) = clip(name) else { continue };
            let p = probabilities(&vad, &audio);
            let speech = p.iter().filter(|p| **p > 0.5).count() as f32 / p.len() as f32;
            assert!(
                speech > 0.8,
                "{name}: only {speech} of chunks look like speech"
            );
        }
        let quiet = |audio: &[f32]| {
            let p = probabilities(&vad, audio);
            p.iter().filter(|p| **p >= 0.1).count() as f32 / p.len() as f32
        };
        assert_eq!(quiet(&vec![0.0; 16_000 * 5]), 0.0, "digital silence");
        for amplitude in [0.001, 0.003, 0.01] {
            let loud = quiet(&noise(16_000 * 5, amplitude));
            assert!(
                loud < 0.02,
                "noise at {amplitude}: {loud} of chunks above 0.1"
            );
        }
    }

    #[test]
    fn spliced_silence_shows_a_dip() {
        let (Some(vad), Some(audio)) = (model(), clip("news_01.wav")) else {
            return;
        };
        // 3 s of speech (96 chunks), 2 s of silence (62.5 chunks), the rest of the clip.
        let cut = 96 * VAD_CHUNK;
        let mut spliced = audio[..cut].to_vec();
        spliced.extend(std::iter::repeat_n(0.0, 32_000));
        spliced.extend_from_slice(&audio[cut..]);
        let p = probabilities(&vad, &spliced);
        let mean = |r: std::ops::Range<usize>| p[r.clone()].iter().sum::<f32>() / r.len() as f32;
        let (before, gap, after) = (mean(10..90), mean(100..158), mean(165..p.len()));
        assert!(before > 0.8 && after > 0.8, "speech: {before}, {after}");
        assert!(gap < 0.1, "silence: {gap}");
        assert!(p[100..158].iter().all(|p| *p < 0.1), "{:?}", &p[100..158]);
    }

    #[test]
    fn bad_chunks_are_refused_and_reset_starts_over() {
        let Some(vad) = model() else { return };
        let Some(audio) = clip("news_01.wav") else {
            return;
        };
        let mut state = vad.state();
        let first = vad.probability(&mut state, &audio[..VAD_CHUNK]).unwrap();
        let heard = state.clone();
        for bad in [&audio[..VAD_CHUNK - 1], &audio[..VAD_CHUNK + 1], &[]] {
            assert!(matches!(
                vad.probability(&mut state, bad),
                Err(SpeechError::Audio(_))
            ));
        }
        let mut nan = audio[..VAD_CHUNK].to_vec();
        nan[7] = f32::NAN;
        assert!(vad.probability(&mut state, &nan).is_err());
        assert_eq!(state.h, heard.h, "a refused chunk leaves the state alone");
        assert_eq!(state.context, heard.context);
        state.reset();
        let again = vad.probability(&mut state, &audio[..VAD_CHUNK]).unwrap();
        assert_eq!(first, again);
    }

    /// The same forward pass in candle ops, to check the loops against candle's conv1d and
    /// to time the two.
    struct CandleSilero(HashMap<String, Tensor>);

    impl CandleSilero {
        fn probability(
            &self,
            (h, c, context): &mut (Tensor, Tensor, Vec<f32>),
            chunk: &[f32],
        ) -> candle_core::Result<f32> {
            let w = |n: &str| &self.0[n];
            let mut x = context.clone();
            x.extend_from_slice(chunk);
            for k in 1..=RIGHT_PAD {
                x.push(x[WINDOW - 1 - k]);
            }
            *context = chunk[VAD_CHUNK - CONTEXT..].to_vec();
            let x = Tensor::from_vec(x, (1, 1, PADDED), &Device::Cpu)?;
            let s = x.conv1d(w("stft_conv.weight"), 0, HOP, 1, 1)?;
            let mut m = (s.narrow(1, 0, BINS)?.sqr()? + s.narrow(1, BINS, BINS)?.sqr()?)?.sqrt()?;
            for (i, stride) in [(1, 1), (2, 2), (3, 2), (4, 1)] {
                let b = w(&format!("conv{i}.bias"));
                m = m
                    .conv1d(w(&format!("conv{i}.weight")), 1, stride, 1, 1)?
                    .broadcast_add(&b.reshape((1, b.dim(0)?, 1))?)?
                    .relu()?;
            }
            let x = m.squeeze(2)?;
            let gates = (x.matmul(&w("lstm_cell.weight_ih").t()?)?
                + h.matmul(&w("lstm_cell.weight_hh").t()?)?)?
            .broadcast_add(&(w("lstm_cell.bias_ih") + w("lstm_cell.bias_hh"))?)?;
            let g = gates.chunk(4, 1)?;
            let sig = candle_nn::ops::sigmoid;
            *c = ((sig(&g[1])? * &*c)? + (sig(&g[0])? * g[2].tanh()?)?)?;
            *h = (sig(&g[3])? * c.tanh()?)?;
            let y = h
                .relu()?
                .matmul(&w("final_conv.weight").reshape((HIDDEN, 1))?)?
                .broadcast_add(w("final_conv.bias"))?;
            sig(&y)?.flatten_all()?.to_vec1::<f32>().map(|v| v[0])
        }
    }

    /// Prints the time per chunk of the loops and of the same net in candle ops (no
    /// assertion on time; the two must agree).
    #[test]
    fn per_chunk_time() {
        let (Some(vad), Some(audio)) = (model(), clip("news_01.wav")) else {
            return;
        };
        let candle =
            CandleSilero(candle_core::safetensors::load(weights_path(), &Device::Cpu).unwrap());
        let zeros = || Tensor::zeros((1, HIDDEN), DType::F32, &Device::Cpu).unwrap();
        let mut cs = (zeros(), zeros(), vec![0.0; CONTEXT]);
        let mut state = vad.state();
        for c in audio.chunks_exact(VAD_CHUNK) {
            let (ours, theirs) = (
                vad.probability(&mut state, c).unwrap(),
                candle.probability(&mut cs, c).unwrap(),
            );
            assert!((ours - theirs).abs() < 1e-4, "{ours} vs {theirs}");
        }
        let chunks: Vec<&[f32]> = audio.chunks_exact(VAD_CHUNK).collect();
        let rounds = 20;
        let start = Instant::now();
        for _ in 0..rounds {
            state.reset();
            for c in &chunks {
                std::hint::black_box(vad.probability(&mut state, c).unwrap());
            }
        }
        let loops = start.elapsed().as_secs_f64() / (rounds * chunks.len()) as f64;
        let start = Instant::now();
        for c in &chunks {
            std::hint::black_box(candle.probability(&mut cs, c).unwrap());
        }
        let ops = start.elapsed().as_secs_f64() / chunks.len() as f64;
        eprintln!(
            "Silero VAD per 32 ms chunk: {:.1} µs in loops, {:.1} µs in candle ops",
            loops * 1e6,
            ops * 1e6
        );
    }
}
