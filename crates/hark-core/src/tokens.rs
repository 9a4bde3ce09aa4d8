//! The token format: `hark_<kind>_` + 32 base62 characters of CSPRNG output + 6 base62
//! characters of the CRC32 of everything before them.
//!
//! The checksum lets us reject typos and random guesses without touching storage, and lets
//! secret scanners recognise a leaked hark token. Only the SHA-256 of the whole token is
//! ever stored; the plaintext lives in a [`TokenSecret`] that refuses to print itself.
//! Secrets are never compared directly: they are found by the hash of the presented text,
//! so response timing can tell an attacker nothing about a stored token's characters.

use std::fmt;

use rand::RngExt;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;
use time::OffsetDateTime;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const BODY_LEN: usize = 32;
const CHECKSUM_LEN: usize = 6;
const PREFIX_LEN: usize = 9;
/// Every hark token has exactly this many characters.
pub const TOKEN_LEN: usize = PREFIX_LEN + BODY_LEN + CHECKSUM_LEN;

/// Who a token acts for, told apart by its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// `hark_pat_`: acts as its owner, limited by its scopes.
    Personal,
    /// `hark_key_`: one project's recordings, batch or realtime.
    Project,
    /// `hark_mgt_`: workspace administration, never transcription.
    Management,
}

impl TokenKind {
    pub const ALL: [TokenKind; 3] = [
        TokenKind::Personal,
        TokenKind::Project,
        TokenKind::Management,
    ];

    pub fn prefix(self) -> &'static str {
        match self {
            TokenKind::Personal => "hark_pat_",
            TokenKind::Project => "hark_key_",
            TokenKind::Management => "hark_mgt_",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Personal => "personal",
            TokenKind::Project => "project",
            TokenKind::Management => "management",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        TokenKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    fn from_prefix(text: &str) -> Option<Self> {
        TokenKind::ALL
            .into_iter()
            .find(|k| text.starts_with(k.prefix()))
    }
}

/// The text was not a hark token. Deliberately says nothing more: the caller answers
/// every authentication failure the same way.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[error("malformed token")]
pub struct MalformedToken;

/// SHA-256 of the whole token text: the only form in which a token is stored.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    pub fn of(text: &str) -> Self {
        TokenHash(Sha256::digest(text.as_bytes()).into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(TokenHash)
    }

    /// Lower-case hex, as GitHub's `hashed_token`: what audit events carry and an admin
    /// searches by (`sha256sum` of a leaked token gives the same text).
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(text: &str) -> Option<Self> {
        if text.len() != 64 || !text.is_ascii() {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(TokenHash(bytes))
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

/// A token's plaintext. It is handed out once, in the creation response, and never printed:
/// `Debug` shows only the display hint.
pub struct TokenSecret(String);

impl TokenSecret {
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn into_exposed(self) -> String {
        self.0
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenSecret({})", display_hint(&self.0))
    }
}

/// A freshly generated token: its plaintext, the hash to store, and the hint to list.
#[derive(Debug)]
pub struct GeneratedToken {
    pub kind: TokenKind,
    pub secret: TokenSecret,
    pub hash: TokenHash,
    pub hint: String,
}

/// `len` characters of base62 from the thread's CSPRNG: for secrets of every kind
/// (token bodies, session ids, generated passwords) and unguessable names.
pub fn random_base62(len: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

pub fn generate(kind: TokenKind) -> GeneratedToken {
    let mut text = String::with_capacity(TOKEN_LEN);
    text.push_str(kind.prefix());
    text.push_str(&random_base62(BODY_LEN));
    let checksum = encode_checksum(crc32fast::hash(text.as_bytes()));
    text.push_str(&checksum);
    GeneratedToken {
        kind,
        hash: TokenHash::of(&text),
        hint: display_hint(&text),
        secret: TokenSecret(text),
    }
}

/// A string that has the shape of a hark token and a correct checksum. It may still be
/// unknown, expired or revoked: only storage can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedToken {
    pub kind: TokenKind,
    pub hash: TokenHash,
}

pub fn parse(text: &str) -> Result<ParsedToken, MalformedToken> {
    // ASCII first: every later step slices by byte offsets, which must be char boundaries.
    if text.len() != TOKEN_LEN || !text.is_ascii() {
        return Err(MalformedToken);
    }
    let kind = TokenKind::from_prefix(text).ok_or(MalformedToken)?;
    let (signed, checksum) = text.split_at(PREFIX_LEN + BODY_LEN);
    let body = &signed[PREFIX_LEN..];
    if !body.bytes().chain(checksum.bytes()).all(is_base62) {
        return Err(MalformedToken);
    }
    if checksum != encode_checksum(crc32fast::hash(signed.as_bytes())) {
        return Err(MalformedToken);
    }
    Ok(ParsedToken {
        kind,
        hash: TokenHash::of(text),
    })
}

/// What listings show instead of the token: the prefix and the last four characters.
pub fn display_hint(text: &str) -> String {
    let prefix = TokenKind::from_prefix(text).map_or("", TokenKind::prefix);
    let tail = text
        .char_indices()
        .rev()
        .nth(3)
        .map_or("", |(i, _)| &text[i..]);
    format!("{prefix}…{tail}")
}

fn is_base62(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

fn encode_checksum(mut value: u32) -> String {
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    out.iter().map(|&b| char::from(b)).collect()
}

/// The state a token is in at a given moment; derived, never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenStatus {
    Active,
    Expired,
    Revoked,
}

impl TokenStatus {
    pub fn at(
        now: OffsetDateTime,
        expires_at: Option<OffsetDateTime>,
        revoked_at: Option<OffsetDateTime>,
    ) -> Self {
        if revoked_at.is_some_and(|t| t <= now) {
            TokenStatus::Revoked
        } else if expires_at.is_some_and(|t| t <= now) {
            TokenStatus::Expired
        } else {
            TokenStatus::Active
        }
    }
}

/// Name rules shared by every kind of token.
pub fn validate_name(name: &str) -> Result<String, crate::DomainError> {
    let trimmed = name.trim();
    let chars = trimmed.chars().count();
    if chars == 0 || chars > 100 {
        return Err(crate::DomainError::invalid(
            "name",
            "must be between 1 and 100 characters",
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(crate::DomainError::invalid(
            "name",
            "must not contain control characters",
        ));
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::Duration;

    proptest! {
        #[test]
        fn parsing_never_panics(text in ".{0,80}") {
            let _ = parse(&text);
            let _ = display_hint(&text);
        }

        /// Exactly the token's length in bytes, with a multi-byte character near the
        /// checksum boundary (byte 41): the shape that once panicked on a char boundary.
        #[test]
        fn right_length_non_ascii_never_panics(body in "[0-9A-Za-z]{28,34}", wide in "[é€😀]") {
            let mut text = format!("hark_pat_{body}{wide}");
            prop_assume!(text.len() <= TOKEN_LEN);
            while text.len() < TOKEN_LEN {
                text.push('a');
            }
            prop_assert_eq!(parse(&text), Err(MalformedToken));
            let _ = display_hint(&text);
        }
    }

    #[test]
    fn generated_tokens_have_the_documented_shape() {
        for kind in TokenKind::ALL {
            let token = generate(kind);
            let text = token.secret.expose();
            assert_eq!(text.len(), TOKEN_LEN);
            assert!(text.starts_with(kind.prefix()));
            assert!(text[PREFIX_LEN..].bytes().all(is_base62));
            let parsed = parse(text).expect("a generated token parses");
            assert_eq!(parsed.kind, kind);
            assert_eq!(parsed.hash, token.hash);
            assert_eq!(
                token.hint,
                format!("{}…{}", kind.prefix(), &text[TOKEN_LEN - 4..])
            );
        }
    }

    #[test]
    fn tokens_are_unique() {
        let a = generate(TokenKind::Personal);
        let b = generate(TokenKind::Personal);
        assert_ne!(a.secret.expose(), b.secret.expose());
        assert_ne!(a.hash, b.hash);
    }

    #[test]
    fn checksum_is_six_fixed_width_base62_chars() {
        assert_eq!(encode_checksum(0), "000000");
        assert_eq!(encode_checksum(61), "00000z");
        assert_eq!(encode_checksum(62), "000010");
        assert_eq!(encode_checksum(u32::MAX), "4gfFC3");
    }

    #[test]
    fn any_single_character_change_is_rejected() {
        let token = generate(TokenKind::Project);
        let text = token.secret.expose();
        for i in PREFIX_LEN..TOKEN_LEN {
            let mut bytes = text.as_bytes().to_vec();
            bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
            let changed = String::from_utf8(bytes).unwrap();
            assert_eq!(parse(&changed), Err(MalformedToken), "position {i}");
        }
    }

    #[test]
    fn malformed_inputs_are_rejected() {
        let good = generate(TokenKind::Management);
        let text = good.secret.expose();
        let cases = [
            String::new(),
            "hark_pat_".into(),
            text[..TOKEN_LEN - 1].into(),
            format!("{text}x"),
            text.replacen("hark_mgt_", "hark_xyz_", 1),
            text.replacen("hark_mgt_", "hark_pat_", 1),
            format!("{}-{}", &text[..20], &text[21..]),
            format!("{}é{}", &text[..20], &text[22..]),
            // 47 bytes with a two-byte character straddling the checksum boundary.
            format!("{}é{}", &text[..40], &text[42..]),
            format!("hark_pat_{}é", "a".repeat(36)),
            " ".repeat(TOKEN_LEN),
        ];
        for case in cases {
            assert_eq!(parse(&case), Err(MalformedToken), "{case:?}");
        }
    }

    #[test]
    fn hash_is_sha256_of_the_text() {
        let h = TokenHash::of("abc");
        assert_eq!(
            h.0[..4],
            [0xba, 0x78, 0x16, 0xbf],
            "SHA-256(\"abc\") starts with ba7816bf"
        );
        assert_eq!(h, TokenHash::of("abc"));
        assert_ne!(h, TokenHash::of("abd"));
    }

    #[test]
    fn secret_debug_never_prints_the_token() {
        let token = generate(TokenKind::Personal);
        let text = token.secret.expose().to_owned();
        let printed = format!("{token:?}");
        assert!(!printed.contains(&text));
        assert!(printed.contains(&token.hint));
    }

    #[test]
    fn status_is_derived_from_times() {
        let now = OffsetDateTime::now_utc();
        let past = Some(now - Duration::seconds(1));
        let future = Some(now + Duration::days(1));
        assert_eq!(TokenStatus::at(now, None, None), TokenStatus::Active);
        assert_eq!(TokenStatus::at(now, future, None), TokenStatus::Active);
        assert_eq!(TokenStatus::at(now, past, None), TokenStatus::Expired);
        assert_eq!(TokenStatus::at(now, past, past), TokenStatus::Revoked);
        assert_eq!(TokenStatus::at(now, None, future), TokenStatus::Active);
    }

    #[test]
    fn names_are_validated() {
        assert_eq!(validate_name("  CI  ").unwrap(), "CI");
        assert!(validate_name("").is_err());
        assert!(validate_name("   ").is_err());
        assert!(validate_name(&"x".repeat(101)).is_err());
        assert!(validate_name(&"é".repeat(100)).is_ok());
        assert!(validate_name("a\nb").is_err());
    }

    #[test]
    fn hashes_read_back_from_their_hex_as_sha256sum_prints_them() {
        let hash = TokenHash::of("abc");
        let hex = hash.to_hex();
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(TokenHash::from_hex(&hex), Some(hash));
        assert_eq!(TokenHash::from_hex(&hex.to_uppercase()), Some(hash));
        assert_eq!(TokenHash::from_hex("zz"), None);
        assert_eq!(TokenHash::from_hex(&"é".repeat(32)), None);
    }
}
