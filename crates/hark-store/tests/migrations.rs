//! The two backends' migrations move together: the same versions with the same names, so
//! a data dir migrated to PostgreSQL lands on the schema its SQLite file had.

use std::path::Path;

fn versions(backend: &str) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".sql"))
        .collect();
    names.sort();
    names
}

#[test]
fn sqlite_and_postgres_migrations_stay_in_lockstep() {
    let sqlite = versions("sqlite");
    let postgres = versions("postgres");
    assert!(
        sqlite.len() >= 7,
        "the SQLite migrations are found: {sqlite:?}"
    );
    assert_eq!(
        sqlite, postgres,
        "every migration needs its twin, with the same version and name, in the other folder"
    );
}
