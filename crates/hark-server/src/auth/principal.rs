use std::sync::Arc;

use hark_core::networks::IpRules;
use hark_core::quotas::AudioQuota;
use hark_core::roles::Role;
use hark_core::scopes::{Scope, Scopes};
use hark_core::tokens::{TokenHash, TokenKind};
use hark_store::tokens::TokenRecord;

use crate::error::ApiError;

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq)]
pub enum Credential {
    /// Signed in through the web UI (cookie).
    Session,
    /// A token as it stood when it was verified (the cache keeps it current).
    Token {
        record: Arc<TokenRecord>,
        /// The presented secret is the old one of a rotation, in its grace period: it
        /// still does the token's work but manages nothing, so a leaked old secret cannot
        /// rotate the owner out or mint tokens.
        retiring: bool,
        /// The presented secret's hash: audit events carry it (never the secret).
        hash: TokenHash,
        /// The audio budget its transcriptions spend (a temporary key: its parent's).
        budget: Option<BudgetHolder>,
    },
}

/// A token with an audio budget, and the budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetHolder {
    pub token_id: i64,
    pub quota: AudioQuota,
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
    pub fn budget(&self) -> Option<BudgetHolder> {
        match &self.credential {
            Credential::Token { budget, .. } => *budget,
            Credential::Session => None,
        }
    }

    /// The IP rules a token this caller makes or changes may get: a token credential that
    /// is itself restricted hands out only rules within its own (none asked: its own), so
    /// minting a token or editing its own rules cannot step outside them.
    pub fn grantable_rules(&self, asked: IpRules) -> Result<IpRules, ApiError> {
        let Credential::Token { record, .. } = &self.credential else {
            return Ok(asked);
        };
        let own = &record.ip_rules;
        if own.is_empty() {
            Ok(asked)
        } else if asked.is_empty() {
            Ok(own.clone())
        } else if asked.within(own) {
            Ok(asked)
        } else {
            Err(ApiError::forbidden(
                "this token is restricted to some networks: the rules it gives must be at least \
                 as narrow as its own",
            ))
        }
    }

    /// Refuses rules a restricted token credential would widen itself (or another token)
    /// to: a token may narrow rules, never step outside its own.
    pub fn require_within_own_rules(&self, rules: &IpRules) -> Result<(), ApiError> {
        match &self.credential {
            Credential::Token { record, .. }
                if !record.ip_rules.is_empty() && !rules.within(&record.ip_rules) =>
            {
                Err(ApiError::forbidden(
                    "this token is restricted to some networks: it can only narrow rules, \
                     never widen or clear them (an admin or a web session can)",
                ))
            }
            _ => Ok(()),
        }
    }

    /// The token whose usage this caller's requests count in: the token, or a temporary
    /// key's parent.
    pub fn usage_token_id(&self) -> Option<i64> {
        match &self.credential {
            Credential::Token { record, .. } => Some(record.parent_id.unwrap_or(record.id)),
            Credential::Session => None,
        }
    }

    pub fn token_id(&self) -> Option<i64> {
        match &self.credential {
            Credential::Token { record, .. } => Some(record.id),
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
            Credential::Token { record, .. } if record.kind == TokenKind::Personal => {
                if record.scopes.contains(scope) {
                    Ok(())
                } else {
                    Err(ApiError::forbidden(format!(
                        "this token lacks the `{}` scope",
                        scope.as_str()
                    )))
                }
            }
            Credential::Token { record, .. }
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
            Credential::Token { record, .. } if record.kind == TokenKind::Project => {
                Err(ApiError::forbidden(
                    "project keys reach only the batch API (batch keys) or streaming (realtime keys)",
                ))
            }
            Credential::Token { record, .. } => Err(ApiError::forbidden(format!(
                "{} tokens cannot use this endpoint",
                record.kind.as_str()
            ))),
        }
    }

    /// The project a project key is bound to; `None` for every other caller.
    pub fn project_id(&self) -> Option<i64> {
        match &self.credential {
            Credential::Token { record, .. } if record.kind == TokenKind::Project => {
                record.project_id
            }
            _ => None,
        }
    }

    /// Creating, rotating and revoking tokens: never for viewers, never with the old
    /// secret of a rotation, and a token must carry the `write` scope to do it.
    pub fn require_token_management(&self) -> Result<(), ApiError> {
        if !self.role.may_use_tokens() {
            return Err(ApiError::forbidden(
                "viewers cannot create or manage API tokens",
            ));
        }
        self.refuse_retiring()?;
        self.require(Scope::Write)
    }

    /// The management API (`/api/manage/…`), and minting or rotating management tokens:
    /// a management token whose owner is still an admin, or an admin signed in to the web
    /// UI. Personal tokens do not reach it, so a leaked script token (an admin's included)
    /// cannot change who belongs to the workspace or become a management token.
    pub fn require_management(&self) -> Result<(), ApiError> {
        let kind_allows = match &self.credential {
            Credential::Session => true,
            Credential::Token { record, .. } => record.kind == TokenKind::Management,
        };
        if !kind_allows {
            return Err(ApiError::forbidden(
                "this takes a management token (or an admin's web session)",
            ));
        }
        if self.role != Role::Admin {
            return Err(ApiError::forbidden("only admins can manage the workspace"));
        }
        self.refuse_retiring()
    }

    /// Rotating returns the token's new secret to the caller, so only the owner may, and
    /// only with a credential at least as powerful as the token: otherwise rotation
    /// would hand out a sibling's wider scopes, or let an admin silently become someone
    /// else. Admins (and developers, for project keys) may still revoke.
    pub fn require_rotation_of(&self, token: &TokenRecord) -> Result<(), ApiError> {
        if token.user_id != self.user_id {
            return Err(ApiError::forbidden(
                "only a token's owner can rotate it (the new secret goes to whoever rotates); \
                 you may revoke it",
            ));
        }
        if token.kind == TokenKind::Management {
            return self.require_management();
        }
        self.require_token_management()?;
        let grantable = self.grantable_scopes();
        if token.scopes.iter().any(|s| !grantable.contains(s)) {
            return Err(ApiError::forbidden(
                "rotate this token with a credential that holds every scope it has",
            ));
        }
        Ok(())
    }

    pub(crate) fn refuse_retiring(&self) -> Result<(), ApiError> {
        match &self.credential {
            Credential::Token { retiring: true, .. } => Err(ApiError::forbidden(
                "this secret was rotated away and only works until its grace period ends: \
                 it cannot manage tokens",
            )),
            _ => Ok(()),
        }
    }

    /// Scopes a new token may have: a token cannot mint a more powerful one.
    pub fn grantable_scopes(&self) -> Scopes {
        match &self.credential {
            Credential::Session => Scopes::all(),
            Credential::Token { record, .. } => record.scopes,
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
            parent_id: None,
            temporary: false,
            ip_rules: Default::default(),
            audio_quota: None,
            revoked_reason: None,
        };
        Principal {
            user_id: 1,
            workspace_id: 1,
            role,
            credential: Credential::Token {
                record: Arc::new(record),
                retiring: false,
                hash: TokenHash::of("test"),
                budget: None,
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
    fn a_retiring_secret_manages_nothing() {
        let mut p = token(
            Role::Admin,
            "read,write,batch,realtime",
            TokenKind::Personal,
        );
        assert!(p.require(Scope::Read).is_ok());
        assert!(p.require_token_management().is_ok());
        if let Credential::Token { retiring, .. } = &mut p.credential {
            *retiring = true;
        }
        assert!(
            p.require(Scope::Read).is_ok(),
            "it still does the token's work"
        );
        assert!(p.require_token_management().is_err());
        let mut mgt = token(Role::Admin, "", TokenKind::Management);
        assert!(mgt.require_management().is_ok());
        if let Credential::Token { retiring, .. } = &mut mgt.credential {
            *retiring = true;
        }
        assert!(mgt.require_management().is_err());
    }

    #[test]
    fn rotation_needs_the_owner_and_every_scope() {
        let narrow = token(Role::Member, "read,write", TokenKind::Personal);
        let Credential::Token { record, .. } =
            &token(Role::Member, "read,write,batch", TokenKind::Personal).credential
        else {
            unreachable!()
        };
        assert!(narrow.require_rotation_of(record).is_err(), "wider sibling");
        let Credential::Token { record: same, .. } = &narrow.credential else {
            unreachable!()
        };
        assert!(narrow.require_rotation_of(same).is_ok());
        let mut others = (**same).clone();
        others.user_id = 2;
        let admin = token(
            Role::Admin,
            "read,write,batch,realtime",
            TokenKind::Personal,
        );
        assert!(admin.require_rotation_of(&others).is_err(), "not the owner");
        let mut management = (**same).clone();
        management.kind = TokenKind::Management;
        management.scopes = Scopes::default();
        assert!(
            admin.require_rotation_of(&management).is_err(),
            "a PAT never gets a management secret"
        );
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
