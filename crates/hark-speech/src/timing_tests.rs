//! The alignment's pieces against hand-worked cases and timing.py's behaviour.

use std::path::Path;

use super::*;

fn timing(word: &str, tokens: &[u32], start: f64, end: f64) -> WordTiming {
    WordTiming {
        word: word.into(),
        tokens: tokens.to_vec(),
        start,
        end,
        probability: 0.5,
    }
}

fn segment(start: f64, end: f64, text: &str) -> Segment {
    Segment {
        start,
        end,
        text: text.into(),
        words: Vec::new(),
    }
}

fn bundled_tokenizer() -> Tokenizer {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/whisper-tiny.en/tokenizer.json");
    Tokenizer::open(&path).expect("the bundled model (scripts/fetch-model.sh)")
}

#[test]
fn dtw_follows_the_cheap_cells() {
    // Three tokens over eight frames; the cheap cells say token 0 holds frames 0-1,
    // token 1 frames 2-5, token 2 frames 6-7.
    let owner = [0, 0, 1, 1, 1, 1, 2, 2];
    let cost: Vec<f32> = (0..3)
        .flat_map(|row| {
            owner
                .iter()
                .map(move |&o| if o == row { -1.0 } else { 1.0 })
        })
        .collect();
    let path = dtw(&cost, 3, 8);
    assert_eq!(path.first(), Some(&(0, 0)));
    assert_eq!(path.last(), Some(&(2, 7)));
    let entries: Vec<usize> = (0..3)
        .filter_map(|row| path.iter().find(|(r, _)| *r == row).map(|(_, f)| *f))
        .collect();
    assert_eq!(entries, vec![0, 2, 6]);
    assert!(
        path.windows(2)
            .all(|p| p[1].0 >= p[0].0 && p[1].1 >= p[0].1)
    );
}

#[test]
fn dtw_visits_every_row_even_with_fewer_frames() {
    let path = dtw(&[0.0; 6], 3, 2);
    let mut rows: Vec<usize> = path.iter().map(|(r, _)| *r).collect();
    rows.dedup();
    assert_eq!(rows, vec![0, 1, 2]);
}

#[test]
fn median_filter_reflects_at_the_edges() {
    let mut row = [5.0, 1.0, 2.0, 3.0, 4.0];
    median_filter(&mut row, 3);
    assert_eq!(row, [1.0, 2.0, 2.0, 3.0, 3.0]);
    let mut spike = [1.0, 1.0, 1.0, 9.0, 1.0, 1.0, 1.0, 1.0];
    median_filter(&mut spike, 7);
    assert!(spike.iter().all(|v| *v == 1.0));
    // Too short to filter: left as it is, as timing.py does.
    let mut short = [3.0, 1.0, 2.0];
    median_filter(&mut short, 7);
    assert_eq!(short, [3.0, 1.0, 2.0]);
}

#[test]
fn normalising_z_scores_each_frame_over_the_tokens() {
    // Two frames, three tokens; the second frame is constant.
    let mut m = [1.0, 4.0, 2.0, 4.0, 3.0, 4.0];
    normalise_over_tokens(&mut m, 3, 2);
    let std = (2.0f32 / 3.0).sqrt();
    let expected = [-1.0 / std, 0.0, 0.0, 0.0, 1.0 / std, 0.0];
    for (got, want) in m.iter().zip(expected) {
        assert!((got - want).abs() < 1e-5, "{m:?}");
    }
}

#[test]
fn token_probability_is_a_softmax() {
    let p = token_probability(&[0.0, 2f32.ln(), 0.0], 1);
    assert!((p - 0.5).abs() < 1e-6, "{p}");
    assert_eq!(token_probability(&[1.0], 5), 0.0);
}

#[test]
fn words_split_on_spaces_and_punctuation() {
    let tokenizer = bundled_tokenizer();
    let tokens = tokenizer
        .encode(" Hello, world. It's fine")
        .expect("tokens");
    let words: Vec<String> = split_words(&tokenizer, &tokens, false)
        .into_iter()
        .map(|(w, _)| w)
        .collect();
    assert_eq!(words, [" Hello", ",", " world", ".", " It's", " fine"]);
    let joined: String = split_words(&tokenizer, &tokens, true)
        .into_iter()
        .map(|(w, _)| w)
        .collect();
    assert_eq!(joined, " Hello, world. It's fine");
}

#[test]
fn multibyte_characters_stay_whole() {
    let tokenizer = bundled_tokenizer();
    let tokens = tokenizer.encode(" café naïve 東京").expect("tokens");
    let words = split_words(&tokenizer, &tokens, false);
    let texts: Vec<&str> = words.iter().map(|(w, _)| w.as_str()).collect();
    assert_eq!(texts, [" café", " naïve", " 東京"]);
    assert_eq!(
        words.iter().map(|(_, t)| t.len()).sum::<usize>(),
        tokens.len()
    );
}

#[test]
fn punctuation_joins_its_neighbours() {
    let mut words = vec![
        timing(" Hello", &[1], 0.0, 0.4),
        timing(",", &[2], 0.4, 0.5),
        timing(" (", &[3], 0.5, 0.6),
        timing("yes", &[4], 0.6, 0.9),
        timing(")", &[5], 0.9, 1.0),
    ];
    merge_punctuations(&mut words);
    let texts: Vec<&str> = words.iter().map(|w| w.word.as_str()).collect();
    assert_eq!(texts, [" Hello,", "", "", " (yes)", ""]);
    assert_eq!(words[0].tokens, [1, 2]);
    assert_eq!(words[3].tokens, [3, 4, 5]);
    // Times stay those of the word that absorbed the punctuation.
    assert_eq!((words[3].start, words[3].end), (0.6, 0.9));
}

#[test]
fn words_go_to_their_segments_and_snap_them() {
    let mut segments = vec![segment(0.0, 1.0, " One two."), segment(1.0, 2.0, " Three")];
    let texts = vec![vec![1, 2, 3], vec![4]];
    let alignment = vec![
        timing(" One", &[1], 0.12, 0.4),
        timing(" two", &[2], 0.4, 0.7),
        timing(".", &[3], 0.7, 0.7),
        timing(" Three", &[4], 1.1, 1.5),
    ];
    let mut last_speech = 0.0;
    add_word_timestamps(&mut segments, &texts, alignment, 10.0, &mut last_speech);
    let first: Vec<(&str, f64, f64)> = segments[0]
        .words
        .iter()
        .map(|w| (w.text.as_str(), w.start, w.end))
        .collect();
    assert_eq!(first, [(" One", 10.12, 10.4), (" two.", 10.4, 10.7)]);
    assert_eq!(segments[1].words.len(), 1);
    // The segments' own times were whole-window guesses: they now follow the words.
    assert_eq!((segments[0].start, segments[0].end), (10.12, 10.7));
    assert_eq!((segments[1].start, segments[1].end), (11.1, 11.5));
    assert_eq!(last_speech, 11.5);
}

#[test]
fn a_long_word_after_a_sentence_end_is_cut() {
    // Median word 0.3 s, so no word may run past 0.6 s at a sentence boundary.
    let mut segments = vec![segment(0.0, 3.0, " A b. C")];
    let alignment = vec![
        timing(" A", &[1], 0.0, 0.3),
        timing(" b", &[2], 0.3, 0.6),
        timing(".", &[3], 0.6, 0.6),
        timing(" C", &[4], 0.6, 2.6),
    ];
    let mut last_speech = 0.0;
    add_word_timestamps(
        &mut segments,
        &[vec![1, 2, 3, 4]],
        alignment,
        0.0,
        &mut last_speech,
    );
    let last = segments[0].words.last().expect("a word");
    assert_eq!(last.text, " C");
    assert!((last.start - 2.0).abs() < 1e-9, "{last:?}");
    assert!((last.end - 2.6).abs() < 1e-9, "{last:?}");
}

#[test]
fn settling_keeps_words_ordered_and_inside() {
    let word = |start, end| Word {
        start,
        end,
        text: " x".into(),
        probability: 1.0,
    };
    let mut segments = vec![segment(0.0, 1.0, " x x"), segment(1.0, 2.0, " x")];
    segments[0].words = vec![word(0.0, 0.6), word(0.5, 1.2)];
    segments[1].words = vec![word(1.1, 2.5)];
    settle(&mut segments, 2.2);
    let times: Vec<(f64, f64)> = segments
        .iter()
        .flat_map(|s| s.words.iter().map(|w| (w.start, w.end)))
        .collect();
    assert_eq!(times, [(0.0, 0.6), (0.6, 1.2), (1.2, 2.2)]);
    assert_eq!(segments[0].end, 1.2);
    assert_eq!(segments[1].end, 2.2);
}
