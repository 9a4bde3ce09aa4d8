//! Reading credentials off a request and turning them into a [`Principal`].

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};

use super::client_address::ClientIp;
use super::limits::AllowanceSlot;
use super::principal::{Credential, Principal};
use super::sessions;
use super::usage::Use;
use crate::budgets::BudgetSlot;
use crate::error::ApiError;
use crate::state::AppState;

/// Filled once a request's token is verified, so the access log can name the token id
/// (never the token) and its answer can be counted in the token's usage.
#[derive(Clone, Default)]
pub struct AccessLogSlot(pub Arc<OnceLock<i64>>);

/// Who is calling, before any credential is checked: the client address (trusted proxies
/// considered), the user agent, and where to note the token once verified.
pub struct Caller {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    slot: Option<AccessLogSlot>,
}

impl Caller {
    pub fn seen(&self) -> Use<'_> {
        Use {
            ip: self.ip,
            user_agent: self.user_agent.as_deref(),
        }
    }

    /// Notes the verified token for the access log and the usage count.
    pub fn verified(&self, token_id: i64) {
        if let Some(slot) = &self.slot {
            let _ = slot.0.set(token_id);
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let ClientIp(ip) = ClientIp::from_request_parts(parts, state).await?;
        Ok(Caller {
            ip,
            user_agent: parts
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            slot: parts.extensions.get::<AccessLogSlot>().cloned(),
        })
    }
}

/// A token as a request presented it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    pub text: String,
    /// It came in the URL (`?token=`), not a header.
    pub from_query: bool,
}

/// The token a request carries, by the first of: `Authorization: Bearer`, `X-API-Token`,
/// `API-Token`, `?token=` (when allowed). An `Authorization` header with another scheme
/// counts as a presented-but-malformed token, so it fails rather than falling through to
/// a cookie.
pub fn presented_token(
    headers: &HeaderMap,
    query: Option<&str>,
    allow_query: bool,
) -> Option<Presented> {
    let from_header = |text: &str| {
        Some(Presented {
            text: text.to_owned(),
            from_query: false,
        })
    };
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let text = value.to_str().unwrap_or_default().trim();
        let token = match text.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
            _ => "",
        };
        return from_header(token);
    }
    for name in ["x-api-token", "api-token"] {
        if let Some(value) = headers.get(name) {
            return from_header(value.to_str().unwrap_or_default().trim());
        }
    }
    if allow_query {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(query.unwrap_or_default()).unwrap_or_default();
        return pairs
            .into_iter()
            .find(|(k, _)| k == "token")
            .map(|(_, text)| Presented {
                text,
                from_query: true,
            });
    }
    None
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Ok(caller) = Caller::from_request_parts(parts, state).await;
        let ip = caller.ip;
        let presented = presented_token(
            &parts.headers,
            parts.uri.query(),
            state.config.allow_query_token,
        );
        if let Some(presented) = presented {
            // A link carrying someone's token, opened in a signed-in browser, must not act
            // in that browser's origin beside its session: header tokens only there.
            if presented.from_query && sessions::from_headers(&parts.headers).is_some() {
                return Err(ApiError::bad_request(
                    "a ?token= URL cannot be used by a signed-in browser: send the token in the \
                     Authorization header, or sign out",
                ));
            }
            state.limits.check_address(ip)?;
            let principal = match state.auth.verify(&presented.text, caller.seen()).await {
                Ok(principal) => principal,
                Err(err) => {
                    if matches!(err, ApiError::AuthFailed) {
                        state.limits.record_failure(ip);
                    }
                    return Err(err);
                }
            };
            if let (Credential::Token { record, .. }, Some(usage_id)) =
                (&principal.credential, principal.usage_token_id())
            {
                caller.verified(usage_id);
                let allowance = state
                    .limits
                    .check_token(record.id, record.requests_per_minute)
                    .await?;
                if let (Some(slot), Some(allowance)) =
                    (parts.extensions.get::<AllowanceSlot>(), allowance)
                {
                    let _ = slot.0.set(allowance);
                }
                // Only budgeted tokens pay for this read.
                if let (Some(slot), Some(budget)) = (
                    parts.extensions.get::<BudgetSlot>(),
                    crate::budgets::current(state, &principal).await?,
                ) {
                    let _ = slot.0.set(budget);
                }
            }
            return Ok(principal);
        }
        let Some(session_id) = sessions::from_headers(&parts.headers) else {
            return Err(ApiError::AuthFailed);
        };
        let user_id = sessions::user_id(state, &session_id)
            .await?
            .ok_or(ApiError::AuthFailed)?;
        if !is_same_origin_or_safe(&parts.method, &parts.headers) {
            return Err(ApiError::forbidden(
                "cross-site request refused: cookie sessions only accept same-origin changes",
            ));
        }
        let user = state.store.users().by_id(user_id).await?;
        Ok(Principal {
            user_id: user.id,
            workspace_id: user.workspace_id,
            role: user.role,
            credential: Credential::Session,
        })
    }
}

/// Cookie-authenticated changes must come from our own pages: the browser's `Origin`
/// (or `Sec-Fetch-Site`) says where a request was made.
fn is_same_origin_or_safe(method: &Method, headers: &HeaderMap) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if matches!(site, Some("cross-site" | "same-site")) {
        return false;
    }
    match (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) {
        (Some(origin), Some(host)) => origin.split_once("://").map(|(_, rest)| rest) == Some(host),
        (Some(_), None) => false,
        (None, _) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn text(found: Option<Presented>) -> Option<String> {
        found.map(|p| p.text)
    }

    #[test]
    fn finds_tokens_in_every_documented_place() {
        let t = "hark_pat_x";
        assert_eq!(
            text(presented_token(
                &headers(&[("authorization", "Bearer hark_pat_x")]),
                None,
                true
            ))
            .as_deref(),
            Some(t)
        );
        assert_eq!(
            text(presented_token(
                &headers(&[("authorization", "bearer  hark_pat_x ")]),
                None,
                true
            ))
            .as_deref(),
            Some(t)
        );
        assert_eq!(
            text(presented_token(&headers(&[("x-api-token", t)]), None, true)).as_deref(),
            Some(t)
        );
        assert_eq!(
            text(presented_token(&headers(&[("api-token", t)]), None, true)).as_deref(),
            Some(t)
        );
        assert_eq!(
            text(presented_token(
                &HeaderMap::new(),
                Some("page=2&token=hark_pat_x"),
                true
            ))
            .as_deref(),
            Some(t)
        );
        assert_eq!(
            text(presented_token(
                &HeaderMap::new(),
                Some("token=hark_pat_x"),
                false
            )),
            None
        );
        assert_eq!(
            text(presented_token(
                &headers(&[("authorization", "Basic abc")]),
                None,
                true
            ))
            .as_deref(),
            Some("")
        );
        assert_eq!(text(presented_token(&HeaderMap::new(), None, true)), None);
        let from_url = presented_token(&HeaderMap::new(), Some("token=hark_pat_x"), true);
        assert!(from_url.is_some_and(|p| p.from_query));
        let from_header = presented_token(&headers(&[("api-token", t)]), Some("token=y"), true);
        assert!(from_header.is_some_and(|p| !p.from_query && p.text == t));
    }

    #[test]
    fn cross_origin_cookie_changes_are_refused() {
        let post = Method::POST;
        assert!(is_same_origin_or_safe(
            &Method::GET,
            &headers(&[("origin", "http://evil.example")])
        ));
        assert!(is_same_origin_or_safe(
            &post,
            &headers(&[
                ("origin", "http://127.0.0.1:8080"),
                ("host", "127.0.0.1:8080")
            ])
        ));
        assert!(!is_same_origin_or_safe(
            &post,
            &headers(&[
                ("origin", "http://evil.example"),
                ("host", "127.0.0.1:8080")
            ])
        ));
        assert!(!is_same_origin_or_safe(
            &post,
            &headers(&[("sec-fetch-site", "cross-site")])
        ));
        assert!(is_same_origin_or_safe(&post, &HeaderMap::new()));
    }
}
