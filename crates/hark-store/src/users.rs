use std::str::FromStr;

use hark_core::roles::Role;
use time::OffsetDateTime;

use crate::{DEFAULT_WORKSPACE_ID, Db, Result, StoreError, from_millis, now_millis};

#[derive(Debug, Clone)]
pub struct User {
    pub id: i64,
    pub workspace_id: i64,
    pub username: String,
    pub role: Role,
    pub created_at: OffsetDateTime,
}

/// A user together with their password hash, for sign-in only.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user: User,
    pub password_hash: String,
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: i64,
    workspace_id: i64,
    username: String,
    password_hash: String,
    role: String,
    created_at: i64,
}

impl UserRow {
    fn into_credentials(self) -> Result<Credentials> {
        let role = Role::from_str(&self.role).map_err(StoreError::corrupt)?;
        Ok(Credentials {
            user: User {
                id: self.id,
                workspace_id: self.workspace_id,
                username: self.username,
                role,
                created_at: from_millis(self.created_at),
            },
            password_hash: self.password_hash,
        })
    }
}

const COLUMNS: &str = "id, workspace_id, username, password_hash, role, created_at";

pub struct Users<'a> {
    pub(crate) db: &'a Db,
}

impl Users<'_> {
    /// `password_hash` is a PHC string made by the caller; the store never sees a password.
    pub async fn create(&self, username: &str, password_hash: &str, role: Role) -> Result<User> {
        let row: UserRow = on!(self.db, c => sqlx::query_as(sql!(
            "INSERT INTO users (workspace_id, username, password_hash, role, created_at)
             VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
        ))
        .bind(DEFAULT_WORKSPACE_ID)
        .bind(username)
        .bind(password_hash)
        .bind(role.as_str())
        .bind(now_millis())
        .fetch_one(c)
        .await)
        .map_err(|e| {
            StoreError::conflict_on_unique(e, "a user with that username already exists")
        })?;
        Ok(row.into_credentials()?.user)
    }

    /// Creates the first user, as an admin, only while there is no user at all (one
    /// statement, so two racing first-run forms cannot both win). `None` once anyone exists.
    pub async fn create_first_admin(
        &self,
        username: &str,
        password_hash: &str,
    ) -> Result<Option<User>> {
        let mut tx = self.db.begin_writing().await?;
        // Two first-run requests at once must not both see no users: SQLite's write lock
        // (taken at BEGIN) orders them; PostgreSQL, reading committed data, needs a lock.
        if let crate::Backend::Postgres(c) = tx.backend() {
            sqlx::query("SELECT pg_advisory_xact_lock(7311021456)")
                .execute(c)
                .await?;
        }
        let row: Option<UserRow> = on!(tx, c => sqlx::query_as(sql!(
            "INSERT INTO users (workspace_id, username, password_hash, role, created_at)
             SELECT $1, $2, $3, $4, $5 WHERE NOT EXISTS (SELECT 1 FROM users)
             RETURNING {COLUMNS}"
        ))
        .bind(DEFAULT_WORKSPACE_ID)
        .bind(username)
        .bind(password_hash)
        .bind(Role::Admin.as_str())
        .bind(now_millis())
        .fetch_optional(c)
        .await)?;
        tx.commit().await?;
        row.map(|r| Ok(r.into_credentials()?.user)).transpose()
    }

    pub async fn credentials(&self, username: &str) -> Result<Option<Credentials>> {
        let row: Option<UserRow> = on!(self.db, c => sqlx::query_as(sql!(
            "SELECT {COLUMNS} FROM users WHERE username = $1 AND removed_at IS NULL"
        ))
        .bind(username)
        .fetch_optional(c)
        .await)?;
        row.map(UserRow::into_credentials).transpose()
    }

    pub async fn by_id(&self, id: i64) -> Result<User> {
        let row: Option<UserRow> = on!(self.db, c => sqlx::query_as(sql!(
            "SELECT {COLUMNS} FROM users WHERE id = $1 AND removed_at IS NULL"
        ))
        .bind(id)
        .fetch_optional(c)
        .await)?;
        Ok(row.ok_or(StoreError::NotFound)?.into_credentials()?.user)
    }

    pub async fn by_username(&self, username: &str) -> Result<User> {
        Ok(self
            .credentials(username)
            .await?
            .ok_or(StoreError::NotFound)?
            .user)
    }

    /// Changes a role and marks every token of the user as changed, so verification caches
    /// everywhere drop what they knew about the old role.
    pub async fn set_role(&self, user_id: i64, role: Role) -> Result<()> {
        let mut tx = self.db.begin().await?;
        let updated = on!(tx, c => sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
            .bind(role.as_str())
            .bind(user_id)
            .execute(c)
            .await
            .map(|done| done.rows_affected()))?;
        if updated == 0 {
            return Err(StoreError::NotFound);
        }
        on!(tx, c => sqlx::query(
            "INSERT INTO token_changes (token_id, changed_at) SELECT id, $1 FROM tokens WHERE user_id = $2",
        )
        .bind(now_millis())
        .bind(user_id)
        .execute(c)
        .await
        .map(|done| done.rows_affected()))?;
        tx.commit().await?;
        Ok(())
    }

    /// Everyone in a workspace, oldest first.
    pub async fn list(&self, workspace_id: i64) -> Result<Vec<User>> {
        let rows: Vec<UserRow> = on!(self.db, c => sqlx::query_as(sql!(
            "SELECT {COLUMNS} FROM users WHERE workspace_id = $1 AND removed_at IS NULL ORDER BY id"
        ))
        .bind(workspace_id)
        .fetch_all(c)
        .await)?;
        rows.into_iter()
            .map(|r| Ok(r.into_credentials()?.user))
            .collect()
    }

    /// Removes a member: revokes every token they hold (noting each in the change log so
    /// every server drops it), ends their web sessions, and marks them removed — one
    /// transaction. Returns the revoked token ids.
    pub async fn remove(&self, user_id: i64) -> Result<Vec<i64>> {
        let now = now_millis();
        let mut tx = self.db.begin().await?;
        let updated = on!(tx, c => sqlx::query("UPDATE users SET removed_at = $1 WHERE id = $2 AND removed_at IS NULL")
                .bind(now)
                .bind(user_id)
                .execute(c)
                .await
                .map(|done| done.rows_affected()))?;
        if updated == 0 {
            return Err(StoreError::NotFound);
        }
        let tokens: Vec<i64> = on!(tx, c => sqlx::query_scalar(
            "UPDATE tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL RETURNING id",
        )
        .bind(now)
        .bind(user_id)
        .fetch_all(c)
        .await)?;
        on!(tx, c => sqlx::query(
            "INSERT INTO token_changes (token_id, changed_at) SELECT id, $1 FROM tokens WHERE user_id = $2",
        )
        .bind(now)
        .bind(user_id)
        .execute(c)
        .await
        .map(|done| done.rows_affected()))?;
        on!(tx, c => sqlx::query("DELETE FROM web_sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(c)
            .await
            .map(|done| done.rows_affected()))?;
        tx.commit().await?;
        Ok(tokens)
    }

    pub async fn count(&self) -> Result<i64> {
        Ok(
            on!(self.db, c => sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(c)
            .await)?,
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::on_each_backend;

    #[tokio::test]
    async fn of_first_run_requests_racing_only_one_makes_an_admin() {
        on_each_backend(async |store| {
            let racers: Vec<_> = (0..8)
                .map(|n| {
                    let store = store.clone();
                    tokio::spawn(async move {
                        store
                            .users()
                            .create_first_admin(&format!("admin{n}"), "x")
                            .await
                            .unwrap()
                    })
                })
                .collect();
            let mut made = 0;
            for racer in racers {
                made += usize::from(racer.await.unwrap().is_some());
            }
            assert_eq!(made, 1);
            assert_eq!(store.users().count().await.unwrap(), 1);
        })
        .await;
    }
}
