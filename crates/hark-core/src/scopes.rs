//! What a personal access token may do, on top of what its owner's role allows.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::DomainError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Read recordings, transcripts, tags and token metadata.
    Read,
    /// Upload, change and delete recordings and tags; manage tokens.
    Write,
    /// Scriptix-style batch transcription sessions.
    Batch,
    /// Realtime streaming recognition.
    Realtime,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Read, Scope::Write, Scope::Batch, Scope::Realtime];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Batch => "batch",
            Scope::Realtime => "realtime",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl FromStr for Scope {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s.trim())
            .ok_or_else(|| {
                DomainError::invalid(
                    "scopes",
                    format!("unknown scope {s:?}; use read, write, batch or realtime"),
                )
            })
    }
}

/// A set of scopes, small enough to copy around on the hot path.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Scopes(u8);

impl Scopes {
    pub fn all() -> Self {
        Scope::ALL.into_iter().collect()
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Scope::as_str).collect()
    }

    /// Parses user input; an empty list is refused because such a token could do nothing.
    pub fn parse_list<S: AsRef<str>>(items: &[S]) -> Result<Self, DomainError> {
        let scopes = items
            .iter()
            .map(|s| s.as_ref().parse::<Scope>())
            .collect::<Result<Scopes, _>>()?;
        if scopes.is_empty() {
            return Err(DomainError::invalid(
                "scopes",
                "at least one scope is required",
            ));
        }
        Ok(scopes)
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Scopes(iter.into_iter().fold(0, |acc, s| acc | s.bit()))
    }
}

/// The stored form: names joined by commas, readable in any SQL shell.
impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scopes({self})")
    }
}

impl FromStr for Scopes {
    type Err = DomainError;

    /// The stored form; empty is the empty set (management tokens work by role, not scope).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',')
            .filter(|p| !p.trim().is_empty())
            .map(str::parse::<Scope>)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_round_trips() {
        let s: Scopes = "read, batch".parse().unwrap();
        assert!(s.contains(Scope::Read) && s.contains(Scope::Batch));
        assert!(!s.contains(Scope::Write));
        assert_eq!(s.to_string(), "read,batch");
        assert_eq!(s.to_string().parse::<Scopes>().unwrap(), s);
        assert_eq!(
            Scopes::all().names(),
            ["read", "write", "batch", "realtime"]
        );
    }

    #[test]
    fn refuses_unknown_and_empty_input_but_stores_the_empty_set() {
        assert!("read,admin".parse::<Scopes>().is_err());
        assert!(
            Scopes::parse_list::<&str>(&[]).is_err(),
            "people must pick one"
        );
        let none: Scopes = "".parse().expect("the stored empty set");
        assert!(none.is_empty());
        assert_eq!(none.to_string(), "");
    }
}
