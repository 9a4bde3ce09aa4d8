//! Who a request came from. The peer's address, unless the peer is one of the configured
//! trusted proxies: then the client it forwarded for, read from the right past every
//! trusted hop of the one header the proxies write (`X-Forwarded-For` by default, or
//! `Forwarded`). The other header is never read — most proxies pass a client's copy of the
//! header they do not write straight through — and a header from anyone else is ignored,
//! so a client cannot pick its own address.
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
        let config = &state.config;
        Ok(ClientIp(peer.and_then(|peer| {
            client_ip(
                peer,
                &parts.headers,
                &config.trusted_proxies,
                config.forwarded_header,
            )
        })))
    }
}

/// The header trusted proxies name the client in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForwardedHeader {
    #[default]
    XForwardedFor,
    /// RFC 7239's `Forwarded: for=…`.
    Forwarded,
}

/// The client behind `peer`, trusting forwarding headers only from `trusted` proxies;
/// `None` when a trusted proxy says it does not know (`unknown`, an obfuscated node): such
/// a request matches no IP allow-list rather than passing as the proxy.
pub fn client_ip(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &[IpNet],
    header: ForwardedHeader,
) -> Option<IpAddr> {
    let peer = canonical_address(peer);
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    // Rightmost first: each trusted proxy appended the address it saw.
    let mut client = peer;
    for hop in forwarded_for(headers, header).iter().rev() {
        client = canonical_address((*hop)?);
        if !is_trusted(&client) {
            break;
        }
    }
    Some(client)
}

/// The addresses in `header` (`Forwarded`'s `for=` values, or `X-Forwarded-For`'s list), in
/// order; `None` for a hop that names no address (`unknown`, `_hidden`, garbage).
fn forwarded_for(headers: &HeaderMap, header: ForwardedHeader) -> Vec<Option<IpAddr>> {
    let joined = |name: &str| -> Option<String> {
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!values.is_empty()).then(|| values.join(","))
    };
    if header == ForwardedHeader::Forwarded {
        return joined("forwarded")
            .unwrap_or_default()
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
        behind_with(peer, pairs, trusted, ForwardedHeader::XForwardedFor)
    }

    fn behind_with(
        peer: &str,
        pairs: &[(&'static str, &str)],
        trusted: &[&str],
        header: ForwardedHeader,
    ) -> String {
        let mut headers = HeaderMap::new();
        for (k, v) in pairs {
            headers.append(*k, HeaderValue::from_str(v).unwrap());
        }
        let trusted: Vec<IpNet> = trusted.iter().map(|t| t.parse().unwrap()).collect();
        client_ip(peer.parse().unwrap(), &headers, &trusted, header)
            .map_or_else(|| "unknown".into(), |ip| ip.to_string())
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
    fn only_the_configured_header_is_read_and_its_node_forms_parse() {
        let forwarded = ForwardedHeader::Forwarded;
        let both = [
            (
                "forwarded",
                "for=\"[2001:db8::7]:4711\";proto=https, for=10.0.0.9",
            ),
            ("x-forwarded-for", "198.51.100.77"),
        ];
        let trusted = ["10.0.0.0/8"];
        assert_eq!(
            behind_with("10.0.0.5", &both, &trusted, forwarded),
            "2001:db8::7"
        );
        // A client's own `Forwarded`, passed through by a proxy that writes X-Forwarded-For.
        assert_eq!(behind("10.0.0.5", &both, &trusted), "198.51.100.77");
        let port = [("forwarded", "For=192.0.2.60:8080")];
        assert_eq!(
            behind_with("::ffff:10.0.0.5", &port, &trusted, forwarded),
            "192.0.2.60"
        );
        let hidden = [("forwarded", "for=_hidden, for=10.0.0.8")];
        assert_eq!(
            behind_with("10.0.0.5", &hidden, &trusted, forwarded),
            "unknown"
        );
        let unknown = [("x-forwarded-for", "unknown")];
        assert_eq!(behind("10.0.0.5", &unknown, &trusted), "unknown");
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
