use super::*;
use crate::testing::on_each_backend;
use hark_core::networks::IpRules;
use hark_core::quotas::{AudioQuota, Refill};
use hark_core::tokens::generate;

/// A personal token's secret and the request to store it; tests adjust fields.
fn token_request(user_id: i64, kind: TokenKind) -> (hark_core::tokens::GeneratedToken, NewToken) {
    let generated = generate(kind);
    let request = NewToken {
        kind,
        name: "ci".into(),
        scopes: Scopes::all(),
        user_id,
        workspace_id: 1,
        project_id: None,
        hint: generated.hint.clone(),
        hash: generated.hash,
        expires_at: None,
        requests_per_minute: None,
        parent_id: None,
        temporary: false,
        ip_rules: IpRules::default(),
        audio_quota: None,
    };
    (generated, request)
}

async fn new_token(
    store: &crate::Store,
    user_id: i64,
) -> (hark_core::tokens::GeneratedToken, TokenRecord) {
    let (generated, request) = token_request(user_id, TokenKind::Personal);
    let record = store.tokens().create(&request).await.unwrap();
    (generated, record)
}

#[tokio::test]
async fn a_temporary_key_reports_its_parent_and_is_not_listed() {
    on_each_backend(async |store| {
        let user = store
            .users()
            .create("ada", "x", Role::Member)
            .await
            .unwrap();
        let (_, parent) = new_token(&store, user.id).await;
        let (generated, request) = token_request(user.id, TokenKind::Project);
        let child = store
            .tokens()
            .create(&NewToken {
                name: "temporary".into(),
                scopes: [hark_core::scopes::Scope::Realtime].into_iter().collect(),
                expires_at: Some(OffsetDateTime::now_utc() + Duration::minutes(1)),
                parent_id: Some(parent.id),
                temporary: true,
                ..request
            })
            .await
            .unwrap();
        assert!(child.temporary);
        let found = store.tokens().find_secret(&generated.hash).await.unwrap();
        let state = found.unwrap().parent.unwrap();
        assert_eq!(state.revoked_at, None);
        store
            .tokens()
            .revoke(parent.id, Some(user.id))
            .await
            .unwrap();
        let found = store.tokens().find_secret(&generated.hash).await.unwrap();
        assert!(found.unwrap().parent.unwrap().revoked_at.is_some());
        let listed = store.tokens().list_for_user(user.id).await.unwrap();
        assert!(listed.iter().all(|t| t.id != child.id));
        assert_eq!(
            store.tokens().count_active(user.id, 1).await.unwrap(),
            (0, 0)
        );
    })
    .await;
}

#[tokio::test]
async fn create_find_revoke_and_change_log() {
    on_each_backend(async |store| {
        let user = store
            .users()
            .create("ada", "x", Role::Member)
            .await
            .unwrap();
        let (generated, record) = new_token(&store, user.id).await;
        assert_eq!(record.owner_username, "ada");
        let found = store
            .tokens()
            .find_secret(&generated.hash)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((&found.record, found.role), (&record, Role::Member));
        assert_eq!(store.tokens().latest_change().await.unwrap(), 0);

        let revoked = store
            .tokens()
            .revoke(record.id, Some(user.id))
            .await
            .unwrap();
        assert_eq!(
            revoked.status(OffsetDateTime::now_utc()),
            TokenStatus::Revoked
        );
        let again = store.tokens().revoke(record.id, None).await.unwrap();
        assert_eq!(
            again.revoked_at, revoked.revoked_at,
            "second revoke keeps the first"
        );
        assert_eq!(
            store.tokens().changes_since(0).await.unwrap(),
            vec![(1, record.id)]
        );
        assert!(matches!(
            store.tokens().revoke(999, None).await,
            Err(StoreError::NotFound)
        ));
    })
    .await;
}

#[tokio::test]
async fn rotation_keeps_the_old_secret_only_for_the_grace() {
    on_each_backend(async |store| {
        let user = store
            .users()
            .create("bo", "x", Role::Developer)
            .await
            .unwrap();
        let (first, record) = new_token(&store, user.id).await;
        let second = generate(TokenKind::Personal);
        let rotated = store
            .tokens()
            .rotate(record.id, &second.hash, &second.hint, Duration::hours(1))
            .await
            .unwrap();
        assert_eq!(rotated.hint, second.hint);
        let old = store
            .tokens()
            .find_secret(&first.hash)
            .await
            .unwrap()
            .unwrap();
        assert!(old.secret_retires_at.is_some());
        assert!(
            store
                .tokens()
                .find_secret(&second.hash)
                .await
                .unwrap()
                .unwrap()
                .secret_retires_at
                .is_none()
        );

        let third = generate(TokenKind::Personal);
        store
            .tokens()
            .rotate(record.id, &third.hash, &third.hint, Duration::ZERO)
            .await
            .unwrap();
        assert!(
            store
                .tokens()
                .find_secret(&first.hash)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .tokens()
                .find_secret(&second.hash)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .tokens()
                .find_secret(&third.hash)
                .await
                .unwrap()
                .is_some()
        );
    })
    .await;
}

#[tokio::test]
async fn change_log_entries_become_visible_in_their_order() {
    // A reader follows the log by seq: a later seq committed before an earlier one would
    // move it past the earlier change for good. So a second writer waits for the first.
    on_each_backend(async |store| {
        let mut first = store.db.begin().await.unwrap();
        record_change(&mut first, 1, 0).await.unwrap();
        let second = tokio::spawn({
            let store = store.clone();
            async move {
                let mut tx = store.db.begin().await.unwrap();
                record_change(&mut tx, 2, 0).await.unwrap();
                tx.commit().await.unwrap();
            }
        });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(
            !second.is_finished(),
            "the second writer waits for the first"
        );
        assert!(store.tokens().changes_since(0).await.unwrap().is_empty());
        first.commit().await.unwrap();
        second.await.unwrap();
        let changes = store.tokens().changes_since(0).await.unwrap();
        let tokens: Vec<i64> = changes.iter().map(|(_, token)| *token).collect();
        assert_eq!(tokens, [1, 2]);
    })
    .await;
}

#[tokio::test]
async fn uses_never_move_backwards() {
    on_each_backend(async |store| {
        let user = store.users().create("cy", "x", Role::Admin).await.unwrap();
        let (_, record) = new_token(&store, user.id).await;
        let later = crate::truncate_to_millis(OffsetDateTime::now_utc());
        let earlier = later - Duration::minutes(5);
        let uses = [
            TokenUse {
                token_id: record.id,
                at: later,
                ip: Some("127.0.0.1".into()),
            },
            TokenUse {
                token_id: record.id,
                at: earlier,
                ip: Some("10.0.0.1".into()),
            },
        ];
        store.tokens().record_uses(&uses).await.unwrap();
        let got = store.tokens().get(record.id).await.unwrap();
        assert_eq!(got.last_used_at, Some(later));
        assert_eq!(got.last_used_ip.as_deref(), Some("127.0.0.1"));
    })
    .await;
}

#[tokio::test]
async fn ip_rules_and_audio_budgets_are_kept_and_a_child_sees_its_parents_rules() {
    on_each_backend(async |store| {
        let user = store
            .users()
            .create("ada", "x", Role::Member)
            .await
            .unwrap();
        let (_, parent) = new_token(&store, user.id).await;
        let rules = IpRules::parse(&["10.0.0.0/8".into()], &["10.9.0.0/16".into()]).unwrap();
        let before = store.tokens().latest_change().await.unwrap();
        store
            .tokens()
            .set_ip_rules(parent.id, &rules)
            .await
            .unwrap();
        assert!(
            store.tokens().latest_change().await.unwrap() > before,
            "caches hear of it"
        );
        assert_eq!(store.tokens().get(parent.id).await.unwrap().ip_rules, rules);
        let (generated, request) = token_request(user.id, TokenKind::Project);
        let child = store
            .tokens()
            .create(&NewToken {
                parent_id: Some(parent.id),
                temporary: true,
                ..request
            })
            .await
            .unwrap();
        let found = store
            .tokens()
            .find_secret(&generated.hash)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.parent.map(|p| p.ip_rules), Some(rules));
        assert!(found.record.ip_rules.is_empty());
        assert!(matches!(
            store.tokens().set_ip_rules(9999, &IpRules::default()).await,
            Err(StoreError::NotFound)
        ));

        let quota = AudioQuota {
            seconds: 600,
            refill: Refill::Daily,
        };
        store
            .tokens()
            .set_audio_quota(child.id, Some(quota))
            .await
            .unwrap();
        assert_eq!(
            store.tokens().get(child.id).await.unwrap().audio_quota,
            Some(quota)
        );
        let today = Refill::Daily.period_start(OffsetDateTime::now_utc());
        let yesterday = today - Duration::days(1);
        store
            .tokens()
            .charge_audio(child.id, 100.0, yesterday)
            .await
            .unwrap();
        store
            .tokens()
            .charge_audio(child.id, 30.0, today)
            .await
            .unwrap();
        store
            .tokens()
            .charge_audio(child.id, 12.5, today)
            .await
            .unwrap();
        store
            .tokens()
            .charge_audio(child.id, 7.5, yesterday)
            .await
            .unwrap();
        let spent = store.tokens().audio_use(child.id).await.unwrap();
        assert_eq!(
            (spent.used_seconds, spent.period_start),
            (50.0, Some(today)),
            "a late charge counts in the current period"
        );

        assert!(store.tokens().revoke_as_leaked(parent.id).await.unwrap());
        assert!(!store.tokens().revoke_as_leaked(parent.id).await.unwrap());
        let revoked = store.tokens().get(parent.id).await.unwrap();
        assert_eq!(revoked.revoked_reason.as_deref(), Some("leaked"));
        assert_eq!(revoked.revoked_by, None);
    })
    .await;
}

#[tokio::test]
async fn tokens_about_to_expire_are_claimed_for_notice_once() {
    on_each_backend(async |store| {
        let user = store
            .users()
            .create("ada", "x", Role::Member)
            .await
            .unwrap();
        let now = OffsetDateTime::now_utc();
        let mut ids = Vec::new();
        for expires in [Duration::days(3), Duration::days(30), Duration::seconds(-5)] {
            let (_, request) = token_request(user.id, TokenKind::Personal);
            let record = store
                .tokens()
                .create(&NewToken {
                    expires_at: Some(now + expires),
                    ..request
                })
                .await
                .unwrap();
            ids.push(record.id);
        }
        let week = now + Duration::days(7);
        let first = store.tokens().claim_expiry_notices(week).await.unwrap();
        assert_eq!(first.iter().map(|t| t.id).collect::<Vec<_>>(), vec![ids[0]]);
        assert!(
            store
                .tokens()
                .claim_expiry_notices(week)
                .await
                .unwrap()
                .is_empty(),
            "once"
        );
    })
    .await;
}
