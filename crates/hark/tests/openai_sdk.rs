//! The official `openai` Python SDK (from PyPI, in the venv the test command makes)
//! transcribing through hark with a hark token as its API key.

mod common;

use common::*;

const SCRIPT: &str = r#"
import sys, openai
base, key, audio = sys.argv[1], sys.argv[2], sys.argv[3]
client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
print("MODELS", ",".join(m.id for m in client.models.list()))
with open(audio, "rb") as f:
    print("TEXT", client.audio.transcriptions.create(model="whisper-1", file=f, language="en").text)
with open(audio, "rb") as f:
    srt = client.audio.transcriptions.create(model="whisper-1", file=f, response_format="srt")
    print("SRT", srt.splitlines()[1])
with open(audio, "rb") as f:
    verbose = client.audio.transcriptions.create(model="whisper-1", file=f,
        response_format="verbose_json", timestamp_granularities=["word"])
    print("WORDS", len(verbose.words), verbose.words[0].word, verbose.words[0].start, verbose.words[-1].end)
try:
    openai.OpenAI(base_url=base + "/v1", api_key="hark_pat_not-a-real-token", max_retries=0).models.list()
    print("BADKEY accepted")
except openai.AuthenticationError as e:
    print("BADKEY", e.status_code)
"#;

#[tokio::test]
async fn the_official_openai_sdk_transcribes_through_hark() {
    let server = TestServer::start().await;
    let token = server.user_with_token("ada", "member");
    let clip = shared_audio("meeting_03.wav");
    let stdout = run_test_python(vec![
        "-c".into(),
        SCRIPT.into(),
        server.base.clone(),
        token.clone(),
        clip.display().to_string(),
    ])
    .await;
    let line = |tag: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(tag).map(|r| r.trim().to_owned()))
            .unwrap_or_else(|| panic!("no {tag} line in {stdout}"))
    };
    assert!(line("MODELS").split(',').any(|m| m == "whisper-1"));
    let reference = std::fs::read_to_string(shared_audio("meeting_03.txt")).unwrap();
    let wer = word_error_rate(&reference, &line("TEXT"));
    assert!(wer < 0.2, "WER {wer}: {}", line("TEXT"));
    assert!(line("SRT").contains(" --> "));
    // Word timestamps through the SDK's own `timestamp_granularities`: count, first word
    // and its start, last word's end, all typed by the SDK's TranscriptionWord.
    let words = line("WORDS");
    let fields: Vec<&str> = words.split_whitespace().collect();
    let count: usize = fields[0].parse().expect("a word count");
    let (start, end): (f64, f64) = (fields[2].parse().unwrap(), fields[3].parse().unwrap());
    assert!(count >= 10 && start < 1.0 && end > start + 3.0, "{words}");
    assert_eq!(line("BADKEY"), "401");
}
