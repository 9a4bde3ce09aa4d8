//! Fireflies' queries. Who sees what: everyone reads their own recordings; an admin may
//! also read every recording in their workspace, by id or by naming its owner. A
//! non-admin naming someone else (`user_id`, `host_email`, `organizer_email`,
//! `participant_email`, `organizers`, `participants`) gets `require_elevated_privilege`
//! rather than a silently narrowed answer, and anyone else's recording by id is
//! `object_not_found`, as a missing one is.

use std::collections::BTreeMap;

use async_graphql::{Context, Object};
use hark_core::scopes::Scope;
use hark_store::StoreError;
use hark_store::recordings::{KeywordScope, RecordingSearch};
use hark_store::users::User;
use time::{Duration, OffsetDateTime};

use super::errors::FfError;
use super::schema::{Caller, DateTime, TranscriptNode, TranscriptsQueryScope, UserNode};
use crate::error::ApiError;
use crate::routes::manage::member_here;

/// Most transcripts one `transcripts` query returns, and how far it may page.
pub const MAX_LIMIT: i32 = 50;
pub const MAX_SKIP: i32 = 5000;
/// Most owners one query may name.
const MAX_NAMED: usize = 50;

pub struct Query;

#[Object(rename_args = "snake_case")]
impl Query {
    /// A member of the caller's workspace; without `id`, the caller.
    async fn user(
        &self,
        ctx: &Context<'_>,
        id: Option<String>,
    ) -> Result<Option<UserNode>, FfError> {
        let caller = Caller::get(ctx);
        caller.principal.require(Scope::Read)?;
        let id = match id.as_deref().map(str::trim).filter(|i| !i.is_empty()) {
            None => caller.principal.user_id,
            Some(text) => text.parse().map_err(|_| FfError::not_found("User"))?,
        };
        // Who else belongs, and how much they transcribe, is for admins (as the REST
        // member list is): anyone else sees only themselves.
        if id != caller.principal.user_id && !caller.is_admin() {
            return Err(FfError::not_found("User"));
        }
        Ok(Some(UserNode::new(
            member_here(&caller.state, &caller.principal, id).await?,
        )))
    }

    /// Everyone in the caller's workspace, for admins; the caller alone for anyone else.
    async fn users(&self, ctx: &Context<'_>) -> Result<Option<Vec<UserNode>>, FfError> {
        let caller = Caller::get(ctx);
        caller.principal.require(Scope::Read)?;
        let users = caller.state.store.users();
        let users = if caller.is_admin() {
            users.list(caller.principal.workspace_id).await?
        } else {
            vec![users.by_id(caller.principal.user_id).await?]
        };
        Ok(Some(users.into_iter().map(UserNode::new).collect()))
    }

    async fn transcript(
        &self,
        ctx: &Context<'_>,
        id: String,
    ) -> Result<Option<TranscriptNode>, FfError> {
        let caller = Caller::get(ctx);
        caller.principal.require(Scope::Read)?;
        Ok(Some(visible(caller, &id).await?))
    }

    /// The caller's transcripts (or, for an admin, those of the owners named), newest
    /// first. `keyword` is looked for in titles, sentences or both (`scope`, default all);
    /// `date` (epoch ms) picks that UTC day; `fromDate`/`toDate` bound the upload time.
    #[allow(clippy::too_many_arguments)]
    #[graphql(
        complexity = "(limit.unwrap_or(MAX_LIMIT).clamp(1, MAX_LIMIT) as usize) * child_complexity"
    )]
    async fn transcripts(
        &self,
        ctx: &Context<'_>,
        title: Option<String>,
        keyword: Option<String>,
        scope: Option<TranscriptsQueryScope>,
        #[graphql(name = "fromDate")] from_date: Option<DateTime>,
        #[graphql(name = "toDate")] to_date: Option<DateTime>,
        date: Option<f64>,
        limit: Option<i32>,
        skip: Option<i32>,
        host_email: Option<String>,
        organizer_email: Option<String>,
        participant_email: Option<String>,
        organizers: Option<Vec<Option<String>>>,
        participants: Option<Vec<Option<String>>>,
        user_id: Option<String>,
        mine: Option<bool>,
        channel_id: Option<String>,
    ) -> Result<Option<Vec<TranscriptNode>>, FfError> {
        let caller = Caller::get(ctx);
        caller.principal.require(Scope::Read)?;
        let limit = limit.unwrap_or(MAX_LIMIT);
        if !(0..=MAX_LIMIT).contains(&limit) {
            return Err(FfError::invalid(
                &["limit"],
                format!("limit must be between 0 and {MAX_LIMIT}"),
            ));
        }
        let skip = skip.unwrap_or(0);
        if !(0..=MAX_SKIP).contains(&skip) {
            return Err(FfError::invalid(
                &["skip"],
                format!("skip must be between 0 and {MAX_SKIP}"),
            ));
        }
        let (mut from, mut to) = (from_date.map(|d| d.0), to_date.map(|d| d.0));
        if let Some(ms) = date {
            let (start, end) = utc_day(ms)?;
            from = Some(from.map_or(start, |f| f.max(start)));
            to = Some(to.map_or(end, |t| t.min(end)));
        }
        if let (Some(from), Some(to)) = (from_date, to_date)
            && from.0 > to.0
        {
            return Err(FfError::invalid(
                &["fromDate", "toDate"],
                "fromDate must not be after toDate",
            ));
        }
        // hark has no channels: no transcript is in one.
        if channel_id.is_some_and(|c| !c.trim().is_empty()) {
            return Ok(Some(Vec::new()));
        }
        let selector = Selector::from_args(
            [
                ("host_email", host_email.map(|e| vec![e])),
                ("organizer_email", organizer_email.map(|e| vec![e])),
                ("participant_email", participant_email.map(|e| vec![e])),
                (
                    "organizers",
                    organizers.map(|l| l.into_iter().flatten().collect()),
                ),
                (
                    "participants",
                    participants.map(|l| l.into_iter().flatten().collect()),
                ),
            ],
            user_id,
            mine,
        )?;
        let owners = owners(caller, selector).await?;
        let search = RecordingSearch {
            owners: owners.keys().copied().collect(),
            title,
            keyword,
            scope: match scope.unwrap_or_default() {
                TranscriptsQueryScope::Title => KeywordScope::Title,
                TranscriptsQueryScope::Sentences => KeywordScope::Transcript,
                TranscriptsQueryScope::All => KeywordScope::Both,
            },
            from,
            to,
            limit: limit as u32,
            offset: skip as u32,
        };
        let found = caller.state.store.recordings().search(&search).await?;
        Ok(Some(
            found
                .into_iter()
                .filter_map(|r| {
                    let owner = owners.get(&r.user_id)?.clone();
                    Some(TranscriptNode::new(r, owner))
                })
                .collect(),
        ))
    }
}

/// The UTC day holding the instant `ms` (epoch milliseconds).
fn utc_day(ms: f64) -> Result<(OffsetDateTime, OffsetDateTime), FfError> {
    let bad = || FfError::invalid(&["date"], "date: epoch milliseconds");
    if !ms.is_finite() {
        return Err(bad());
    }
    let nanos = (ms as i128).checked_mul(1_000_000).ok_or_else(bad)?;
    let at = OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|_| bad())?;
    let start = at.date().midnight().assume_utc();
    Ok((start, start + Duration::days(1) - Duration::milliseconds(1)))
}

/// A recording the caller may see, with its owner: their own, or any in their workspace
/// for an admin. Anything else is `object_not_found`, exactly like a missing one.
pub async fn visible(caller: &Caller, id: &str) -> Result<TranscriptNode, FfError> {
    let missing = || FfError::not_found("Transcript");
    let id: i64 = id.trim().parse().map_err(|_| missing())?;
    let recording = match caller.state.store.recordings().by_id(id).await {
        Ok(r) => r,
        Err(StoreError::NotFound) => return Err(missing()),
        Err(e) => return Err(e.into()),
    };
    if recording.user_id != caller.principal.user_id && !caller.is_admin() {
        return Err(missing());
    }
    let owner = member_here(&caller.state, &caller.principal, recording.user_id)
        .await
        .map_err(|e| match e {
            ApiError::NotFound(_) => missing(),
            other => other.into(),
        })?;
    Ok(TranscriptNode::new(recording, owner))
}

/// Whose transcripts a `transcripts` query asks for.
enum Selector {
    /// The caller's own (`mine: true`, or no filter).
    Mine,
    /// Everyone the caller may see (`mine: false`).
    Everyone,
    UserId(String),
    /// Owners by username (hark's stand-in for e-mail addresses).
    Named(Vec<String>),
}

impl Selector {
    /// Fireflies allows one of these filters at a time.
    fn from_args<const N: usize>(
        named: [(&'static str, Option<Vec<String>>); N],
        user_id: Option<String>,
        mine: Option<bool>,
    ) -> Result<Self, FfError> {
        let mut given: Vec<&'static str> = Vec::new();
        let mut selector = match mine {
            Some(true) => Selector::Mine,
            Some(false) => Selector::Everyone,
            None => Selector::Mine,
        };
        if mine.is_some() {
            given.push("mine");
        }
        if let Some(id) = user_id {
            given.push("user_id");
            selector = Selector::UserId(id);
        }
        for (field, names) in named {
            if let Some(names) = names {
                given.push(field);
                if names.len() > MAX_NAMED {
                    return Err(FfError::invalid(
                        &[field],
                        format!("{field}: at most {MAX_NAMED} names"),
                    ));
                }
                selector = Selector::Named(names);
            }
        }
        if given.len() > 1 {
            return Err(FfError::invalid(
                &given,
                format!("use only one of {} at a time", given.join(", ")),
            ));
        }
        Ok(selector)
    }
}

/// The owners a selector names that the caller may see, by id.
async fn owners(caller: &Caller, selector: Selector) -> Result<BTreeMap<i64, User>, FfError> {
    let me = caller.principal.user_id;
    let users = caller.state.store.users();
    let refuse = || FfError::elevated("only admins can read other users' transcripts");
    let mut found = BTreeMap::new();
    match selector {
        Selector::Mine => {
            found.insert(me, member_here(&caller.state, &caller.principal, me).await?);
        }
        Selector::Everyone if !caller.is_admin() => {
            found.insert(me, member_here(&caller.state, &caller.principal, me).await?);
        }
        Selector::Everyone => {
            for user in users.list(caller.principal.workspace_id).await? {
                found.insert(user.id, user);
            }
        }
        Selector::UserId(text) => {
            let id: i64 = text
                .trim()
                .parse()
                .map_err(|_| FfError::invalid(&["user_id"], "user_id: a user's id"))?;
            if id != me && !caller.is_admin() {
                return Err(refuse());
            }
            found.insert(id, member_here(&caller.state, &caller.principal, id).await?);
        }
        Selector::Named(names) => {
            for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
                let user = match users.by_username(name).await {
                    Ok(u) if u.workspace_id == caller.principal.workspace_id => Some(u),
                    Ok(_) | Err(StoreError::NotFound) => None,
                    Err(e) => return Err(e.into()),
                };
                match user {
                    Some(u) if u.id == me => {
                        found.insert(u.id, u);
                    }
                    // A non-admin learns nothing about who exists.
                    _ if !caller.is_admin() => return Err(refuse()),
                    Some(u) => {
                        found.insert(u.id, u);
                    }
                    None => {}
                }
            }
        }
    }
    Ok(found)
}
