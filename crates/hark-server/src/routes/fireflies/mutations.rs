//! Fireflies' mutations, each through the rule hark already has for it: uploads through
//! the shared intake, deletion through the REST route's own function, role changes as
//! the management API makes them (token caches evicted, audited).

use async_graphql::{Context, Object};
use hark_core::recordings::validate_title;
use hark_core::roles::Role;
use hark_core::scopes::Scope;

use super::errors::{Code, FfError};
use super::query::visible;
use super::schema::{
    AudioUploadInput, AudioUploadStatus, Caller, FfRole, TranscriptNode, UpdateMeetingTitleInput,
    UserNode,
};
use crate::routes::manage::set_member_role;
use crate::routes::recordings::delete_owned;
use crate::routes::uploads::{Audio, Submission, checked_url, submit};
use crate::transcription::JobOptions;
use crate::webhooks::{Callback, CallbackStyle};

pub struct Mutation;

#[Object(rename_args = "snake_case")]
impl Mutation {
    /// Queues audio at `input.url` for transcription; `webhook` hears (Fireflies'
    /// `{meetingId, eventType, clientReferenceId}`) when it is done. Both URLs go through
    /// the outbound guard: internal addresses are `invalid_arguments`.
    async fn upload_audio(
        &self,
        ctx: &Context<'_>,
        input: Option<AudioUploadInput>,
    ) -> Result<Option<AudioUploadStatus>, FfError> {
        let caller = Caller::get(ctx);
        caller.principal.require(Scope::Write)?;
        let input = input.ok_or_else(|| FfError::new(Code::ArgsRequired, "input is required"))?;
        let state = &caller.state;
        let url = checked_url(state, "url", &input.url)?;
        let callback = match input.webhook.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(webhook) => Some(Callback {
                url: checked_url(state, "webhook", webhook)?.to_string(),
                style: CallbackStyle::Fireflies {
                    client_reference_id: input.client_reference_id.clone(),
                },
            }),
        };
        let submission = Submission {
            audio: Audio::Url(url),
            title: input.title.clone(),
            language: input.custom_language.clone(),
            project: None,
            options: JobOptions {
                callback,
                ..JobOptions::default()
            },
        };
        let (recording, _job) = submit(state, &caller.principal, &caller.actor, submission).await?;
        Ok(Some(AudioUploadStatus {
            success: Some(true),
            title: Some(recording.title),
            message: Some("Uploaded audio has been queued for processing.".into()),
        }))
    }

    /// Deletes a recording and its audio: the owner's, or any in the workspace for an
    /// admin. Answers with the transcript as it was.
    async fn delete_transcript(
        &self,
        ctx: &Context<'_>,
        id: String,
    ) -> Result<Option<TranscriptNode>, FfError> {
        let caller = Caller::get(ctx);
        caller.principal.require(Scope::Write)?;
        let found = visible(caller, &id).await?.load(ctx).await?;
        delete_owned(
            &caller.state,
            found.recording.user_id,
            found.recording.id,
            &caller.actor,
        )
        .await?;
        Ok(Some(found))
    }

    /// Renames a recording. Fireflies lets only admins; hark also lets the owner, who may
    /// rename it elsewhere anyway.
    async fn update_meeting_title(
        &self,
        ctx: &Context<'_>,
        input: UpdateMeetingTitleInput,
    ) -> Result<Option<TranscriptNode>, FfError> {
        let caller = Caller::get(ctx);
        caller.principal.require(Scope::Write)?;
        let title = validate_title(&input.title)
            .map_err(|e| FfError::invalid(&["title"], e.to_string()))?;
        let found = visible(caller, &input.id).await?;
        let store = &caller.state.store;
        let renamed = store
            .recordings()
            .rename(found.recording.user_id, found.recording.id, &title)
            .await?;
        store
            .audit()
            .record(
                &caller.actor,
                "recording.renamed",
                &format!("recording:{}", renamed.id),
                None,
            )
            .await?;
        Ok(Some(TranscriptNode::new(renamed, found.owner)))
    }

    /// An admin's web session only: `admin` makes a member an admin, `user` a plain
    /// member. Personal tokens never change who runs the workspace — not even an admin's,
    /// so a leaked script token cannot (hark's rule for the management API too). As the
    /// management API does it: the last admin cannot step down, the member's tokens are
    /// re-verified at once (on every server, through the change log), and it is audited.
    async fn set_user_role(
        &self,
        ctx: &Context<'_>,
        user_id: String,
        role: FfRole,
    ) -> Result<Option<UserNode>, FfError> {
        let caller = Caller::get(ctx);
        caller.principal.require(Scope::Write)?;
        if !caller.is_admin() {
            return Err(FfError::elevated("only admins can change roles"));
        }
        if caller.principal.require_management().is_err() {
            return Err(FfError::elevated(
                "changing roles takes an admin's web session (or the management API): \
                 personal tokens cannot",
            ));
        }
        let id: i64 = user_id
            .trim()
            .parse()
            .map_err(|_| FfError::not_found("User"))?;
        let role = match role {
            FfRole::Admin => Role::Admin,
            FfRole::User => Role::Member,
        };
        let member =
            set_member_role(&caller.state, &caller.principal, &caller.actor, id, role).await?;
        Ok(Some(UserNode::new(member)))
    }
}
