//! `hark admin …`: direct administration of a data dir, safe beside a running server
//! (SQLite in WAL mode; the server learns of revocations through the change log).

use std::io::BufRead;
use std::path::Path;

use anyhow::{Context, bail};
use hark_core::roles::Role;
use hark_core::scopes::Scopes;
use hark_server::auth::passwords;
use hark_server::tokens::{IssueRequest, TokenLimits, issue, revoke};
use hark_store::audit::Actor;
use hark_store::{DEFAULT_WORKSPACE_ID, Store};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::cli::{AdminCommand, StorageArgs};

/// Audit events from the CLI have no user or token: the actor is whoever runs the shell.
fn cli_actor() -> Actor {
    Actor {
        workspace_id: DEFAULT_WORKSPACE_ID,
        user_agent: Some("hark-cli".into()),
        ..Actor::default()
    }
}

pub async fn run(
    data_dir: &Path,
    storage: &StorageArgs,
    command: AdminCommand,
) -> anyhow::Result<()> {
    if let AdminCommand::Migrate {
        to_database_url,
        to_blob_url,
    } = command
    {
        return crate::migrate::run(data_dir, storage, &to_database_url, to_blob_url).await;
    }
    let store = crate::storage::open_store(data_dir, storage).await?;
    let result = dispatch(&store, command).await;
    store.close().await;
    result
}

async fn dispatch(store: &Store, command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::CreateUser {
            username,
            password_stdin,
            role,
        } => {
            let role: Role = role.parse()?;
            let username = username.trim().to_owned();
            if username.is_empty() || username.chars().count() > 64 {
                bail!("--username must be 1 to 64 characters");
            }
            let (password, generated) = if password_stdin {
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)?;
                (line.trim_end_matches(['\r', '\n']).to_owned(), false)
            } else {
                (random_password(), true)
            };
            let hash = passwords::hash(password.clone()).await?;
            let user = store.users().create(&username, &hash, role).await?;
            store
                .audit()
                .record(
                    &cli_actor(),
                    "member.added",
                    &format!("user:{}", user.id),
                    Some(&format!("{} as {}", user.username, user.role)),
                )
                .await?;
            eprintln!(
                "created user {} (id {}, role {})",
                user.username, user.id, user.role
            );
            if generated {
                println!("{password}");
                eprintln!("the generated password above is shown once");
            }
        }
        AdminCommand::SetRole { username, role } => {
            let role: Role = role.parse()?;
            let user = store
                .users()
                .by_username(&username)
                .await
                .with_context(|| format!("no user named {username:?}"))?;
            store.users().set_role(user.id, role).await?;
            store
                .audit()
                .record(
                    &cli_actor(),
                    "member.role_changed",
                    &format!("user:{}", user.id),
                    Some(&format!("{} → {}", user.role, role)),
                )
                .await?;
            eprintln!("{} is now {}", user.username, role);
        }
        AdminCommand::CreateToken {
            username,
            name,
            expires,
            scopes,
        } => {
            let user = store
                .users()
                .by_username(&username)
                .await
                .with_context(|| format!("no user named {username:?}"))?;
            if !user.role.may_use_tokens() {
                bail!("{username} is a viewer; viewers cannot hold API tokens");
            }
            let (secret, record) = issue(
                store,
                IssueRequest {
                    kind: hark_core::tokens::TokenKind::Personal,
                    project_id: None,
                    owner_user_id: user.id,
                    workspace_id: user.workspace_id,
                    name: &name,
                    expires: Some(&expires),
                    scopes: scopes.as_deref(),
                    grantable: Scopes::all(),
                    limits: TokenLimits::default(),
                    requests_per_minute: None,
                    default_requests_per_minute: 0,
                    requester_is_admin: true,
                    ip_rules: Default::default(),
                    audio_quota: None,
                },
                &cli_actor(),
            )
            .await?;
            eprintln!(
                "created token {} ({}) for {}",
                record.id, record.hint, user.username
            );
            println!("{}", secret.expose());
        }
        AdminCommand::ListTokens { username, json } => {
            let mut tokens = store.tokens().list_all().await?;
            if let Some(name) = &username {
                tokens.retain(|t| &t.owner_username == name);
            }
            let now = OffsetDateTime::now_utc();
            if json {
                let rows: Vec<serde_json::Value> = tokens
                    .iter()
                    .map(|t| {
                        serde_json::json!({
                            "id": t.id,
                            "name": t.name,
                            "owner": t.owner_username,
                            "kind": t.kind.as_str(),
                            "scopes": t.scopes.names(),
                            "status": format!("{:?}", t.status(now)).to_lowercase(),
                            "hint": t.hint,
                            "created_at": rfc3339(Some(t.created_at)),
                            "last_used_at": rfc3339(t.last_used_at),
                            "expires_at": rfc3339(t.expires_at),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!(
                    "{:>5}  {:<24} {:<12} {:<8} {:<20} {:<20} {:<20}",
                    "ID", "NAME", "OWNER", "STATUS", "LAST USED", "EXPIRES", "HINT"
                );
                for t in &tokens {
                    println!(
                        "{:>5}  {:<24} {:<12} {:<8} {:<20} {:<20} {:<20}",
                        t.id,
                        truncate(&t.name, 24),
                        truncate(&t.owner_username, 12),
                        format!("{:?}", t.status(now)).to_lowercase(),
                        rfc3339(t.last_used_at).as_str().unwrap_or("never"),
                        rfc3339(t.expires_at).as_str().unwrap_or("never"),
                        t.hint
                    );
                }
            }
        }
        AdminCommand::Migrate { .. } => bail!("migrate runs before a store is opened"),
        AdminCommand::RevokeToken { id } => {
            let record = revoke(store, id, &cli_actor()).await?;
            eprintln!("revoked token {} ({})", record.id, record.name);
        }
    }
    Ok(())
}

fn rfc3339(t: Option<OffsetDateTime>) -> serde_json::Value {
    t.and_then(|t| t.replace_nanosecond(0).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .map_or(serde_json::Value::Null, serde_json::Value::String)
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

fn random_password() -> String {
    hark_core::tokens::random_base62(20)
}
