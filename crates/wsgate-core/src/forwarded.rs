//! The client's address behind proxies the operator trusts (`gateway.trusted_proxies`).
//!
//! A load balancer in front of wsgate makes every connection come from the balancer's address,
//! so per-address limits would count all clients as one and `identity.sourceIp` would name the
//! balancer. When the TCP peer is a trusted proxy, the client is read from `X-Forwarded-For`,
//! from the right: each proxy appends the address it was reached from, so the right-most
//! address that is not itself a trusted proxy is the first one nobody trusted vouches for.
//! Anything to its left was written by the client and is ignored. With no trusted proxies (the
//! default) the header is never read.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

/// Trusted proxies: addresses and CIDR blocks.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses `10.0.0.0/8`, `192.0.2.7`, `2001:db8::/32`, `::1`; the error names the bad entry.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        entries
            .iter()
            .map(|entry| {
                let entry = entry.trim();
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| format!("{entry:?} is not an address or a CIDR block"))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Whether none are configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client of a request that came from `peer` with these `X-Forwarded-For` values (in
    /// header order): `peer` itself unless it is trusted; else the right-most forwarded address
    /// that is not trusted. An entry that is not an address stops the walk at the last trusted
    /// hop, as does a list made only of trusted proxies.
    pub fn client<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl DoubleEndedIterator<Item = &'a [u8]>,
    ) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.contains(client) {
            return client;
        }
        let entries = forwarded_for
            .rev()
            .flat_map(|value| value.rsplit(|&b| b == b','));
        for entry in entries {
            let Some(ip) = parse_entry(entry) else {
                break;
            };
            client = ip;
            if !self.contains(ip) {
                break;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: `192.0.2.1`, `2001:db8::1`, and the `192.0.2.1:4711` /
/// `[2001:db8::1]:4711` forms some balancers write. Blank entries (from `a,,b`) are not addresses.
fn parse_entry(entry: &[u8]) -> Option<IpAddr> {
    let entry = std::str::from_utf8(entry).ok()?.trim();
    let ip = entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|a| a.ip()))
        .ok()?;
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(list: &[&str]) -> TrustedProxies {
        let list: Vec<String> = list.iter().map(|s| (*s).to_owned()).collect();
        TrustedProxies::parse(&list).expect("parses")
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    fn client(trusted: &TrustedProxies, peer: &str, headers: &[&str]) -> IpAddr {
        trusted.client(ip(peer), headers.iter().map(|h| h.as_bytes()))
    }

    #[test]
    fn parses_addresses_and_blocks_and_names_a_bad_entry() {
        let trusted = proxies(&[
            "10.0.0.0/8",
            "192.0.2.7",
            "2001:db8::/32",
            " ::1 ",
            "10.1.2.3/8",
        ]);
        assert!(trusted.contains(ip("10.200.0.1")));
        assert!(trusted.contains(ip("192.0.2.7")));
        assert!(!trusted.contains(ip("192.0.2.8")));
        assert!(trusted.contains(ip("2001:db8:1::5")));
        assert!(trusted.contains(ip("::1")));
        // An IPv4 peer seen on a dual-stack socket.
        assert!(trusted.contains(ip("::ffff:10.0.0.1")));
        for bad in ["10.0.0.0/33", "example.com", "", "10.0.0.1:80"] {
            let error = TrustedProxies::parse(&[bad.to_owned()]).expect_err(bad);
            assert!(error.contains("is not an address"), "{error}");
        }
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        let none = TrustedProxies::default();
        assert_eq!(
            client(&none, "198.51.100.1", &["203.0.113.9"]),
            ip("198.51.100.1")
        );
        let trusted = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            client(&trusted, "198.51.100.1", &["203.0.113.9"]),
            ip("198.51.100.1"),
            "a peer that is not a proxy cannot name another client"
        );
    }

    #[test]
    fn the_right_most_untrusted_address_is_the_client() {
        let trusted = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            client(&trusted, "10.0.0.2", &["203.0.113.9"]),
            ip("203.0.113.9")
        );
        // The client wrote 1.2.3.4 itself; the balancer appended the address it saw.
        assert_eq!(
            client(&trusted, "10.0.0.2", &["1.2.3.4, 203.0.113.9"]),
            ip("203.0.113.9")
        );
        // Two proxies, two headers.
        assert_eq!(
            client(&trusted, "10.0.0.2", &["1.2.3.4, 203.0.113.9", "10.0.0.7"]),
            ip("203.0.113.9")
        );
        assert_eq!(
            client(
                &trusted,
                "10.0.0.2",
                &["[2001:db8::9]:4711, 203.0.113.9:80"]
            ),
            ip("203.0.113.9")
        );
        assert_eq!(
            client(&trusted, "10.0.0.2", &["2001:db8::9"]),
            ip("2001:db8::9")
        );
    }

    #[test]
    fn garbage_or_only_proxies_stop_at_the_last_trusted_hop() {
        let trusted = proxies(&["10.0.0.0/8"]);
        assert_eq!(client(&trusted, "10.0.0.2", &[]), ip("10.0.0.2"));
        assert_eq!(client(&trusted, "10.0.0.2", &[""]), ip("10.0.0.2"));
        assert_eq!(client(&trusted, "10.0.0.2", &["unknown"]), ip("10.0.0.2"));
        assert_eq!(
            client(&trusted, "10.0.0.2", &["203.0.113.9, junk, 10.0.0.5"]),
            ip("10.0.0.5")
        );
        assert_eq!(
            client(&trusted, "10.0.0.2", &["10.0.0.5, 10.0.0.6"]),
            ip("10.0.0.5")
        );
        assert_eq!(
            client(&trusted, "::ffff:10.0.0.2", &["::ffff:203.0.113.9"]),
            ip("203.0.113.9")
        );
    }
}
