//! Recordings and their tags. Every query is limited to one owner: another user's recording
//! is indistinguishable from a missing one.

use std::collections::HashMap;
use std::str::FromStr;

use hark_core::pagination::PageRequest;
use hark_core::recordings::{RecordingStatus, Segment};
use time::OffsetDateTime;

use crate::tags::Tag;
use crate::{Db, Result, StoreError, from_millis, now_millis};

#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    pub id: i64,
    pub user_id: i64,
    pub project_id: i64,
    pub title: String,
    pub status: RecordingStatus,
    pub original_filename: String,
    pub mime_type: String,
    pub size_bytes: i64,
    pub blob_key: String,
    pub duration_seconds: Option<f64>,
    pub language: Option<String>,
    pub summary: Option<String>,
    pub error: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub tags: Vec<Tag>,
    /// The project key it was submitted through; `None` for a person's own upload.
    pub submitted_by_key: Option<i64>,
}

/// What a recordings listing is narrowed to.
#[derive(Debug, Clone, Default)]
pub struct RecordingFilter {
    /// Case-insensitive substring of the title.
    pub title: Option<String>,
    pub tag_id: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct NewRecording {
    pub user_id: i64,
    pub project_id: i64,
    pub title: String,
    pub original_filename: String,
    pub mime_type: String,
    pub size_bytes: i64,
    pub blob_key: String,
    pub language: Option<String>,
    /// The project key submitting it, if any: only such recordings are readable by the
    /// project's keys.
    pub submitted_by_key: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct RecordingRow {
    id: i64,
    user_id: i64,
    project_id: i64,
    title: String,
    status: String,
    original_filename: String,
    mime_type: String,
    size_bytes: i64,
    blob_key: String,
    duration_seconds: Option<f64>,
    language: Option<String>,
    summary: Option<String>,
    error: Option<String>,
    created_at: i64,
    updated_at: i64,
    submitted_by_key: Option<i64>,
}

impl RecordingRow {
    fn into_recording(self, tags: Vec<Tag>) -> Result<Recording> {
        Ok(Recording {
            id: self.id,
            user_id: self.user_id,
            project_id: self.project_id,
            title: self.title,
            status: RecordingStatus::from_str(&self.status).map_err(StoreError::corrupt)?,
            original_filename: self.original_filename,
            mime_type: self.mime_type,
            size_bytes: self.size_bytes,
            blob_key: self.blob_key,
            duration_seconds: self.duration_seconds,
            language: self.language,
            summary: self.summary,
            error: self.error,
            created_at: from_millis(self.created_at),
            updated_at: from_millis(self.updated_at),
            tags,
            submitted_by_key: self.submitted_by_key,
        })
    }
}

const COLUMNS: &str = "id, user_id, project_id, title, status, original_filename, mime_type,
    size_bytes, blob_key, duration_seconds, language, summary, error, created_at, updated_at,
    submitted_by_key";

pub struct Recordings<'a> {
    pub(crate) db: &'a Db,
}

impl Recordings<'_> {
    /// Stores a new recording in `PENDING`; the audio is already durable under `blob_key`.
    pub async fn create(&self, new: &NewRecording) -> Result<Recording> {
        let mut tx = self.db.begin().await?;
        let recording = insert(&mut tx, new).await?;
        tx.commit().await?;
        Ok(recording)
    }

    /// One page of a user's recordings matching `filter`, newest first, and the total
    /// count of matches.
    pub async fn page(
        &self,
        user_id: i64,
        filter: &RecordingFilter,
        page: PageRequest,
    ) -> Result<(Vec<Recording>, u64)> {
        // Only fixed clause texts are formatted in; every value is bound.
        let mut clauses = String::from("user_id = $1");
        let mut next = 2;
        let title = filter
            .title
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let pattern = title.map(|t| {
            let escaped = t
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            format!("%{}%", escaped.to_lowercase())
        });
        if pattern.is_some() {
            clauses.push_str(&format!(" AND LOWER(title) LIKE ${next} ESCAPE '\\'"));
            next += 1;
        }
        if filter.tag_id.is_some() {
            clauses.push_str(&format!(
                " AND id IN (SELECT recording_id FROM recording_tags WHERE tag_id = ${next})"
            ));
            next += 1;
        }
        let count_sql = format!("SELECT COUNT(*) FROM recordings WHERE {clauses}");
        let mut count = sqlx::query_scalar::<_, i64>(sql!("{count_sql}")).bind(user_id);
        if let Some(p) = &pattern {
            count = count.bind(p.clone());
        }
        if let Some(tag) = filter.tag_id {
            count = count.bind(tag);
        }
        let total = count.fetch_one(self.db).await?;
        let (limit, offset) = (next, next + 1);
        let mut rows = sqlx::query_as::<_, RecordingRow>(sql!(
            "SELECT {COLUMNS} FROM recordings WHERE {clauses}
             ORDER BY created_at DESC, id DESC LIMIT ${limit} OFFSET ${offset}"
        ))
        .bind(user_id);
        if let Some(p) = &pattern {
            rows = rows.bind(p.clone());
        }
        if let Some(tag) = filter.tag_id {
            rows = rows.bind(tag);
        }
        let rows: Vec<RecordingRow> = rows
            .bind(page.limit())
            .bind(page.offset())
            .fetch_all(self.db)
            .await?;
        let mut tags = self.tags_of(user_id).await?;
        let recordings = rows
            .into_iter()
            .map(|r| {
                let t = tags.remove(&r.id).unwrap_or_default();
                r.into_recording(t)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((recordings, u64::try_from(total).unwrap_or(0)))
    }

    pub async fn get(&self, user_id: i64, id: i64) -> Result<Recording> {
        let row: Option<RecordingRow> = sqlx::query_as(sql!(
            "SELECT {COLUMNS} FROM recordings WHERE id = $1 AND user_id = $2"
        ))
        .bind(id)
        .bind(user_id)
        .fetch_optional(self.db)
        .await?;
        let row = row.ok_or(StoreError::NotFound)?;
        let tags = self.tags_of(user_id).await?.remove(&id).unwrap_or_default();
        row.into_recording(tags)
    }

    /// A recording as a project's key sees it: one submitted through a key of that
    /// project, whoever owns the key. A person's own uploads are never among them, even
    /// in the same project.
    pub async fn submitted_to_project(&self, project_id: i64, id: i64) -> Result<Recording> {
        let row: Option<RecordingRow> = sqlx::query_as(sql!(
            "SELECT {COLUMNS} FROM recordings
             WHERE id = $1 AND project_id = $2 AND submitted_by_key IS NOT NULL"
        ))
        .bind(id)
        .bind(project_id)
        .fetch_optional(self.db)
        .await?;
        let row = row.ok_or(StoreError::NotFound)?;
        let tags = self
            .tags_of(row.user_id)
            .await?
            .remove(&id)
            .unwrap_or_default();
        row.into_recording(tags)
    }

    /// Any user's recording, for the transcription workers.
    pub async fn by_id(&self, id: i64) -> Result<Recording> {
        let row: Option<RecordingRow> =
            sqlx::query_as(sql!("SELECT {COLUMNS} FROM recordings WHERE id = $1"))
                .bind(id)
                .fetch_optional(self.db)
                .await?;
        let row = row.ok_or(StoreError::NotFound)?;
        let user_id = row.user_id;
        let tags = self.tags_of(user_id).await?.remove(&id).unwrap_or_default();
        row.into_recording(tags)
    }

    /// The transcript segments, once the engine has produced them.
    pub async fn transcript(&self, user_id: i64, id: i64) -> Result<Option<Vec<Segment>>> {
        let stored: Option<Option<String>> =
            sqlx::query_scalar("SELECT transcript FROM recordings WHERE id = $1 AND user_id = $2")
                .bind(id)
                .bind(user_id)
                .fetch_optional(self.db)
                .await?;
        match stored.ok_or(StoreError::NotFound)? {
            None => Ok(None),
            Some(json) => serde_json::from_str(&json)
                .map(Some)
                .map_err(StoreError::corrupt),
        }
    }

    /// Removes the row (its tag links go with it) and returns it so the caller can delete
    /// the audio blob.
    pub async fn delete(&self, user_id: i64, id: i64) -> Result<Recording> {
        let recording = self.get(user_id, id).await?;
        sqlx::query("DELETE FROM recordings WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .execute(self.db)
            .await?;
        Ok(recording)
    }

    /// All of a user's tag links, by recording. A user has few tags; one query beats N.
    async fn tags_of(&self, user_id: i64) -> Result<HashMap<i64, Vec<Tag>>> {
        let rows: Vec<(i64, i64, String, String)> = sqlx::query_as(
            "SELECT rt.recording_id, t.id, t.name, t.color
             FROM recording_tags rt JOIN tags t ON t.id = rt.tag_id
             WHERE t.user_id = $1 ORDER BY t.name",
        )
        .bind(user_id)
        .fetch_all(self.db)
        .await?;
        let mut by_recording: HashMap<i64, Vec<Tag>> = HashMap::new();
        for (recording_id, id, name, color) in rows {
            by_recording
                .entry(recording_id)
                .or_default()
                .push(Tag { id, name, color });
        }
        Ok(by_recording)
    }
}

pub(crate) async fn insert(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    new: &NewRecording,
) -> Result<Recording> {
    let now = now_millis();
    let row: RecordingRow = sqlx::query_as(sql!(
        "INSERT INTO recordings (user_id, project_id, title, status, original_filename, mime_type,
             size_bytes, blob_key, language, created_at, updated_at, submitted_by_key)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11) RETURNING {COLUMNS}"
    ))
    .bind(new.user_id)
    .bind(new.project_id)
    .bind(&new.title)
    .bind(RecordingStatus::Pending.as_str())
    .bind(&new.original_filename)
    .bind(&new.mime_type)
    .bind(new.size_bytes)
    .bind(&new.blob_key)
    .bind(new.language.as_deref())
    .bind(now)
    .bind(new.submitted_by_key)
    .fetch_one(&mut **tx)
    .await?;
    row.into_recording(Vec::new())
}
