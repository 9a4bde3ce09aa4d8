//! Fireflies' types, named as Fireflies names them, over hark's users and recordings.
//!
//! A Fireflies transcript is a hark recording; its user is the recording's owner. hark has
//! no e-mail addresses, so wherever Fireflies gives an e-mail (`email`, `host_email`,
//! `organizer_email`, `participants`) hark gives the username, and the `*_email` filters
//! take usernames. hark does not tell speakers apart: every sentence is "Speaker 1".

use async_graphql::{
    Context, Enum, ID, InputObject, InputValueError, InputValueResult, Object, Scalar, ScalarType,
    SimpleObject, Value as GqlValue,
};
use hark_core::recordings::Segment;
use hark_core::roles::Role;
use hark_store::audit::Actor;
use hark_store::recordings::{Recording, Usage};
use hark_store::users::User;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::OnceCell;

use super::errors::FfError;
use crate::auth::Principal;
use crate::state::AppState;

/// Who is asking, put in every request's context by the handler.
pub struct Caller {
    pub state: AppState,
    pub principal: Principal,
    pub actor: Actor,
}

impl Caller {
    pub fn get<'a>(ctx: &'a Context<'_>) -> &'a Caller {
        ctx.data_unchecked::<Caller>()
    }

    pub fn is_admin(&self) -> bool {
        self.principal.role == Role::Admin
    }
}

/// An ISO 8601 (RFC 3339) date-time; a bare `YYYY-MM-DD` reads as midnight UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime(pub OffsetDateTime);

#[Scalar(name = "DateTime")]
impl ScalarType for DateTime {
    fn parse(value: GqlValue) -> InputValueResult<Self> {
        let GqlValue::String(text) = &value else {
            return Err(InputValueError::expected_type(value));
        };
        parse_date_time(text).map(DateTime).ok_or_else(|| {
            InputValueError::custom("expected an ISO 8601 date-time such as 2024-05-01T09:30:00Z")
        })
    }

    fn to_value(&self) -> GqlValue {
        GqlValue::String(self.0.format(&Rfc3339).unwrap_or_default())
    }
}

fn parse_date_time(text: &str) -> Option<OffsetDateTime> {
    let text = text.trim();
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(t);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text, &format)
        .ok()
        .map(|d| d.midnight().assume_utc())
}

/// Fireflies' two roles: `admin` is hark's admin, `user` any other member.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "Role", rename_items = "lowercase")]
pub enum FfRole {
    Admin,
    User,
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[graphql(rename_items = "lowercase")]
pub enum TranscriptsQueryScope {
    Title,
    Sentences,
    #[default]
    All,
}

/// A hark user as Fireflies describes one; the usage counts are read only when asked for.
pub struct UserNode {
    pub user: User,
    usage: OnceCell<Usage>,
}

impl UserNode {
    pub fn new(user: User) -> Self {
        UserNode {
            user,
            usage: OnceCell::new(),
        }
    }

    async fn usage(&self, ctx: &Context<'_>) -> Result<&Usage, FfError> {
        self.usage
            .get_or_try_init(|| async {
                let store = &Caller::get(ctx).state.store;
                Ok(store.recordings().usage(self.user.id).await?)
            })
            .await
    }
}

#[Object(name = "User", rename_fields = "snake_case")]
impl UserNode {
    async fn user_id(&self) -> Option<String> {
        Some(self.user.id.to_string())
    }

    /// hark has no e-mail addresses: the username.
    async fn email(&self) -> Option<String> {
        Some(self.user.username.clone())
    }

    async fn name(&self) -> Option<String> {
        Some(self.user.username.clone())
    }

    async fn num_transcripts(&self, ctx: &Context<'_>) -> Result<Option<i32>, FfError> {
        let count = self.usage(ctx).await?.count;
        Ok(Some(i32::try_from(count).unwrap_or(i32::MAX)))
    }

    /// The id of the newest recording.
    async fn recent_transcript(&self, ctx: &Context<'_>) -> Result<Option<String>, FfError> {
        Ok(self.usage(ctx).await?.latest.map(|id| id.to_string()))
    }

    /// The same as `recent_transcript`: every hark recording is a "meeting".
    async fn recent_meeting(&self, ctx: &Context<'_>) -> Result<Option<String>, FfError> {
        self.recent_transcript(ctx).await
    }

    /// The user's recordings' durations added up, in whole minutes.
    async fn minutes_consumed(&self, ctx: &Context<'_>) -> Result<Option<i32>, FfError> {
        let minutes = (self.usage(ctx).await?.seconds / 60.0).round();
        Ok(Some(minutes.clamp(0.0, f64::from(i32::MAX)) as i32))
    }

    async fn is_admin(&self) -> Option<bool> {
        Some(self.user.role == Role::Admin)
    }

    /// hark connects to no meeting tools.
    async fn integrations(&self) -> Option<Vec<String>> {
        Some(Vec::new())
    }
}

/// A recording as a Fireflies transcript. Its segments are read once, when first needed.
pub struct TranscriptNode {
    pub recording: Recording,
    pub owner: User,
    segments: OnceCell<Vec<Segment>>,
}

impl TranscriptNode {
    pub fn new(recording: Recording, owner: User) -> Self {
        TranscriptNode {
            recording,
            owner,
            segments: OnceCell::new(),
        }
    }

    /// Reads the segments now (before the recording is deleted, say).
    pub async fn load(self, ctx: &Context<'_>) -> Result<Self, FfError> {
        self.segments(ctx).await?;
        Ok(self)
    }

    async fn segments(&self, ctx: &Context<'_>) -> Result<&Vec<Segment>, FfError> {
        self.segments
            .get_or_try_init(|| async {
                let store = &Caller::get(ctx).state.store;
                let stored = store
                    .recordings()
                    .transcript(self.recording.user_id, self.recording.id)
                    .await?;
                Ok(stored.unwrap_or_default())
            })
            .await
    }
}

const SPEAKER_NAME: &str = "Speaker 1";

#[Object(name = "Transcript", rename_fields = "snake_case")]
impl TranscriptNode {
    async fn id(&self) -> Option<ID> {
        Some(ID(self.recording.id.to_string()))
    }

    async fn title(&self) -> Option<String> {
        Some(self.recording.title.clone())
    }

    /// When it was uploaded, in epoch milliseconds (UTC).
    async fn date(&self) -> Option<f64> {
        Some((self.recording.created_at.unix_timestamp_nanos() / 1_000_000) as f64)
    }

    #[graphql(name = "dateString")]
    async fn date_string(&self) -> Option<DateTime> {
        Some(DateTime(self.recording.created_at))
    }

    /// In minutes; null until transcribed.
    async fn duration(&self) -> Option<f64> {
        self.recording.duration_seconds.map(|s| s / 60.0)
    }

    /// hark's own API path for the transcript (read with the same credential).
    async fn transcript_url(&self) -> Option<String> {
        Some(format!("/api/recordings/{}/transcript", self.recording.id))
    }

    /// hark's own API path for the audio (read with the same credential).
    async fn audio_url(&self) -> Option<String> {
        Some(format!("/api/recordings/{}/audio", self.recording.id))
    }

    /// hark keeps no video.
    async fn video_url(&self) -> Option<String> {
        None
    }

    /// The owner's username.
    async fn organizer_email(&self) -> Option<String> {
        Some(self.owner.username.clone())
    }

    /// The owner's username.
    async fn host_email(&self) -> Option<String> {
        Some(self.owner.username.clone())
    }

    async fn user(&self) -> Option<UserNode> {
        Some(UserNode::new(self.owner.clone()))
    }

    /// The owner's username: hark knows no other participants.
    async fn participants(&self) -> Option<Vec<String>> {
        Some(vec![self.owner.username.clone()])
    }

    async fn speakers(&self, ctx: &Context<'_>) -> Result<Option<Vec<Speaker>>, FfError> {
        let speakers = if self.segments(ctx).await?.is_empty() {
            Vec::new()
        } else {
            vec![Speaker {
                id: ID("0".into()),
                name: SPEAKER_NAME.into(),
            }]
        };
        Ok(Some(speakers))
    }

    /// hark does not record attendees (`uploadAudio`'s `attendees` are not kept).
    async fn meeting_attendees(&self) -> Option<Vec<MeetingAttendee>> {
        Some(Vec::new())
    }

    async fn sentences(&self, ctx: &Context<'_>) -> Result<Option<Vec<Sentence>>, FfError> {
        let segments = self.segments(ctx).await?;
        Ok(Some(
            segments
                .iter()
                .enumerate()
                .map(|(index, s)| Sentence {
                    index: i32::try_from(index).unwrap_or(i32::MAX),
                    speaker_name: SPEAKER_NAME.into(),
                    speaker_id: ID("0".into()),
                    text: s.text.trim().to_owned(),
                    raw_text: s.text.clone(),
                    start_time: s.start,
                    end_time: s.end,
                })
                .collect(),
        ))
    }

    /// Built from the recording's summary; every field is null until there is one.
    async fn summary(&self) -> Option<Summary> {
        Some(Summary::from_text(self.recording.summary.as_deref()))
    }
}

#[derive(SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct Sentence {
    pub index: i32,
    pub speaker_name: String,
    pub speaker_id: ID,
    pub text: String,
    pub raw_text: String,
    /// Seconds from the start of the audio.
    pub start_time: f64,
    pub end_time: f64,
}

#[derive(SimpleObject)]
pub struct Speaker {
    pub id: ID,
    pub name: String,
}

#[derive(SimpleObject)]
pub struct MeetingAttendee {
    #[graphql(name = "displayName")]
    pub display_name: Option<String>,
    pub email: Option<String>,
    #[graphql(name = "phoneNumber")]
    pub phone_number: Option<String>,
    pub name: Option<String>,
    pub location: Option<String>,
}

/// hark makes one summary text; Fireflies' fields are views of it: `overview` and
/// `short_summary` are the text, `gist` its first sentence, `bullet_gist` one line per
/// sentence, `keywords` and `topics_discussed` its most frequent content words. hark finds
/// no action items or outline (null).
#[derive(SimpleObject, Default)]
#[graphql(rename_fields = "snake_case")]
pub struct Summary {
    pub keywords: Option<Vec<String>>,
    pub action_items: Option<String>,
    pub outline: Option<String>,
    pub overview: Option<String>,
    pub short_summary: Option<String>,
    pub bullet_gist: Option<String>,
    pub shorthand_bullet: Option<String>,
    pub gist: Option<String>,
    pub topics_discussed: Option<Vec<String>>,
}

impl Summary {
    fn from_text(text: Option<&str>) -> Self {
        let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
            return Summary::default();
        };
        let sentences = hark_speech::summary::sentences(text);
        let bullets: Vec<String> = sentences.iter().map(|s| format!("- {s}")).collect();
        let keywords = hark_speech::summary::keywords(text, 5);
        Summary {
            keywords: Some(keywords.clone()),
            overview: Some(text.to_owned()),
            short_summary: Some(text.to_owned()),
            bullet_gist: Some(bullets.join("\n")),
            shorthand_bullet: Some(bullets.join("\n")),
            gist: sentences.first().map(|s| (*s).to_owned()),
            topics_discussed: Some(keywords),
            ..Summary::default()
        }
    }
}

#[derive(SimpleObject)]
pub struct AudioUploadStatus {
    pub success: Option<bool>,
    pub title: Option<String>,
    pub message: Option<String>,
}

/// `uploadAudio`'s input. hark keeps `url`, `title`, `webhook`, `custom_language` and
/// `client_reference_id`; the rest is accepted so Fireflies' clients validate, and ignored.
#[derive(InputObject)]
#[graphql(rename_fields = "snake_case")]
pub struct AudioUploadInput {
    pub url: String,
    pub title: Option<String>,
    pub webhook: Option<String>,
    pub custom_language: Option<String>,
    pub client_reference_id: Option<String>,
    #[allow(dead_code)]
    pub save_video: Option<bool>,
    #[allow(dead_code)]
    pub attendees: Option<Vec<Option<AttendeeInput>>>,
    #[allow(dead_code)]
    pub bypass_size_check: Option<bool>,
    #[allow(dead_code)]
    pub meeting_date: Option<String>,
}

#[derive(InputObject)]
#[allow(dead_code)]
pub struct AttendeeInput {
    #[graphql(name = "displayName")]
    pub display_name: Option<String>,
    pub email: Option<String>,
    #[graphql(name = "phoneNumber")]
    pub phone_number: Option<String>,
}

#[derive(InputObject)]
pub struct UpdateMeetingTitleInput {
    pub id: String,
    pub title: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_give_every_view() {
        let s = Summary::from_text(Some(
            "The invoice was late. Finance will resend the invoice today!",
        ));
        assert_eq!(s.gist.as_deref(), Some("The invoice was late."));
        assert_eq!(
            s.bullet_gist.as_deref(),
            Some("- The invoice was late.\n- Finance will resend the invoice today!")
        );
        assert_eq!(s.keywords.unwrap()[..2], ["invoice", "late"]);
        assert!(Summary::from_text(None).overview.is_none());
    }

    #[test]
    fn dates_read_as_rfc_3339_or_a_day() {
        let t = parse_date_time("2024-05-01T09:30:00.250Z").unwrap();
        assert_eq!(t.unix_timestamp(), 1_714_555_800);
        let d = parse_date_time("2024-05-01").unwrap();
        assert_eq!(d.unix_timestamp(), 1_714_521_600);
        assert!(parse_date_time("yesterday").is_none());
    }
}
