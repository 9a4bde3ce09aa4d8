//! Word timestamps on real speech: the bundled model aligns a clip's words by its
//! cross-attention, and the times it gives are ordered, inside their segments and the
//! audio, spell the segment's text, and land where the speech actually is.

use std::path::{Path, PathBuf};

use hark_speech::{Engine, Options, Transcript};

fn bundled() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/whisper-tiny.en")
}

fn clip(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/audio")
        .join(name)
}

fn transcribe(samples: &[f32], word_timestamps: bool) -> Transcript {
    let engine = Engine::load(&bundled()).expect("the bundled model (scripts/fetch-model.sh)");
    let options = Options {
        beam_size: 1,
        word_timestamps,
        ..Options::default()
    };
    engine
        .transcribe(samples, &options, &mut |_| {})
        .expect("transcript")
}

/// RMS loudness of each 20 ms frame (one timestamp step).
fn loudness(samples: &[f32]) -> Vec<f32> {
    samples
        .chunks(320)
        .map(|c| (c.iter().map(|s| s * s).sum::<f32>() / c.len() as f32).sqrt())
        .collect()
}

/// Seconds at which the audio first gets loud: the first frame past a tenth of the
/// loudest frame's RMS.
fn speech_onset(rms: &[f32]) -> f64 {
    let loudest = rms.iter().copied().fold(0.0, f32::max);
    rms.iter().position(|r| *r > loudest / 10.0).unwrap_or(0) as f64 * 0.02
}

/// The longest pause inside the speech, as (start, end) seconds: the longest run of
/// frames under a thirtieth of the loudest frame's RMS, the clip's edges left out.
fn longest_pause(rms: &[f32]) -> (f64, f64) {
    let loudest = rms.iter().copied().fold(0.0, f32::max);
    let quiet: Vec<bool> = rms.iter().map(|r| *r < loudest / 30.0).collect();
    let first = quiet.iter().position(|q| !q).unwrap_or(0);
    let last = quiet.iter().rposition(|q| !q).unwrap_or(0);
    let (mut best, mut run_start) = ((0, 0), None);
    for (i, &q) in quiet.iter().enumerate().take(last + 1).skip(first) {
        match (q, run_start) {
            (true, None) => run_start = Some(i),
            (false, Some(s)) => {
                if i - s > best.1 - best.0 {
                    best = (s, i);
                }
                run_start = None;
            }
            _ => {}
        }
    }
    (best.0 as f64 * 0.02, best.1 as f64 * 0.02)
}

#[test]
fn words_are_timed_from_the_audio() {
    let samples =
        hark_speech::audio::load_16k(&clip("news_01.wav"), &Default::default()).expect("clip");
    let duration = samples.len() as f64 / 16_000.0;
    let transcript = transcribe(&samples, true);
    let words: Vec<_> = transcript.segments.iter().flat_map(|s| &s.words).collect();
    for w in &words {
        eprintln!(
            "{:6.2} {:6.2} {:.2} {:?}",
            w.start, w.end, w.probability, w.text
        );
    }
    assert!(words.len() >= 15, "{} words", words.len());

    let mut previous_end = 0.0;
    for segment in &transcript.segments {
        let joined: String = segment.words.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(joined.trim(), segment.text.trim());
        for w in &segment.words {
            assert!(w.start <= w.end, "{w:?}");
            assert!(
                w.start >= previous_end,
                "{w:?} starts before {previous_end}"
            );
            assert!(
                w.start >= segment.start && w.end <= segment.end,
                "{w:?} outside {segment:?}"
            );
            assert!(w.end <= duration, "{w:?} past the audio's {duration} s");
            assert!((0.0..=1.0).contains(&w.probability), "{w:?}");
            assert!(w.text.starts_with(' '), "{w:?} lacks its leading space");
            previous_end = w.end;
        }
    }

    // The first word starts where the speech does, not at the segment's rounded start.
    let rms = loudness(&samples);
    let onset = speech_onset(&rms);
    let first = words[0];
    assert!(
        (first.start - onset).abs() < 0.3,
        "first word at {} s, speech from {onset} s",
        first.start
    );
    // The pause between the clip's two sentences: "tonight." ends in it and the next word
    // starts once it is over (the tiny model's attention lags speech by a few steps).
    let (pause_start, pause_end) = longest_pause(&rms);
    assert!(
        pause_end - pause_start > 0.2,
        "pause {pause_start}-{pause_end}"
    );
    let before = words
        .iter()
        .position(|w| w.text.trim() == "tonight.")
        .expect("the word tonight.");
    let (tonight, next) = (words[before], words[before + 1]);
    assert!(
        tonight.end > pause_start - 0.1 && tonight.end < pause_end + 0.1,
        "{tonight:?}, pause {pause_start}-{pause_end}"
    );
    assert!(
        next.start > pause_start && next.start < pause_end + 0.4,
        "{next:?}, pause {pause_start}-{pause_end}"
    );
    // Real timings differ from word to word, and long words take longer than short ones;
    // an even spread would give every word the same share.
    let durations: Vec<f64> = words.iter().map(|w| w.end - w.start).collect();
    let shortest = durations.iter().copied().fold(f64::INFINITY, f64::min);
    let longest = durations.iter().copied().fold(0.0, f64::max);
    assert!(longest - shortest > 0.15, "durations {durations:?}");
    let mean_duration = |long: bool| {
        let picked: Vec<f64> = words
            .iter()
            .filter(|w| (w.text.trim().len() >= 7) == long)
            .map(|w| w.end - w.start)
            .collect();
        picked.iter().sum::<f64>() / picked.len() as f64
    };
    assert!(
        mean_duration(true) > mean_duration(false) * 1.3,
        "long words {} s, short words {} s",
        mean_duration(true),
        mean_duration(false)
    );
}

#[test]
fn words_are_off_unless_asked_and_change_no_text() {
    let samples =
        hark_speech::audio::load_16k(&clip("meeting_01.wav"), &Default::default()).expect("clip");
    let plain = transcribe(&samples, false);
    let timed = transcribe(&samples, true);
    assert!(plain.segments.iter().all(|s| s.words.is_empty()));
    assert_eq!(plain.text(), timed.text());
    assert!(timed.segments.iter().all(|s| !s.words.is_empty()));
}
