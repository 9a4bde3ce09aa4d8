//! The permission matrix: every kind of caller against the API's routes, with the exact
//! status expected, from one table. A row is a route; a column a caller. Ids that do not
//! exist are used on purpose: a caller who may act gets 404 (or 400 for an empty upload),
//! one who may not gets 403, and one who is not authenticated gets 401 — so the table
//! reads as who may do what, without any row changing what the next one sees.

mod common;

use common::*;
use hark_core::tokens::{TokenKind, generate};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// Column order of the table.
const CALLERS: [&str; 13] = [
    "none",
    "malformed",
    "unknown",
    "expired",
    "revoked",
    "viewer",
    "member",
    "developer",
    "admin",
    "batch key",
    "other batch key",
    "realtime key",
    "management",
];

/// One route and the status for each caller, in `CALLERS` order.
struct Row {
    method: Method,
    path: String,
    body: Option<serde_json::Value>,
    expect: [u16; 13],
}

fn row(method: Method, path: impl Into<String>, expect: [u16; 13]) -> Row {
    Row {
        method,
        path: path.into(),
        body: None,
        expect,
    }
}

/// The five ways of not being authenticated all answer 401; a token of a user demoted to
/// viewer answers 403 everywhere.
const NOBODY: [u16; 6] = [401, 401, 401, 401, 401, 403];

fn with(rest: [u16; 7]) -> [u16; 13] {
    let mut all = [0; 13];
    all[..6].copy_from_slice(&NOBODY);
    all[6..].copy_from_slice(&rest);
    all
}

/// `member_upload` is a recording (and `member_job` its session) that the member uploaded
/// with a personal token into the default project: readable by the member alone — not by
/// that project's batch key, nor any other caller.
fn table(member_upload: i64, member_job: i64) -> Vec<Row> {
    use Method as M;
    let public = [200; 13];
    //                                                member dev  admin batch other rt   mgmt
    vec![
        // Public: a token, good or bad, changes nothing.
        row(M::GET, "/healthz", public),
        row(M::GET, "/api/setup", public),
        row(M::GET, "/api/openapi.json", public),
        Row {
            body: Some(json!({"name": "Matrix"})),
            ..row(
                M::POST,
                "/api/manage/projects",
                with([403, 403, 403, 403, 403, 403, 201]),
            )
        },
        row(
            M::GET,
            "/api/tokens/self",
            with([200, 200, 200, 200, 200, 200, 200]),
        ),
        row(
            M::GET,
            "/api/tokens",
            with([200, 200, 200, 403, 403, 403, 403]),
        ),
        row(
            M::DELETE,
            "/api/tokens/999999",
            with([404, 404, 404, 403, 403, 403, 403]),
        ),
        Row {
            body: Some(json!({"name": "matrix"})),
            ..row(
                M::POST,
                "/api/tokens",
                with([201, 201, 201, 403, 403, 403, 403]),
            )
        },
        Row {
            body: Some(json!({"name": "m", "kind": "project", "project_id": 1, "type": "batch"})),
            ..row(
                M::POST,
                "/api/tokens",
                with([403, 201, 201, 403, 403, 403, 403]),
            )
        },
        // Only a management credential (or an admin's web session) mints management
        // tokens: an admin's personal token does not.
        Row {
            body: Some(json!({"name": "m", "kind": "management"})),
            ..row(
                M::POST,
                "/api/tokens",
                with([403, 403, 403, 403, 403, 403, 201]),
            )
        },
        row(
            M::GET,
            "/api/recordings",
            with([200, 200, 200, 403, 403, 403, 403]),
        ),
        row(
            M::GET,
            "/api/recordings/999999",
            with([404, 404, 404, 403, 403, 403, 403]),
        ),
        row(
            M::DELETE,
            "/api/recordings/999999",
            with([404, 404, 404, 403, 403, 403, 403]),
        ),
        row(
            M::GET,
            "/api/recordings/999999/transcript",
            with([404, 404, 404, 403, 403, 403, 403]),
        ),
        row(
            M::GET,
            "/api/recordings/999999/audio",
            with([404, 404, 404, 403, 403, 403, 403]),
        ),
        row(
            M::GET,
            "/api/tags",
            with([200, 200, 200, 403, 403, 403, 403]),
        ),
        row(
            M::GET,
            "/api/projects",
            with([200, 200, 200, 403, 403, 403, 403]),
        ),
        row(
            M::GET,
            "/api/v3/sessions/999999",
            with([404, 404, 404, 404, 404, 403, 403]),
        ),
        row(
            M::GET,
            "/api/v3/documents/999999",
            with([404, 404, 404, 404, 404, 403, 403]),
        ),
        row(
            M::GET,
            format!("/api/v3/documents/{member_upload}"),
            with([200, 404, 404, 404, 404, 403, 403]),
        ),
        row(
            M::GET,
            format!("/api/v3/sessions/{member_job}"),
            with([200, 404, 404, 404, 404, 403, 403]),
        ),
        row(
            M::GET,
            format!("/api/recordings/{member_upload}"),
            with([200, 404, 404, 403, 403, 403, 403]),
        ),
        row(
            M::GET,
            format!("/api/recordings/{member_upload}/audio"),
            with([200, 404, 404, 403, 403, 403, 403]),
        ),
        row(
            M::GET,
            "/v1/models",
            with([200, 200, 200, 200, 200, 403, 403]),
        ),
        row(
            M::GET,
            "/api/audit",
            with([403, 403, 200, 403, 403, 403, 403]),
        ),
        row(
            M::GET,
            "/api/manage/members",
            with([403, 403, 403, 403, 403, 403, 200]),
        ),
        row(
            M::GET,
            "/api/manage/projects",
            with([403, 403, 403, 403, 403, 403, 200]),
        ),
        row(
            M::GET,
            "/api/manage/projects/999999/keys",
            with([403, 403, 403, 403, 403, 403, 404]),
        ),
        row(
            M::DELETE,
            "/api/manage/members/999999",
            with([403, 403, 403, 403, 403, 403, 404]),
        ),
        row(
            M::GET,
            "/api/auth/session",
            with([200, 200, 200, 200, 200, 200, 200]),
        ),
        Row {
            body: Some(json!({})),
            ..row(
                M::POST,
                "/api/tokens/999999/rotate",
                with([404, 404, 404, 403, 403, 403, 404]),
            )
        },
        row(
            M::GET,
            "/api/recordings/999999/summary",
            with([404, 404, 404, 403, 403, 403, 403]),
        ),
        row(
            M::GET,
            "/api/recordings/999999/transcript/srt",
            with([404, 404, 404, 403, 403, 403, 403]),
        ),
        // No multipart body: whoever may upload is told what is wrong with the request.
        row(
            M::POST,
            "/api/recordings",
            with([400, 400, 400, 403, 403, 403, 403]),
        ),
        row(
            M::POST,
            "/api/v3/speech-to-text",
            with([400, 400, 400, 400, 400, 403, 403]),
        ),
        row(
            M::POST,
            "/v1/audio/transcriptions",
            with([400, 400, 400, 400, 400, 403, 403]),
        ),
        Row {
            body: Some(json!({"name": "matrix"})),
            ..row(
                M::POST,
                "/api/tags",
                with([201, 201, 201, 403, 403, 403, 403]),
            )
        },
        row(
            M::DELETE,
            "/api/tags/999999",
            with([404, 404, 404, 403, 403, 403, 403]),
        ),
        Row {
            body: Some(json!({"tag_id": 999999})),
            ..row(
                M::POST,
                "/api/recordings/999999/tags",
                with([404, 404, 404, 403, 403, 403, 403]),
            )
        },
        row(
            M::DELETE,
            "/api/recordings/999999/tags/999999",
            with([404, 404, 404, 403, 403, 403, 403]),
        ),
        // Webhooks belong to people: keys and management tokens have none.
        row(
            M::GET,
            "/api/webhooks",
            with([200, 200, 200, 403, 403, 403, 403]),
        ),
        Row {
            body: Some(json!({"url": "ftp://example.com/hook"})),
            ..row(
                M::POST,
                "/api/webhooks",
                with([400, 400, 400, 403, 403, 403, 403]),
            )
        },
        row(
            M::DELETE,
            "/api/webhooks/999999",
            with([404, 404, 404, 403, 403, 403, 403]),
        ),
        row(
            M::GET,
            "/api/webhooks/deliveries",
            with([200, 200, 200, 403, 403, 403, 403]),
        ),
        Row {
            body: Some(json!({})),
            ..row(
                M::POST,
                "/api/webhooks/callback-secret",
                with([201, 201, 201, 403, 403, 403, 403]),
            )
        },
        Row {
            body: Some(json!({"role": "member"})),
            ..row(
                M::PATCH,
                "/api/manage/members/999999",
                with([403, 403, 403, 403, 403, 403, 404]),
            )
        },
        Row {
            body: Some(json!({"name": "k", "type": "batch"})),
            ..row(
                M::POST,
                "/api/manage/projects/999999/keys",
                with([403, 403, 403, 403, 403, 403, 404]),
            )
        },
        row(
            M::DELETE,
            "/api/manage/projects/999999/keys/1",
            with([403, 403, 403, 403, 403, 403, 404]),
        ),
        row(
            M::GET,
            "/api/manage/projects/1/keys/999999/usage",
            with([403, 403, 403, 403, 403, 403, 404]),
        ),
        // A token's usage and limits: its owner, admins, developers for keys.
        row(
            M::GET,
            "/api/tokens/999999/usage",
            with([404, 404, 404, 403, 403, 403, 403]),
        ),
        Row {
            body: Some(json!({"allowed_cidrs": []})),
            ..row(
                M::PATCH,
                "/api/tokens/999999",
                with([404, 404, 404, 403, 403, 403, 403]),
            )
        },
        // Leak reports need no credential, so none changes the answer: an empty report is
        // refused for everyone; GitLab's and GitHub's forms are absent until configured.
        Row {
            body: Some(json!({"tokens": []})),
            ..row(M::POST, "/api/tokens/revoke-by-value", [400; 13])
        },
        row(M::GET, "/v1/revocable_token_types", [404; 13]),
        Row {
            body: Some(json!([])),
            ..row(M::POST, "/v1/revoke_tokens", [404; 13])
        },
        Row {
            body: Some(json!([])),
            ..row(M::POST, "/api/github/secret-scanning", [404; 13])
        },
        row(
            M::DELETE,
            "/api/manage/projects/999999",
            with([403, 403, 403, 403, 403, 403, 404]),
        ),
        // Temporary keys: only for the type the caller holds.
        Row {
            body: Some(json!({"ttl": 60})),
            ..row(
                M::POST,
                "/v1/api_keys?type=rt",
                with([201, 201, 201, 403, 403, 201, 403]),
            )
        },
        Row {
            body: Some(json!({"ttl": 60})),
            ..row(
                M::POST,
                "/v1/api_keys?type=batch",
                with([201, 201, 201, 201, 201, 403, 403]),
            )
        },
        // GraphQL: personal tokens only; a refused mutation is an error in a 200 answer
        // (`object_not_found` here), a refused credential a 403.
        Row {
            body: Some(json!({"query": "{ user { user_id } }"})),
            ..row(
                M::POST,
                "/graphql",
                with([200, 200, 200, 403, 403, 403, 403]),
            )
        },
        Row {
            body: Some(json!({"query": "mutation { deleteTranscript(id: \"999999\") { id } }"})),
            ..row(
                M::POST,
                "/graphql",
                with([200, 200, 200, 403, 403, 403, 403]),
            )
        },
        // Real-time handshakes: a plain GET from a caller who may stream is told to
        // upgrade (400); everyone else is refused before that.
        row(M::GET, "/v2", with([400, 400, 400, 403, 403, 400, 403])),
        row(M::GET, "/v2/en", with([400, 400, 400, 403, 403, 400, 403])),
        row(
            M::GET,
            "/api/v3/realtime",
            with([400, 400, 400, 403, 403, 400, 403]),
        ),
        row(
            M::GET,
            "/v1/realtime?intent=transcription",
            with([400, 400, 400, 403, 403, 400, 403]),
        ),
        // Speechmatics' batch API: batch keys (their project's jobs) and tokens with the
        // batch scope (their own); an empty submission is told what is missing.
        row(
            M::GET,
            "/v2/jobs",
            with([200, 200, 200, 200, 200, 403, 403]),
        ),
        row(
            M::POST,
            "/v2/jobs",
            with([400, 400, 400, 400, 400, 403, 403]),
        ),
        row(
            M::GET,
            "/v2/jobs/999999",
            with([404, 404, 404, 404, 404, 403, 403]),
        ),
        row(
            M::GET,
            "/v2/jobs/999999/transcript",
            with([404, 404, 404, 404, 404, 403, 403]),
        ),
        row(
            M::DELETE,
            "/v2/jobs/999999",
            with([404, 404, 404, 404, 404, 403, 403]),
        ),
        row(
            M::GET,
            format!("/v2/jobs/{member_job}"),
            with([200, 404, 404, 404, 404, 403, 403]),
        ),
    ]
}

#[tokio::test]
async fn every_caller_gets_exactly_the_status_the_table_says() {
    // The matrix fails authentication on purpose, many times over: the per-address lockout
    // (tested in limits.rs) would turn the rest of the table into 429s.
    let server = TestServer::start_with(&["--failed-auth-per-minute", "0"]).await;
    let admin = server.user_with_token("root", "admin");
    let member = server.user_with_token("ada", "member");
    let developer = server.user_with_token("dev", "developer");
    let viewer = server.user_with_token("vic", "member");
    server.admin_ok(&["set-role", "--username", "vic", "--role", "viewer"], None);
    let mgt = server.management_token("root").await;
    let other_project = server
        .post_json("/api/manage/projects", &mgt, json!({"name": "Other"}))
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let key = |project: i64, key_type: &'static str| {
        let (server, admin) = (&server, &admin);
        async move {
            server
                .api_token(
                    admin,
                    json!({"name": key_type, "kind": "project", "project_id": project, "type": key_type}),
                )
                .await["token"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let batch = key(1, "batch").await;
    let other_batch = key(other_project, "batch").await;
    let realtime = key(1, "realtime").await;
    let revoked = server.cli_token("ada", "revoked", &[]);
    let me: serde_json::Value = server
        .get("/api/tokens/self", &revoked)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        server
            .delete(&format!("/api/tokens/{}", me["id"]), &member)
            .await
            .status()
            .is_success()
    );
    let soon = (time::OffsetDateTime::now_utc() + time::Duration::seconds(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let expired = server
        .api_token(&member, json!({"name": "expired", "expires": soon}))
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let uploaded: serde_json::Value = server
        .upload(&member, &shared_audio("meeting_01.wav"), Some("private"))
        .await
        .json()
        .await
        .unwrap();
    let member_upload = uploaded["id"].as_i64().expect("uploaded");
    let member_job = member_upload_job(&server, &member, member_upload).await;
    let unknown = generate(TokenKind::Personal).secret.into_exposed();
    server.saw_secret(&unknown);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;

    let tokens: [Option<&str>; 13] = [
        None,
        Some("hark_pat_not-a-token"),
        Some(&unknown),
        Some(&expired),
        Some(&revoked),
        Some(&viewer),
        Some(&member),
        Some(&developer),
        Some(&admin),
        Some(&batch),
        Some(&other_batch),
        Some(&realtime),
        Some(&mgt),
    ];
    let mut wrong = Vec::new();
    for row in table(member_upload, member_job) {
        for (column, token) in tokens.iter().enumerate() {
            let mut request = server
                .client
                .request(row.method.clone(), server.url(&row.path));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = &row.body {
                request = request.json(body);
            }
            let res = request.send().await.unwrap();
            if res.status() == StatusCode::CREATED {
                let created: serde_json::Value = res.json().await.unwrap();
                if let Some(token) = created["token"].as_str() {
                    server.saw_secret(token);
                }
                if row.expect[column] != 201 {
                    wrong.push(format!(
                        "{} {} as {}: 201, expected {}",
                        row.method, row.path, CALLERS[column], row.expect[column]
                    ));
                }
                continue;
            }
            if res.status().as_u16() != row.expect[column] {
                wrong.push(format!(
                    "{} {} as {}: {}, expected {}",
                    row.method,
                    row.path,
                    CALLERS[column],
                    res.status().as_u16(),
                    row.expect[column]
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} cells differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// The session (job) id of the member's upload, through the batch API the member may use.
async fn member_upload_job(server: &TestServer, member: &str, recording: i64) -> i64 {
    // Sessions and documents are numbered alike for a lone upload; check rather than assume.
    let res = server
        .get(&format!("/api/v3/sessions/{recording}"), member)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let session: serde_json::Value = res.json().await.unwrap();
    assert_eq!(session["document_id"], recording);
    session["session_id"].as_i64().expect("session id")
}
