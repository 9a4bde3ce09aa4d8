//! Word timestamps, as OpenAI's `whisper/timing.py` (and faster-whisper's `find_alignment`)
//! make them: the window's text is teacher-forced through the decoder once more, the
//! cross-attention of the model's alignment heads (heads that track where in the audio
//! the token being read is) is normalised and smoothed, and dynamic time warping finds the
//! monotonic path of tokens through audio frames. A word's time is where the path enters
//! its first and leaves its last token. Timings are only ever read off that path, never
//! spread evenly over a segment.

use candle_core::Tensor;

use crate::SpeechError;
use crate::engine::{Segment, Word};
use crate::tokenizer::Tokenizer;
use crate::whisper::Whisper;

/// Audio frames (encoder positions) per second.
const FRAMES_PER_SECOND: f64 = 50.0;
/// The median filter's width along time, timing.py's `medfilt_width`.
const MEDIAN_WIDTH: usize = 7;
/// Punctuation that joins the following word (timing.py's `prepend_punctuations`).
const PREPENDED: &str = "\"'“¿([{-";
/// Punctuation that joins the preceding word (timing.py's `append_punctuations`).
const APPENDED: &str = "\"'.。,，!！?？:：”)]}、";
/// What counts as punctuation when splitting into words (Python's `string.punctuation`).
const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
const SENTENCE_ENDS: &str = ".。!！?？";
/// Languages written without spaces between words: split on character boundaries.
const UNSPACED: [&str; 6] = ["zh", "ja", "th", "lo", "my", "yue"];

/// One word as aligned within a window: seconds from the window's start.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WordTiming {
    pub word: String,
    pub tokens: Vec<u32>,
    pub start: f64,
    pub end: f64,
    pub probability: f32,
}

/// The model, its tokenizer and its alignment heads: what aligning a window needs.
pub(crate) struct Aligner<'a> {
    pub model: &'a Whisper,
    pub tokenizer: &'a Tokenizer,
    /// `(decoder layer, head)` pairs.
    pub heads: &'a [(usize, usize)],
}

impl Aligner<'_> {
    /// Times `text_tokens` (no timestamps, no specials) against one window's encoder
    /// output; `content_frames` is how many of its mel frames hold audio (the rest is
    /// padding the words must not be placed in). `sot_sequence` is start-of-transcript,
    /// language and task, without the previous window's text.
    pub fn align(
        &self,
        audio: &Tensor,
        sot_sequence: &[u32],
        text_tokens: &[u32],
        content_frames: usize,
        language: &str,
    ) -> Result<Vec<WordTiming>, SpeechError> {
        let special = self.tokenizer.tokens;
        let words = split_words(self.tokenizer, text_tokens, UNSPACED.contains(&language));
        if words.is_empty() {
            return Ok(Vec::new());
        }
        let mut tokens = sot_sequence.to_vec();
        tokens.push(special.no_timestamps);
        tokens.extend_from_slice(text_tokens);
        tokens.push(special.eot);
        let layers = self.model.dims.decoder_layers;
        let mut scores: Vec<Option<Tensor>> = vec![None; layers];
        let heads: Vec<(usize, usize)> = self
            .heads
            .iter()
            .copied()
            .filter(|&(l, h)| l < layers && h < self.model.dims.decoder_heads)
            .collect();
        if heads.is_empty() {
            return Err(SpeechError::Model(
                "the model has no usable alignment heads".into(),
            ));
        }
        for &(layer, _) in &heads {
            // Any tensor marks the slot as wanted; the pass replaces it with the scores.
            scores[layer] = Some(Tensor::zeros(1, candle_core::DType::F32, audio.device())?);
        }
        // Position `sot + i` (`<|notimestamps|>`, then the text) predicts text token `i`.
        let sot = sot_sequence.len();
        let logits =
            self.model
                .forced(audio, &tokens, sot..sot + text_tokens.len(), &mut scores)?;
        let n = tokens.len();
        let eot = special.eot as usize;
        let rows: Vec<Vec<f32>> = logits.narrow(1, 0, eot)?.to_vec2()?;
        let probabilities: Vec<f32> = rows
            .iter()
            .zip(text_tokens)
            .map(|(row, &token)| token_probability(row, token as usize))
            .collect();

        let mut matrix: Option<(Vec<f32>, usize)> = None;
        for &(layer, head) in &heads {
            let Some(Some(qk)) = scores.get(layer) else {
                return Err(SpeechError::Model(format!(
                    "no cross-attention from layer {layer}"
                )));
            };
            let qk = qk.get(head)?;
            let frames = (content_frames / 2).clamp(1, qk.dim(1)?);
            let mut weights: Vec<f32> = qk.narrow(1, 0, frames)?.flatten_all()?.to_vec1()?;
            weights.chunks_exact_mut(frames).for_each(softmax_in_place);
            normalise_over_tokens(&mut weights, n, frames);
            weights
                .chunks_exact_mut(frames)
                .for_each(|row| median_filter(row, MEDIAN_WIDTH));
            let (sum, _) = matrix.get_or_insert_with(|| (vec![0.0; n * frames], frames));
            sum.iter_mut().zip(&weights).for_each(|(s, w)| *s += w);
        }
        let Some((sum, frames)) = matrix else {
            return Ok(Vec::new());
        };
        // Rows from `<|notimestamps|>` (which predicts the first text token) to the last
        // text token, negated: DTW looks for the cheapest path, the heads mark the likeliest.
        let count = heads.len() as f32;
        let rows = text_tokens.len() + 1;
        let cost: Vec<f32> = sum[sot * frames..(sot + rows) * frames]
            .iter()
            .map(|s| -s / count)
            .collect();
        let path = dtw(&cost, rows, frames);
        // Where the path first reaches each row: the time its token starts to be read.
        let mut jump_times = Vec::with_capacity(rows);
        let mut previous = None;
        for &(row, frame) in &path {
            if previous != Some(row) {
                jump_times.push(frame as f64 / FRAMES_PER_SECOND);
                previous = Some(row);
            }
        }
        let mut timings = Vec::with_capacity(words.len());
        let mut boundary = 0;
        for (word, word_tokens) in words {
            let next = boundary + word_tokens.len();
            let (Some(&start), Some(&end)) = (jump_times.get(boundary), jump_times.get(next))
            else {
                return Err(SpeechError::Model(
                    "the alignment path skipped tokens".into(),
                ));
            };
            let probs = &probabilities[boundary..next];
            timings.push(WordTiming {
                word,
                tokens: word_tokens,
                start,
                end,
                probability: probs.iter().sum::<f32>() / probs.len().max(1) as f32,
            });
            boundary = next;
        }
        Ok(timings)
    }
}

/// The softmax probability of `token` among the text tokens' logits in `row`.
fn token_probability(row: &[f32], token: usize) -> f32 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let total: f32 = row.iter().map(|l| (l - max).exp()).sum();
    row.get(token)
        .map_or(0.0, |l| (l - max).exp() / total.max(f32::MIN_POSITIVE))
}

fn softmax_in_place(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut total = 0.0;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        total += *v;
    }
    if total > 0.0 {
        row.iter_mut().for_each(|v| *v /= total);
    }
}

/// Z-scores each frame's column of a `[rows, frames]` matrix over the token axis, so a head
/// that attends everywhere at once counts for less than one that singles out a frame.
fn normalise_over_tokens(matrix: &mut [f32], rows: usize, frames: usize) {
    for f in 0..frames {
        let column = (0..rows).map(|r| matrix[r * frames + f]);
        let mean = column.clone().sum::<f32>() / rows as f32;
        let var = column.map(|v| (v - mean) * (v - mean)).sum::<f32>() / rows as f32;
        let std = var.sqrt();
        for r in 0..rows {
            let v = &mut matrix[r * frames + f];
            *v = if std > 0.0 { (*v - mean) / std } else { 0.0 };
        }
    }
}

/// A running median of odd `width` along `row`, reflecting at the edges (timing.py's
/// `median_filter`); rows no longer than half the width are left alone, as there.
fn median_filter(row: &mut [f32], width: usize) {
    let half = width / 2;
    let len = row.len();
    if len <= half {
        return;
    }
    let reflect = |i: isize| -> usize {
        let last = len as isize - 1;
        let mut i = i;
        if i < 0 {
            i = -i;
        }
        if i > last {
            i = 2 * last - i;
        }
        i.clamp(0, last) as usize
    };
    let source = row.to_vec();
    let mut window = Vec::with_capacity(width);
    for (i, out) in row.iter_mut().enumerate() {
        window.clear();
        window.extend(
            (i as isize - half as isize..=i as isize + half as isize).map(|j| source[reflect(j)]),
        );
        window.sort_by(f32::total_cmp);
        *out = window[half];
    }
}

/// Dynamic time warping over a `[rows, frames]` cost matrix: the cheapest monotonic path
/// from the first cell to the last, as `(row, frame)` pairs in order. Ties break as in
/// timing.py's `dtw_cpu` (diagonal, then down a row, then along time).
fn dtw(cost: &[f32], rows: usize, frames: usize) -> Vec<(usize, usize)> {
    let width = frames + 1;
    let mut total = vec![f32::INFINITY; (rows + 1) * width];
    let mut trace = vec![2u8; (rows + 1) * width];
    total[0] = 0.0;
    for j in 1..=frames {
        for i in 1..=rows {
            let c0 = total[(i - 1) * width + j - 1];
            let c1 = total[(i - 1) * width + j];
            let c2 = total[i * width + j - 1];
            let (c, t) = if c0 < c1 && c0 < c2 {
                (c0, 0)
            } else if c1 < c0 && c1 < c2 {
                (c1, 1)
            } else {
                (c2, 2)
            };
            total[i * width + j] = cost[(i - 1) * frames + j - 1] + c;
            trace[i * width + j] = t;
        }
    }
    trace[..width].fill(2);
    trace.iter_mut().step_by(width).for_each(|t| *t = 1);
    let (mut i, mut j) = (rows, frames);
    let mut path = Vec::with_capacity(rows + frames);
    while i > 0 || j > 0 {
        if i > 0 {
            path.push((i - 1, j.saturating_sub(1)));
        }
        match trace[i * width + j] {
            0 => {
                i -= 1;
                j -= 1;
            }
            1 => i -= 1,
            _ => j -= 1,
        }
    }
    path.reverse();
    path
}

/// Groups text tokens into words, as Whisper's tokenizer does: first into the smallest
/// runs that decode to whole characters, then (for languages with spaces) a run that
/// starts with a space or is punctuation begins a word and any other run joins the last.
fn split_words(tokenizer: &Tokenizer, tokens: &[u32], unspaced: bool) -> Vec<(String, Vec<u32>)> {
    let mut pieces: Vec<(String, Vec<u32>)> = Vec::new();
    let mut current = Vec::new();
    for &token in tokens {
        current.push(token);
        if let Ok(text) = String::from_utf8(tokenizer.bytes(&current)) {
            pieces.push((text, std::mem::take(&mut current)));
        }
    }
    if !current.is_empty() {
        pieces.push((tokenizer.decode(&current), current));
    }
    if unspaced {
        return pieces;
    }
    let mut words: Vec<(String, Vec<u32>)> = Vec::new();
    for (piece, piece_tokens) in pieces {
        let starts_word =
            piece.starts_with(' ') || PUNCTUATION.contains(piece.trim()) || words.is_empty();
        match words.last_mut() {
            Some((word, word_tokens)) if !starts_word => {
                word.push_str(&piece);
                word_tokens.extend(piece_tokens);
            }
            _ => words.push((piece, piece_tokens)),
        }
    }
    words
}

/// Moves opening punctuation onto the word after it and closing punctuation onto the word
/// before it, leaving empty words behind (timing.py's `merge_punctuations`).
fn merge_punctuations(alignment: &mut [WordTiming]) {
    if alignment.len() >= 2 {
        let mut j = alignment.len() - 1;
        for i in (0..alignment.len() - 1).rev() {
            let previous = &alignment[i];
            if previous.word.starts_with(' ') && PREPENDED.contains(previous.word.trim()) {
                let (word, tokens) = (
                    std::mem::take(&mut alignment[i].word),
                    std::mem::take(&mut alignment[i].tokens),
                );
                let following = &mut alignment[j];
                following.word = word + &following.word;
                following.tokens = [tokens, std::mem::take(&mut following.tokens)].concat();
            } else {
                j = i;
            }
        }
    }
    let mut i = 0;
    for j in 1..alignment.len() {
        if !alignment[i].word.ends_with(' ') && APPENDED.contains(alignment[j].word.as_str()) {
            let (word, tokens) = (
                std::mem::take(&mut alignment[j].word),
                std::mem::take(&mut alignment[j].tokens),
            );
            alignment[i].word.push_str(&word);
            alignment[i].tokens.extend(tokens);
        } else {
            i = j;
        }
    }
}

fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

fn round2(seconds: f64) -> f64 {
    (seconds * 100.0).round() / 100.0
}

/// Hands a window's aligned words to its segments (`texts`: each segment's text tokens, in
/// order), with timing.py's `add_word_timestamps` corrections: words implausibly long at
/// sentence and segment boundaries are cut to twice the median word duration (capped at
/// 0.7 s), and a segment's start and end snap to its words unless a word overhangs it.
/// `last_speech` carries the end of the last speech across windows.
pub(crate) fn add_word_timestamps(
    segments: &mut [Segment],
    texts: &[Vec<u32>],
    mut alignment: Vec<WordTiming>,
    offset: f64,
    last_speech: &mut f64,
) {
    let mut durations: Vec<f64> = alignment
        .iter()
        .map(|w| w.end - w.start)
        .filter(|d| *d != 0.0)
        .collect();
    let median_duration = median(&mut durations).min(0.7);
    let max_duration = median_duration * 2.0;
    if !durations.is_empty() {
        for i in 1..alignment.len() {
            if alignment[i].end - alignment[i].start > max_duration {
                if SENTENCE_ENDS.contains(alignment[i].word.as_str()) {
                    alignment[i].end = alignment[i].start + max_duration;
                } else if SENTENCE_ENDS.contains(alignment[i - 1].word.as_str()) {
                    alignment[i].start = alignment[i].end - max_duration;
                }
            }
        }
    }
    merge_punctuations(&mut alignment);
    let mut timings = alignment.into_iter().peekable();
    for (segment, text) in segments.iter_mut().zip(texts) {
        let mut saved = 0;
        let mut words: Vec<Word> = Vec::new();
        while saved < text.len() {
            let Some(timing) = timings.next() else { break };
            if !timing.word.is_empty() {
                words.push(Word {
                    start: round2(offset + timing.start),
                    end: round2(offset + timing.end),
                    text: timing.word,
                    probability: timing.probability,
                });
            }
            saved += timing.tokens.len();
        }
        if let Some(first) = words.first()
            && first.end - *last_speech > median_duration * 4.0
            && (first.end - first.start > max_duration
                || words
                    .get(1)
                    .is_some_and(|second| second.end - first.start > max_duration * 2.0))
        {
            if words.len() > 1 && words[1].end - words[1].start > max_duration {
                let boundary = (words[1].end / 2.0).max(words[1].end - max_duration);
                words[0].end = boundary;
                words[1].start = boundary;
            }
            words[0].start = (words[0].end - max_duration).max(0.0);
        }
        if let (Some(first), Some(last)) = (words.first().cloned(), words.last().cloned()) {
            if segment.start < first.end && segment.start - 0.5 > first.start {
                words[0].start = (first.end - median_duration).min(segment.start).max(0.0);
            } else {
                segment.start = first.start;
            }
            let n = words.len() - 1;
            if segment.end > last.start && segment.end + 0.5 < last.end {
                words[n].end = (last.start + median_duration).max(segment.end);
            } else {
                segment.end = last.end;
            }
            *last_speech = segment.end;
        }
        segment.words = words;
    }
}

/// Keeps the words of a whole transcript in order and inside the audio and their
/// segments: a word never starts before the previous one ends (the corrections above and
/// overlapping windows can otherwise cross them), and a segment stretches to cover its
/// words. Times are only clamped, never made up.
pub(crate) fn settle(segments: &mut [Segment], duration: f64) {
    let mut previous_end = 0.0f64;
    for segment in segments.iter_mut() {
        for word in &mut segment.words {
            word.start = word.start.max(previous_end).min(duration);
            word.end = word.end.max(word.start).min(duration);
            previous_end = word.end;
        }
        if let (Some(first), Some(last)) = (segment.words.first(), segment.words.last()) {
            segment.start = segment.start.min(first.start);
            segment.end = segment.end.max(last.end);
        }
    }
}

#[cfg(test)]
#[path = "timing_tests.rs"]
mod tests;
