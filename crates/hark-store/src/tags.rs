//! Per-user tags and their links to recordings.

use serde::Serialize;

use crate::{Db, Result, StoreError, now_millis};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Tag {
    pub id: i64,
    pub name: String,
    pub color: String,
}

pub struct Tags<'a> {
    pub(crate) db: &'a Db,
}

impl Tags<'_> {
    pub async fn list(&self, user_id: i64) -> Result<Vec<Tag>> {
        Ok(
            on!(self.db, c => sqlx::query_as("SELECT id, name, color FROM tags WHERE user_id = $1 ORDER BY name")
                .bind(user_id)
                .fetch_all(c)
                .await)?,
        )
    }

    pub async fn create(&self, user_id: i64, name: &str, color: &str) -> Result<Tag> {
        on!(self.db, c => sqlx::query_as(
            "INSERT INTO tags (user_id, name, color, created_at) VALUES ($1, $2, $3, $4)
             RETURNING id, name, color",
        )
        .bind(user_id)
        .bind(name)
        .bind(color)
        .bind(now_millis())
        .fetch_one(c)
        .await)
        .map_err(|e| StoreError::conflict_on_unique(e, "you already have a tag with that name"))
    }

    pub async fn delete(&self, user_id: i64, tag_id: i64) -> Result<()> {
        let done = on!(self.db, c => sqlx::query("DELETE FROM tags WHERE id = $1 AND user_id = $2")
            .bind(tag_id)
            .bind(user_id)
            .execute(c)
            .await
            .map(|done| done.rows_affected()))?;
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Links a tag to a recording; both must belong to the user. Linking twice is fine.
    pub async fn attach(&self, user_id: i64, recording_id: i64, tag_id: i64) -> Result<()> {
        let done = on!(self.db, c => sqlx::query(
            "INSERT INTO recording_tags (recording_id, tag_id)
             SELECT r.id, t.id FROM recordings r, tags t
             WHERE r.id = $1 AND r.user_id = $3 AND t.id = $2 AND t.user_id = $3
             ON CONFLICT DO NOTHING",
        )
        .bind(recording_id)
        .bind(tag_id)
        .bind(user_id)
        .execute(c)
        .await
        .map(|done| done.rows_affected()))?;
        if done == 0 {
            self.ensure_owned(user_id, recording_id, tag_id).await?;
        }
        Ok(())
    }

    pub async fn detach(&self, user_id: i64, recording_id: i64, tag_id: i64) -> Result<()> {
        self.ensure_owned(user_id, recording_id, tag_id).await?;
        on!(self.db, c => sqlx::query("DELETE FROM recording_tags WHERE recording_id = $1 AND tag_id = $2")
            .bind(recording_id)
            .bind(tag_id)
            .execute(c)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(())
    }

    async fn ensure_owned(&self, user_id: i64, recording_id: i64, tag_id: i64) -> Result<()> {
        let owned: i64 = on!(self.db, c => sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM recordings WHERE id = $1 AND user_id = $3)
                  + (SELECT COUNT(*) FROM tags WHERE id = $2 AND user_id = $3)",
        )
        .bind(recording_id)
        .bind(tag_id)
        .bind(user_id)
        .fetch_one(c)
        .await)?;
        if owned == 2 {
            Ok(())
        } else {
            Err(StoreError::NotFound)
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::StoreError;
    use crate::recordings::NewRecording;
    use crate::recordings::RecordingFilter;
    use crate::testing::on_each_backend;
    use hark_core::pagination::PageRequest;
    use hark_core::roles::Role;

    #[tokio::test]
    async fn tags_attach_only_within_one_owner() {
        on_each_backend(async |store| {
            let ada = store
                .users()
                .create("ada", "x", Role::Member)
                .await
                .unwrap();
            let bob = store
                .users()
                .create("bob", "x", Role::Member)
                .await
                .unwrap();
            let rec = store
                .recordings()
                .create(&NewRecording {
                    user_id: ada.id,
                    project_id: 1,
                    title: "sync".into(),
                    original_filename: "a.wav".into(),
                    mime_type: "audio/wav".into(),
                    size_bytes: 10,
                    blob_key: "k".into(),
                    language: None,
                    submitted_by_key: None,
                    source_url: None,
                })
                .await
                .unwrap();
            let work = store
                .tags()
                .create(ada.id, "work", "#112233")
                .await
                .unwrap();
            let bobs = store
                .tags()
                .create(bob.id, "work", "#112233")
                .await
                .unwrap();
            assert!(matches!(
                store.tags().create(ada.id, "work", "#000000").await,
                Err(StoreError::Conflict(_))
            ));
            store.tags().attach(ada.id, rec.id, work.id).await.unwrap();
            store.tags().attach(ada.id, rec.id, work.id).await.unwrap();
            assert!(matches!(
                store.tags().attach(ada.id, rec.id, bobs.id).await,
                Err(StoreError::NotFound)
            ));
            assert!(matches!(
                store.tags().attach(bob.id, rec.id, bobs.id).await,
                Err(StoreError::NotFound)
            ));
            let (page, total) = store
                .recordings()
                .page(ada.id, &RecordingFilter::default(), PageRequest::default())
                .await
                .unwrap();
            assert_eq!(total, 1);
            assert_eq!(page[0].tags, vec![work.clone()]);
            store.tags().detach(ada.id, rec.id, work.id).await.unwrap();
            assert!(
                store
                    .recordings()
                    .get(ada.id, rec.id)
                    .await
                    .unwrap()
                    .tags
                    .is_empty()
            );
            assert!(matches!(
                store.recordings().get(bob.id, rec.id).await,
                Err(StoreError::NotFound)
            ));
        })
        .await;
    }
}
