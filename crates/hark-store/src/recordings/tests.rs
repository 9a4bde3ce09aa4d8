use super::*;
use crate::testing::on_each_backend;
use hark_core::roles::Role;

fn new(user_id: i64, title: &str) -> NewRecording {
    NewRecording {
        user_id,
        project_id: 1,
        title: title.into(),
        original_filename: "a.wav".into(),
        mime_type: "audio/wav".into(),
        size_bytes: 10,
        blob_key: "k".into(),
        language: None,
        submitted_by_key: None,
        source_url: None,
    }
}

#[tokio::test]
async fn search_filters_by_owner_title_keyword_and_date() {
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
        let recordings = store.recordings();
        let budget = recordings
            .create(&new(ada.id, "Budget review"))
            .await
            .unwrap();
        let standup = recordings
            .create(&new(ada.id, "Standup 100%"))
            .await
            .unwrap();
        let bobs = recordings.create(&new(bob.id, "Budget too")).await.unwrap();
        let segments = r#"[{"start":0.0,"end":1.0,"text":" We discussed the invoice."}]"#;
        on!(store.db, c => sqlx::query(
            "UPDATE recordings SET transcript = $1, duration_seconds = 90 WHERE id = $2",
        )
        .bind(segments)
        .bind(standup.id)
        .execute(c)
        .await
        .map(|done| done.rows_affected()))
        .unwrap();
        let ids = |found: Vec<Recording>| found.into_iter().map(|r| r.id).collect::<Vec<_>>();
        let search = |owners: Vec<i64>| RecordingSearch {
            owners,
            limit: 50,
            ..RecordingSearch::default()
        };
        let all = recordings.search(&search(vec![ada.id])).await.unwrap();
        assert_eq!(
            ids(all),
            vec![standup.id, budget.id],
            "newest first, own only"
        );
        let both = search(vec![ada.id, bob.id]);
        assert_eq!(recordings.search(&both).await.unwrap().len(), 3);
        assert!(recordings.search(&search(vec![])).await.unwrap().is_empty());
        let keyword = |word: &str, scope| RecordingSearch {
            keyword: Some(word.into()),
            scope,
            ..search(vec![ada.id])
        };
        let found = recordings
            .search(&keyword("INVOICE", KeywordScope::Both))
            .await;
        assert_eq!(ids(found.unwrap()), vec![standup.id]);
        let found = recordings
            .search(&keyword("invoice", KeywordScope::Title))
            .await;
        assert!(found.unwrap().is_empty());
        let found = recordings
            .search(&keyword("budget", KeywordScope::Transcript))
            .await;
        assert!(found.unwrap().is_empty());
        // The stored JSON's keys are not text, and LIKE wildcards are literal.
        let found = recordings
            .search(&keyword("start", KeywordScope::Both))
            .await;
        assert!(found.unwrap().is_empty());
        let found = recordings.search(&keyword("%", KeywordScope::Title)).await;
        assert_eq!(ids(found.unwrap()), vec![standup.id]);
        let titled = RecordingSearch {
            title: Some("budget".into()),
            ..both.clone()
        };
        assert_eq!(
            ids(recordings.search(&titled).await.unwrap()),
            vec![bobs.id, budget.id]
        );
        let later = RecordingSearch {
            from: Some(OffsetDateTime::now_utc() + time::Duration::hours(1)),
            ..both.clone()
        };
        assert!(recordings.search(&later).await.unwrap().is_empty());
        let earlier = RecordingSearch {
            to: Some(OffsetDateTime::now_utc() - time::Duration::hours(1)),
            ..both.clone()
        };
        assert!(recordings.search(&earlier).await.unwrap().is_empty());
        let paged = RecordingSearch {
            limit: 1,
            offset: 1,
            ..search(vec![ada.id])
        };
        assert_eq!(
            ids(recordings.search(&paged).await.unwrap()),
            vec![budget.id]
        );

        let usage = recordings.usage(ada.id).await.unwrap();
        assert_eq!(
            usage,
            Usage {
                count: 2,
                seconds: 90.0,
                latest: Some(standup.id)
            }
        );
        assert_eq!(recordings.usage(999).await.unwrap(), Usage::default());
        let renamed = recordings
            .rename(ada.id, budget.id, "Q3 budget")
            .await
            .unwrap();
        assert_eq!(renamed.title, "Q3 budget");
        assert!(matches!(
            recordings.rename(bob.id, budget.id, "mine now").await,
            Err(StoreError::NotFound)
        ));
    })
    .await;
}
