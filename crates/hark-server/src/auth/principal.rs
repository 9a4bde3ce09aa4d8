use std::sync::Arc;

use hark_core::roles::Role;
use hark_core::scopes::{Scope, Scopes};
use hark_core::tokens::TokenKind;
use hark_store::tokens::TokenRecord;

use crate::error::ApiError;

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq)]
pub enum Credential {
    /// Signed in through the web UI (cookie).
    Session,
    /// The token as it stood when it was verified (the cache keeps it current).
    Token(Arc<TokenRecord>),
}

/// An authenticated caller and the rights that follow from role ∩ token.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub user_id: i64,
    pub workspace_id: i64,
    pub role: Role,
    pub credential: Credential,
}

impl Principal {
    pub fn token_id(&self) -> Option<i64> {
        match &self.credential {
            Credential::Token(record) => Some(record.id),
            Credential::Session => None,
        }
    }

    /// May this caller act on its own recordings, tags and tokens with `scope`?
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        match &self.credential {
            Credential::Session => {
                if scope != Scope::Read && !self.role.may_use_tokens() {
                    return Err(ApiError::forbidden("viewers have read-only access"));
                }
                Ok(())
            }
            Credential::Token(record) if record.kind == TokenKind::Personal => {
                if record.scopes.contains(scope) {
                    Ok(())
                } else {
                    Err(ApiError::forbidden(format!(
                        "this token lacks the `{}` scope",
                        scope.as_str()
                    )))
                }
            }
            Credential::Token(record)
                if record.kind == TokenKind::Project
                    && matches!(scope, Scope::Batch | Scope::Realtime) =>
            {
                if record.scopes.contains(scope) {
                    Ok(())
                } else {
                    Err(ApiError::forbidden(format!(
                        "this is a {} key; it cannot use the {} API",
                        record.scopes.names().join(","),
                        scope.as_str()
                    )))
                }
            }
            Credential::Token(record) if record.kind == TokenKind::Project => {
                Err(ApiError::forbidden(
                    "project keys reach only the batch API (batch keys) or streaming (realtime keys)",
                ))
            }
            Credential::Token(record) => Err(ApiError::forbidden(format!(
                "{} tokens cannot use this endpoint",
                record.kind.as_str()
            ))),
        }
    }

    /// The project a project key is bound to; `None` for every other caller.
    pub fn project_id(&self) -> Option<i64> {
        match &self.credential {
            Credential::Token(record) if record.kind == TokenKind::Project => record.project_id,
            _ => None,
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

    /// The management API (`/api/manage/…`): a management token whose owner is still an
    /// admin, or an admin signed in to the web UI. Personal tokens do not reach it, so a
    /// leaked script token cannot change who belongs to the workspace.
    pub fn require_management(&self) -> Result<(), ApiError> {
        let kind_allows = match &self.credential {
            Credential::Session => true,
            Credential::Token(record) => record.kind == TokenKind::Management,
        };
        if !kind_allows {
            return Err(ApiError::forbidden(
                "the management API takes a management token (or an admin's web session)",
            ));
        }
        if self.role != Role::Admin {
            return Err(ApiError::forbidden("only admins can manage the workspace"));
        }
        Ok(())
    }

    /// Scopes a new token may have: a token cannot mint a more powerful one.
    pub fn grantable_scopes(&self) -> Scopes {
        match &self.credential {
            Credential::Session => Scopes::all(),
            Credential::Token(record) => record.scopes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(role: Role, scopes: &str, kind: TokenKind) -> Principal {
        let now = time::OffsetDateTime::now_utc();
        let record = TokenRecord {
            id: 1,
            kind,
            name: "t".into(),
            scopes: scopes.parse().unwrap(),
            user_id: 1,
            owner_username: "u".into(),
            workspace_id: 1,
            project_id: None,
            hint: "hark_pat_…abcd".into(),
            created_at: now,
            expires_at: None,
            last_used_at: None,
            last_used_ip: None,
            revoked_at: None,
            revoked_by: None,
            requests_per_minute: None,
        };
        Principal {
            user_id: 1,
            workspace_id: 1,
            role,
            credential: Credential::Token(Arc::new(record)),
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
