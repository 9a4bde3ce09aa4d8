//! (b) Uncached verification: parse the token, hash it, look the hash up (one indexed
//! query joining the token and its owner), with 1 thousand and with 1 million tokens
//! stored. The 1k case is the baseline the 1M case is compared to.
//!
//! cargo bench -p hark-store --bench verify_uncached                 # SQLite
//! HARK_BENCH_BACKEND=postgres cargo bench -p hark-store --bench verify_uncached
//!   (a scratch database on HARK_TEST_POSTGRES_URL's server, dropped after)

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use hark_core::roles::Role;
use hark_core::tokens::{TokenKind, generate, parse};
use hark_store::Store;
use hark_store::testing::ScratchDatabase;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

/// Fills `tokens`/`token_secrets` in one transaction (the store's own create is one
/// transaction per token, far too slow for a million). Returns a spread of real secrets.
async fn seed(path: &std::path::Path, count: usize) -> Vec<String> {
    let store = Store::open_sqlite_file(path).await.unwrap();
    let user = store
        .users()
        .create("bench", "x", Role::Member)
        .await
        .unwrap();
    store.close().await;
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .connect()
        .await
        .unwrap();
    let mut tx = conn.begin().await.unwrap();
    let mut samples = Vec::new();
    let step = (count / 1000).max(1);
    for i in 0..count {
        let token = generate(TokenKind::Personal);
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO tokens (kind, name, scopes, user_id, workspace_id, hint, created_at)
             VALUES ('personal', 'bench', 'read,write', $1, 1, $2, 0) RETURNING id",
        )
        .bind(user.id)
        .bind(&token.hint)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        sqlx::query("INSERT INTO token_secrets (hash, token_id) VALUES ($1, $2)")
            .bind(token.hash.as_bytes().to_vec())
            .bind(id)
            .execute(&mut *tx)
            .await
            .unwrap();
        if i % step == 0 {
            samples.push(token.secret.into_exposed());
        }
    }
    tx.commit().await.unwrap();
    conn.close().await.unwrap();
    samples
}

/// The same for PostgreSQL, a thousand rows a statement (arrays unnested server-side).
async fn seed_postgres(url: &str, count: usize) -> Vec<String> {
    let store = Store::open_postgres(url, 2).await.unwrap();
    let user = store
        .users()
        .create("bench", "x", Role::Member)
        .await
        .unwrap();
    store.close().await;
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    let mut samples = Vec::new();
    let step = (count / 1000).max(1);
    let mut made = 0;
    while made < count {
        let batch = (count - made).min(1000);
        let tokens: Vec<_> = (0..batch).map(|_| generate(TokenKind::Personal)).collect();
        let hints: Vec<String> = tokens.iter().map(|t| t.hint.clone()).collect();
        let ids: Vec<i64> = sqlx::query_scalar(
            "INSERT INTO tokens (kind, name, scopes, user_id, workspace_id, hint, created_at)
             SELECT 'personal', 'bench', 'read,write', $1, 1, hint, 0 FROM UNNEST($2::text[]) AS hint
             RETURNING id",
        )
        .bind(user.id)
        .bind(&hints)
        .fetch_all(&mut *tx)
        .await
        .unwrap();
        let hashes: Vec<Vec<u8>> = tokens.iter().map(|t| t.hash.as_bytes().to_vec()).collect();
        sqlx::query(
            "INSERT INTO token_secrets (hash, token_id)
             SELECT * FROM UNNEST($1::bytea[], $2::bigint[])",
        )
        .bind(&hashes)
        .bind(&ids)
        .execute(&mut *tx)
        .await
        .unwrap();
        for (i, token) in tokens.into_iter().enumerate() {
            if (made + i) % step == 0 {
                samples.push(token.secret.into_exposed());
            }
        }
        made += batch;
    }
    tx.commit().await.unwrap();
    sqlx::query("ANALYZE").execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    samples
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("verify_uncached");
    // HARK_BENCH_COUNTS=1000 runs only the small case (seeding a million takes minutes).
    let counts: Vec<usize> = std::env::var("HARK_BENCH_COUNTS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 1_000_000]);
    let postgres = std::env::var("HARK_BENCH_BACKEND").as_deref() == Ok("postgres");
    // Every database is seeded before any is measured, so no measurement runs while the
    // engine is still settling a bulk load (PostgreSQL's autovacuum, a checkpoint).
    let mut seeded = Vec::new();
    for count in counts {
        let started = std::time::Instant::now();
        let (store, samples, database) = if postgres {
            let database = rt.block_on(ScratchDatabase::create()).unwrap();
            let samples = rt.block_on(seed_postgres(database.url(), count));
            let store = rt
                .block_on(Store::open_postgres(database.url(), 4))
                .unwrap();
            (store, samples, Some(database))
        } else {
            let path = dir.path().join(format!("tokens-{count}.db"));
            let samples = rt.block_on(seed(&path, count));
            let store = rt.block_on(Store::open_sqlite_file(&path)).unwrap();
            (store, samples, None)
        };
        eprintln!("seeded {count} tokens in {:?}", started.elapsed());
        seeded.push((count, store, samples, database));
    }
    if postgres {
        // Let the bulk load's background work finish before measuring.
        std::thread::sleep(std::time::Duration::from_secs(20));
    }
    for (count, store, samples, _database) in &seeded {
        let mut next = 0usize;
        group.bench_with_input(BenchmarkId::from_parameter(count), count, |b, _| {
            b.iter(|| {
                let secret = &samples[next % samples.len()];
                next += 1;
                let parsed = parse(secret).unwrap();
                let found = rt
                    .block_on(store.tokens().find_secret(&parsed.hash))
                    .unwrap();
                assert!(found.is_some());
            })
        });
        if *count == 1_000 {
            group.bench_function("floor_select_1", |b| {
                b.iter(|| rt.block_on(store.ping()).unwrap())
            });
        }
    }
    // The machines these run on are shared and noisy: the ratio is also measured in
    // alternating rounds (each database in turn, 1,000 lookups a round), which spreads any
    // burst of noise over both.
    let mut rounds: Vec<Vec<f64>> = vec![Vec::new(); seeded.len()];
    for _ in 0..20 {
        for (i, (_, store, samples, _)) in seeded.iter().enumerate() {
            let started = std::time::Instant::now();
            for secret in samples.iter().cycle().take(1_000) {
                let parsed = parse(secret).unwrap();
                assert!(
                    rt.block_on(store.tokens().find_secret(&parsed.hash))
                        .unwrap()
                        .is_some()
                );
            }
            rounds[i].push(started.elapsed().as_secs_f64() * 1e6 / 1_000.0);
        }
    }
    for ((count, ..), times) in seeded.iter().zip(&mut rounds) {
        times.sort_by(f64::total_cmp);
        eprintln!(
            "alternating rounds: {count} tokens, median {:.1} µs a lookup",
            times[times.len() / 2]
        );
    }
    for (_, store, _, _) in &seeded {
        rt.block_on(store.close());
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
