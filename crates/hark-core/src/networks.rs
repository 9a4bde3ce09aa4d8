//! Where a token may be used from: allow and deny lists of networks (Cloudflare's
//! `request_ip.in` / `not_in`). Deny wins; an empty allow list allows everywhere.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::DomainError;

/// Most networks one list may hold: enough for any office, small enough to check on
/// every request without thinking about it.
pub const MAX_NETWORKS: usize = 32;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpRules {
    allowed: Vec<IpNet>,
    denied: Vec<IpNet>,
}

impl IpRules {
    /// Parses both lists as people type them: `203.0.113.0/24`, `2001:db8::/32`, or a single
    /// address. Each network is stored canonically (host bits cleared, duplicates dropped).
    pub fn parse(allowed: &[String], denied: &[String]) -> Result<Self, DomainError> {
        Ok(IpRules {
            allowed: parse_list("allowed_cidrs", allowed)?,
            denied: parse_list("denied_cidrs", denied)?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.allowed.is_empty() && self.denied.is_empty()
    }

    /// Whether a request from `ip` may use the token. An unknown address (no peer) is
    /// refused whenever there are rules, since it cannot be shown to match them.
    pub fn permits(&self, ip: Option<IpAddr>) -> bool {
        if self.is_empty() {
            return true;
        }
        let Some(ip) = ip.map(canonical_address) else {
            return false;
        };
        if self.denied.iter().any(|net| net.contains(&ip)) {
            return false;
        }
        self.allowed.is_empty() || self.allowed.iter().any(|net| net.contains(&ip))
    }

    /// Whether these rules permit nothing that `outer` refuses: every allowed network lies
    /// inside one of `outer`'s (when `outer` has an allow list), and every network `outer`
    /// denies is denied here too. A restricted token may only hand out rules like these.
    pub fn within(&self, outer: &IpRules) -> bool {
        let inside = |net: &IpNet, list: &[IpNet]| list.iter().any(|o| o.contains(net));
        let allowed_inside = outer.allowed.is_empty()
            || (!self.allowed.is_empty() && self.allowed.iter().all(|n| inside(n, &outer.allowed)));
        allowed_inside && outer.denied.iter().all(|d| inside(d, &self.denied))
    }

    pub fn allowed_networks(&self) -> &[IpNet] {
        &self.allowed
    }

    pub fn denied_networks(&self) -> &[IpNet] {
        &self.denied
    }

    pub fn allowed(&self) -> Vec<String> {
        self.allowed.iter().map(IpNet::to_string).collect()
    }

    pub fn denied(&self) -> Vec<String> {
        self.denied.iter().map(IpNet::to_string).collect()
    }
}

/// An IPv4 client seen through a dual-stack socket (`::ffff:a.b.c.d`) is that IPv4 client.
pub fn canonical_address(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// `::ffff:a.b.c.d/n` (n ≥ 96) is the IPv4 network `a.b.c.d/(n − 96)`: client addresses
/// are compared as IPv4, so a mapped network must be too, or it would never match.
fn canonical_network(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map(IpNet::V4)
                .unwrap_or(net),
            None => net,
        },
        _ => net,
    }
}

fn parse_list(field: &'static str, items: &[String]) -> Result<Vec<IpNet>, DomainError> {
    if items.len() > MAX_NETWORKS {
        return Err(DomainError::invalid(
            field,
            format!("at most {MAX_NETWORKS} networks"),
        ));
    }
    let mut nets: Vec<IpNet> = Vec::with_capacity(items.len());
    for item in items {
        let text = item.trim();
        let net = match text.parse::<IpNet>() {
            Ok(net) => canonical_network(net).trunc(),
            Err(_) => match text.parse::<IpAddr>() {
                Ok(ip) => IpNet::from(canonical_address(ip)),
                Err(_) => {
                    return Err(DomainError::invalid(
                        field,
                        format!("{text:?} is not an IP address or CIDR network"),
                    ));
                }
            },
        };
        if !nets.contains(&net) {
            nets.push(net);
        }
    }
    Ok(nets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(allowed: &[&str], denied: &[&str]) -> IpRules {
        let own = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        IpRules::parse(&own(allowed), &own(denied)).expect("valid rules")
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().expect("address"))
    }

    #[test]
    fn no_rules_permit_everything_even_an_unknown_peer() {
        let open = IpRules::default();
        assert!(open.permits(ip("198.51.100.7")));
        assert!(open.permits(None));
    }

    #[test]
    fn deny_wins_over_allow() {
        let r = rules(&["10.0.0.0/8"], &["10.1.0.0/16"]);
        assert!(r.permits(ip("10.2.3.4")));
        assert!(!r.permits(ip("10.1.3.4")));
        assert!(!r.permits(ip("192.0.2.1")), "outside the allow list");
        assert!(!r.permits(None));
    }

    #[test]
    fn a_deny_list_alone_allows_the_rest() {
        let r = rules(&[], &["127.0.0.2"]);
        assert!(r.permits(ip("127.0.0.1")));
        assert!(!r.permits(ip("127.0.0.2")));
    }

    #[test]
    fn networks_are_canonical_and_mapped_ipv4_matches() {
        let r = rules(&["192.0.2.77/24", "192.0.2.0/24", "2001:db8::1/32"], &[]);
        assert_eq!(r.allowed(), vec!["192.0.2.0/24", "2001:db8::/32"]);
        assert!(r.permits(ip("::ffff:192.0.2.9")));
        assert!(r.permits(ip("2001:db8:ffff::1")));
        assert!(!r.permits(ip("2001:db9::1")));
        assert_eq!(
            rules(&["::ffff:10.0.0.1"], &[]).allowed(),
            vec!["10.0.0.1/32"]
        );
        let mapped = rules(&[], &["::ffff:10.0.0.0/104"]);
        assert_eq!(mapped.denied(), vec!["10.0.0.0/8"]);
        assert!(!mapped.permits(ip("10.1.2.3")));
    }

    #[test]
    fn narrower_rules_are_within_wider_ones() {
        let outer = rules(&["10.0.0.0/8"], &["10.9.0.0/16"]);
        assert!(rules(&["10.1.0.0/16"], &["10.9.0.0/16"]).within(&outer));
        assert!(rules(&["10.1.0.0/16"], &["10.9.0.0/16", "10.1.1.0/24"]).within(&outer));
        assert!(!rules(&["10.1.0.0/16"], &[]).within(&outer), "drops a deny");
        assert!(
            !rules(&[], &["10.9.0.0/16"]).within(&outer),
            "allows everywhere"
        );
        assert!(!rules(&["192.0.2.0/24"], &["10.9.0.0/16"]).within(&outer));
        assert!(rules(&["192.0.2.0/24"], &[]).within(&IpRules::default()));
        assert!(IpRules::default().within(&IpRules::default()));
    }

    #[test]
    fn bad_or_too_many_entries_are_refused_with_the_field_named() {
        let bad = IpRules::parse(&["10.0.0.0/33".into()], &[]).unwrap_err();
        assert!(bad.to_string().starts_with("allowed_cidrs"), "{bad}");
        let many: Vec<String> = (0..=MAX_NETWORKS).map(|i| format!("10.0.0.{i}")).collect();
        let err = IpRules::parse(&[], &many).unwrap_err();
        assert!(err.to_string().contains("at most 32"), "{err}");
    }
}
