//! The key per-client limits are kept under. An IPv4 address is one client; an IPv6 client
//! is routinely given a whole /64 and can pick any address in it, so IPv6 addresses are
//! keyed by their /64 — otherwise one client walks its prefix past every per-address limit.

use std::net::{IpAddr, Ipv6Addr};

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
