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
        let rows: Vec<ProjectRow> = sqlx::query_as(
            "SELECT id, workspace_id, name, created_at FROM projects WHERE workspace_id = $1 ORDER BY id",
        )
        .bind(workspace_id)
        .fetch_all(self.db)
        .await?;
        Ok(rows.into_iter().map(Project::from).collect())
    }

    pub async fn get(&self, workspace_id: i64, id: i64) -> Result<Project> {
        let row: Option<ProjectRow> = sqlx::query_as(
            "SELECT id, workspace_id, name, created_at FROM projects WHERE workspace_id = $1 AND id = $2",
        )
        .bind(workspace_id)
        .bind(id)
        .fetch_optional(self.db)
        .await?;
        row.map(Project::from).ok_or(StoreError::NotFound)
    }

    pub async fn create(&self, workspace_id: i64, name: &str) -> Result<Project> {
        let row: ProjectRow = sqlx::query_as(
            "INSERT INTO projects (workspace_id, name, created_at) VALUES ($1, $2, $3)
             RETURNING id, workspace_id, name, created_at",
        )
        .bind(workspace_id)
        .bind(name)
        .bind(now_millis())
        .fetch_one(self.db)
        .await
        .map_err(|e| {
            StoreError::conflict_on_unique(e, "a project with that name already exists")
        })?;
        Ok(row.into())
    }
}
