//! Who the client really is, for the limits that key on it (DESIGN section 8): the TCP peer, or,
//! behind trusted proxies, the address the outermost trusted proxy appended to
//! `X-Forwarded-For`; never an entry the client wrote. IPv6 clients are keyed per /64.
//!
//! Each proxy appends the address it received the request from, so with `hops` trusted proxies
//! the client is the `hops`-th entry from the right; everything left of it came from the client.
//!
//! [`is_direct_local_caller`] says whether a request comes straight from this machine, which is
//! all the dev-token endpoint trusts.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroUsize;
use warp::http::HeaderMap;

/// Headers a proxy sets when it forwards a request.
const FORWARDING_HEADERS: [&str; 3] = ["x-forwarded-for", "forwarded", "x-real-ip"];

/// A process on this machine talking to ingest directly: the peer is a loopback address and no
/// forwarding header is present. A proxy on the same machine (a local Nginx) also connects from
/// loopback, so the peer alone would make every request it forwards look local.
pub fn is_direct_local_caller(peer: Option<IpAddr>, headers: &HeaderMap) -> bool {
    let loopback_peer = peer.is_some_and(|ip| ip.to_canonical().is_loopback());
    loopback_peer && !FORWARDING_HEADERS.iter().any(|h| headers.contains_key(*h))
}

#[derive(Debug, thiserror::Error)]
#[error(
    "trusted_proxy_hops (LIKES_TRUSTED_PROXY_HOPS) is 0 while trust_forwarded_for is set: \
     name how many proxies in front of ingest append to X-Forwarded-For (at least 1)"
)]
pub struct NoTrustedHops;

/// Where the client address comes from; built once from the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAddrSource {
    /// The TCP peer: nothing in front of ingest, or nothing it trusts.
    Peer,
    /// The entry `trusted_hops` from the right of `X-Forwarded-For`, else the peer.
    ForwardedFor { trusted_hops: NonZeroUsize },
}

impl ClientAddrSource {
    pub fn new(
        trust_forwarded_for: bool,
        trusted_proxy_hops: usize,
    ) -> Result<Self, NoTrustedHops> {
        if !trust_forwarded_for {
            return Ok(ClientAddrSource::Peer);
        }
        NonZeroUsize::new(trusted_proxy_hops)
            .map(|trusted_hops| ClientAddrSource::ForwardedFor { trusted_hops })
            .ok_or(NoTrustedHops)
    }

    /// The client's address. `forwarded_for` holds the `X-Forwarded-For` header lines in the
    /// order received: a proxy may append its own line instead of extending the client's, so
    /// the lines read as one list. A list too short to hold the trusted entry, or an entry that
    /// is not an address, means the header cannot be trusted: the peer is the client then.
    pub fn client_ip<'a>(
        &self,
        peer: Option<IpAddr>,
        forwarded_for: impl IntoIterator<Item = &'a str>,
    ) -> Option<IpAddr> {
        let ClientAddrSource::ForwardedFor { trusted_hops } = *self else {
            return peer;
        };
        let entries: Vec<&str> = forwarded_for
            .into_iter()
            .flat_map(|line| line.split(','))
            .map(str::trim)
            .collect();
        entries
            .len()
            .checked_sub(trusted_hops.get())
            .and_then(|index| parse_entry(entries[index]))
            .or(peer)
    }
}

/// An address as proxies write it: `192.0.2.1`, `2001:db8::1`, `[2001:db8::1]`, or any of them
/// with a port.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = entry.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    entry
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|inner| inner.parse::<Ipv6Addr>().ok())
        .map(IpAddr::V6)
}

/// What a per-client limit keys on. IPv6 is masked to its /64: a host is routinely given a
/// whole /64 and picks interface bits at will, so per-address buckets would be free to mint.
/// An IPv4-mapped IPv6 address (a dual-stack listener's view of an IPv4 peer) is its IPv4
/// address; masked, every IPv4 client would share the bucket of `::ffff:0:0/64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => ClientKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & (u128::MAX << 64);
                    ClientKey(IpAddr::V6(Ipv6Addr::from(prefix)))
                }
            },
        }
    }

    pub fn ip(&self) -> IpAddr {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warp::http::{HeaderName, HeaderValue};

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test address")
    }

    fn behind(hops: usize) -> ClientAddrSource {
        ClientAddrSource::new(true, hops).expect("hops > 0")
    }

    const PEER: &str = "10.1.1.1";

    fn client(source: ClientAddrSource, lines: &[&str]) -> Option<IpAddr> {
        source.client_ip(Some(ip(PEER)), lines.iter().copied())
    }

    #[test]
    fn untrusted_forwarded_for_is_ignored() {
        let source = ClientAddrSource::new(false, 1).expect("peer");
        assert_eq!(client(source, &["198.51.100.1"]), Some(ip(PEER)));
    }

    #[test]
    fn one_trusted_hop_takes_the_rightmost_entry() {
        assert_eq!(
            client(behind(1), &["198.51.100.1, 198.51.100.2, 203.0.113.7"]),
            Some(ip("203.0.113.7"))
        );
        assert_eq!(client(behind(1), &["203.0.113.7"]), Some(ip("203.0.113.7")));
    }

    #[test]
    fn trusted_hops_count_from_the_right() {
        let lines = ["198.51.100.1, 203.0.113.7, 10.0.0.2"];
        assert_eq!(client(behind(2), &lines), Some(ip("203.0.113.7")));
        assert_eq!(client(behind(3), &lines), Some(ip("198.51.100.1")));
    }

    #[test]
    fn a_proxy_that_adds_its_own_header_line_is_still_the_rightmost() {
        // The client sent the first line; the proxy appended the second.
        assert_eq!(
            client(behind(1), &["198.51.100.1", "203.0.113.7"]),
            Some(ip("203.0.113.7"))
        );
    }

    #[test]
    fn missing_short_or_malformed_headers_fall_back_to_the_peer() {
        assert_eq!(client(behind(1), &[]), Some(ip(PEER)));
        assert_eq!(client(behind(2), &["203.0.113.7"]), Some(ip(PEER)));
        assert_eq!(
            client(behind(1), &["198.51.100.1, nonsense"]),
            Some(ip(PEER))
        );
        assert_eq!(client(behind(1), &["198.51.100.1,"]), Some(ip(PEER)));
        assert_eq!(client(behind(1), &[""]), Some(ip(PEER)));
    }

    #[test]
    fn garbage_left_of_the_trusted_entry_does_not_matter() {
        assert_eq!(
            client(behind(1), &["not an address, 203.0.113.7"]),
            Some(ip("203.0.113.7"))
        );
    }

    #[test]
    fn entries_may_carry_ports_and_brackets() {
        for (entry, expected) in [
            ("203.0.113.7:4711", "203.0.113.7"),
            ("[2001:db8::7]", "2001:db8::7"),
            ("[2001:db8::7]:443", "2001:db8::7"),
            ("2001:db8::7", "2001:db8::7"),
        ] {
            assert_eq!(client(behind(1), &[entry]), Some(ip(expected)), "{entry}");
        }
    }

    #[test]
    fn zero_trusted_hops_is_a_config_error_only_when_forwarded_for_is_trusted() {
        assert!(ClientAddrSource::new(true, 0).is_err());
        assert_eq!(
            ClientAddrSource::new(false, 0).expect("peer"),
            ClientAddrSource::Peer
        );
    }

    fn headers(pairs: &[(&str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            let name = HeaderName::from_bytes(name.as_bytes()).expect("test header name");
            map.append(name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn a_direct_local_caller_is_a_loopback_peer_without_forwarding_headers() {
        let plain = headers(&[("content-type", "application/json")]);
        for peer in ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"] {
            assert!(is_direct_local_caller(Some(ip(peer)), &plain), "{peer}");
        }
        for peer in ["10.0.0.1", "192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1"] {
            assert!(!is_direct_local_caller(Some(ip(peer)), &plain), "{peer}");
        }
        assert!(!is_direct_local_caller(None, &plain));
    }

    #[test]
    fn any_forwarding_header_makes_a_loopback_peer_a_proxy() {
        for name in ["x-forwarded-for", "forwarded", "x-real-ip", "X-Real-IP"] {
            let forwarded = headers(&[(name, "192.0.2.1")]);
            assert!(
                !is_direct_local_caller(Some(ip("127.0.0.1")), &forwarded),
                "{name}"
            );
        }
    }

    #[test]
    fn ipv6_addresses_of_one_64_share_a_key_and_the_next_64_does_not() {
        let key = ClientKey::of(ip("2001:db8:1:2::1"));
        assert_eq!(key, ClientKey::of(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")));
        assert_eq!(key, ClientKey::of(ip("2001:db8:1:2:abcd::9")));
        assert_eq!(key.ip(), ip("2001:db8:1:2::"));
        assert_ne!(key, ClientKey::of(ip("2001:db8:1:3::1")));
        assert_ne!(key, ClientKey::of(ip("2001:db8:2:2::1")));
    }

    #[test]
    fn ipv4_keys_are_the_whole_address_also_when_mapped_into_ipv6() {
        let key = ClientKey::of(ip("192.0.2.1"));
        assert_eq!(key.ip(), ip("192.0.2.1"));
        assert_ne!(key, ClientKey::of(ip("192.0.2.2")));
        assert_eq!(key, ClientKey::of(ip("::ffff:192.0.2.1")));
        assert_ne!(
            ClientKey::of(ip("::ffff:192.0.2.1")),
            ClientKey::of(ip("::ffff:192.0.2.2"))
        );
    }
}
