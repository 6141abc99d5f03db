//! The client's address behind a reverse proxy (`TRUSTED_PROXIES`). Only when the TCP peer is one of the trusted
//! networks are `Forwarded` (RFC 7239) or `X-Forwarded-For` believed; the client is then the last address in the
//! chain that is not itself a trusted proxy (the first hops are whatever the client wrote, so they are not). Every
//! later use of the address — the per-address request limit, login throttling, logs — sees that client. The
//! per-address connection cap stays on the TCP peer: it is the proxy that holds the connections.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use ipnet::IpNet;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// Parses a comma-separated list of addresses and CIDR networks (`10.0.0.0/8, 192.168.1.5, ::1`).
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = match item.parse::<IpNet>() {
                Ok(net) => net,
                Err(_) => match item.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(ip),
                    Err(_) => {
                        return Err(format!(
                            "`{item}` is neither an IP address nor a CIDR network"
                        ))
                    }
                },
            };
            nets.push(net.trunc());
        }
        Ok(Self { nets })
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The client of a request that came from the trusted `peer` (callers check [`Self::contains`] first).
    pub fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> SocketAddr {
        let chain = forwarded_for(headers).or_else(|| x_forwarded_for(headers));
        let Some(chain) = chain else {
            return peer;
        };
        // From the nearest hop back: skip the trusted proxies; the first other address is the client. A chain of
        // trusted proxies only: the farthest one.
        let client = chain
            .iter()
            .rev()
            .find(|ip| !self.contains(**ip))
            .or(chain.first())
            .copied();
        client.map_or(peer, |ip| SocketAddr::new(canonical(ip), 0))
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// `X-Forwarded-For: client, proxy1, proxy2` (every header line, in order). `None` without the header or when an
/// entry is not an address (a malformed chain is not believed at all).
fn x_forwarded_for(headers: &HeaderMap) -> Option<Vec<IpAddr>> {
    let mut chain = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        for item in value.to_str().ok()?.split(',') {
            chain.push(parse_node(item.trim())?);
        }
    }
    (!chain.is_empty()).then_some(chain)
}

/// The `for=` nodes of `Forwarded` (RFC 7239), in order.
fn forwarded_for(headers: &HeaderMap) -> Option<Vec<IpAddr>> {
    let mut chain = Vec::new();
    for value in headers.get_all(http::header::FORWARDED) {
        for element in value.to_str().ok()?.split(',') {
            for pair in element.split(';') {
                let Some((name, node)) = pair.trim().split_once('=') else {
                    continue;
                };
                if name.trim().eq_ignore_ascii_case("for") {
                    chain.push(parse_node(node.trim().trim_matches('"'))?);
                }
            }
        }
    }
    (!chain.is_empty()).then_some(chain)
}

/// `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]:5678`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = node.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    node.strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_client_is_the_last_untrusted_hop() {
        let t = TrustedProxies::parse("10.0.0.0/8, 192.168.1.5").unwrap();
        let peer: SocketAddr = "10.1.2.3:4000".parse().unwrap();
        assert!(t.contains(peer.ip()));
        assert!(t.contains(ip("::ffff:10.9.9.9")));
        assert!(!t.contains(ip("11.0.0.1")));
        let client = |h: &HeaderMap| t.client(peer, h).ip();
        // A client-written first hop is not believed past an untrusted one.
        assert_eq!(
            client(&headers(&[(
                "x-forwarded-for",
                "6.6.6.6, 203.0.113.7, 192.168.1.5"
            )])),
            ip("203.0.113.7")
        );
        assert_eq!(
            client(&headers(&[
                ("x-forwarded-for", "203.0.113.7"),
                ("x-forwarded-for", "10.0.0.9")
            ])),
            ip("203.0.113.7")
        );
        assert_eq!(
            client(&headers(&[(
                "forwarded",
                "for=\"[2001:db8::7]:443\";proto=https, for=10.0.0.2"
            )])),
            ip("2001:db8::7")
        );
        // Only trusted hops: the farthest; no header or a malformed one: the peer.
        assert_eq!(
            client(&headers(&[("x-forwarded-for", "10.0.0.8, 10.0.0.9")])),
            ip("10.0.0.8")
        );
        assert_eq!(client(&HeaderMap::new()), peer.ip());
        assert_eq!(
            client(&headers(&[("x-forwarded-for", "203.0.113.7, junk")])),
            peer.ip()
        );
    }

    #[test]
    fn bad_lists_name_the_item() {
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        let err = TrustedProxies::parse("10.0.0.0/8, proxy.local").unwrap_err();
        assert!(err.contains("proxy.local"), "{err}");
    }
}
