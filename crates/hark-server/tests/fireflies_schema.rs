//! The Fireflies-compatible GraphQL schema is a contract with outside clients: any change
//! to it must be deliberate, so it is pinned here.

#[test]
fn graphql_schema_matches_the_committed_sdl() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fireflies.graphql");
    let committed = std::fs::read_to_string(path).expect("tests/fireflies.graphql");
    let current = hark_server::graphql_sdl();
    assert!(
        current == committed,
        "the GraphQL schema changed. If that is intended, update the snapshot with\n  \
         cargo run -p hark -- graphql-schema > crates/hark-server/tests/fireflies.graphql\n\
         and review the diff (clients depend on it).\n\ncurrent schema:\n{current}"
    );
}
