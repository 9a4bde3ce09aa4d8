//! Prints a file's word timestamps and what they cost: the file is transcribed without and
//! with `word_timestamps`, three times each, and the fastest wall time of each is printed
//! (word timing adds one teacher-forced decoder pass per 30-second window).
//!
//! cargo run --release -p hark-speech --example words -- FILE [BEAM] [MODEL_DIR]
use std::path::{Path, PathBuf};
use std::time::Instant;

use hark_speech::{Engine, Options};

/// Runs of each kind; the fastest counts.
const ROUNDS: usize = 3;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let Some(file) = args.get(1) else {
        eprintln!("usage: words FILE [BEAM] [MODEL_DIR]");
        std::process::exit(2);
    };
    let beam_size = args.get(2).map(|b| b.parse()).transpose()?.unwrap_or(5);
    let model = args.get(3).map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/whisper-tiny.en")
    });
    let engine = Engine::load(&model)?;
    let samples = hark_speech::audio::load_16k(Path::new(file), &Default::default())?;
    let mut options = Options {
        beam_size,
        ..Options::default()
    };
    // Alternating runs, the fastest of each kind kept, so a busy machine skews both alike.
    let (mut without, mut with) = (f64::INFINITY, f64::INFINITY);
    let (mut plain, mut timed) = (None, None);
    for _ in 0..ROUNDS {
        for words in [false, true] {
            options.word_timestamps = words;
            let started = Instant::now();
            let transcript = engine.transcribe(&samples, &options, &mut |_| {})?;
            let took = started.elapsed().as_secs_f64();
            if words {
                with = with.min(took);
                timed = Some(transcript);
            } else {
                without = without.min(took);
                plain = Some(transcript);
            }
        }
    }
    let (Some(plain), Some(timed)) = (plain, timed) else {
        return Ok(());
    };
    for segment in &timed.segments {
        println!(
            "[{:7.2} {:7.2}]{}",
            segment.start, segment.end, segment.text
        );
        for w in &segment.words {
            println!(
                "  {:7.2} {:7.2} {:.2} {:?}",
                w.start, w.end, w.probability, w.text
            );
        }
    }
    let seconds = samples.len() as f64 / 16_000.0;
    println!(
        "audio {seconds:.1} s, beam {beam_size}: {without:.2} s without words, {with:.2} s with \
         (+{:.0}%); same text: {}",
        (with / without - 1.0) * 100.0,
        plain.text() == timed.text()
    );
    Ok(())
}
