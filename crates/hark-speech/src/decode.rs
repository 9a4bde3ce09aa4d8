//! Decoding one 30-second window: the token-by-token search (greedy, sampling at a
//! temperature, or beam search) under Whisper's rules for timestamps and suppressed tokens.

use candle_core::Tensor;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::SpeechError;
use crate::tokenizer::SpecialTokens;
use crate::whisper::Whisper;

/// The latest first timestamp allowed, in 0.02 s steps (1 s), as OpenAI's decoder has it.
const MAX_INITIAL_TIMESTAMP: u32 = 50;

/// How many encoder positions (20 ms each; 1,500 make Whisper's 30-second window) a window
/// of audio is encoded over. Fewer positions make the encoder, the decoder's
/// cross-attention and the word alignment cheaper in proportion, which is what a
/// streaming recognizer re-decoding a few seconds of audio pays for on every update
/// (whisper.cpp's `audio_ctx`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EncoderContext {
    /// Always the full 30-second window, the audio padded with silence (the mel of
    /// zeros), as OpenAI and faster-whisper encode it.
    #[default]
    Full,
    /// A window shorter than 30 s is encoded over its own audio plus `spare` positions of
    /// that padding (at most the full window). An exact fit (`spare: 0`) sends tiny.en
    /// into repetition loops: the model was only ever shown audio followed by padding.
    /// BENCHMARKS.md ("Encoder context") measures the spare counts.
    Trimmed { spare: usize },
}

impl EncoderContext {
    /// What streaming decodes use: the smallest spare count measured to keep the word
    /// error rate within a point of the full window's.
    pub const STREAMING: EncoderContext = EncoderContext::Trimmed { spare: 64 };

    /// Encoder positions (two mel frames each) for a window of `window_frames` mel
    /// frames, with `full` positions in the model's whole context.
    pub fn positions(self, window_frames: usize, full: usize) -> usize {
        match self {
            EncoderContext::Full => full,
            EncoderContext::Trimmed { spare } => window_frames
                .div_ceil(2)
                .saturating_add(spare)
                .clamp(1, full),
        }
    }
}

/// The most tokens a trimmed window may take before it counts as stuck: ten a second
/// (fast speech with timestamps needs about six) and a dozen more.
pub(crate) fn trimmed_token_cap(window_seconds: f64) -> usize {
    12 + (window_seconds * 10.0).ceil() as usize
}

/// Whether the text tokens (those below `eot`) hold a run of two or more tokens said three
/// times over, back to back: the decoder stuck in a loop (or, rarely, a speaker repeating
/// a phrase, for which the trimmed context only costs a second decode).
pub(crate) fn repeats(tokens: &[u32], eot: u32) -> bool {
    let text: Vec<u32> = tokens.iter().copied().filter(|t| *t < eot).collect();
    (2..=text.len() / 3).any(|period| {
        text.windows(3 * period)
            .any(|w| w[..period] == w[period..2 * period] && w[..period] == w[2 * period..])
    })
}

/// Which tokens may never be produced, and which not as the very first token.
#[derive(Debug, Clone)]
pub struct Suppression {
    pub always: Vec<u32>,
    pub at_begin: Vec<u32>,
}

pub struct WindowRequest<'a> {
    pub prompt: &'a [u32],
    /// Index in `prompt` of `<|startoftranscript|>` (where the no-speech probability is read).
    pub sot_index: usize,
    pub temperature: f64,
    pub beam_size: usize,
    pub timestamps: bool,
    pub max_tokens: usize,
    /// The latest timestamp (in 0.02 s steps) the window's audio reaches: the encoder
    /// positions it was encoded over (1,500 for a full 30-second window).
    pub last_timestamp: u32,
    pub seed: u64,
}

#[derive(Debug, Clone)]
pub struct WindowResult {
    /// Generated tokens, text and timestamps, without the end-of-text token.
    pub tokens: Vec<u32>,
    pub avg_logprob: f64,
    pub no_speech_prob: f64,
}

pub struct Decoder<'a> {
    pub model: &'a Whisper,
    pub special: SpecialTokens,
    pub suppression: &'a Suppression,
}

#[derive(Clone)]
struct Hypothesis {
    tokens: Vec<u32>,
    sum_logprob: f64,
}

impl Decoder<'_> {
    pub fn decode(
        &self,
        audio: &Tensor,
        req: &WindowRequest<'_>,
    ) -> Result<WindowResult, SpeechError> {
        if req.beam_size > 1 && req.temperature == 0.0 {
            self.beam_search(audio, req)
        } else {
            self.sample(audio, req)
        }
    }

    /// Runs the prompt; returns the state, the logits for the first generated token and
    /// the no-speech probability.
    fn prime(
        &self,
        audio: &Tensor,
        req: &WindowRequest<'_>,
        batch: usize,
    ) -> Result<(crate::whisper::DecoderState, Vec<f32>, f64), SpeechError> {
        let device = self.model.device();
        let mut state = self.model.start(audio)?;
        let (head, tail) = req.prompt.split_at(req.sot_index + 1);
        let rows = |part: &[u32]| Tensor::new(part, device)?.unsqueeze(0);
        let at_sot = self.model.decode_last(&rows(head)?, &mut state)?;
        let at_sot_row: Vec<f32> = at_sot.get(0)?.to_vec1()?;
        let no_speech_prob = self
            .special
            .no_speech
            .map(|id| softmax_at(&at_sot_row, id as usize))
            .unwrap_or(0.0);
        let first = if tail.is_empty() {
            at_sot_row
        } else {
            self.model
                .decode_last(&rows(tail)?, &mut state)?
                .get(0)?
                .to_vec1()?
        };
        // Every sequence starts from the same prompt: run it once, then copy its cache.
        if batch > 1 {
            state.select(&vec![0; batch])?;
        }
        Ok((state, first, no_speech_prob))
    }

    fn sample(&self, audio: &Tensor, req: &WindowRequest<'_>) -> Result<WindowResult, SpeechError> {
        let (mut state, mut logits, no_speech_prob) = self.prime(audio, req, 1)?;
        let mut rng = StdRng::seed_from_u64(req.seed);
        let mut tokens: Vec<u32> = Vec::new();
        let mut sum_logprob = 0.0;
        loop {
            self.apply_rules(&mut logits, &tokens, req);
            let logprobs = log_softmax(&logits);
            let next = if req.temperature > 0.0 {
                sample_index(&logits, req.temperature, &mut rng)
            } else {
                argmax(&logits)
            };
            sum_logprob += f64::from(logprobs[next]);
            let next = next as u32;
            if next == self.special.eot || tokens.len() >= req.max_tokens {
                break;
            }
            tokens.push(next);
            if state.len >= self.model.dims.text_ctx {
                break;
            }
            let input = Tensor::new(&[[next]], self.model.device())?;
            logits = self
                .model
                .decode_last(&input, &mut state)?
                .get(0)?
                .to_vec1()?;
        }
        let avg_logprob = sum_logprob / (tokens.len() + 1) as f64;
        Ok(WindowResult {
            tokens,
            avg_logprob,
            no_speech_prob,
        })
    }

    /// OpenAI's beam search: keep `beam_size` live hypotheses, each step expanding each by
    /// its `beam_size + 1` best tokens; stop when `beam_size` have finished; pick the best
    /// by length-normalised log probability.
    fn beam_search(
        &self,
        audio: &Tensor,
        req: &WindowRequest<'_>,
    ) -> Result<WindowResult, SpeechError> {
        let beams = req.beam_size;
        let (mut state, first, no_speech_prob) = self.prime(audio, req, beams)?;
        let mut live = vec![Hypothesis {
            tokens: Vec::new(),
            sum_logprob: 0.0,
        }];
        let mut finished: Vec<Hypothesis> = Vec::new();
        let mut rows_logits = vec![first];
        loop {
            let mut candidates: Vec<(f64, usize, u32, f64)> = Vec::new();
            for (row, hyp) in live.iter().enumerate() {
                let mut logits = rows_logits[row].clone();
                self.apply_rules(&mut logits, &hyp.tokens, req);
                let logprobs = log_softmax(&logits);
                for token in top_k(&logprobs, beams + 1) {
                    let lp = f64::from(logprobs[token]);
                    candidates.push((hyp.sum_logprob + lp, row, token as u32, lp));
                }
            }
            candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
            let mut next_live: Vec<Hypothesis> = Vec::new();
            let mut parents: Vec<u32> = Vec::new();
            let mut inputs: Vec<u32> = Vec::new();
            // Walk the candidates best first until the beam is full again; the ones ending
            // the text on the way become finished hypotheses (as OpenAI's decoder does).
            for (score, row, token, _) in candidates {
                let mut tokens = live[row].tokens.clone();
                if token == self.special.eot || tokens.len() >= req.max_tokens {
                    if finished.len() < beams {
                        finished.push(Hypothesis {
                            tokens,
                            sum_logprob: score,
                        });
                    }
                    continue;
                }
                tokens.push(token);
                next_live.push(Hypothesis {
                    tokens,
                    sum_logprob: score,
                });
                parents.push(row as u32);
                inputs.push(token);
                if next_live.len() == beams {
                    break;
                }
            }
            if finished.len() >= beams
                || next_live.is_empty()
                || state.len >= self.model.dims.text_ctx
            {
                finished.extend(next_live);
                break;
            }
            // Pad to a full batch by repeating the last row, so tensor shapes stay fixed.
            while parents.len() < beams {
                parents.push(*parents.last().unwrap_or(&0));
                inputs.push(*inputs.last().unwrap_or(&self.special.eot));
            }
            state.select(&parents)?;
            let input = Tensor::new(inputs.as_slice(), self.model.device())?.unsqueeze(1)?;
            let logits = self.model.decode_last(&input, &mut state)?;
            rows_logits = (0..next_live.len())
                .map(|r| logits.get(r)?.to_vec1::<f32>())
                .collect::<candle_core::Result<Vec<_>>>()?;
            live = next_live;
        }
        let best = finished
            .into_iter()
            .max_by(|a, b| {
                let sa = a.sum_logprob / a.tokens.len().max(1) as f64;
                let sb = b.sum_logprob / b.tokens.len().max(1) as f64;
                sa.total_cmp(&sb)
            })
            .unwrap_or(Hypothesis {
                tokens: Vec::new(),
                sum_logprob: 0.0,
            });
        let avg_logprob = best.sum_logprob / (best.tokens.len() + 1) as f64;
        Ok(WindowResult {
            tokens: best.tokens,
            avg_logprob,
            no_speech_prob,
        })
    }

    /// Masks what may not come next, given the tokens generated so far in this window.
    fn apply_rules(&self, logits: &mut [f32], generated: &[u32], req: &WindowRequest<'_>) {
        let s = &self.special;
        let block = |logits: &mut [f32], id: u32| {
            if let Some(l) = logits.get_mut(id as usize) {
                *l = f32::NEG_INFINITY;
            }
        };
        if generated.is_empty() {
            for &id in &self.suppression.at_begin {
                block(logits, id);
            }
        }
        for &id in &self.suppression.always {
            block(logits, id);
        }
        block(logits, s.no_timestamps);
        let len = logits.len();
        let ts = (s.timestamp_begin as usize).min(len);
        if !req.timestamps {
            logits[ts..].fill(f32::NEG_INFINITY);
            return;
        }
        // No time past the audio the window was encoded over.
        let past_end = ts + req.last_timestamp as usize + 1;
        if past_end < len {
            logits[past_end..].fill(f32::NEG_INFINITY);
        }
        let is_ts = |t: u32| t >= s.timestamp_begin;
        let last_ts = generated.last().is_some_and(|t| is_ts(*t));
        let penultimate_ts = generated.len() < 2 || is_ts(generated[generated.len() - 2]);
        if last_ts {
            if penultimate_ts {
                logits[ts..].fill(f32::NEG_INFINITY);
            } else {
                logits[..s.eot as usize].fill(f32::NEG_INFINITY);
            }
        }
        // Timestamps never go backwards (and a closing one may repeat the opening one).
        if let Some(&latest) = generated.iter().rev().find(|t| is_ts(**t)) {
            let floor = if last_ts && !penultimate_ts {
                latest
            } else {
                latest + 1
            };
            logits[ts..(floor as usize).clamp(ts, len)].fill(f32::NEG_INFINITY);
        }
        if generated.is_empty() {
            logits[..ts].fill(f32::NEG_INFINITY);
            let last_allowed = ts + MAX_INITIAL_TIMESTAMP as usize;
            if last_allowed + 1 < len {
                logits[last_allowed + 1..].fill(f32::NEG_INFINITY);
            }
        }
        // If a timestamp is more likely than any single text token, insist on a timestamp.
        let logprobs = log_softmax(logits);
        let ts_mass = log_sum_exp(&logprobs[ts..]);
        let best_text = logprobs[..ts]
            .iter()
            .copied()
            .fold(f32::NEG_INFINITY, f32::max);
        if ts_mass > best_text {
            logits[..ts].fill(f32::NEG_INFINITY);
        }
    }
}

fn argmax(values: &[f32]) -> usize {
    values
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

fn top_k(values: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len())
        .filter(|i| values[*i].is_finite())
        .collect();
    let k = k.min(idx.len());
    if k == 0 {
        return idx;
    }
    idx.select_nth_unstable_by(k - 1, |a, b| values[*b].total_cmp(&values[*a]));
    idx.truncate(k);
    idx
}

fn log_sum_exp(values: &[f32]) -> f32 {
    let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return max;
    }
    max + values.iter().map(|v| (v - max).exp()).sum::<f32>().ln()
}

pub(crate) fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let lse = log_sum_exp(logits);
    logits.iter().map(|l| l - lse).collect()
}

fn softmax_at(logits: &[f32], index: usize) -> f64 {
    f64::from(
        log_softmax(logits)
            .get(index)
            .copied()
            .unwrap_or(f32::NEG_INFINITY)
            .exp(),
    )
}

fn sample_index(logits: &[f32], temperature: f64, rng: &mut StdRng) -> usize {
    let scaled: Vec<f32> = logits.iter().map(|l| l / temperature as f32).collect();
    let probs: Vec<f32> = log_softmax(&scaled).into_iter().map(f32::exp).collect();
    let mut r: f32 = rng.random::<f32>() * probs.iter().sum::<f32>();
    for (i, p) in probs.iter().enumerate() {
        r -= p;
        if r <= 0.0 {
            return i;
        }
    }
    argmax(&probs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_helpers() {
        let lp = log_softmax(&[0.0, 0.0]);
        assert!((lp[0] - (0.5f32).ln()).abs() < 1e-6);
        assert_eq!(argmax(&[1.0, 3.0, 2.0]), 1);
        let mut top = top_k(&[0.1, 0.9, f32::NEG_INFINITY, 0.5], 2);
        top.sort();
        assert_eq!(top, vec![1, 3]);
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(sample_index(&[0.0, 100.0, 0.0], 1.0, &mut rng), 1);
    }

    #[test]
    fn trimmed_contexts_cover_the_audio_and_the_spare() {
        let trimmed = EncoderContext::Trimmed { spare: 64 };
        assert_eq!(EncoderContext::Full.positions(500, 1500), 1500);
        assert_eq!(trimmed.positions(500, 1500), 250 + 64);
        assert_eq!(trimmed.positions(501, 1500), 251 + 64);
        assert_eq!(trimmed.positions(2990, 1500), 1500);
        assert_eq!(EncoderContext::Trimmed { spare: 0 }.positions(0, 1500), 1);
        assert_eq!(EncoderContext::default(), EncoderContext::Full);
    }

    #[test]
    fn loops_are_told_from_speech() {
        let eot = 100;
        assert!(repeats(&[1, 5, 6, 5, 6, 5, 6, 2], eot));
        // Timestamps (past `eot`) between the repeats do not hide them.
        assert!(repeats(&[7, 8, 9, 150, 7, 8, 9, 160, 7, 8, 9], eot));
        assert!(!repeats(&[1, 2, 3, 1, 2, 3, 4], eot));
        assert!(!repeats(&[4, 4, 4, 4], eot));
        assert_eq!(trimmed_token_cap(5.0), 62);
    }
}
