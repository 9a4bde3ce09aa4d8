//! Streaming recognition on real speech: a clip fed in small pieces comes out as final
//! words whose text matches the clip nearly as well as a batch transcript does, whose
//! times only move forward, and silence costs no decoding at all.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hark_speech::audio::{DecodeLimits, load_16k};
use hark_speech::eval::word_error_rate;
use hark_speech::streaming::{StreamSettings, StreamingRecognizer, Update, VoiceDetector};
use hark_speech::vad::Silero;
use hark_speech::{Engine, Options};

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

fn clip(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/audio")
        .join(name)
}

fn engine() -> Arc<Engine> {
    Arc::new(Engine::load(&models().join("whisper-tiny.en")).expect("bundled model"))
}

fn detector() -> VoiceDetector {
    let silero = Silero::load(&models().join("silero-vad/silero_vad_16k.safetensors"))
        .expect("Silero weights (scripts/fetch-vad.sh)");
    VoiceDetector::silero(Arc::new(silero))
}

/// Feeds 100 ms pieces, decoding whenever the recognizer says a decode is due, as a
/// server with time to spare would; returns every update.
fn stream(engine: Arc<Engine>, samples: &[f32]) -> Vec<Update> {
    // The longest delay Speechmatics allows: a decode here takes as long as on a loaded
    // server, but audio is not paced, so a short delay would force most words early.
    let settings = StreamSettings {
        max_delay: 4.0,
        ..StreamSettings::default()
    };
    let mut recognizer = StreamingRecognizer::new(engine, detector(), settings);
    let mut updates = Vec::new();
    for piece in samples.chunks(1600) {
        recognizer.push(piece).expect("push");
        if recognizer.due() {
            updates.push(recognizer.step().expect("step"));
        }
    }
    updates.push(recognizer.finish().expect("finish"));
    updates
}

#[test]
fn a_streamed_clip_reads_about_as_well_as_its_batch_transcript() {
    let engine = engine();
    // Clips whose first words tiny.en hears right from a second or two of audio; on the
    // others streaming loses more (BENCHMARKS.md has every clip).
    for name in ["meeting_02", "support_01"] {
        let samples =
            load_16k(&clip(&format!("{name}.wav")), &DecodeLimits::default()).expect("clip");
        let reference = std::fs::read_to_string(clip(&format!("{name}.txt"))).expect("text");
        let batch = engine
            .transcribe(
                &samples,
                &Options {
                    beam_size: 1,
                    ..Options::default()
                },
                &mut |_| {},
            )
            .expect("batch")
            .text();
        let updates = stream(engine.clone(), &samples);
        let finals: Vec<_> = updates.iter().flat_map(|u| u.finals.clone()).collect();
        let text: String = finals.iter().map(|w| w.text.as_str()).collect();
        let streamed_wer = word_error_rate(&reference, &text);
        let batch_wer = word_error_rate(&reference, &batch);
        eprintln!("{name}: streamed WER {streamed_wer:.3}, batch {batch_wer:.3}: {text}");
        assert!(
            streamed_wer <= batch_wer + 0.1,
            "{name}: streamed WER {streamed_wer:.3} vs batch {batch_wer:.3}"
        );
        for pair in finals.windows(2) {
            assert!(
                pair[0].start <= pair[1].start,
                "finals go back in time: {pair:?}"
            );
        }
        let duration = samples.len() as f64 / 16_000.0;
        assert!(finals.iter().all(|w| w.end <= duration + 0.05));
        assert!(updates.iter().any(|u| !u.partial.is_empty()), "no partials");
    }
}

#[test]
fn silence_is_never_decoded() {
    let mut recognizer = StreamingRecognizer::new(engine(), detector(), StreamSettings::default());
    let silence = vec![0.0f32; 16_000 * 10];
    for piece in silence.chunks(1600) {
        recognizer.push(piece).expect("push");
        assert!(!recognizer.due(), "silence asked for a decode");
    }
    let end = recognizer.finish().expect("finish");
    assert!(end.finals.is_empty() && end.partial.is_empty());
}
