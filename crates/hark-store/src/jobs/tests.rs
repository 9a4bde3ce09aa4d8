use super::*;
use crate::recordings::NewRecording;
use crate::testing::on_each_backend;
use hark_core::roles::Role;

async fn submitted(store: &crate::Store) -> (crate::recordings::Recording, Job) {
    let user = store
        .users()
        .create("ada", "x", Role::Member)
        .await
        .unwrap();
    store
        .jobs()
        .submit(&recording_of(user.id, "k"), "{}", 2)
        .await
        .unwrap()
}

fn recording_of(user_id: i64, blob_key: &str) -> NewRecording {
    NewRecording {
        user_id,
        project_id: 1,
        title: "t".into(),
        original_filename: "a.wav".into(),
        mime_type: "audio/wav".into(),
        size_bytes: 1,
        blob_key: blob_key.into(),
        language: None,
        submitted_by_key: None,
        source_url: None,
    }
}

#[tokio::test]
async fn a_lapsed_lease_is_claimed_again_and_attempts_are_bounded() {
    on_each_backend(async |store| {
        let (recording, job) = submitted(&store).await;
        assert_eq!(
            (recording.status, job.status),
            (RecordingStatus::Pending, JobStatus::Queued)
        );

        let first = store
            .jobs()
            .claim("w1", Duration::milliseconds(50))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((first.id, first.attempts), (job.id, 1));
        assert!(
            store
                .jobs()
                .claim("w2", Duration::seconds(5))
                .await
                .unwrap()
                .is_none(),
            "leased"
        );
        let rec = store
            .recordings()
            .get(recording.user_id, recording.id)
            .await
            .unwrap();
        assert_eq!(rec.status, RecordingStatus::Processing);

        tokio::time::sleep(std::time::Duration::from_millis(80)).await;
        let second = store
            .jobs()
            .claim("w2", Duration::milliseconds(50))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((second.id, second.attempts), (job.id, 2));
        assert!(
            !store
                .jobs()
                .heartbeat(&first, "w1", Duration::seconds(5), 0.5)
                .await
                .unwrap(),
            "w1 lost it"
        );

        tokio::time::sleep(std::time::Duration::from_millis(80)).await;
        assert!(
            store
                .jobs()
                .claim("w3", Duration::seconds(5))
                .await
                .unwrap()
                .is_none(),
            "attempts used up"
        );
        assert_eq!(store.jobs().fail_exhausted().await.unwrap().len(), 1);
        let rec = store
            .recordings()
            .get(recording.user_id, recording.id)
            .await
            .unwrap();
        assert_eq!(rec.status, RecordingStatus::Failed);
        assert!(rec.error.unwrap().contains("repeated attempts"));
    })
    .await;
}

#[tokio::test]
async fn listings_hold_the_owners_jobs_newest_first() {
    on_each_backend(async |store| {
        let (first, job1) = submitted(&store).await;
        let new = NewRecording {
            user_id: first.user_id,
            project_id: 1,
            title: "u".into(),
            original_filename: "b.wav".into(),
            mime_type: "audio/wav".into(),
            size_bytes: 1,
            blob_key: "k2".into(),
            language: None,
            submitted_by_key: None,
            source_url: None,
        };
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let (_, job2) = store.jobs().submit(&new, "{}", 2).await.unwrap();
        let jobs = store.jobs();
        let mine = jobs
            .list(JobOwner::User(first.user_id), None, 10)
            .await
            .unwrap();
        let ids: Vec<i64> = mine.iter().map(|l| l.job.id).collect();
        assert_eq!(ids, [job2.id, job1.id]);
        assert_eq!(mine[0].original_filename, "b.wav");
        let older = jobs
            .list(JobOwner::User(first.user_id), Some(job2.created_at), 10)
            .await
            .unwrap();
        assert_eq!(older.len(), 1);
        assert_eq!(older[0].job.id, job1.id);
        assert_eq!(
            jobs.list(JobOwner::User(first.user_id), None, 1)
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(
            jobs.list(JobOwner::User(first.user_id + 1), None, 10)
                .await
                .unwrap()
                .is_empty()
        );
        // Nothing was submitted with a key, so the project's keys see none of it.
        assert!(
            jobs.list(JobOwner::Project(1), None, 10)
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn completion_stores_the_transcript() {
    on_each_backend(async |store| {
        let (recording, _) = submitted(&store).await;
        let job = store
            .jobs()
            .claim("w", Duration::seconds(5))
            .await
            .unwrap()
            .unwrap();
        assert!(
            store
                .jobs()
                .heartbeat(&job, "w", Duration::seconds(5), 0.4)
                .await
                .unwrap()
        );
        assert_eq!(store.jobs().get(job.id).await.unwrap().progress, 0.4);
        let segments = vec![Segment {
            start: 0.0,
            end: 1.5,
            text: " Hello".into(),
            words: vec![hark_core::recordings::Word {
                word: " Hello".into(),
                start: 0.2,
                end: 0.9,
                probability: 0.75,
            }],
        }];
        let outcome = Outcome {
            segments: segments.clone(),
            summary: "Hello".into(),
            duration_seconds: 1.5,
            language: "en".into(),
        };
        assert!(store.jobs().complete(&job, "w", &outcome).await.unwrap());
        assert!(
            !store
                .jobs()
                .complete(&job, "other", &outcome)
                .await
                .unwrap(),
            "only the lease holder"
        );
        let rec = store
            .recordings()
            .get(recording.user_id, recording.id)
            .await
            .unwrap();
        assert_eq!(rec.status, RecordingStatus::Completed);
        assert_eq!(rec.summary.as_deref(), Some("Hello"));
        assert_eq!(
            store
                .recordings()
                .transcript(recording.user_id, recording.id)
                .await
                .unwrap(),
            Some(segments)
        );
        assert_eq!(
            store.jobs().get(job.id).await.unwrap().status,
            JobStatus::Done
        );
    })
    .await;
}

#[test]
fn transcripts_stored_before_word_timing_still_read() {
    let stored = r#"[{"start":0.0,"end":1.5,"text":"Hello"}]"#;
    let segments: Vec<Segment> = serde_json::from_str(stored).unwrap();
    assert!(segments[0].words.is_empty());
    assert_eq!(serde_json::to_string(&segments).unwrap(), stored);
}

fn outcome() -> Outcome {
    Outcome {
        segments: Vec::new(),
        summary: String::new(),
        duration_seconds: 1.0,
        language: "en".into(),
    }
}

#[tokio::test]
async fn a_lost_attempt_cannot_complete_even_under_the_same_worker_name() {
    on_each_backend(async |store| {
        let (_, _) = submitted(&store).await;
        let lease = Duration::milliseconds(50);
        let first = store.jobs().claim("w", lease).await.unwrap().unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(80)).await;
        // The same name again: a restarted process whose host and pid repeat.
        let second = store.jobs().claim("w", lease * 100).await.unwrap().unwrap();
        assert_eq!((second.id, second.attempts), (first.id, 2));
        assert!(
            !store
                .jobs()
                .heartbeat(&first, "w", lease, 0.5)
                .await
                .unwrap()
        );
        assert!(
            !store
                .jobs()
                .complete(&first, "w", &outcome())
                .await
                .unwrap()
        );
        assert!(!store.jobs().fail(&first, "w", "late").await.unwrap());
        assert!(
            store
                .jobs()
                .complete(&second, "w", &outcome())
                .await
                .unwrap()
        );
        assert!(
            !store
                .jobs()
                .complete(&second, "w", &outcome())
                .await
                .unwrap()
        );
    })
    .await;
}

#[tokio::test]
async fn racing_claimers_take_each_job_once() {
    on_each_backend(async |store| {
        let user = store
            .users()
            .create("ada", "x", Role::Member)
            .await
            .unwrap();
        for n in 0..20 {
            let new = recording_of(user.id, &format!("k{n}"));
            store.jobs().submit(&new, "{}", 2).await.unwrap();
        }
        let claimer = |name: &'static str| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut taken = Vec::new();
                while let Some(job) = store
                    .jobs()
                    .claim(name, Duration::seconds(60))
                    .await
                    .unwrap()
                {
                    assert!(store.jobs().complete(&job, name, &outcome()).await.unwrap());
                    taken.push(job.id);
                }
                taken
            })
        };
        let (a, b) = (claimer("a"), claimer("b"));
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        let mut all: Vec<i64> = a.iter().chain(&b).copied().collect();
        all.sort_unstable();
        let before = all.len();
        all.dedup();
        assert_eq!((before, all.len()), (20, 20), "a: {a:?}, b: {b:?}");
    })
    .await;
}

#[tokio::test]
async fn a_job_given_back_keeps_its_attempts_and_says_why_it_waits() {
    on_each_backend(async |store| {
        let (recording, _) = submitted(&store).await;
        // Two attempts allowed; five claims given back must not use them up.
        for _ in 0..5 {
            let job = store
                .jobs()
                .claim("w", Duration::seconds(5))
                .await
                .unwrap()
                .expect("the job is claimable again");
            assert_eq!(job.attempts, 1);
            assert!(
                store
                    .jobs()
                    .give_back(&job, "w", "no speech model")
                    .await
                    .unwrap()
            );
            assert!(store.jobs().fail_exhausted().await.unwrap().is_empty());
        }
        let waiting = store.recordings().by_id(recording.id).await.unwrap();
        assert_eq!(waiting.status, RecordingStatus::Pending);
        assert_eq!(waiting.error.as_deref(), Some("no speech model"));
        let job = store
            .jobs()
            .claim("w", Duration::seconds(5))
            .await
            .unwrap()
            .unwrap();
        let stale = Job {
            attempts: 7,
            ..job.clone()
        };
        assert!(
            !store.jobs().give_back(&stale, "w", "x").await.unwrap(),
            "fenced"
        );
    })
    .await;
}
