//! The Fireflies-compatible GraphQL API at /graphql, driven by the official `gql` client
//! (tests/clients/fireflies_gql.py) running Fireflies' documented operations, and by raw
//! requests for what a client library hides: statuses, headers, limits.

mod common;

use std::path::Path;
use std::time::Duration;

use common::peer::Peer;
use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Runs the gql client script with `steps` ([operation, variables] pairs) as `token`.
async fn gql_client(server: &TestServer, token: &str, steps: Value) -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/fireflies_gql.py");
    let stdout = run_test_python(vec![
        script.display().to_string(),
        server.url("/graphql"),
        token.to_owned(),
        steps.to_string(),
    ])
    .await;
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// A raw GraphQL POST: its status, headers and body.
async fn post(
    server: &TestServer,
    auth: Option<(&str, &str)>,
    body: Value,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = server.client.post(server.url("/graphql")).json(&body);
    if let Some((name, value)) = auth {
        request = request.header(name, value);
    }
    let res = request.send().await.unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    (status, headers, res.json().await.unwrap())
}

async fn query(server: &TestServer, token: &str, query: &str) -> (StatusCode, Value) {
    let bearer = format!("Bearer {token}");
    let (status, _, body) = post(
        server,
        Some(("authorization", &bearer)),
        json!({ "query": query }),
    )
    .await;
    (status, body)
}

/// The one error of a step (or a raw answer) in Fireflies' shape; returns its code.
fn error_code(answer: &Value) -> String {
    let errors = answer["error"]["errors"]
        .as_array()
        .or_else(|| answer["errors"].as_array())
        .unwrap_or_else(|| panic!("no errors in {answer}"));
    let error = &errors[0];
    assert_eq!(error["friendly"], true, "{error}");
    assert_eq!(error["code"], error["extensions"]["code"], "{error}");
    assert!(error["extensions"]["status"].is_u64(), "{error}");
    assert!(error["message"].is_string(), "{error}");
    error["code"].as_str().unwrap().to_owned()
}

fn reference(clip: &str) -> String {
    std::fs::read_to_string(shared_audio(&clip.replace(".wav", ".txt"))).unwrap()
}

#[tokio::test]
async fn fireflies_operations_through_the_gql_client() {
    let peer = Peer::start().await;
    let server = TestServer::start_with(&["--fetch-allow-private"]).await;
    let root = server.user_with_token("root", "admin");
    let ada = server.user_with_token("ada", "member");
    server.create_user("bob", "member");
    server.create_user("vic", "viewer");
    let (_, users) = query(&server, &root, "{ users { user_id name } }").await;
    let id_of = |name: &str| {
        users["data"]["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"] == name)
            .map(|u| u["user_id"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| panic!("{name} in {users}"))
    };
    let (root_id, bob_id) = (id_of("root"), id_of("bob"));
    let uploaded: Value = server
        .upload(&ada, &shared_audio("support_02.wav"), Some("Password help"))
        .await
        .json()
        .await
        .unwrap();
    let id = uploaded["id"].as_i64().unwrap();
    wait_for_recording(&server, &ada, id, Duration::from_secs(120)).await;
    let ids = id.to_string();

    let answers = gql_client(
        &server,
        &ada,
        json!([
            ["me", {}],
            ["users", {}],
            ["transcripts", {}],
            ["transcripts", {"keyword": "SECURITY", "scope": "sentences"}],
            ["transcripts", {"keyword": "security", "scope": "title"}],
            ["transcripts", {"title": "password", "fromDate": "2020-01-01T00:00:00.000Z", "limit": 10}],
            ["transcripts", {"fromDate": "2999-01-01T00:00:00Z"}],
            ["transcript", {"transcriptId": ids}],
            ["transcripts", {"userId": root_id}],
            ["transcripts", {"organizers": ["root"]}],
            ["transcripts", {"limit": 51}],
            ["setUserRole", {"userId": bob_id, "role": "admin"}],
            ["uploadAudio", {"input": {"url": "file:///etc/passwd"}}],
            ["updateMeetingTitle", {"input": {"id": ids, "title": "Reset the password"}}],
        ]),
    )
    .await;
    let me = &answers[0]["data"]["user"];
    assert_eq!(me["name"], "ada");
    assert_eq!(me["email"], "ada");
    assert_eq!(me["integrations"], json!([]));
    assert_eq!(me["is_admin"], false);
    assert_eq!(me["num_transcripts"], 1);
    assert_eq!(me["minutes_consumed"], 0, "7.5 s rounds to 0 minutes");
    let users = answers[1]["data"]["users"].as_array().unwrap();
    assert_eq!(users.len(), 1, "a member sees only themselves");
    assert_eq!(users[0]["name"], "ada");
    let listed = answers[2]["data"]["transcripts"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], ids);
    assert_eq!(listed[0]["host_email"], "ada");
    assert_eq!(listed[0]["participants"], json!(["ada"]));
    assert_eq!(
        listed[0]["audio_url"],
        format!("/api/recordings/{id}/audio")
    );
    assert_eq!(
        listed[0]["transcript_url"],
        format!("/api/recordings/{id}/transcript")
    );
    assert_eq!(
        answers[3]["data"]["transcripts"].as_array().unwrap().len(),
        1
    );
    assert_eq!(answers[4]["data"]["transcripts"], json!([]));
    assert_eq!(
        answers[5]["data"]["transcripts"].as_array().unwrap().len(),
        1
    );
    assert_eq!(answers[6]["data"]["transcripts"], json!([]));
    let t = &answers[7]["data"]["transcript"];
    assert_eq!(t["title"], "Password help");
    let date = t["date"].as_f64().unwrap();
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() as f64 * 1000.0;
    assert!((now_ms - 600_000.0..=now_ms).contains(&date), "{date}");
    assert!(t["dateString"].as_str().unwrap().ends_with('Z'));
    assert!((t["duration"].as_f64().unwrap() - 7.55 / 60.0).abs() < 0.01);
    assert_eq!(t["speakers"], json!([{"id": "0", "name": "Speaker 1"}]));
    let sentences = t["sentences"].as_array().unwrap();
    assert!(!sentences.is_empty());
    for (i, s) in sentences.iter().enumerate() {
        assert_eq!(s["index"], i);
        assert_eq!(s["speaker_name"], "Speaker 1");
        assert!(s["end_time"].as_f64() >= s["start_time"].as_f64());
    }
    let text: Vec<&str> = sentences
        .iter()
        .map(|s| s["text"].as_str().unwrap())
        .collect();
    let wer = word_error_rate(&reference("support_02.wav"), &text.join(" "));
    assert!(wer < 0.3, "WER {wer}: {text:?}");
    let summary = &t["summary"];
    assert!(
        summary["overview"].as_str().unwrap().contains("password"),
        "{summary}"
    );
    assert_eq!(summary["overview"], summary["short_summary"]);
    assert!(
        summary["keywords"]
            .as_array()
            .unwrap()
            .contains(&json!("password"))
    );
    assert!(summary["gist"].is_string() && summary["action_items"].is_null());
    assert_eq!(error_code(&answers[8]), "require_elevated_privilege");
    assert_eq!(error_code(&answers[9]), "require_elevated_privilege");
    assert_eq!(error_code(&answers[10]), "invalid_arguments");
    assert_eq!(
        answers[10]["error"]["errors"][0]["extensions"]["metadata"]["fields"],
        json!(["limit"])
    );
    assert_eq!(error_code(&answers[11]), "require_elevated_privilege");
    assert_eq!(error_code(&answers[12]), "invalid_arguments");
    assert_eq!(
        answers[13]["data"]["updateMeetingTitle"],
        json!({"id": ids, "title": "Reset the password"})
    );

    // An admin sees the workspace's transcripts, changes roles, and uploads by URL.
    let hook = format!("{}/hooks/fireflies", peer.base);
    let clip_url = format!("{}/audio/support_01.wav", peer.base);
    let answers = gql_client(
        &server,
        &root,
        json!([
            ["transcript", {"transcriptId": ids}],
            ["transcripts", {"userId": id_of("ada")}],
            ["transcripts", {"mine": false}],
            ["transcripts", {}],
            ["setUserRole", {"userId": bob_id, "role": "admin"}],
            ["setUserRole", {"userId": bob_id, "role": "user"}],
            ["uploadAudio", {"input": {"url": clip_url, "title": "Fetched", "webhook": hook,
                "client_reference_id": "ref-1", "attendees": [{"displayName": "Ada"}]}}],
        ]),
    )
    .await;
    assert_eq!(
        answers[0]["data"]["transcript"]["title"],
        "Reset the password"
    );
    assert_eq!(answers[0]["data"]["transcript"]["user"]["name"], "ada");
    assert_eq!(answers[1]["data"]["transcripts"][0]["id"], ids);
    assert_eq!(answers[2]["data"]["transcripts"][0]["id"], ids);
    assert_eq!(
        answers[3]["data"]["transcripts"],
        json!([]),
        "mine by default"
    );
    // Not with a personal token, even an admin's: only the admin's web session.
    assert_eq!(error_code(&answers[4]), "require_elevated_privilege");
    let session = server.login("root").await;
    for (role, admin) in [("admin", true), ("user", false)] {
        let res = server
            .post_json_as_session(
                "/graphql",
                &session,
                json!({"query": "mutation($u: String!, $r: Role!) { setUserRole(user_id: $u, role: $r) { is_admin } }",
                       "variables": {"u": bob_id, "r": role}}),
            )
            .await;
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["data"]["setUserRole"]["is_admin"], admin, "{body}");
    }
    let users = gql_client(&server, &root, json!([["users", {}]])).await;
    assert_eq!(
        users[0]["data"]["users"].as_array().unwrap().len(),
        4,
        "an admin sees the workspace"
    );
    assert_eq!(
        answers[6]["data"]["uploadAudio"],
        json!({"success": true, "title": "Fetched",
               "message": "Uploaded audio has been queued for processing."})
    );
    let audit: Value = server.get("/api/audit", &root).await.json().await.unwrap();
    let actions = audit.to_string();
    for action in [
        "member.role_changed",
        "recording.renamed",
        "recording.created",
    ] {
        assert!(actions.contains(action), "{action} in {actions}");
    }
    let hooks = peer.wait_for(1, Duration::from_secs(120)).await;
    let event: Value = serde_json::from_slice(&hooks[0].body).unwrap();
    assert_eq!(event["eventType"], "Transcription completed", "{event}");
    assert_eq!(event["clientReferenceId"], "ref-1");
    let fetched = event["meetingId"].as_str().unwrap().to_owned();
    let (status, body) = query(
        &server,
        &root,
        &format!(r#"{{ transcript(id: "{fetched}") {{ title sentences {{ text }} }} }}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let text: Vec<&str> = body["data"]["transcript"]["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["text"].as_str().unwrap())
        .collect();
    let wer = word_error_rate(&reference("support_01.wav"), &text.join(" "));
    assert!(wer < 0.3, "WER {wer}: {text:?}");

    // Someone else's transcript is as good as missing; deleting one's own takes its audio.
    let answers = gql_client(
        &server,
        &ada,
        json!([
            ["transcript", {"transcriptId": fetched}],
            ["deleteTranscript", {"transcriptId": fetched}],
            ["deleteTranscript", {"transcriptId": ids}],
            ["transcript", {"transcriptId": ids}],
        ]),
    )
    .await;
    for answer in &answers[..2] {
        assert_eq!(error_code(answer), "object_not_found");
        assert_eq!(
            answer["error"]["errors"][0]["extensions"]["metadata"]["objectType"],
            "Transcript"
        );
    }
    assert_eq!(answers[0]["error"]["data"], json!({"transcript": null}));
    let deleted = &answers[2]["data"]["deleteTranscript"];
    assert_eq!(deleted["id"], ids);
    assert!(!deleted["sentences"].as_array().unwrap().is_empty());
    assert_eq!(error_code(&answers[3]), "object_not_found");
    let res = server.get(&format!("/api/recordings/{id}"), &ada).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // A bad token: 401 in GraphQL's shape, which the client raises as a query error.
    let bad = gql_client(&server, "hark_pat_not-a-token", json!([["me", {}]])).await;
    assert_eq!(error_code(&bad[0]), "auth_failed");
    let (status, headers, body) = post(
        &server,
        Some(("authorization", "Bearer hark_pat_not-a-token")),
        json!({"query": "{ user { name } }"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers.contains_key("www-authenticate"));
    assert_eq!(
        body,
        json!({"data": null, "errors": [{
            "message": "Authentication failed: send a valid, active API token or sign in.",
            "code": "auth_failed", "friendly": true,
            "extensions": {"code": "auth_failed", "status": 401}}]})
    );

    // Keys and management tokens have no business here; a viewer reads but cannot change.
    let key = server
        .api_token(
            &root,
            json!({"name": "k", "kind": "project", "project_id": 1, "type": "batch"}),
        )
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mgt = server.management_token("root").await;
    for token in [&key, &mgt] {
        let (status, body) = query(&server, token, "{ user { name } }").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(error_code(&body), "forbidden");
    }
    let cookie = server.login("vic").await;
    let as_viewer = |body: Value, origin: Option<&'static str>| {
        let mut request = server
            .client
            .post(server.url("/graphql"))
            .header("cookie", &cookie)
            .json(&body);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        async move {
            let res = request.send().await.unwrap();
            (res.status(), res.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = as_viewer(json!({"query": "{ user { name is_admin } }"}), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["user"]["name"], "vic");
    let rename = json!({"query": format!(
        r#"mutation {{ updateMeetingTitle(input: {{id: "{fetched}", title: "x"}}) {{ id }} }}"#
    )});
    let (status, body) = as_viewer(rename.clone(), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(error_code(&body), "forbidden");
    let (status, body) = as_viewer(rename, Some("http://evil.example")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "cross-site cookie requests");
    assert_eq!(error_code(&body), "forbidden");

    // Limits: depth, complexity, batches, body size; no GraphiQL page.
    let deep = format!(
        "{{ __schema {{ types {{ fields {{ type {} name {} }} }} }} }}",
        "{ ofType ".repeat(14),
        "}".repeat(14)
    );
    let (status, body) = query(&server, &ada, &deep).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "invalid_arguments");
    assert!(body.to_string().contains("nested too deep"), "{body}");
    let aliases: String = (0..4)
        .map(|i| {
            format!(
                "t{i}: transcripts(limit: 50) {{ id title date dateString duration audio_url \
                 transcript_url video_url host_email organizer_email participants \
                 user {{ user_id name email is_admin }} sentences {{ index text start_time \
                 end_time speaker_name speaker_id raw_text }} summary {{ overview gist keywords }} }} "
            )
        })
        .collect();
    let (status, body) = query(&server, &ada, &format!("{{ {aliases} }}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.to_string().contains("too complex"), "{body}");
    let bearer = format!("Bearer {ada}");
    let (status, _, body) = post(
        &server,
        Some(("authorization", &bearer)),
        json!([{"query": "{ user { name } }"}, {"query": "{ users { name } }"}]),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("batch")
    );
    let huge = json!({"query": format!("{{ user {{ name }} }} #{}", "x".repeat(100_000))});
    let (status, _, body) = post(&server, Some(("authorization", &bearer)), huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(&body), "payload_too_large");
    let res = server.get("/graphql", &ada).await;
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn rate_limits_introspection_switch_and_the_url_guard() {
    let server =
        TestServer::start_with(&["--token-rate-per-minute", "3", "--no-graphql-introspection"])
            .await;
    let ada = server.user_with_token("ada", "member");
    let (status, body) = query(&server, &ada, "{ __schema { types { name } } }").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "invalid_arguments");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("introspection")
    );
    let (_, body) = query(
        &server,
        &ada,
        r#"mutation { uploadAudio(input: {url: "http://127.0.0.1/clip.wav"}) { success } }"#,
    )
    .await;
    assert_eq!(error_code(&body), "invalid_arguments");
    assert_eq!(
        body["errors"][0]["extensions"]["metadata"]["fields"],
        json!(["url"])
    );
    // Two of the three requests a minute are spent; the fourth is refused.
    let bearer = format!("Bearer {ada}");
    let (status, headers, _) = post(
        &server,
        Some(("authorization", &bearer)),
        json!({"query": "{ user { name } }"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-ratelimit-remaining"], "0");
    let (status, headers, body) = post(
        &server,
        Some(("authorization", &bearer)),
        json!({"query": "{ user { name } }"}),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(error_code(&body), "too_many_requests");
    let retry_at = body["errors"][0]["extensions"]["metadata"]["retryAfter"]
        .as_i64()
        .unwrap();
    let now = time::OffsetDateTime::now_utc();
    let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
    assert!((now_ms..now_ms + 61_000).contains(&retry_at), "{retry_at}");
    let header = |name: &str| {
        headers
            .get(name)
            .unwrap_or_else(|| panic!("{name} in {headers:?}"))
            .to_str()
            .unwrap()
            .parse::<i64>()
            .unwrap()
    };
    assert!(header("retry-after") >= 1);
    assert_eq!(header("ratelimit-limit"), 3);
    assert_eq!(header("ratelimit-remaining"), 0);
    assert_eq!(header("x-ratelimit-limit"), 3);
    assert_eq!(header("x-ratelimit-remaining"), 0);
    assert!(header("x-ratelimit-reset") > now.unix_timestamp());
}
