//! Measures the encoder-context lever (`Options::encoder_context`, whisper.cpp's
//! `audio_ctx`): every clip in a folder of `NAME.wav` + `NAME.txt` is decoded as the
//! streaming recognizer decodes its buffer (greedy, one temperature, word timestamps,
//! no conditioning), with the full 30-second window and with the window trimmed to the
//! audio plus each spare count. Printed per setting:
//!
//! - WER of whole clips against their reference texts (word-weighted over the clips);
//! - WER of cuts (the first 2, 5, 10, 15, 20, 25 s of each clip, and for clips past a
//!   minute the same lengths from every 30 s) against the full window's transcript of
//!   the same cut, as the streaming buffer sees them;
//! - the total decode time, and its ratio to the full window's in the same run;
//! - the fastest of `ROUNDS` decodes of a 5 s and a 10 s buffer.
//!
//! cargo run --release -p hark-speech --example audio_ctx -- [AUDIO_DIR] [MODEL_DIR]
use std::path::{Path, PathBuf};
use std::time::Instant;

use hark_speech::engine::EncoderContext;
use hark_speech::eval::{errors, normalize};
use hark_speech::{Engine, Options};

/// Spare encoder positions (20 ms each) tried after the audio.
const SPARES: [usize; 5] = [0, 32, 64, 128, 256];
/// Cut lengths in seconds (the streaming buffer holds 1–25 s).
const CUTS: [f64; 6] = [2.0, 5.0, 10.0, 15.0, 20.0, 25.0];
/// Decodes of each timed buffer; the fastest counts.
const ROUNDS: usize = 5;

struct Tally {
    errors: usize,
    words: usize,
    seconds: f64,
}

impl Tally {
    fn new() -> Self {
        Tally {
            errors: 0,
            words: 0,
            seconds: 0.0,
        }
    }

    fn add(&mut self, reference: &str, hypothesis: &str, seconds: f64) {
        let reference = normalize(reference);
        self.errors += errors(&reference, &normalize(hypothesis));
        self.words += reference.len();
        self.seconds += seconds;
    }

    fn wer(&self) -> f64 {
        100.0 * self.errors as f64 / self.words.max(1) as f64
    }
}

fn options(context: EncoderContext) -> Options {
    Options {
        beam_size: 1,
        temperatures: vec![0.0],
        condition_on_previous_text: false,
        word_timestamps: true,
        encoder_context: context,
        ..Options::default()
    }
}

fn label(context: EncoderContext) -> String {
    match context {
        EncoderContext::Full => "full 30 s".into(),
        EncoderContext::Trimmed { spare } => format!("audio + {spare}"),
    }
}

/// The transcript's text and the seconds it took.
fn run(engine: &Engine, samples: &[f32], context: EncoderContext) -> (String, f64) {
    let started = Instant::now();
    let text = match engine.transcribe(samples, &options(context), &mut |_| {}) {
        Ok(transcript) => transcript.text(),
        Err(e) => {
            eprintln!("decode failed: {e}");
            String::new()
        }
    };
    (text, started.elapsed().as_secs_f64())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let audio_dir = args
        .get(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../../../shared/audio"));
    let model = args
        .get(2)
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../../models/whisper-tiny.en"));
    let engine = Engine::load(&model)?;
    let mut clips: Vec<(String, Vec<f32>, String)> = Vec::new();
    for entry in std::fs::read_dir(&audio_dir)? {
        let path = entry?.path();
        let reference = path.with_extension("txt");
        if path.extension().is_some_and(|e| e == "wav") && reference.is_file() {
            let name = path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            let samples = hark_speech::audio::load_16k(&path, &Default::default())?;
            clips.push((name, samples, std::fs::read_to_string(&reference)?));
        }
    }
    clips.sort_by(|a, b| a.0.cmp(&b.0));
    let mut cuts: Vec<(String, &[f32])> = Vec::new();
    for (name, samples, _) in &clips {
        let seconds = samples.len() as f64 / 16_000.0;
        let mut starts = vec![0.0];
        if seconds > 60.0 {
            starts.extend(
                (1..)
                    .map(|k| k as f64 * 30.0)
                    .take_while(|s| s + 2.0 < seconds),
            );
        }
        for start in starts {
            for length in CUTS.iter().copied().filter(|l| start + l <= seconds) {
                let from = (start * 16_000.0) as usize;
                let label = format!("{name} {start:.0}+{length:.0} s");
                cuts.push((label, &samples[from..from + (length * 16_000.0) as usize]));
            }
        }
    }
    println!(
        "{} clips, {} cuts of {:.0} s in all",
        clips.len(),
        cuts.len(),
        cuts.iter().map(|c| c.1.len()).sum::<usize>() as f64 / 16_000.0
    );
    let settings: Vec<EncoderContext> = std::iter::once(EncoderContext::Full)
        .chain(SPARES.map(|spare| EncoderContext::Trimmed { spare }))
        .collect();
    // Settings alternate clip by clip, so a busy moment of the machine skews all alike.
    let mut whole: Vec<Tally> = settings.iter().map(|_| Tally::new()).collect();
    for (name, samples, reference) in &clips {
        let mut line = format!("{name:>18}");
        for (tally, &context) in whole.iter_mut().zip(&settings) {
            let (text, seconds) = run(&engine, samples, context);
            tally.add(reference, &text, seconds);
            let wer = 100.0 * hark_speech::eval::word_error_rate(reference, &text);
            line += &format!(" {wer:5.1}% {seconds:5.2}s");
        }
        println!("{line}");
    }
    let mut cut: Vec<Tally> = settings.iter().map(|_| Tally::new()).collect();
    let verbose = std::env::var_os("AUDIO_CTX_VERBOSE").is_some();
    for (name, samples) in &cuts {
        let (full_text, full_seconds) = run(&engine, samples, EncoderContext::Full);
        cut[0].add(&full_text, &full_text, full_seconds);
        for (tally, &context) in cut.iter_mut().zip(&settings).skip(1) {
            let (text, seconds) = run(&engine, samples, context);
            tally.add(&full_text, &text, seconds);
            if verbose && text != full_text {
                let wer = 100.0 * hark_speech::eval::word_error_rate(&full_text, &text);
                println!(
                    "{name} [{}] {wer:.0}%\n  full: {full_text}\n  trim: {text}",
                    label(context)
                );
            }
        }
    }
    let mut buffers = Vec::new();
    if let Some((_, long, _)) = clips.iter().max_by_key(|c| c.1.len()) {
        for seconds in [5.0, 10.0] {
            let samples = &long[..((seconds * 16_000.0) as usize).min(long.len())];
            let mut fastest = vec![f64::INFINITY; settings.len()];
            for _ in 0..ROUNDS {
                for (best, &context) in fastest.iter_mut().zip(&settings) {
                    *best = best.min(run(&engine, samples, context).1);
                }
            }
            buffers.push((seconds, fastest));
        }
    }
    println!(
        "\n| encoder context | clips WER vs reference | clips time (s) | cuts WER vs full window | \
         cuts time (s) | cuts time / full |{}",
        buffers
            .iter()
            .map(|(s, _)| format!(" {s:.0} s buffer, one decode (s) |"))
            .collect::<String>()
    );
    println!("|---|---|---|---|---|---|{}", "---|".repeat(buffers.len()));
    for (i, &context) in settings.iter().enumerate() {
        println!(
            "| {} | {:.1}% | {:.2} | {:.1}% | {:.2} | {:.2} |{}",
            label(context),
            whole[i].wer(),
            whole[i].seconds,
            cut[i].wer(),
            cut[i].seconds,
            cut[i].seconds / cut[0].seconds,
            buffers
                .iter()
                .map(|(_, fastest)| format!(" {:.3} |", fastest[i]))
                .collect::<String>()
        );
    }
    Ok(())
}
