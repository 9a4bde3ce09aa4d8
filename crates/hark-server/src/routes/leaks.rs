//! Where leaked tokens are reported: hark's own `POST /api/tokens/revoke-by-value` (anyone),
//! GitLab's Token Revocation API (`/v1/revocable_token_types`, `/v1/revoke_tokens`, with a
//! pre-shared secret) for a self-managed GitLab's secret detection, and GitHub's
//! secret-scanning partner alerts (signed with ECDSA P-256). The work itself is
//! [`crate::leaks`].

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{DerSignature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

use crate::auth::ClientIp;
use crate::error::{ApiError, ApiJson, ErrorBody};
use crate::leaks::{self, Finding, MAX_PER_REPORT, Report};
use crate::state::AppState;

/// The type hark's tokens have in GitLab's secret detection: `gitleaks_rule_id_` and the
/// id of the rule in hark's gitleaks file (`scripts/gitleaks.toml`).
pub const GITLAB_TOKEN_TYPE: &str = "gitleaks_rule_id_hark_api_token";

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeByValue {
    /// Up to 100 token texts found in public.
    pub tokens: Vec<String>,
    /// Who or what found them, e.g. `trufflehog` or a person's name.
    pub source: Option<String>,
    /// Where they were found.
    pub url: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ReportAccepted {
    pub message: &'static str,
}

/// Longest `source` and `url` kept from a report.
const MAX_NOTE_CHARS: usize = 500;

fn clipped(text: Option<String>) -> Option<String> {
    text.map(|t| t.chars().take(MAX_NOTE_CHARS).collect())
        .filter(|t: &String| !t.trim().is_empty())
}

/// Runs the report after answering, so neither the answer nor its timing says whether
/// anything matched.
fn revoke_later(state: AppState, texts: Vec<String>, report: Report) {
    tokio::spawn(async move {
        if let Err(e) = leaks::revoke_reported(&state, &texts, &report).await {
            tracing::error!(error = %e, source = %report.source, "could not handle a leaked-token report");
        }
    });
}

#[utoipa::path(post, path = "/api/tokens/revoke-by-value", tag = "tokens",
    request_body = RevokeByValue,
    security(()),
    responses(
        (status = 202, description = "Accepted: any active hark token among these is revoked and its owner told. The same answer whether or not any matched", body = ReportAccepted),
        (status = 400, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn revoke_by_value(
    State(state): State<AppState>,
    ClientIp(client_ip): ClientIp,
    ApiJson(body): ApiJson<RevokeByValue>,
) -> Result<Response, ApiError> {
    if body.tokens.is_empty() || body.tokens.len() > MAX_PER_REPORT {
        return Err(ApiError::bad_request(format!(
            "tokens: send 1 to {MAX_PER_REPORT} token texts"
        )));
    }
    state.revocation_throttle.attempt(client_ip)?;
    let report = Report {
        source: clipped(body.source).unwrap_or_else(|| "api".into()),
        url: clipped(body.url),
        reporter_ip: client_ip,
    };
    revoke_later(state, body.tokens, report);
    Ok((
        StatusCode::ACCEPTED,
        Json(ReportAccepted {
            message: "Thank you. Any active hark token among these has been revoked and its owner notified.",
        }),
    )
        .into_response())
}

/// GitLab's secret detection sends its pre-shared secret as the whole `Authorization`
/// header; compared in constant time, after the caller's address passed the throttle (so
/// the secret cannot be guessed at speed). Absent (404) until configured.
fn gitlab_authorised(
    state: &AppState,
    headers: &HeaderMap,
    client_ip: Option<std::net::IpAddr>,
) -> Result<(), ApiError> {
    let Some(secret) = &state.config.gitlab_revocation_secret else {
        return Err(ApiError::NotFound(
            "GitLab token revocation (not configured)",
        ));
    };
    state.revocation_throttle.attempt(client_ip)?;
    let sent = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    let sent = sent.strip_prefix(b"Bearer ").unwrap_or(sent);
    // Digests first, so the comparison takes as long whatever the length sent.
    let (sent, expected) = (Sha256::digest(sent), Sha256::digest(secret.as_bytes()));
    if bool::from(sent.as_slice().ct_eq(expected.as_slice())) {
        Ok(())
    } else {
        Err(ApiError::AuthFailed)
    }
}

#[derive(Serialize, ToSchema)]
pub struct RevocableTokenTypes {
    pub types: Vec<&'static str>,
}

#[utoipa::path(get, path = "/v1/revocable_token_types", tag = "tokens",
    security(()),
    responses(
        (status = 200, description = "The token types /v1/revoke_tokens takes (GitLab's Token Revocation API)", body = RevocableTokenTypes),
        (status = 401, body = ErrorBody), (status = 404, description = "Not configured (--gitlab-revocation-secret)", body = ErrorBody)))]
pub async fn revocable_token_types(
    State(state): State<AppState>,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
) -> Result<Json<RevocableTokenTypes>, ApiError> {
    gitlab_authorised(&state, &headers, client_ip)?;
    Ok(Json(RevocableTokenTypes {
        types: vec![GITLAB_TOKEN_TYPE],
    }))
}

#[derive(Deserialize, ToSchema)]
pub struct GitlabLeak {
    #[serde(rename = "type")]
    pub token_type: String,
    pub token: String,
    pub location: Option<String>,
}

#[utoipa::path(post, path = "/v1/revoke_tokens", tag = "tokens",
    request_body = Vec<GitlabLeak>,
    security(()),
    responses(
        (status = 204, description = "Accepted for revocation (idempotent)"),
        (status = 400, description = "Malformed, too many, or a type not in /v1/revocable_token_types", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn revoke_tokens(
    State(state): State<AppState>,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    ApiJson(leaked): ApiJson<Vec<GitlabLeak>>,
) -> Result<StatusCode, ApiError> {
    gitlab_authorised(&state, &headers, client_ip)?;
    if leaked.len() > MAX_PER_REPORT {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_PER_REPORT} tokens a request"
        )));
    }
    if let Some(other) = leaked.iter().find(|l| l.token_type != GITLAB_TOKEN_TYPE) {
        return Err(ApiError::bad_request(format!(
            "type {:?} is not revocable here (see /v1/revocable_token_types)",
            other.token_type
        )));
    }
    // One report per location, so each audit event says where its token was found.
    for leak in leaked {
        let report = Report {
            source: "gitlab".into(),
            url: clipped(leak.location),
            reporter_ip: client_ip,
        };
        revoke_later(state.clone(), vec![leak.token], report);
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct GithubAlert {
    pub token: String,
    #[serde(rename = "type")]
    pub token_type: String,
    pub url: Option<String>,
    pub source: Option<String>,
}

/// GitHub's optional feedback: whether each reported token was real.
#[derive(Serialize, ToSchema)]
pub struct GithubLabel {
    pub token_hash: String,
    pub token_type: String,
    /// `true_positive` (a hark token's secret) or `false_positive`.
    pub label: &'static str,
}

/// Largest alert body read (GitHub batches a few hundred alerts at most).
const MAX_ALERT_BYTES: usize = 1024 * 1024;

#[utoipa::path(post, path = "/api/github/secret-scanning", tag = "tokens",
    request_body = Vec<GithubAlert>,
    security(()),
    responses(
        (status = 200, description = "Handled; each token labelled true or false positive", body = Vec<GithubLabel>),
        (status = 400, body = ErrorBody), (status = 401, description = "Missing or bad signature", body = ErrorBody),
        (status = 404, description = "Not configured (--github-alert-keys)", body = ErrorBody)))]
pub async fn github_alert(
    State(state): State<AppState>,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Vec<GithubLabel>>, ApiError> {
    if state.config.github_alert_keys.is_empty() {
        return Err(ApiError::NotFound(
            "GitHub secret-scanning alerts (not configured)",
        ));
    }
    if body.len() > MAX_ALERT_BYTES {
        return Err(ApiError::bad_request("the alert body is too large"));
    }
    verify_github_signature(&state.config.github_alert_keys, &headers, &body)?;
    let alerts: Vec<GithubAlert> = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("not a list of alerts: {e}")))?;
    let mut labels = Vec::with_capacity(alerts.len());
    for alert in alerts {
        let report = Report {
            source: format!(
                "github ({})",
                clipped(alert.source).unwrap_or_else(|| "unknown".into())
            ),
            url: clipped(alert.url),
            reporter_ip: client_ip,
        };
        let findings =
            leaks::revoke_reported(&state, std::slice::from_ref(&alert.token), &report).await?;
        let hash = hark_core::tokens::TokenHash::of(alert.token.trim()).to_hex();
        labels.push(GithubLabel {
            token_hash: hash,
            token_type: alert.token_type,
            label: match findings.first() {
                Some(Finding::Known { .. }) => "true_positive",
                _ => "false_positive",
            },
        });
    }
    Ok(Json(labels))
}

/// `Github-Public-Key-Signature` is a base64 DER ECDSA signature over the raw body, by the
/// key `Github-Public-Key-Identifier` names.
fn verify_github_signature(
    keys: &[(String, VerifyingKey)],
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), ApiError> {
    use base64::Engine as _;
    let header_text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(key_id), Some(signature)) = (
        header_text("github-public-key-identifier"),
        header_text("github-public-key-signature"),
    ) else {
        return Err(ApiError::AuthFailed);
    };
    let key = keys
        .iter()
        .find(|(id, _)| id == key_id)
        .map(|(_, key)| key)
        .ok_or(ApiError::AuthFailed)?;
    let der = base64::engine::general_purpose::STANDARD
        .decode(signature.trim())
        .map_err(|_| ApiError::AuthFailed)?;
    let signature = DerSignature::try_from(der.as_slice()).map_err(|_| ApiError::AuthFailed)?;
    key.verify(body, &signature)
        .map_err(|_| ApiError::AuthFailed)
}

/// Reads GitHub's published key list (`{"public_keys": [{"key_identifier", "key"}]}`, the
/// JSON of `GET /meta/public_keys/secret_scanning`), as saved to a file by an admin.
pub fn github_keys(json: &str) -> Result<Vec<(String, VerifyingKey)>, String> {
    #[derive(Deserialize)]
    struct KeyList {
        public_keys: Vec<PublishedKey>,
    }
    #[derive(Deserialize)]
    struct PublishedKey {
        key_identifier: String,
        key: String,
    }
    let list: KeyList = serde_json::from_str(json).map_err(|e| e.to_string())?;
    list.public_keys
        .into_iter()
        .map(|k| {
            VerifyingKey::from_public_key_pem(&k.key)
                .map(|key| (k.key_identifier.clone(), key))
                .map_err(|e| format!("key {}: {e}", k.key_identifier))
        })
        .collect()
}
