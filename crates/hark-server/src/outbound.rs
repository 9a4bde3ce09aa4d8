//! Requests hark makes to URLs its users gave it: audio to fetch, webhooks to call.
//!
//! Every such URL is an SSRF risk, so one guard serves both. The guard
//! refuses loopback, private, link-local, shared, multicast and metadata addresses *after*
//! name resolution, in the resolver reqwest connects through — the connection goes to the
//! very address that was checked, so a name that resolves differently the second time
//! (DNS rebinding) gains nothing. Literal addresses in a URL skip the resolver, so they are
//! checked before each request and on every redirect. No proxy is used (one from the
//! environment would make the checked address meaningless). `--fetch-allow-private`
//! turns the address checks off for operators who fetch from their own network.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use futures_util::StreamExt;
use hark_speech::sniff::{SNIFF_BYTES, audio_content_type};
use hark_store::blobs::{BlobStore, BlobWriter};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect;
use thiserror::Error;
use url::{Host, Url};

/// Most redirects followed for one request.
const MAX_REDIRECTS: usize = 5;
/// Longest URL accepted.
pub const MAX_URL_LEN: usize = 2048;

#[derive(Debug, Error)]
pub enum OutboundError {
    /// The URL itself is unusable or not allowed (said before any connection).
    #[error("{0}")]
    Refused(String),
    /// The remote end could not be reached or misbehaved.
    #[error("{0}")]
    Failed(String),
    /// What came back is not something hark accepts (too large, not audio, empty).
    #[error("{0}")]
    Unacceptable(String),
    #[error("storing the fetched audio failed: {0}")]
    Storage(#[from] hark_store::StoreError),
}

/// The guarded HTTP clients; cheap to clone.
#[derive(Clone)]
pub struct Outbound {
    /// Fetches follow redirects, each checked by the guard.
    fetching: reqwest::Client,
    /// Deliveries follow none: a redirect would carry the signed body and the receiver's
    /// headers to wherever the receiver points.
    delivering: reqwest::Client,
    allow_private: bool,
}

/// Audio fetched into a blob that is not yet committed.
pub struct Fetched {
    pub writer: BlobWriter,
    pub content_type: &'static str,
}

/// What a receiver answered.
pub struct Answer {
    pub status: u16,
}

/// A client whose every connection goes through the guard.
fn guarded_client(
    allow_private: bool,
    redirects: redirect::Policy,
) -> Result<reqwest::Client, OutboundError> {
    reqwest::Client::builder()
        .no_proxy()
        .dns_resolver(GuardedResolver { allow_private })
        .redirect(redirects)
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(30))
        .user_agent(concat!("hark/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| OutboundError::Failed(format!("the HTTP client cannot start: {e}")))
}

impl Outbound {
    pub fn new(allow_private: bool) -> Result<Self, OutboundError> {
        let checked_redirects = redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
            }
            match check(attempt.url(), allow_private) {
                Ok(()) => attempt.follow(),
                Err(reason) => attempt.error(reason),
            }
        });
        Ok(Outbound {
            fetching: guarded_client(allow_private, checked_redirects)?,
            delivering: guarded_client(allow_private, redirect::Policy::none())?,
            allow_private,
        })
    }

    /// Parses a user's URL and checks what can be checked before connecting: http(s) only,
    /// no credentials in it, and no literal address the guard refuses.
    pub fn parse(&self, raw: &str) -> Result<Url, OutboundError> {
        let raw = raw.trim();
        if raw.len() > MAX_URL_LEN {
            return Err(OutboundError::Refused(format!(
                "the URL is longer than {MAX_URL_LEN} characters"
            )));
        }
        let url = Url::parse(raw)
            .map_err(|e| OutboundError::Refused(format!("not a valid URL ({e})")))?;
        check(&url, self.allow_private).map_err(OutboundError::Refused)?;
        Ok(url)
    }

    /// Downloads audio into a new blob: at most `limit` bytes, sniffed like an upload.
    /// The whole fetch is bounded by `deadline`.
    pub async fn fetch_audio(
        &self,
        blobs: &BlobStore,
        url: &str,
        limit: u64,
        deadline: Duration,
    ) -> Result<Fetched, OutboundError> {
        let url = self.parse(url)?;
        match tokio::time::timeout(deadline, self.download(blobs, url, limit)).await {
            Ok(result) => result,
            Err(_) => Err(OutboundError::Failed(format!(
                "the download did not finish within {} s",
                deadline.as_secs()
            ))),
        }
    }

    async fn download(
        &self,
        blobs: &BlobStore,
        url: Url,
        limit: u64,
    ) -> Result<Fetched, OutboundError> {
        let response = self.fetching.get(url).send().await.map_err(describe)?;
        let status = response.status();
        if !status.is_success() {
            let reason = if status.is_redirection() {
                format!(
                    "the server answered HTTP {} with a redirect hark does not follow",
                    status.as_u16()
                )
            } else {
                format!("the server answered HTTP {}", status.as_u16())
            };
            // A redirect left unfollowed, or a client error other than a timeout or rate
            // limit, will not mend by retrying.
            let lasting = status.is_redirection()
                || (status.is_client_error() && !matches!(status.as_u16(), 408 | 429));
            return Err(if lasting {
                OutboundError::Unacceptable(reason)
            } else {
                OutboundError::Failed(reason)
            });
        }
        if response.content_length().is_some_and(|n| n > limit) {
            return Err(too_large(limit));
        }
        let mut writer = blobs.writer().await?;
        let mut head = Vec::with_capacity(SNIFF_BYTES);
        let mut body = response.bytes_stream();
        let streamed: Result<(), OutboundError> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(describe)?;
                if writer.size() + chunk.len() as u64 > limit {
                    return Err(too_large(limit));
                }
                let wanted = SNIFF_BYTES.saturating_sub(head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..wanted]);
                writer.write(&chunk).await?;
            }
            if writer.size() == 0 {
                return Err(OutboundError::Unacceptable(
                    "the URL gave an empty file".into(),
                ));
            }
            Ok(())
        }
        .await;
        let sniffed = streamed.and_then(|()| {
            audio_content_type(&head).ok_or_else(|| {
                OutboundError::Unacceptable(
                    "the URL did not give audio hark can read (judged by its content)".into(),
                )
            })
        });
        match sniffed {
            Ok(content_type) => Ok(Fetched {
                writer,
                content_type,
            }),
            Err(e) => {
                writer.abort().await;
                Err(e)
            }
        }
    }

    /// Sends one webhook request; any answer is returned (a redirect too: it counts as a
    /// failed delivery), only failures to get one are errors.
    pub async fn deliver(
        &self,
        url: &str,
        method: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Answer, OutboundError> {
        let url = self.parse(url)?;
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|_| OutboundError::Refused(format!("{method:?} is not an HTTP method")))?;
        let mut request = self
            .delivering
            .request(method, url)
            .timeout(timeout)
            .body(body);
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = request.send().await.map_err(describe)?;
        Ok(Answer {
            status: response.status().as_u16(),
        })
    }
}

fn too_large(limit: u64) -> OutboundError {
    OutboundError::Unacceptable(format!("the file is larger than the {limit}-byte limit"))
}

/// A readable reason for a failed request, without the URL (it may carry secrets).
fn describe(e: reqwest::Error) -> OutboundError {
    let mut reason = if e.is_timeout() {
        "the server did not answer in time".to_owned()
    } else if e.is_redirect() {
        "a redirect was refused".to_owned()
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else {
        "the request failed".to_owned()
    };
    // The innermost cause names the guard's refusal or the network error.
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&e);
    let mut innermost = None;
    while let Some(s) = source {
        innermost = Some(s.to_string());
        source = s.source();
    }
    if let Some(cause) = innermost {
        reason.push_str(": ");
        reason.push_str(&cause);
    }
    // A refused redirect (the guard's, or too many) and a refused name stay refused.
    if e.is_redirect() || reason.contains("refused by hark") {
        OutboundError::Refused(reason)
    } else {
        OutboundError::Failed(reason)
    }
}

/// What the guard requires of every URL, before and at each redirect.
fn check(url: &Url, allow_private: bool) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "only http and https URLs are fetched, not {}:",
            url.scheme()
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("URLs with a user name or password are not accepted".into());
    }
    let ip = match url.host() {
        None => return Err("the URL has no host".into()),
        Some(Host::Domain(_)) => return Ok(()),
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip),
    };
    if allow_private || is_public(ip) {
        Ok(())
    } else {
        Err(refusal(ip))
    }
}

fn refusal(ip: IpAddr) -> String {
    format!(
        "{ip} is a private, loopback, link-local or otherwise internal address: refused by hark \
         (an operator can allow such fetches with --fetch-allow-private)"
    )
}

/// Resolves names as the system does, then keeps only addresses the guard allows; a name
/// with none left is refused. reqwest connects only to what this returns.
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| format!("{host} could not be resolved: {e}"))?
                .collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| allow_private || is_public(a.ip()))
                .collect();
            match (allowed.is_empty(), found.first()) {
                (false, _) => Ok(Box::new(allowed.into_iter()) as Addrs),
                (true, Some(first)) => {
                    Err(format!("{host} resolves to {}", refusal(first.ip())).into())
                }
                (true, None) => Err(format!("{host} has no addresses").into()),
            }
        })
    }
}

/// Whether `ip` is an ordinary public unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16, cloud metadata among it
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || ip.is_unique_local() // fc00::/7
        || ip.is_unicast_link_local() // fe80::/10
        || (first & 0xffc0) == 0xfec0 // site-local (deprecated)
        || first == 0x64 // 64:ff9b::/96 NAT64 can reach private IPv4
        || first == 0x2001 && ip.segments()[1] == 0xdb8 // documentation
        || first == 0x2002 // 6to4 embeds any IPv4 address
        || ip.to_ipv4().is_some()) // IPv4-compatible ::a.b.c.d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_not_public() {
        for internal in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
        ] {
            assert!(!is_public(internal.parse().unwrap()), "{internal}");
        }
        for public in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn urls_are_checked_before_connecting() {
        let guard = Outbound::new(false).unwrap();
        for bad in [
            "ftp://example.com/a.wav",
            "file:///etc/passwd",
            "http://user:pw@example.com/a.wav",
            "http://127.0.0.1/a.wav",
            "http://[::1]:8080/a.wav",
            "http://169.254.169.254/latest/meta-data",
            "http://0x7f000001/",
            "not a url",
        ] {
            assert!(guard.parse(bad).is_err(), "{bad}");
        }
        assert!(guard.parse("https://example.com/a.wav").is_ok());
        let open = Outbound::new(true).unwrap();
        assert!(open.parse("http://127.0.0.1:9/a.wav").is_ok());
        assert!(open.parse("file:///etc/passwd").is_err());
    }

    #[tokio::test]
    async fn redirects_are_checked_and_bounded_and_deliveries_follow_none() {
        use axum::Router;
        use axum::response::Redirect;
        use axum::routing::{any, get};
        let app = Router::new()
            .route(
                "/to-file",
                get(|| async { Redirect::temporary("file:///etc/passwd") }),
            )
            .route("/loop", any(|| async { Redirect::temporary("/loop") }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        // Loopback is allowed here only so the test can serve the redirects itself.
        let guard = Outbound::new(true).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::local(dir.path()).unwrap();
        for (path, says) in [
            ("/to-file", "redirect hark does not follow"),
            ("/loop", "redirects"),
        ] {
            let url = format!("{base}{path}");
            let outcome = guard
                .fetch_audio(&blobs, &url, 1024, Duration::from_secs(10))
                .await;
            match outcome {
                Err(OutboundError::Refused(reason) | OutboundError::Unacceptable(reason)) => {
                    assert!(reason.contains(says), "{reason}")
                }
                Err(other) => panic!("{path}: {other}"),
                Ok(_) => panic!("{path}: fetched"),
            }
        }
        let answer = guard
            .deliver(
                &format!("{base}/loop"),
                "POST",
                &[],
                Vec::new(),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert_eq!(answer.status, 307);
    }
}
