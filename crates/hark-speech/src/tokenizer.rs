//! Whisper's byte-level BPE vocabulary, read from a Hugging Face `tokenizer.json`, for
//! turning token ids back into text and for finding the special tokens the decoder needs.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use crate::SpeechError;

#[derive(Deserialize)]
struct TokenizerFile {
    model: BpeModel,
    #[serde(default)]
    added_tokens: Vec<AddedToken>,
}

#[derive(Deserialize)]
struct BpeModel {
    vocab: HashMap<String, u32>,
}

#[derive(Deserialize)]
struct AddedToken {
    id: u32,
    content: String,
}

/// The special tokens decoding is steered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialTokens {
    pub eot: u32,
    pub sot: u32,
    pub transcribe: Option<u32>,
    pub translate: Option<u32>,
    pub start_of_prev: Option<u32>,
    pub start_of_lm: Option<u32>,
    pub no_speech: Option<u32>,
    pub no_timestamps: u32,
    /// `<|0.00|>`; every id from here on is a timestamp in 0.02 s steps.
    pub timestamp_begin: u32,
}

pub struct Tokenizer {
    /// Byte-level BPE encoding (for prompts), by the Hugging Face tokenizers library.
    encoder: Option<tokenizers::Tokenizer>,
    pieces: Vec<Option<String>>,
    special: HashMap<String, u32>,
    byte_of: HashMap<char, u8>,
    pub tokens: SpecialTokens,
}

impl Tokenizer {
    pub fn open(path: &Path) -> Result<Self, SpeechError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SpeechError::Model(format!("cannot read {}: {e}", path.display())))?;
        let mut tokenizer = Self::parse(&text)?;
        tokenizer.encoder = Some(
            tokenizers::Tokenizer::from_bytes(text.as_bytes())
                .map_err(|e| SpeechError::Model(format!("tokenizer.json: {e}")))?,
        );
        Ok(tokenizer)
    }

    /// Text tokens of `text` (no special tokens), for prompting the decoder.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, SpeechError> {
        let encoder = self
            .encoder
            .as_ref()
            .ok_or_else(|| SpeechError::Model("this tokenizer cannot encode".into()))?;
        let encoding = encoder
            .encode(text, false)
            .map_err(|e| SpeechError::Model(format!("cannot encode the prompt: {e}")))?;
        Ok(encoding
            .get_ids()
            .iter()
            .copied()
            .filter(|id| *id < self.tokens.eot)
            .collect())
    }

    pub fn parse(json: &str) -> Result<Self, SpeechError> {
        let file: TokenizerFile = serde_json::from_str(json)
            .map_err(|e| SpeechError::Model(format!("tokenizer.json: {e}")))?;
        let max_id = file
            .model
            .vocab
            .values()
            .chain(file.added_tokens.iter().map(|t| &t.id))
            .copied()
            .max()
            .unwrap_or(0) as usize;
        let mut pieces = vec![None; max_id + 1];
        for (piece, id) in file.model.vocab {
            pieces[id as usize] = Some(piece);
        }
        let special: HashMap<String, u32> = file
            .added_tokens
            .into_iter()
            .map(|t| (t.content, t.id))
            .collect();
        let find = |name: &str| special.get(name).copied();
        let required = |name: &str| {
            find(name).ok_or_else(|| SpeechError::Model(format!("tokenizer.json lacks {name}")))
        };
        let no_timestamps = required("<|notimestamps|>")?;
        let tokens = SpecialTokens {
            eot: required("<|endoftext|>")?,
            sot: required("<|startoftranscript|>")?,
            transcribe: find("<|transcribe|>"),
            translate: find("<|translate|>"),
            start_of_prev: find("<|startofprev|>"),
            start_of_lm: find("<|startoflm|>"),
            no_speech: find("<|nospeech|>").or_else(|| find("<|nocaptions|>")),
            no_timestamps,
            timestamp_begin: no_timestamps + 1,
        };
        let byte_of = bytes_to_unicode()
            .into_iter()
            .map(|(b, c)| (c, b))
            .collect();
        Ok(Tokenizer {
            encoder: None,
            pieces,
            special,
            byte_of,
            tokens,
        })
    }

    /// The id of a language token such as `<|en|>`, if this vocabulary has one.
    pub fn language(&self, code: &str) -> Option<u32> {
        self.special.get(&format!("<|{code}|>")).copied()
    }

    /// Text of the given ids; special and timestamp tokens are skipped.
    pub fn decode(&self, ids: &[u32]) -> String {
        String::from_utf8_lossy(&self.bytes(ids)).into_owned()
    }

    /// The UTF-8 bytes of the given text ids, which need not end on a character boundary
    /// (a character may span tokens: word splitting waits for it to complete).
    pub fn bytes(&self, ids: &[u32]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for &id in ids {
            if id >= self.tokens.eot {
                continue;
            }
            if let Some(Some(piece)) = self.pieces.get(id as usize) {
                bytes.extend(piece.chars().filter_map(|c| self.byte_of.get(&c).copied()));
            }
        }
        bytes
    }

    /// Ids whose text holds no letters or digits but punctuation and symbols that Whisper
    /// tends to hallucinate on silence (`-1` in OpenAI's `suppress_tokens`).
    pub fn vocabulary_size(&self) -> usize {
        self.pieces.len()
    }
}

/// GPT-2's reversible map from bytes to printable characters.
fn bytes_to_unicode() -> Vec<(u8, char)> {
    let mut printable: Vec<u32> = (u32::from(b'!')..=u32::from(b'~')).collect();
    printable.extend(0xA1..=0xAC);
    printable.extend(0xAE..=0xFF);
    let mut map = Vec::with_capacity(256);
    let mut extra = 0;
    for b in 0u32..=255 {
        let c = if printable.contains(&b) {
            b
        } else {
            extra += 1;
            255 + extra
        };
        map.push((b as u8, char::from_u32(c).unwrap_or('?')));
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{
        "model": {"type": "BPE", "vocab": {"Hello": 0, "Ġworld": 1, "!": 2, "Ã©": 3}},
        "added_tokens": [
            {"id": 4, "content": "<|endoftext|>"},
            {"id": 5, "content": "<|startoftranscript|>"},
            {"id": 6, "content": "<|en|>"},
            {"id": 7, "content": "<|nocaptions|>"},
            {"id": 8, "content": "<|notimestamps|>"}
        ]
    }"#;

    #[test]
    fn decodes_byte_level_pieces_and_skips_specials() {
        let t = Tokenizer::parse(SAMPLE).unwrap();
        assert_eq!(t.decode(&[0, 1, 2]), "Hello world!");
        assert_eq!(t.decode(&[3]), "é");
        assert_eq!(t.decode(&[5, 0, 9, 4]), "Hello");
        assert_eq!(t.tokens.timestamp_begin, 9);
        assert_eq!(t.tokens.no_speech, Some(7));
        assert_eq!(t.language("en"), Some(6));
        assert!(Tokenizer::parse("{}").is_err());
    }

    #[test]
    fn the_bundled_tokenizer_encodes_and_decodes_prompts() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../models/whisper-tiny.en/tokenizer.json");
        let t = Tokenizer::open(&path).expect("the bundled model (scripts/fetch-model.sh)");
        let ids = t.encode(" Sarah, Thursday and 1789.").unwrap();
        assert!(
            ids.len() >= 5 && ids.iter().all(|id| *id < t.tokens.eot),
            "{ids:?}"
        );
        assert_eq!(t.decode(&ids), " Sarah, Thursday and 1789.");
    }

    #[test]
    fn byte_map_is_a_bijection() {
        let map = bytes_to_unicode();
        let chars: std::collections::HashSet<char> = map.iter().map(|(_, c)| *c).collect();
        assert_eq!(chars.len(), 256);
        assert_eq!(map[b'a' as usize].1, 'a');
        assert_eq!(map[b' ' as usize].1, 'Ġ');
    }
}
