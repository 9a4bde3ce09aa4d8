//! The embedded summarizer: extractive, no model needed. Sentences are scored by how many
//! of the transcript's frequent content words they hold; the best few are kept in their
//! original order.

use std::collections::HashMap;

use crate::SpeechError;

const STOP_WORDS: &[&str] = &[
    "a", "about", "after", "all", "also", "an", "and", "any", "are", "as", "at", "be", "been",
    "before", "but", "by", "can", "could", "did", "do", "does", "for", "from", "had", "has",
    "have", "he", "her", "here", "his", "how", "i", "if", "in", "into", "is", "it", "its", "just",
    "let's", "me", "more", "my", "no", "not", "now", "of", "on", "one", "or", "our", "out", "over",
    "please", "she", "so", "some", "than", "that", "the", "their", "them", "then", "there",
    "these", "they", "this", "to", "up", "us", "very", "was", "we", "well", "were", "what", "when",
    "which", "who", "will", "with", "would", "yes", "you", "your",
];

/// Frequent words beside [`STOP_WORDS`] that say little about what a text is about.
const COMMON_WORDS: &[&str] = &[
    "because", "being", "down", "each", "like", "most", "much", "only", "other", "said", "same",
    "should", "such", "those", "through", "want", "where", "while",
];

/// At most `max_sentences` sentences of `text`, the most representative first-chosen and
/// then put back in reading order. Short texts come back whole.
pub fn summarize(text: &str, max_sentences: usize) -> String {
    let sentences = sentences(text);
    if sentences.len() <= max_sentences {
        return sentences.join(" ");
    }
    let mut frequency: HashMap<String, f64> = HashMap::new();
    for sentence in &sentences {
        for word in content_words(sentence) {
            *frequency.entry(word).or_default() += 1.0;
        }
    }
    let top = frequency.values().copied().fold(1.0, f64::max);
    let mut scored: Vec<(usize, f64)> = sentences
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let words = content_words(s);
            let score = words.iter().map(|w| frequency[w] / top).sum::<f64>()
                / (words.len() as f64).sqrt().max(1.0);
            (i, score)
        })
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut chosen: Vec<usize> = scored
        .into_iter()
        .take(max_sentences)
        .map(|(i, _)| i)
        .collect();
    chosen.sort_unstable();
    chosen
        .into_iter()
        .map(|i| sentences[i])
        .collect::<Vec<_>>()
        .join(" ")
}

/// The sentences of `text`: split after `.`, `!` or `?` followed by a space or the end.
pub fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if matches!(c, '.' | '!' | '?') {
            let end = i + c.len_utf8();
            let next_is_space = text[end..].chars().next().is_none_or(char::is_whitespace);
            if next_is_space {
                let s = text[start..end].trim();
                if !s.is_empty() {
                    out.push(s);
                }
                start = end;
            }
        }
    }
    let rest = text[start..].trim();
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

fn content_words(sentence: &str) -> Vec<String> {
    sentence
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .map(str::to_lowercase)
        .filter(|w| w.chars().count() > 2 && !STOP_WORDS.contains(&w.as_str()))
        .collect()
}

/// The `n` most frequent content words of four or more letters (Fireflies' summary
/// keywords); ties go to the word seen first.
pub fn keywords(text: &str, n: usize) -> Vec<String> {
    let mut counts: HashMap<String, (usize, usize)> = HashMap::new();
    let words = content_words(text)
        .into_iter()
        .map(|w| w.trim_matches('\'').to_owned())
        .filter(|w| w.chars().count() >= 4 && !COMMON_WORDS.contains(&w.as_str()));
    for (position, word) in words.enumerate() {
        counts.entry(word).or_insert((0, position)).0 += 1;
    }
    let mut ranked: Vec<(String, (usize, usize))> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.1.1.cmp(&b.1.1)));
    ranked.into_iter().take(n).map(|(w, _)| w).collect()
}

/// Summaries from any OpenAI-compatible chat-completions server (a local LLM, say).
pub struct ChatSummarizer {
    client: reqwest::Client,
    /// Base URL up to and including `/v1`.
    base: String,
    key: String,
    model: String,
}

/// Never shows the key.
impl std::fmt::Debug for ChatSummarizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatSummarizer")
            .field("base", &self.base)
            .field("model", &self.model)
            .finish()
    }
}

const INSTRUCTIONS: &str = "Summarize this transcript of a recording in at most five sentences. \
    Keep names, dates, numbers and decisions. Answer with the summary only.";

impl ChatSummarizer {
    pub fn new(base_url: &str, key: &str, model: &str) -> Result<Self, SpeechError> {
        let base = base_url.trim_end_matches('/').to_owned();
        if !base.starts_with("http://") {
            return Err(SpeechError::Model(format!(
                "summary URL {base:?} must start with http:// (terminate TLS in front of hark)"
            )));
        }
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(300))
            .build()
            .map_err(|e| SpeechError::Model(format!("summary client: {e}")))?;
        Ok(ChatSummarizer {
            client,
            base,
            key: key.to_owned(),
            model: model.to_owned(),
        })
    }

    pub async fn summarize(&self, transcript: &str) -> Result<String, SpeechError> {
        let body = serde_json::json!({
            "model": self.model,
            "temperature": 0.2,
            "messages": [
                {"role": "system", "content": INSTRUCTIONS},
                {"role": "user", "content": transcript},
            ],
        });
        let response = self
            .client
            .post(format!("{}/chat/completions", self.base))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await
            .map_err(|e| {
                SpeechError::Remote(format!(
                    "the summary server cannot be reached: {}",
                    e.without_url()
                ))
            })?;
        let status = response.status();
        let answer: serde_json::Value = response.json().await.map_err(|e| {
            SpeechError::Remote(format!("the summary server's answer is not JSON: {e}"))
        })?;
        if !status.is_success() {
            return Err(SpeechError::Remote(format!(
                "the summary server answered {status}"
            )));
        }
        answer["choices"][0]["message"]["content"]
            .as_str()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| SpeechError::Remote("the summary server sent no summary".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_central_sentences_in_order() {
        let text = "The release of version two is next Thursday. Lunch was nice. \
                    The release notes for version two need review. Sarah likes cats. \
                    Version two ships after the release review.";
        let summary = summarize(text, 2);
        assert_eq!(sentences(&summary).len(), 2);
        assert!(summary.contains("version two"), "{summary}");
        assert!(
            !summary.contains("cats") && !summary.contains("Lunch"),
            "{summary}"
        );
    }

    #[test]
    fn short_and_empty_texts_come_back_whole() {
        assert_eq!(summarize("Just one sentence.", 3), "Just one sentence.");
        assert_eq!(summarize("", 3), "");
        assert_eq!(
            summarize("no punctuation at all", 3),
            "no punctuation at all"
        );
        assert_eq!(
            sentences("It costs 3.5 dollars. Fine."),
            vec!["It costs 3.5 dollars.", "Fine."]
        );
    }
}
