use hark_core::roles::Role;
use hark_core::scopes::{Scope, Scopes};
use hark_core::tokens::TokenKind;

use crate::error::ApiError;

/// How the caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// Signed in through the web UI (cookie).
    Session,
    Token {
        id: i64,
        kind: TokenKind,
        scopes: Scopes,
        project_id: Option<i64>,
    },
}

/// An authenticated caller and the rights that follow from role ∩ token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    pub user_id: i64,
    pub workspace_id: i64,
    pub role: Role,
    pub credential: Credential,
}

impl Principal {
    pub fn token_id(&self) -> Option<i64> {
        match self.credential {
            Credential::Token { id, .. } => Some(id),
            Credential::Session => None,
        }
    }

    /// May this caller act on its own recordings, tags and tokens with `scope`?
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        match self.credential {
            Credential::Session => {
                if scope != Scope::Read && !self.role.may_use_tokens() {
                    return Err(ApiError::forbidden("viewers have read-only access"));
                }
                Ok(())
            }
            Credential::Token {
                kind: TokenKind::Personal,
                scopes,
                ..
            } => {
                if scopes.contains(scope) {
                    Ok(())
                } else {
                    Err(ApiError::forbidden(format!(
                        "this token lacks the `{}` scope",
                        scope.as_str()
                    )))
                }
            }
            Credential::Token { kind, .. } => Err(ApiError::forbidden(format!(
                "{} tokens cannot use this endpoint",
                kind.as_str()
            ))),
        }
    }

    /// Creating, rotating and revoking tokens: never for viewers, and a token must carry
    /// the `write` scope to do it.
    pub fn require_token_management(&self) -> Result<(), ApiError> {
        if !self.role.may_use_tokens() {
            return Err(ApiError::forbidden(
                "viewers cannot create or manage API tokens",
            ));
        }
        self.require(Scope::Write)
    }

    /// Scopes a new token may have: a token cannot mint a more powerful one.
    pub fn grantable_scopes(&self) -> Scopes {
        match self.credential {
            Credential::Session => Scopes::all(),
            Credential::Token { scopes, .. } => scopes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(role: Role, scopes: &str, kind: TokenKind) -> Principal {
        Principal {
            user_id: 1,
            workspace_id: 1,
            role,
            credential: Credential::Token {
                id: 1,
                kind,
                scopes: scopes.parse().unwrap(),
                project_id: None,
            },
        }
    }

    #[test]
    fn scopes_limit_personal_tokens() {
        let p = token(Role::Member, "read", TokenKind::Personal);
        assert!(p.require(Scope::Read).is_ok());
        assert!(p.require(Scope::Write).is_err());
        assert!(p.require_token_management().is_err());
        let p = token(Role::Member, "read,write", TokenKind::Personal);
        assert!(p.require_token_management().is_ok());
    }

    #[test]
    fn other_kinds_and_viewers_are_refused() {
        assert!(
            token(Role::Admin, "read", TokenKind::Management)
                .require(Scope::Read)
                .is_err()
        );
        let viewer = Principal {
            user_id: 1,
            workspace_id: 1,
            role: Role::Viewer,
            credential: Credential::Session,
        };
        assert!(viewer.require(Scope::Read).is_ok());
        assert!(viewer.require(Scope::Write).is_err());
        assert!(viewer.require_token_management().is_err());
    }
}
