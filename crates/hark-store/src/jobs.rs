//! The transcription queue: a table of jobs claimed under a lease.
//!
//! Claiming is one atomic statement, so any number of workers in any number of processes
//! can share the queue (on PostgreSQL with `FOR UPDATE SKIP LOCKED`, so concurrent claims
//! take different jobs instead of queueing on one row). A worker renews its lease with
//! heartbeats; if it dies, the lease lapses and another worker takes the job again, as a
//! new attempt. Everything a worker writes is fenced on (job id, attempt): a worker whose
//! lease was taken over can neither renew it nor complete the job, so a job completes
//! once. Attempts are bounded; a job that keeps failing ends `failed` with its recording
//! `FAILED`.

use std::str::FromStr;

use hark_core::recordings::{RecordingStatus, Segment};
use time::{Duration, OffsetDateTime};

use crate::recordings::{NewRecording, Recording};
use crate::{Db, Result, StoreError, Tx, from_millis, now_millis};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Queued,
    Running,
    Done,
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Done => "done",
            JobStatus::Failed => "failed",
        }
    }
}

impl FromStr for JobStatus {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "queued" => JobStatus::Queued,
            "running" => JobStatus::Running,
            "done" => JobStatus::Done,
            "failed" => JobStatus::Failed,
            other => return Err(StoreError::corrupt(format!("job status {other:?}"))),
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: i64,
    pub recording_id: i64,
    pub status: JobStatus,
    pub attempts: i64,
    pub max_attempts: i64,
    pub progress: f64,
    /// Decoding options as JSON, as the client asked for them.
    pub options: String,
    pub error: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct JobRow {
    id: i64,
    recording_id: i64,
    status: String,
    attempts: i64,
    max_attempts: i64,
    progress: f64,
    options: String,
    error: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<JobRow> for Job {
    type Error = StoreError;

    fn try_from(r: JobRow) -> Result<Self> {
        Ok(Job {
            id: r.id,
            recording_id: r.recording_id,
            status: r.status.parse()?,
            attempts: r.attempts,
            max_attempts: r.max_attempts,
            progress: r.progress,
            options: r.options,
            error: r.error,
            created_at: from_millis(r.created_at),
            updated_at: from_millis(r.updated_at),
        })
    }
}

const COLUMNS: &str = "id, recording_id, status, attempts, max_attempts, progress, options, error, created_at, updated_at";

/// What a finished transcription writes onto its recording.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub segments: Vec<Segment>,
    pub summary: String,
    pub duration_seconds: f64,
    pub language: String,
}

pub struct Jobs<'a> {
    pub(crate) db: &'a Db,
}

impl Jobs<'_> {
    /// Stores a recording and queues its transcription in one transaction, so an
    /// acknowledged upload is never left without a job.
    pub async fn submit(
        &self,
        new: &NewRecording,
        options: &str,
        max_attempts: i64,
    ) -> Result<(Recording, Job)> {
        let mut tx = self.db.begin().await?;
        let recording = crate::recordings::insert(&mut tx, new).await?;
        let row: JobRow = on!(tx, c => sqlx::query_as(sql!(
            "INSERT INTO jobs (recording_id, status, max_attempts, options, created_at, updated_at,
                 notified)
             VALUES ($1, 'queued', $2, $3, $4, $4, FALSE) RETURNING {COLUMNS}"
        ))
        .bind(recording.id)
        .bind(max_attempts)
        .bind(options)
        .bind(now_millis())
        .fetch_one(c)
        .await)?;
        tx.commit().await?;
        Ok((recording, row.try_into()?))
    }

    pub async fn get(&self, id: i64) -> Result<Job> {
        let row: Option<JobRow> = on!(self.db, c => sqlx::query_as(sql!("SELECT {COLUMNS} FROM jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(c)
            .await)?;
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    /// The newest job of a recording.
    pub async fn latest_for_recording(&self, recording_id: i64) -> Result<Option<Job>> {
        let row: Option<JobRow> = on!(self.db, c => sqlx::query_as(sql!(
            "SELECT {COLUMNS} FROM jobs WHERE recording_id = $1 ORDER BY id DESC LIMIT 1"
        ))
        .bind(recording_id)
        .fetch_optional(c)
        .await)?;
        row.map(TryInto::try_into).transpose()
    }

    /// Takes the oldest claimable job (queued, or running under a lapsed lease) and marks
    /// its recording `PROCESSING`.
    pub async fn claim(&self, worker: &str, lease: Duration) -> Result<Option<Job>> {
        let now = now_millis();
        // SQLite runs one writer at a time, so its subquery cannot race; PostgreSQL skips
        // the rows other claims hold.
        let lock = match self.db.backend() {
            crate::Backend::Sqlite(_) => "",
            crate::Backend::Postgres(_) => "FOR UPDATE SKIP LOCKED",
        };
        let mut tx = self.db.begin().await?;
        let row: Option<JobRow> = on!(tx, c => sqlx::query_as(sql!(
            "UPDATE jobs SET status = 'running', leased_by = $1, lease_expires_at = $2,
                 attempts = attempts + 1, updated_at = $3
             WHERE id = (SELECT id FROM jobs
                         WHERE (status = 'queued' OR (status = 'running' AND lease_expires_at < $3))
                           AND attempts < max_attempts
                         ORDER BY id LIMIT 1 {lock})
             RETURNING {COLUMNS}"
        ))
        .bind(worker)
        .bind(now + lease.whole_milliseconds() as i64)
        .bind(now)
        .fetch_optional(c)
        .await)?;
        if let Some(row) = &row {
            set_recording_status(&mut tx, row.recording_id, RecordingStatus::Processing, None)
                .await?;
        }
        tx.commit().await?;
        row.map(TryInto::try_into).transpose()
    }

    /// Renews a lease and records progress; false when the lease was lost.
    pub async fn heartbeat(
        &self,
        job: &Job,
        worker: &str,
        lease: Duration,
        progress: f64,
    ) -> Result<bool> {
        let now = now_millis();
        let done = on!(self.db, c => sqlx::query(
            "UPDATE jobs SET lease_expires_at = $1, progress = $2, updated_at = $3
             WHERE id = $4 AND attempts = $5 AND leased_by = $6 AND status = 'running'",
        )
        .bind(now + lease.whole_milliseconds() as i64)
        .bind(progress.clamp(0.0, 1.0))
        .bind(now)
        .bind(job.id)
        .bind(job.attempts)
        .bind(worker)
        .execute(c)
        .await
        .map(|done| done.rows_affected()))?;
        Ok(done == 1)
    }

    /// Shows the recording as being summarized — if this attempt of `worker` still holds
    /// the lease (false otherwise: a late worker must not relabel another's result).
    pub async fn mark_summarizing(&self, job: &Job, worker: &str) -> Result<bool> {
        let updated = on!(self.db, c => sqlx::query(
            "UPDATE recordings SET status = $1, error = NULL, updated_at = $2
             WHERE id = $3 AND EXISTS (SELECT 1 FROM jobs WHERE id = $4 AND attempts = $5
                                       AND leased_by = $6 AND status = 'running')",
        )
        .bind(RecordingStatus::Summarizing.as_str())
        .bind(now_millis())
        .bind(job.recording_id)
        .bind(job.id)
        .bind(job.attempts)
        .bind(worker)
        .execute(c)
        .await
        .map(|done| done.rows_affected()))?;
        Ok(updated == 1)
    }

    /// Stores the transcript and summary and closes the job — if this attempt of `worker`
    /// still holds the lease (false otherwise: another worker took the job over, and its
    /// result wins). The fence and the transcript are one transaction.
    pub async fn complete(&self, job: &Job, worker: &str, outcome: &Outcome) -> Result<bool> {
        let now = now_millis();
        let transcript = serde_json::to_string(&outcome.segments).map_err(StoreError::corrupt)?;
        let mut tx = self.db.begin().await?;
        let closed = on!(tx, c => sqlx::query(
            "UPDATE jobs SET status = 'done', progress = 1, updated_at = $1, error = NULL
             WHERE id = $2 AND attempts = $3 AND leased_by = $4 AND status = 'running'",
        )
        .bind(now)
        .bind(job.id)
        .bind(job.attempts)
        .bind(worker)
        .execute(c)
        .await
        .map(|done| done.rows_affected()))?;
        if closed == 0 {
            return Ok(false);
        }
        on!(tx, c => sqlx::query(
            "UPDATE recordings SET status = $1, transcript = $2, summary = $3, duration_seconds = $4,
                 language = $5, error = NULL, updated_at = $6 WHERE id = $7",
        )
        .bind(RecordingStatus::Completed.as_str())
        .bind(transcript)
        .bind(&outcome.summary)
        .bind(outcome.duration_seconds)
        .bind(&outcome.language)
        .bind(now)
        .bind(job.recording_id)
        .execute(c)
        .await
        .map(|done| done.rows_affected()))?;
        tx.commit().await?;
        Ok(true)
    }

    /// Ends the job for good (bad input is not retried): the recording turns `FAILED`
    /// with `reason`, which the uploader will read. Only while `worker` holds the lease.
    pub async fn fail(&self, job: &Job, worker: &str, reason: &str) -> Result<bool> {
        let now = now_millis();
        let mut tx = self.db.begin().await?;
        let closed = on!(tx, c => sqlx::query(
            "UPDATE jobs SET status = 'failed', error = $1, updated_at = $2
             WHERE id = $3 AND attempts = $4 AND leased_by = $5 AND status = 'running'",
        )
        .bind(reason)
        .bind(now)
        .bind(job.id)
        .bind(job.attempts)
        .bind(worker)
        .execute(c)
        .await
        .map(|done| done.rows_affected()))?;
        if closed == 0 {
            return Ok(false);
        }
        set_recording_status(
            &mut tx,
            job.recording_id,
            RecordingStatus::Failed,
            Some(reason),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Gives a job back to the queue after a passing failure (it will be retried while
    /// attempts remain).
    pub async fn release(&self, job: &Job, worker: &str, reason: &str) -> Result<()> {
        on!(self.db, c => sqlx::query(
            "UPDATE jobs SET status = 'queued', leased_by = NULL, lease_expires_at = NULL, error = $1,
                 updated_at = $2 WHERE id = $3 AND attempts = $4 AND leased_by = $5
                 AND status = 'running'",
        )
        .bind(reason)
        .bind(now_millis())
        .bind(job.id)
        .bind(job.attempts)
        .bind(worker)
        .execute(c)
        .await
        .map(|done| done.rows_affected()))?;
        Ok(())
    }

    /// Hands a job back untried: the server, not the audio, was at fault (no speech model),
    /// so the attempt is given back and the recording shows, as pending, why it waits.
    pub async fn give_back(&self, job: &Job, worker: &str, reason: &str) -> Result<bool> {
        let now = now_millis();
        let mut tx = self.db.begin().await?;
        let returned = on!(tx, c => sqlx::query(
            "UPDATE jobs SET status = 'queued', attempts = attempts - 1, leased_by = NULL,
                 lease_expires_at = NULL, error = $1, updated_at = $2
             WHERE id = $3 AND attempts = $4 AND leased_by = $5 AND status = 'running'",
        )
        .bind(reason)
        .bind(now)
        .bind(job.id)
        .bind(job.attempts)
        .bind(worker)
        .execute(c)
        .await
        .map(|done| done.rows_affected()))?;
        if returned == 1 {
            set_recording_status(
                &mut tx,
                job.recording_id,
                RecordingStatus::Pending,
                Some(reason),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(returned == 1)
    }

    /// Fails the jobs that used up their attempts (their last worker died), so no
    /// recording waits forever. Returns the ids of the jobs it closed.
    pub async fn fail_exhausted(&self) -> Result<Vec<i64>> {
        let now = now_millis();
        let rows: Vec<(i64, i64)> = on!(self.db, c => sqlx::query_as(
            "SELECT id, recording_id FROM jobs
             WHERE attempts >= max_attempts
               AND (status = 'queued' OR (status = 'running' AND lease_expires_at < $1))",
        )
        .bind(now)
        .fetch_all(c)
        .await)?;
        let mut failed = Vec::new();
        for (id, recording_id) in &rows {
            let mut tx = self.db.begin().await?;
            let reason = "transcription did not finish after repeated attempts";
            // The same test again: another worker may have closed (or a late heartbeat
            // revived) the job since it was read.
            let closed = on!(tx, c => sqlx::query(
                "UPDATE jobs SET status = 'failed', error = $1, updated_at = $2
                 WHERE id = $3 AND attempts >= max_attempts
                   AND (status = 'queued' OR (status = 'running' AND lease_expires_at < $2))",
            )
            .bind(reason)
            .bind(now)
            .bind(id)
            .execute(c)
            .await
            .map(|done| done.rows_affected()))?;
            if closed == 0 {
                continue;
            }
            set_recording_status(
                &mut tx,
                *recording_id,
                RecordingStatus::Failed,
                Some(reason),
            )
            .await?;
            tx.commit().await?;
            failed.push(*id);
        }
        Ok(failed)
    }

    /// Jobs of `owner`'s recordings created before `created_before` (all when `None`),
    /// newest first, at most `limit`, each with what a listing shows of its recording.
    pub async fn list(
        &self,
        owner: JobOwner,
        created_before: Option<OffsetDateTime>,
        limit: i64,
    ) -> Result<Vec<ListedJob>> {
        // Two fixed statements; every value is bound.
        let (filter, id) = match owner {
            JobOwner::User(user_id) => ("r.user_id = $1", user_id),
            JobOwner::Project(project_id) => (
                "r.project_id = $1 AND r.submitted_by_key IS NOT NULL",
                project_id,
            ),
        };
        let rows: Vec<ListedRow> = on!(self.db, c => sqlx::query_as(sql!(
            "SELECT j.id, j.recording_id, j.status, j.attempts, j.max_attempts, j.progress,
                    j.options, j.error, j.created_at, j.updated_at,
                    r.original_filename, r.duration_seconds
             FROM jobs j JOIN recordings r ON r.id = j.recording_id
             WHERE {filter} AND j.created_at < $2
             ORDER BY j.created_at DESC, j.id DESC LIMIT $3"
        ))
        .bind(id)
        .bind(created_before.map_or(i64::MAX, crate::to_millis))
        .bind(limit.max(0))
        .fetch_all(c)
        .await)?;
        rows.into_iter().map(ListedJob::try_from).collect()
    }
}

impl Jobs<'_> {
    /// Finished jobs whose deliveries were never queued (the server stopped in between).
    pub async fn unannounced(&self, limit: i64) -> Result<Vec<i64>> {
        Ok(on!(self.db, c => sqlx::query_scalar(
            "SELECT id FROM jobs WHERE notified = FALSE AND status IN ('done', 'failed')
             ORDER BY id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(c)
        .await)?)
    }
}

/// Whose jobs [`Jobs::list`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOwner {
    /// A person's own recordings.
    User(i64),
    /// What a project's keys submitted (never a person's own uploads to the project).
    Project(i64),
}

/// A job as a listing shows it: with its recording's file name and duration.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedJob {
    pub job: Job,
    pub original_filename: String,
    pub duration_seconds: Option<f64>,
}

#[derive(sqlx::FromRow)]
struct ListedRow {
    #[sqlx(flatten)]
    job: JobRow,
    original_filename: String,
    duration_seconds: Option<f64>,
}

impl TryFrom<ListedRow> for ListedJob {
    type Error = StoreError;

    fn try_from(r: ListedRow) -> Result<Self> {
        Ok(ListedJob {
            job: r.job.try_into()?,
            original_filename: r.original_filename,
            duration_seconds: r.duration_seconds,
        })
    }
}

async fn set_recording_status(
    tx: &mut Tx,
    recording_id: i64,
    status: RecordingStatus,
    error: Option<&str>,
) -> Result<()> {
    on!(tx, c => sqlx::query("UPDATE recordings SET status = $1, error = $2, updated_at = $3 WHERE id = $4")
        .bind(status.as_str())
        .bind(error)
        .bind(now_millis())
        .bind(recording_id)
        .execute(c)
        .await
        .map(|done| done.rows_affected()))?;
    Ok(())
}

#[cfg(test)]
mod tests;
