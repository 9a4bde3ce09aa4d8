//! (a) In-process verification of a cached token, beside its irreducible part (parsing the
//! token and hashing it) measured in the same run.
//!
//! cargo bench -p hark-server --bench verify_cached

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use hark_core::roles::Role;
use hark_server::auth::{LastUsedRecorder, TokenAuthenticator};
use hark_server::tokens::{IssueRequest, issue};
use hark_store::Store;
use hark_store::audit::Actor;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (auth, secret) = rt.block_on(async {
        let store = Store::open_data_dir(dir.path()).await.unwrap();
        let user = store
            .users()
            .create("bench", "x", Role::Member)
            .await
            .unwrap();
        let (secret, _) = issue(
            &store,
            IssueRequest {
                kind: hark_core::tokens::TokenKind::Personal,
                project_id: None,
                owner_user_id: user.id,
                workspace_id: user.workspace_id,
                name: "bench",
                expires: Some("never"),
                scopes: None,
                grantable: hark_core::scopes::Scopes::all(),
                limits: Default::default(),
                requests_per_minute: None,
                default_requests_per_minute: 0,
                requester_is_admin: true,
            },
            &Actor::default(),
        )
        .await
        .unwrap();
        // Nothing polls the change log here: the cache is trusted throughout.
        let recorder = Arc::new(LastUsedRecorder::default());
        let auth = TokenAuthenticator::new(store, recorder, std::time::Duration::MAX)
            .await
            .unwrap();
        auth.verify(secret.expose(), None).await.unwrap();
        (auth, secret.into_exposed())
    });
    let ip = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let mut group = c.benchmark_group("verify");
    group.bench_function("baseline_parse_and_hash", |b| {
        b.iter(|| hark_core::tokens::parse(std::hint::black_box(&secret)).unwrap())
    });
    group.bench_function("cached_token", |b| {
        b.iter(|| {
            rt.block_on(auth.verify(std::hint::black_box(&secret), ip))
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
