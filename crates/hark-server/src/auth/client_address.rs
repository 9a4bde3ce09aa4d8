//! Who a request came from. The peer's address, unless the peer is one of the configured
//! trusted proxies: then the client it forwarded for (`Forwarded: for=`, else
//! `X-Forwarded-For`), read from the right past every trusted hop. A header from anyone
//! else is ignored, so a client cannot pick its own address.
//!
//! Also the key per-client limits are kept under. An IPv4 address is one client; an IPv6
//! client is routinely given a whole /64 and can pick any address in it, so IPv6 addresses
//! are keyed by their /64 — otherwise one client walks its prefix past every per-address
//! limit.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use hark_core::networks::canonical_address;
use ipnet::IpNet;

use crate::state::AppState;

/// The client's address as hark judges it (see the module docs); `None` only when the
/// connection has no peer address (in-process tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(ClientIp(peer.map(|peer| {
            client_ip(peer, &parts.headers, &state.config.trusted_proxies)
        })))
    }
}

/// The client behind `peer`, trusting forwarding headers only from `trusted` proxies.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = canonical_address(peer);
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops = forwarded_for(headers);
    // Rightmost first: each trusted proxy appended the address it saw.
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = hop.map(canonical_address) else {
            // An obfuscated or unknown hop: the last address known is the best there is.
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// The `for=` addresses of `Forwarded` (RFC 7239), else of `X-Forwarded-For`, in order;
/// `None` for a hop that names no address (`unknown`, `_hidden`, garbage).
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let joined = |name: &str| -> Option<String> {
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!values.is_empty()).then(|| values.join(","))
    };
    if let Some(forwarded) = joined("forwarded") {
        return forwarded
            .split(',')
            .filter_map(|element| {
                element.split(';').find_map(|pair| {
                    let (key, value) = pair.trim().split_once('=')?;
                    key.trim()
                        .eq_ignore_ascii_case("for")
                        .then(|| parse_node(value.trim().trim_matches('"')))
                })
            })
            .collect();
    }
    joined("x-forwarded-for")
        .map(|list| list.split(',').map(|hop| parse_node(hop.trim())).collect())
        .unwrap_or_default()
}

/// `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]`, `[2001:db8::1]:4711` or `2001:db8::1`.
fn parse_node(text: &str) -> Option<IpAddr> {
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

pub fn limiter_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            // `::ffff:a.b.c.d` is an IPv4 client seen through a dual-stack socket.
            Some(v4) => IpAddr::V4(v4),
            None => {
                let network = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(network))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn behind(peer: &str, pairs: &[(&'static str, &str)], trusted: &[&str]) -> String {
        let mut headers = HeaderMap::new();
        for (k, v) in pairs {
            headers.append(*k, HeaderValue::from_str(v).unwrap());
        }
        let trusted: Vec<IpNet> = trusted.iter().map(|t| t.parse().unwrap()).collect();
        client_ip(peer.parse().unwrap(), &headers, &trusted).to_string()
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_proxies() {
        let xff = [("x-forwarded-for", "203.0.113.9")];
        assert_eq!(behind("198.51.100.1", &xff, &[]), "198.51.100.1");
        assert_eq!(
            behind("198.51.100.1", &xff, &["10.0.0.0/8"]),
            "198.51.100.1"
        );
        assert_eq!(behind("10.0.0.5", &xff, &["10.0.0.0/8"]), "203.0.113.9");
        assert_eq!(behind("10.0.0.5", &[], &["10.0.0.0/8"]), "10.0.0.5");
    }

    #[test]
    fn a_client_cannot_prepend_its_own_address() {
        // The client sent "1.2.3.4"; the trusted proxy appended what it saw.
        let xff = [("x-forwarded-for", "1.2.3.4, 203.0.113.9, 10.0.0.7")];
        assert_eq!(behind("10.0.0.5", &xff, &["10.0.0.0/8"]), "203.0.113.9");
        let split = [
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-for", "203.0.113.9"),
        ];
        assert_eq!(behind("10.0.0.5", &split, &["10.0.0.0/8"]), "203.0.113.9");
    }

    #[test]
    fn forwarded_wins_and_its_node_forms_parse() {
        let both = [
            (
                "forwarded",
                "for=\"[2001:db8::7]:4711\";proto=https, for=10.0.0.9",
            ),
            ("x-forwarded-for", "198.51.100.77"),
        ];
        assert_eq!(behind("10.0.0.5", &both, &["10.0.0.0/8"]), "2001:db8::7");
        let port = [("forwarded", "For=192.0.2.60:8080")];
        assert_eq!(
            behind("::ffff:10.0.0.5", &port, &["10.0.0.0/8"]),
            "192.0.2.60"
        );
        let hidden = [("forwarded", "for=_hidden, for=10.0.0.8")];
        assert_eq!(behind("10.0.0.5", &hidden, &["10.0.0.0/8"]), "10.0.0.8");
    }

    fn key(text: &str) -> IpAddr {
        limiter_key(text.parse().expect("address"))
    }

    #[test]
    fn ipv6_addresses_share_their_slash_64() {
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:ffff:1:2:3"));
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2::"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
    }

    #[test]
    fn ipv4_is_kept_whole_also_when_mapped() {
        assert_eq!(key("192.0.2.7"), key("::ffff:192.0.2.7"));
        assert_ne!(key("192.0.2.7"), key("192.0.2.8"));
    }
}
