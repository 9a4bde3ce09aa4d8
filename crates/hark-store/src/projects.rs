//! Projects: the groups of recordings inside a workspace (a default one always exists).

use time::OffsetDateTime;

use crate::{Db, Result, StoreError, from_millis, now_millis};

#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    pub id: i64,
    pub workspace_id: i64,
    pub name: String,
    pub created_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct ProjectRow {
    id: i64,
    workspace_id: i64,
    name: String,
    created_at: i64,
}

impl From<ProjectRow> for Project {
    fn from(r: ProjectRow) -> Self {
        Project {
            id: r.id,
            workspace_id: r.workspace_id,
            name: r.name,
            created_at: from_millis(r.created_at),
        }
    }
}

pub struct Projects<'a> {
    pub(crate) db: &'a Db,
}

impl Projects<'_> {
    pub async fn list(&self, workspace_id: i64) -> Result<Vec<Project>> {
        let rows: Vec<ProjectRow> = on!(self.db, c => sqlx::query_as(
            "SELECT id, workspace_id, name, created_at FROM projects WHERE workspace_id = $1 ORDER BY id",
        )
        .bind(workspace_id)
        .fetch_all(c)
        .await)?;
        Ok(rows.into_iter().map(Project::from).collect())
    }

    pub async fn get(&self, workspace_id: i64, id: i64) -> Result<Project> {
        let row: Option<ProjectRow> = on!(self.db, c => sqlx::query_as(
            "SELECT id, workspace_id, name, created_at FROM projects WHERE workspace_id = $1 AND id = $2",
        )
        .bind(workspace_id)
        .bind(id)
        .fetch_optional(c)
        .await)?;
        row.map(Project::from).ok_or(StoreError::NotFound)
    }

    /// Deletes an empty project and revokes its keys, in one transaction. The default
    /// project (id 1) stays; a project that still holds recordings is a conflict.
    pub async fn delete(&self, workspace_id: i64, id: i64) -> Result<Vec<i64>> {
        if id == 1 {
            return Err(StoreError::Conflict(
                "the default project cannot be deleted".into(),
            ));
        }
        let mut tx = self.db.begin_writing().await?;
        let recordings: i64 = on!(tx, c => sqlx::query_scalar("SELECT COUNT(*) FROM recordings WHERE project_id = $1")
                .bind(id)
                .fetch_one(c)
                .await)?;
        if recordings > 0 {
            return Err(StoreError::Conflict(format!(
                "the project still holds {recordings} recording(s); delete or move them first"
            )));
        }
        let now = now_millis();
        let keys: Vec<i64> = on!(tx, c => sqlx::query_scalar(
            "UPDATE tokens SET revoked_at = $1 WHERE project_id = $2 AND revoked_at IS NULL RETURNING id",
        )
        .bind(now)
        .bind(id)
        .fetch_all(c)
        .await)?;
        for key in &keys {
            on!(tx, c => sqlx::query("INSERT INTO token_changes (token_id, changed_at) VALUES ($1, $2)")
                .bind(key)
                .bind(now)
                .execute(c)
                .await
                .map(|done| done.rows_affected()))?;
        }
        // Keys keep their history (revoked, still listed) but no longer point at the project.
        on!(tx, c => sqlx::query("UPDATE tokens SET project_id = NULL WHERE project_id = $1")
            .bind(id)
            .execute(c)
            .await
            .map(|done| done.rows_affected()))?;
        let deleted = on!(tx, c => sqlx::query("DELETE FROM projects WHERE workspace_id = $1 AND id = $2")
            .bind(workspace_id)
            .bind(id)
            .execute(c)
            .await
            .map(|done| done.rows_affected()))?;
        if deleted == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(keys)
    }

    pub async fn create(&self, workspace_id: i64, name: &str) -> Result<Project> {
        let row: ProjectRow = on!(self.db, c => sqlx::query_as(
            "INSERT INTO projects (workspace_id, name, created_at) VALUES ($1, $2, $3)
             RETURNING id, workspace_id, name, created_at",
        )
        .bind(workspace_id)
        .bind(name)
        .bind(now_millis())
        .fetch_one(c)
        .await)
        .map_err(|e| {
            StoreError::conflict_on_unique(e, "a project with that name already exists")
        })?;
        Ok(row.into())
    }
}
