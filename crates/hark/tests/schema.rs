//! Schema-driven API testing: schemathesis (from the test venv) generates requests for every
//! operation in `/api/openapi.json` — valid, edge-case and hostile, and sequences of them —
//! and checks that none gets a 5xx and every status is one the document declares.

mod common;

use std::process::Command;

use common::*;

#[tokio::test]
async fn every_documented_operation_answers_as_documented() {
    // Generated requests fail authentication on purpose and in bulk: no lock-out, no budget.
    let server = TestServer::start_with(&[
        "--failed-auth-per-minute",
        "0",
        "--token-rate-per-minute",
        "0",
    ])
    .await;
    let admin = server.user_with_token("adm", "admin");
    let schemathesis = test_python().with_file_name("schemathesis");
    let workdir = tempfile::tempdir().unwrap();
    let url = server.url("/api/openapi.json");
    let auth = format!("Authorization: Bearer {admin}");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(schemathesis)
            .current_dir(workdir.path())
            .args(["run", &url, "-H", &auth])
            .args(["--max-examples", "10", "--seed", "20261201"])
            .args(["--checks", "not_a_server_error,status_code_conformance"])
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("Tested: 65"),
        "every operation was tried:\n{stdout}"
    );
}
