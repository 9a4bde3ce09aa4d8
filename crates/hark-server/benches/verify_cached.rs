//! (a) In-process verification of a cached token, beside its irreducible part (parsing the
//! token and hashing it) measured in the same run; and what watching costs on top: a token
//! with a full IP allow-list (32 networks, the match last), and the usage count each
//! answered request adds.
//!
//! cargo bench -p hark-server --bench verify_cached

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use hark_core::networks::IpRules;
use hark_core::roles::Role;
use hark_core::usage::Outcome;
use hark_server::auth::{TokenAuthenticator, UsageRecorder, Use};
use hark_server::tokens::{IssueRequest, issue};
use hark_store::Store;
use hark_store::audit::Actor;

async fn token(
    store: &Store,
    user: &hark_store::users::User,
    name: &str,
    ip_rules: IpRules,
) -> (String, i64) {
    let (secret, record) = issue(
        store,
        IssueRequest {
            kind: hark_core::tokens::TokenKind::Personal,
            project_id: None,
            owner_user_id: user.id,
            workspace_id: user.workspace_id,
            name,
            expires: Some("never"),
            scopes: None,
            grantable: hark_core::scopes::Scopes::all(),
            limits: Default::default(),
            requests_per_minute: None,
            default_requests_per_minute: 0,
            requester_is_admin: true,
            ip_rules,
            audio_quota: None,
        },
        &Actor::default(),
    )
    .await
    .unwrap();
    (secret.into_exposed(), record.id)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let seen = Use {
        ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        user_agent: Some("bench/1"),
    };
    let recorder = Arc::new(UsageRecorder::default());
    let (auth, (plain, plain_id), (fenced, _)) = rt.block_on(async {
        let store = Store::open_data_dir(dir.path()).await.unwrap();
        let user = store
            .users()
            .create("bench", "x", Role::Member)
            .await
            .unwrap();
        let plain = token(&store, &user, "plain", IpRules::default()).await;
        let mut networks: Vec<String> = (0..31).map(|i| format!("10.{i}.0.0/16")).collect();
        networks.push("127.0.0.0/8".into());
        let rules = IpRules::parse(&networks, &[]).unwrap();
        let fenced = token(&store, &user, "fenced", rules).await;
        // Nothing polls the change log here: the cache is trusted throughout.
        let auth = TokenAuthenticator::new(store, recorder.clone(), std::time::Duration::MAX)
            .await
            .unwrap();
        auth.verify(&plain.0, seen).await.unwrap();
        auth.verify(&fenced.0, seen).await.unwrap();
        (auth, plain, fenced)
    });
    let mut group = c.benchmark_group("verify");
    group.bench_function("baseline_parse_and_hash", |b| {
        b.iter(|| hark_core::tokens::parse(std::hint::black_box(&plain)).unwrap())
    });
    group.bench_function("cached_token", |b| {
        b.iter(|| {
            rt.block_on(auth.verify(std::hint::black_box(&plain), seen))
                .unwrap()
        })
    });
    group.bench_function("cached_token_32_ip_networks", |b| {
        b.iter(|| {
            rt.block_on(auth.verify(std::hint::black_box(&fenced), seen))
                .unwrap()
        })
    });
    group.bench_function("cached_token_and_usage_count", |b| {
        b.iter(|| {
            rt.block_on(auth.verify(std::hint::black_box(&plain), seen))
                .unwrap();
            recorder.count(plain_id, Outcome::Ok);
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
