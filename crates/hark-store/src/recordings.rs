//! Recordings and their tags. Every query is limited to one owner: another user's recording
//! is indistinguishable from a missing one.

use std::collections::HashMap;
use std::str::FromStr;

use hark_core::pagination::PageRequest;
use hark_core::recordings::{RecordingStatus, Segment};
use time::OffsetDateTime;

use crate::tags::Tag;
use crate::{Backend, Db, Result, StoreError, Tx, from_millis, now_millis, to_millis};

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
    /// Where the audio was fetched from, for a recording submitted as a URL. Until the
    /// fetch has succeeded its `blob_key` is empty.
    pub source_url: Option<String>,
}

/// What a recordings listing is narrowed to.
#[derive(Debug, Clone, Default)]
pub struct RecordingFilter {
    /// Case-insensitive substring of the title.
    pub title: Option<String>,
    pub tag_id: Option<i64>,
}

/// Where a search keyword is looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeywordScope {
    Title,
    Transcript,
    #[default]
    Both,
}

/// A search over the recordings of some owners, newest first (Fireflies' `transcripts`).
#[derive(Debug, Clone, Default)]
pub struct RecordingSearch {
    /// Whose recordings; none matches nothing.
    pub owners: Vec<i64>,
    /// Case-insensitive substring of the title.
    pub title: Option<String>,
    /// Case-insensitive substring of the title or a transcript segment's text, as
    /// `scope` says.
    pub keyword: Option<String>,
    pub scope: KeywordScope,
    /// Created at or after.
    pub from: Option<OffsetDateTime>,
    /// Created at or before.
    pub to: Option<OffsetDateTime>,
    pub limit: u32,
    pub offset: u32,
}

/// What a user's recordings add up to.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Usage {
    pub count: i64,
    /// The sum of the known durations.
    pub seconds: f64,
    /// The newest recording's id.
    pub latest: Option<i64>,
}

/// A value to bind to a query assembled from fixed clauses.
enum Bound {
    Int(i64),
    Text(String),
}

/// `%text%` for `LIKE … ESCAPE '\'`, lowercased, with the wildcards in `text` escaped.
fn like_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{}%", escaped.to_lowercase())
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
    /// The URL to fetch the audio from (then `blob_key` is empty until a worker has).
    pub source_url: Option<String>,
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
    source_url: Option<String>,
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
            source_url: self.source_url,
        })
    }
}

const COLUMNS: &str = "id, user_id, project_id, title, status, original_filename, mime_type,
    size_bytes, blob_key, duration_seconds, language, summary, error, created_at, updated_at,
    submitted_by_key, source_url";

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
        let pattern = title.map(like_pattern);
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
        let (limit, offset) = (next, next + 1);
        let rows_sql = format!(
            "SELECT {COLUMNS} FROM recordings WHERE {clauses}
             ORDER BY created_at DESC, id DESC LIMIT ${limit} OFFSET ${offset}"
        );
        let (total, rows) = on!(self.db, c => {
            let mut count = sqlx::query_scalar::<_, i64>(sql!("{count_sql}")).bind(user_id);
            let mut rows = sqlx::query_as::<_, RecordingRow>(sql!("{rows_sql}")).bind(user_id);
            if let Some(p) = &pattern {
                count = count.bind(p.clone());
                rows = rows.bind(p.clone());
            }
            if let Some(tag) = filter.tag_id {
                count = count.bind(tag);
                rows = rows.bind(tag);
            }
            let total = count.fetch_one(c).await?;
            let rows: Vec<RecordingRow> =
                rows.bind(page.limit()).bind(page.offset()).fetch_all(c).await?;
            (total, rows)
        });
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

    /// Every stored audio key, oldest recording first (for copying the audio elsewhere).
    pub async fn blob_keys(&self) -> Result<Vec<String>> {
        Ok(on!(self.db, c => sqlx::query_scalar(
            "SELECT blob_key FROM recordings WHERE blob_key <> '' ORDER BY id",
        )
        .fetch_all(c)
        .await)?)
    }

    pub async fn get(&self, user_id: i64, id: i64) -> Result<Recording> {
        let row: Option<RecordingRow> = on!(self.db, c => sqlx::query_as(sql!(
            "SELECT {COLUMNS} FROM recordings WHERE id = $1 AND user_id = $2"
        ))
        .bind(id)
        .bind(user_id)
        .fetch_optional(c)
        .await)?;
        let row = row.ok_or(StoreError::NotFound)?;
        let tags = self.tags_of(user_id).await?.remove(&id).unwrap_or_default();
        row.into_recording(tags)
    }

    /// A recording as a project's key sees it: one submitted through a key of that
    /// project, whoever owns the key. A person's own uploads are never among them, even
    /// in the same project.
    pub async fn submitted_to_project(&self, project_id: i64, id: i64) -> Result<Recording> {
        let row: Option<RecordingRow> = on!(self.db, c => sqlx::query_as(sql!(
            "SELECT {COLUMNS} FROM recordings
             WHERE id = $1 AND project_id = $2 AND submitted_by_key IS NOT NULL"
        ))
        .bind(id)
        .bind(project_id)
        .fetch_optional(c)
        .await)?;
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
        let row: Option<RecordingRow> = on!(self.db, c => sqlx::query_as(sql!("SELECT {COLUMNS} FROM recordings WHERE id = $1"))
                .bind(id)
                .fetch_optional(c)
                .await)?;
        let row = row.ok_or(StoreError::NotFound)?;
        let user_id = row.user_id;
        let tags = self.tags_of(user_id).await?.remove(&id).unwrap_or_default();
        row.into_recording(tags)
    }

    /// Records the audio a worker fetched for a recording submitted as a URL — unless it
    /// has audio already (another worker's fetch won): then `NotFound`, and the caller
    /// drops its copy.
    pub async fn attach_audio(
        &self,
        id: i64,
        blob_key: &str,
        mime_type: &str,
        size_bytes: i64,
    ) -> Result<()> {
        let updated = on!(self.db, c => sqlx::query(
            "UPDATE recordings SET blob_key = $1, mime_type = $2, size_bytes = $3, updated_at = $4
             WHERE id = $5 AND blob_key = ''",
        )
        .bind(blob_key)
        .bind(mime_type)
        .bind(size_bytes)
        .bind(now_millis())
        .bind(id)
        .execute(c)
        .await
        .map(|done| done.rows_affected()))?;
        if updated == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// The transcript segments, once the engine has produced them.
    pub async fn transcript(&self, user_id: i64, id: i64) -> Result<Option<Vec<Segment>>> {
        let stored: Option<Option<String>> = on!(self.db, c => sqlx::query_scalar("SELECT transcript FROM recordings WHERE id = $1 AND user_id = $2")
                .bind(id)
                .bind(user_id)
                .fetch_optional(c)
                .await)?;
        match stored.ok_or(StoreError::NotFound)? {
            None => Ok(None),
            Some(json) => serde_json::from_str(&json)
                .map(Some)
                .map_err(StoreError::corrupt),
        }
    }

    /// Removes the row (its tag links and webhook deliveries go with it) and returns it so
    /// the caller can delete the audio blob.
    pub async fn delete(&self, user_id: i64, id: i64) -> Result<Recording> {
        let recording = self.get(user_id, id).await?;
        let mut tx = self.db.begin().await?;
        on!(tx, c => sqlx::query("DELETE FROM recordings WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .execute(c)
            .await
            .map(|done| done.rows_affected()))?;
        // Deliveries carry the recording's title and transcript: they go with it.
        on!(tx, c => sqlx::query("DELETE FROM webhook_deliveries WHERE recording_id = $1")
            .bind(id)
            .execute(c)
            .await
            .map(|done| done.rows_affected()))?;
        tx.commit().await?;
        Ok(recording)
    }

    /// The recordings `search` matches, newest first. Only fixed clause texts are
    /// formatted in (one placeholder per owner); every value is bound. The transcript
    /// is searched segment by segment (`json_each`), so keys of the stored JSON never match.
    pub async fn search(&self, search: &RecordingSearch) -> Result<Vec<Recording>> {
        if search.owners.is_empty() {
            return Ok(Vec::new());
        }
        fn placeholder(binds: &mut Vec<Bound>, value: Bound) -> String {
            binds.push(value);
            format!("${}", binds.len())
        }
        let mut binds: Vec<Bound> = Vec::new();
        let owners: Vec<String> = search
            .owners
            .iter()
            .map(|id| placeholder(&mut binds, Bound::Int(*id)))
            .collect();
        let mut clauses = format!("user_id IN ({})", owners.join(", "));
        let text = |t: &Option<String>| {
            t.as_deref()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(like_pattern)
        };
        if let Some(pattern) = text(&search.title) {
            let p = placeholder(&mut binds, Bound::Text(pattern));
            clauses.push_str(&format!(" AND LOWER(title) LIKE {p} ESCAPE '\\'"));
        }
        if let Some(pattern) = text(&search.keyword) {
            let p = placeholder(&mut binds, Bound::Text(pattern));
            let in_title = format!("LOWER(title) LIKE {p} ESCAPE '\\'");
            // Each engine walks the stored JSON array its own way.
            let segment_text = match self.db.backend() {
                Backend::Sqlite(_) => {
                    "json_each(recordings.transcript) AS segment
                     WHERE LOWER(json_extract(segment.value, '$.text'))"
                }
                Backend::Postgres(_) => {
                    "jsonb_array_elements(recordings.transcript::jsonb) AS segment
                     WHERE LOWER(segment->>'text')"
                }
            };
            let in_transcript =
                format!("EXISTS (SELECT 1 FROM {segment_text} LIKE {p} ESCAPE '\\')");
            clauses.push_str(&match search.scope {
                KeywordScope::Title => format!(" AND {in_title}"),
                KeywordScope::Transcript => format!(" AND {in_transcript}"),
                KeywordScope::Both => format!(" AND ({in_title} OR {in_transcript})"),
            });
        }
        if let Some(from) = search.from {
            let p = placeholder(&mut binds, Bound::Int(to_millis(from)));
            clauses.push_str(&format!(" AND created_at >= {p}"));
        }
        if let Some(to) = search.to {
            let p = placeholder(&mut binds, Bound::Int(to_millis(to)));
            clauses.push_str(&format!(" AND created_at <= {p}"));
        }
        let limit = placeholder(&mut binds, Bound::Int(i64::from(search.limit)));
        let offset = placeholder(&mut binds, Bound::Int(i64::from(search.offset)));
        let rows_sql = format!(
            "SELECT {COLUMNS} FROM recordings WHERE {clauses}
             ORDER BY created_at DESC, id DESC LIMIT {limit} OFFSET {offset}"
        );
        let rows = on!(self.db, c => {
            let mut query = sqlx::query_as::<_, RecordingRow>(sql!("{rows_sql}"));
            for value in binds {
                query = match value {
                    Bound::Int(v) => query.bind(v),
                    Bound::Text(v) => query.bind(v),
                };
            }
            query.fetch_all(c).await?
        });
        let mut tags: HashMap<i64, HashMap<i64, Vec<Tag>>> = HashMap::new();
        let mut recordings = Vec::with_capacity(rows.len());
        for row in rows {
            let owner_tags = match tags.entry(row.user_id) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(self.tags_of(row.user_id).await?)
                }
            };
            let own = owner_tags.remove(&row.id).unwrap_or_default();
            recordings.push(row.into_recording(own)?);
        }
        Ok(recordings)
    }

    /// How many recordings a user has, their total known duration and the newest one.
    pub async fn usage(&self, user_id: i64) -> Result<Usage> {
        let (count, seconds, latest): (i64, Option<f64>, Option<i64>) = on!(self.db, c => sqlx::query_as(
            "SELECT COUNT(*), SUM(duration_seconds),
                 (SELECT id FROM recordings WHERE user_id = $1
                  ORDER BY created_at DESC, id DESC LIMIT 1)
             FROM recordings WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_one(c)
        .await)?;
        Ok(Usage {
            count,
            seconds: seconds.unwrap_or(0.0),
            latest,
        })
    }

    /// Gives one of `user_id`'s recordings a new (already validated) title.
    pub async fn rename(&self, user_id: i64, id: i64, title: &str) -> Result<Recording> {
        let updated = on!(self.db, c => sqlx::query(
            "UPDATE recordings SET title = $1, updated_at = $2 WHERE id = $3 AND user_id = $4",
        )
        .bind(title)
        .bind(now_millis())
        .bind(id)
        .bind(user_id)
        .execute(c)
        .await
        .map(|done| done.rows_affected()))?;
        if updated == 0 {
            return Err(StoreError::NotFound);
        }
        self.get(user_id, id).await
    }

    /// All of a user's tag links, by recording. A user has few tags; one query beats N.
    async fn tags_of(&self, user_id: i64) -> Result<HashMap<i64, Vec<Tag>>> {
        let rows: Vec<(i64, i64, String, String)> = on!(self.db, c => sqlx::query_as(
            "SELECT rt.recording_id, t.id, t.name, t.color
             FROM recording_tags rt JOIN tags t ON t.id = rt.tag_id
             WHERE t.user_id = $1 ORDER BY t.name",
        )
        .bind(user_id)
        .fetch_all(c)
        .await)?;
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

pub(crate) async fn insert(tx: &mut Tx, new: &NewRecording) -> Result<Recording> {
    let now = now_millis();
    let row: RecordingRow = on!(tx, c => sqlx::query_as(sql!(
        "INSERT INTO recordings (user_id, project_id, title, status, original_filename, mime_type,
             size_bytes, blob_key, language, created_at, updated_at, submitted_by_key, source_url)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $12) RETURNING {COLUMNS}"
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
    .bind(new.source_url.as_deref())
    .fetch_one(c)
    .await)?;
    row.into_recording(Vec::new())
}

#[cfg(test)]
mod tests;
