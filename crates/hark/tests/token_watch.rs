//! Watching tokens: usage by outcome and the speech it paid for, the addresses a token was
//! used from (and `token.new_ip` when one is new), IP allow-lists on REST and WebSocket
//! handshakes, trusted proxies, audio budgets and expiry notices. Leaks are in leaks.rs.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::peer::Peer;
use common::*;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A client whose connections come from `local` (any 127.x address is this machine).
fn client_from(local: &str) -> Client {
    Client::builder()
        .local_address(local.parse::<IpAddr>().unwrap())
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

async fn get_from(server: &TestServer, local: &str, path: &str, token: &str) -> StatusCode {
    client_from(local)
        .get(server.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

/// The WebSocket handshake's answer when made from `local`.
async fn handshake_from(server: &TestServer, local: &str, token: &str) -> u16 {
    let addr: SocketAddr = server.base.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(local.parse().unwrap(), 0))
        .unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let url = server.url("/v2").replacen("http://", "ws://", 1);
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    match tokio_tungstenite::client_async(request, stream).await {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("handshake: {e}"),
    }
}

async fn usage(server: &TestServer, admin: &str, id: &Value, granularity: &str) -> Value {
    let res = server
        .get(
            &format!("/api/tokens/{id}/usage?granularity={granularity}"),
            admin,
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

#[tokio::test]
async fn usage_is_counted_by_outcome_with_the_audio_and_the_addresses() {
    let server = TestServer::start().await;
    let admin = server.user_with_token("adm", "admin");
    let limited = server
        .api_token(&admin, json!({"name": "limited", "requests_per_minute": 3}))
        .await;
    let limited_token = limited["token"].as_str().unwrap();
    let reader = server
        .api_token(&admin, json!({"name": "reader", "scopes": ["read"]}))
        .await;
    let reader_token = reader["token"].as_str().unwrap();
    let fenced = server
        .api_token(
            &admin,
            json!({"name": "fenced", "denied_cidrs": ["127.0.0.2"]}),
        )
        .await;
    let fenced_token = fenced["token"].as_str().unwrap();
    assert_eq!(fenced["denied_cidrs"], json!(["127.0.0.2/32"]));

    // limited: three uses, then its budget says no.
    for _ in 0..3 {
        assert_eq!(
            get_from(&server, "127.0.0.1", "/api/tokens/self", limited_token).await,
            StatusCode::OK
        );
    }
    assert_eq!(
        get_from(&server, "127.0.0.1", "/api/tokens/self", limited_token).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // reader: a read, a write it may not do, then used after revocation.
    assert_eq!(
        get_from(&server, "127.0.0.1", "/api/tags", reader_token).await,
        StatusCode::OK
    );
    let denied = server
        .post_json("/api/tags", reader_token, json!({"name": "x"}))
        .await;
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    let revoked = server
        .delete(&format!("/api/tokens/{}", reader["id"]), &admin)
        .await;
    assert_eq!(revoked.status(), StatusCode::OK);
    assert_eq!(
        get_from(&server, "127.0.0.1", "/api/tags", reader_token).await,
        StatusCode::UNAUTHORIZED
    );
    // fenced: refused from the denied address, over REST and at a WebSocket handshake.
    let refused = client_from("127.0.0.2")
        .get(server.url("/api/tokens/self"))
        .bearer_auth(fenced_token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(refused).await,
        (StatusCode::FORBIDDEN, "ip_not_allowed".into())
    );
    assert_eq!(
        handshake_from(&server, "127.0.0.2", fenced_token).await,
        403
    );
    assert_eq!(
        get_from(&server, "127.0.0.1", "/api/tokens/self", fenced_token).await,
        StatusCode::OK
    );

    // Audio paid for: a clip through the OpenAI-compatible endpoint.
    let payer = server.api_token(&admin, json!({"name": "payer"})).await;
    let payer_token = payer["token"].as_str().unwrap();
    let clip = shared_audio("meeting_03.wav");
    let form = reqwest::multipart::Form::new()
        .text("model", "whisper-1")
        .part(
            "file",
            reqwest::multipart::Part::bytes(std::fs::read(&clip).unwrap())
                .file_name("meeting_03.wav"),
        );
    let res = server
        .client
        .post(server.url("/v1/audio/transcriptions"))
        .bearer_auth(payer_token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // Counted in memory, written by the flush (every 200 ms in tests).
    server
        .eventually(Duration::from_secs(10), || async {
            usage(&server, &admin, &payer["id"], "minute").await["totals"]["ok"] == 1
        })
        .await;
    let totals = |u: &Value| u["totals"].clone();
    let limited_use = usage(&server, &admin, &limited["id"], "hour").await;
    assert_eq!(totals(&limited_use)["ok"], 3);
    assert_eq!(totals(&limited_use)["rate_limited"], 1);
    let reader_use = usage(&server, &admin, &reader["id"], "day").await;
    assert_eq!(
        (
            totals(&reader_use)["ok"].as_u64(),
            totals(&reader_use)["scope_denied"].as_u64(),
            totals(&reader_use)["revoked"].as_u64()
        ),
        (Some(1), Some(1), Some(1))
    );
    let fenced_use = usage(&server, &admin, &fenced["id"], "minute").await;
    assert_eq!(
        totals(&fenced_use)["ip_denied"],
        2,
        "REST and the handshake"
    );
    assert_eq!(totals(&fenced_use)["ok"], 1);
    let payer_use = usage(&server, &admin, &payer["id"], "minute").await;
    let seconds = totals(&payer_use)["audio_seconds"].as_f64().unwrap();
    assert!(
        (7.0..7.5).contains(&seconds),
        "meeting_03.wav is 7.23 s: {seconds}"
    );
    assert_eq!(payer_use["series"].as_array().unwrap().len(), 1);

    // Where it was used from; the first use from an address is audited once.
    let addresses = fenced_use["addresses"].as_array().unwrap();
    assert_eq!(addresses.len(), 1, "{addresses:?}");
    assert_eq!(addresses[0]["ip"], "127.0.0.1");
    let new_ip = server.audit_events(&admin, "action=token.new_ip").await;
    let of_limited: Vec<&Value> = new_ip
        .iter()
        .filter(|e| e["target"] == format!("token:{}", limited["id"]))
        .collect();
    assert_eq!(of_limited.len(), 1, "{new_ip:?}");
    assert_eq!(of_limited[0]["ip"], "127.0.0.1");
    get_from(&server, "127.0.0.3", "/api/tokens/self", fenced_token).await;
    server
        .eventually(Duration::from_secs(10), || async {
            server
                .audit_events(&admin, "action=token.new_ip")
                .await
                .iter()
                .any(|e| e["ip"] == "127.0.0.3")
        })
        .await;

    for token in [limited_token, reader_token, fenced_token, payer_token] {
        server.assert_not_stored(token);
    }
    let bad = server
        .get(
            &format!("/api/tokens/{}/usage?granularity=week", payer["id"]),
            &admin,
        )
        .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let member = server.user_with_token("mia", "member");
    let foreign = server
        .get(&format!("/api/tokens/{}/usage", payer["id"]), &member)
        .await;
    assert_eq!(
        foreign.status(),
        StatusCode::NOT_FOUND,
        "another's token looks missing"
    );
}

#[tokio::test]
async fn ip_rules_change_at_once_and_temporary_keys_inherit_them() {
    let server = TestServer::start().await;
    let admin = server.user_with_token("adm", "admin");
    let key = server
        .api_token(
            &admin,
            json!({"name": "rt", "kind": "project", "project_id": 1, "type": "realtime"}),
        )
        .await;
    let key_token = key["token"].as_str().unwrap();
    let temporary: Value = server
        .post_json("/v1/api_keys?type=rt", key_token, json!({"ttl": 60}))
        .await
        .json()
        .await
        .unwrap();
    let temp_token = temporary["key_value"].as_str().unwrap();
    server.saw_secret(temp_token);
    assert_eq!(handshake_from(&server, "127.0.0.2", temp_token).await, 101);

    let res = server
        .client
        .patch(server.url(&format!("/api/tokens/{}", key["id"])))
        .bearer_auth(&admin)
        .json(&json!({"allowed_cidrs": ["127.0.0.1", "::1"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let changed: Value = res.json().await.unwrap();
    assert_eq!(changed["allowed_cidrs"], json!(["127.0.0.1/32", "::1/128"]));
    assert_eq!(handshake_from(&server, "127.0.0.2", key_token).await, 403);
    assert_eq!(
        handshake_from(&server, "127.0.0.2", temp_token).await,
        403,
        "inherited"
    );
    assert_eq!(handshake_from(&server, "127.0.0.1", temp_token).await, 101);

    for bad in [
        json!({"allowed_cidrs": ["10.0.0.0/33"]}),
        json!({}),
        json!({"audio_quota_minutes": 5, "x": 1}),
    ] {
        let res = server
            .client
            .patch(server.url(&format!("/api/tokens/{}", key["id"])))
            .bearer_auth(&admin)
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    let too_many: Vec<String> = (0..33).map(|i| format!("10.0.0.{i}")).collect();
    let res = server
        .post_json(
            "/api/tokens",
            &admin,
            json!({"name": "many", "allowed_cidrs": too_many}),
        )
        .await;
    assert_eq!(error_code(res).await.0, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    let server = TestServer::start_with(&["--trusted-proxies", "127.0.0.5"]).await;
    let admin = server.user_with_token("adm", "admin");
    let fenced = server
        .api_token(
            &admin,
            json!({"name": "office", "allowed_cidrs": ["198.51.100.0/24"]}),
        )
        .await;
    let token = fenced["token"].as_str().unwrap();
    let from = |local: &str, forwarded: &str| {
        client_from(local)
            .get(server.url("/api/tokens/self"))
            .bearer_auth(token)
            .header("x-forwarded-for", forwarded)
            .send()
    };
    // A client naming an allowed address itself is not believed.
    assert_eq!(
        from("127.0.0.1", "198.51.100.7").await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    // The trusted proxy's word is.
    assert_eq!(
        from("127.0.0.5", "198.51.100.7").await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        from("127.0.0.5", "198.51.100.7, 203.0.113.1")
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN,
        "the rightmost untrusted hop is the client"
    );
    server
        .eventually(Duration::from_secs(10), || async {
            let u = usage(&server, &admin, &fenced["id"], "minute").await;
            u["addresses"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["ip"] == "198.51.100.7")
        })
        .await;
}

#[tokio::test]
async fn an_audio_budget_refuses_transcriptions_once_spent() {
    let server = TestServer::start().await;
    let admin = server.user_with_token("adm", "admin");
    let member = server.user_with_token("mia", "member");
    let budgeted = server
        .api_token(
            &admin,
            json!({"name": "budgeted", "audio_quota_minutes": 1, "audio_quota_refill": "daily"}),
        )
        .await;
    let token = budgeted["token"].as_str().unwrap().to_owned();
    assert_eq!(budgeted["audio_quota_minutes"], 1);
    let remaining = |res: &reqwest::Response| {
        res.headers()
            .get("audio-quota-remaining")
            .map(|v| v.to_str().unwrap().parse::<u64>().unwrap())
    };
    let me = server.get("/api/tokens/self", &token).await;
    assert_eq!(remaining(&me), Some(60));
    assert!(me.headers().contains_key("audio-quota-reset"));
    let plain = server.get("/api/tokens/self", &admin).await;
    assert_eq!(remaining(&plain), None, "no budget, no header");

    let transcribe = |clip: &'static str| {
        let form = reqwest::multipart::Form::new()
            .text("model", "whisper-1")
            .part(
                "file",
                reqwest::multipart::Part::bytes(std::fs::read(shared_audio(clip)).unwrap())
                    .file_name(clip),
            );
        server
            .client
            .post(server.url("/v1/audio/transcriptions"))
            .bearer_auth(&token)
            .multipart(form)
            .send()
    };
    // 140 s of audio against a 60 s budget: it had budget left when it started.
    assert_eq!(
        transcribe("long_mix.wav").await.unwrap().status(),
        StatusCode::OK
    );
    server
        .eventually(Duration::from_secs(10), || async {
            remaining(&server.get("/api/tokens/self", &token).await) == Some(0)
        })
        .await;
    let refused = transcribe("meeting_03.wav").await.unwrap();
    assert!(refused.headers().contains_key("retry-after"));
    let (status, code) = error_code(refused).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::TOO_MANY_REQUESTS, "quota_exceeded")
    );
    let upload = server
        .upload(&token, &shared_audio("meeting_03.wav"), None)
        .await;
    assert_eq!(
        error_code(upload).await.1,
        "quota_exceeded",
        "every dialect's uploads"
    );

    // A stream is refused with Speechmatics' own error.
    let url = server.url("/v2").replacen("http://", "ws://", 1);
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    use futures_util::{SinkExt, StreamExt};
    let start = json!({"message": "StartRecognition",
        "audio_format": {"type": "raw", "encoding": "pcm_s16le", "sample_rate": 16000},
        "transcription_config": {"language": "en"}});
    socket
        .send(tokio_tungstenite::tungstenite::Message::Text(
            start.to_string().into(),
        ))
        .await
        .unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let reply: Value = serde_json::from_str(reply.to_text().unwrap()).unwrap();
    assert_eq!(
        (reply["message"].as_str(), reply["type"].as_str()),
        (Some("Error"), Some("quota_exceeded"))
    );

    let row = server.listed_token(&admin, &budgeted["id"]).await;
    assert_eq!(row["audio_quota_remaining_seconds"], 0);
    server
        .eventually(Duration::from_secs(10), || async {
            let u = usage(&server, &admin, &budgeted["id"], "minute").await;
            u["totals"]["quota_exceeded"] == 2
        })
        .await;

    // Only admins change budgets; lifting it lets the token transcribe again.
    let change = |who: &str, body: Value| {
        server
            .client
            .patch(server.url(&format!("/api/tokens/{}", budgeted["id"])))
            .bearer_auth(who)
            .json(&body)
            .send()
    };
    let own = server.api_token(&member, json!({"name": "mine"})).await;
    let res = server
        .client
        .patch(server.url(&format!("/api/tokens/{}", own["id"])))
        .bearer_auth(&member)
        .json(&json!({"audio_quota_minutes": 100}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        change(&admin, json!({"audio_quota_minutes": 0}))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        transcribe("meeting_03.wav").await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_token_about_to_expire_is_announced_once() {
    let server = TestServer::start_with(&["--fetch-allow-private"]).await;
    let admin = server.user_with_token("adm", "admin");
    let owner = server.user_with_token("ana", "member");
    let peer = Peer::start().await;
    server
        .webhook(
            &owner,
            &format!("{}/hooks/expiry", peer.base),
            &["token.expiring"],
        )
        .await;
    let soon = (time::OffsetDateTime::now_utc() + time::Duration::days(3))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let expiring = server
        .api_token(&owner, json!({"name": "short-lived", "expires": soon}))
        .await;
    assert_eq!(expiring["expires_soon"], true);
    let delivered = peer.wait_for(1, Duration::from_secs(20)).await;
    let event: Value = serde_json::from_slice(&delivered[0].body).unwrap();
    assert_eq!(event["event"], "token.expiring");
    assert_eq!(event["token"]["id"], expiring["id"]);
    // Sweeps go on every flush; the token is announced once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(peer.received().len(), 1);
    let events = server.audit_events(&admin, "action=token.expiring").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["target"], format!("token:{}", expiring["id"]));
}

#[tokio::test]
async fn a_restricted_token_cannot_step_outside_its_rules_or_budget() {
    let server = TestServer::start().await;
    let admin = server.user_with_token("adm", "admin");
    let fenced = server
        .api_token(
            &admin,
            json!({"name": "office", "allowed_cidrs": ["127.0.0.0/24"]}),
        )
        .await;
    let fenced_token = fenced["token"].as_str().unwrap().to_owned();
    // What it mints is held to its rules: inherited when none are asked for...
    let child = server
        .api_token(&fenced_token, json!({"name": "child"}))
        .await;
    assert_eq!(child["allowed_cidrs"], json!(["127.0.0.0/24"]));
    let narrower = server
        .api_token(
            &fenced_token,
            json!({"name": "narrower", "allowed_cidrs": ["127.0.0.1"]}),
        )
        .await;
    assert_eq!(narrower["allowed_cidrs"], json!(["127.0.0.1/32"]));
    // ...and refused when wider.
    let wider = server
        .post_json(
            "/api/tokens",
            &fenced_token,
            json!({"name": "wider", "allowed_cidrs": ["10.0.0.0/8"]}),
        )
        .await;
    assert_eq!(wider.status(), StatusCode::FORBIDDEN);
    let patch = |who: &str, id: &Value, body: Value| {
        server
            .client
            .patch(server.url(&format!("/api/tokens/{id}")))
            .bearer_auth(who)
            .json(&body)
            .send()
    };
    let cleared = patch(&fenced_token, &fenced["id"], json!({"allowed_cidrs": []}))
        .await
        .unwrap();
    assert_eq!(
        cleared.status(),
        StatusCode::FORBIDDEN,
        "it cannot free itself"
    );
    let narrowed = patch(
        &fenced_token,
        &fenced["id"],
        json!({"denied_cidrs": ["127.0.0.9"]}),
    )
    .await
    .unwrap();
    assert_eq!(narrowed.status(), StatusCode::OK, "narrowing is fine");
    let freed = patch(
        &admin,
        &fenced["id"],
        json!({"allowed_cidrs": [], "denied_cidrs": []}),
    )
    .await
    .unwrap();
    assert_eq!(
        freed.status(),
        StatusCode::OK,
        "an unrestricted admin token may"
    );

    let budgeted = server
        .api_token(
            &admin,
            json!({"name": "metered", "audio_quota_minutes": 10}),
        )
        .await;
    let res = server
        .post_json(
            "/api/tokens",
            budgeted["token"].as_str().unwrap(),
            json!({"name": "free"}),
        )
        .await;
    assert_eq!(
        res.status(),
        StatusCode::FORBIDDEN,
        "a budget cannot be escaped by minting"
    );
}
