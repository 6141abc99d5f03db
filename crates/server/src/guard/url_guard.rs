//! Where provider base URLs may point. Cloud-metadata and link-local addresses are refused always (they hand out
//! instance credentials); loopback and private ranges only when `ALLOW_PRIVATE_PROVIDER_URLS` is on (its default:
//! local llama.cpp, vLLM and Ollama are a real use). Checked three times:
//! 1. when a key is added or edited: the host, and every address it resolves to now ([`check_url`]);
//! 2. when the snapshot is built: the host as written ([`check_url_as_written`]), so a rule change or a stored
//!    row from elsewhere cannot route to a refused address;
//! 3. at connection time, for every upstream request and redirect: the upstream client resolves names through
//!    [`GuardedResolver`], which drops refused addresses — DNS answers can change after the key was checked — and
//!    its redirect policy refuses redirects to refused address literals.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// What an address is, as far as this guard cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    Public,
    Loopback,
    Private,
    /// Refused whatever the setting; the reason names what it is.
    Forbidden(&'static str),
}

/// Host names of metadata services, refused whatever they resolve to.
const METADATA_HOSTS: &[&str] = &[
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data",
    "instance-data.ec2.internal",
    "metadata.azure.internal",
    "metadata.platformequinix.com",
];

pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return classify_v4(v4);
            }
            let seg = v6.segments();
            if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                AddressClass::Forbidden("a cloud metadata service")
            } else if v6.is_loopback() {
                AddressClass::Loopback
            } else if v6.is_unspecified() {
                AddressClass::Forbidden("the unspecified address")
            } else if seg[0] & 0xffc0 == 0xfe80 {
                AddressClass::Forbidden("a link-local address")
            } else if v6.is_multicast() {
                AddressClass::Forbidden("a multicast address")
            } else if seg[0] & 0xfe00 == 0xfc00 || seg[0] & 0xffc0 == 0xfec0 {
                AddressClass::Private
            } else if let Some(v4) = embedded_v4(seg) {
                // The embedded IPv4 address decides: these forms reach (or are translated to) it.
                classify_v4(v4)
            } else if seg[0] == 0x2001 && seg[1] == 0 {
                // Teredo: the client's IPv4 address is stored inverted in the last 32 bits.
                let client = v4_of(!seg[6], !seg[7]);
                match classify_v4(client) {
                    AddressClass::Public => AddressClass::Public,
                    _ => AddressClass::Forbidden(
                        "a Teredo address embedding a non-public IPv4 address",
                    ),
                }
            } else {
                AddressClass::Public
            }
        }
    }
}

fn v4_of(high: u16, low: u16) -> Ipv4Addr {
    Ipv4Addr::new((high >> 8) as u8, high as u8, (low >> 8) as u8, low as u8)
}

/// The IPv4 address inside an IPv6 form that carries one in the clear: IPv4-compatible (`::a.b.c.d`, deprecated
/// but still routed by some stacks), IPv4-translated (`::ffff:0:a.b.c.d`), NAT64 (`64:ff9b::/96` and the local-use
/// `64:ff9b:1::/48`) and 6to4 (`2002:aabb:ccdd::/48`). IPv4-mapped (`::ffff:a.b.c.d`) is handled by the caller.
fn embedded_v4(seg: [u16; 8]) -> Option<Ipv4Addr> {
    let zeros = |range: std::ops::Range<usize>| seg[range].iter().all(|s| *s == 0);
    if zeros(0..6) && !(seg[6] == 0 && seg[7] <= 1) {
        return Some(v4_of(seg[6], seg[7]));
    }
    if zeros(0..4) && seg[4] == 0xffff && seg[5] == 0 {
        return Some(v4_of(seg[6], seg[7]));
    }
    if seg[0] == 0x64 && seg[1] == 0xff9b && (zeros(2..6) || seg[2] == 1) {
        return Some(v4_of(seg[6], seg[7]));
    }
    if seg[0] == 0x2002 {
        return Some(v4_of(seg[1], seg[2]));
    }
    None
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let o = ip.octets();
    if o == [100, 100, 100, 200] || o == [168, 63, 129, 16] || o == [192, 0, 0, 192] {
        // Alibaba Cloud metadata, Azure's WireServer, Oracle Cloud's legacy metadata.
        AddressClass::Forbidden("a cloud metadata service")
    } else if ip.is_link_local() {
        AddressClass::Forbidden("a link-local address (cloud metadata lives there)")
    } else if o[0] == 0 {
        AddressClass::Forbidden("the unspecified address")
    } else if ip.is_broadcast() || ip.is_multicast() {
        AddressClass::Forbidden("a broadcast or multicast address")
    } else if ip.is_loopback() {
        AddressClass::Loopback
    } else if ip.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64) {
        // RFC 1918 and carrier-grade NAT (100.64.0.0/10).
        AddressClass::Private
    } else {
        AddressClass::Public
    }
}

/// Why a base URL was refused. The message names the setting when one would allow it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UrlRefused(pub String);

/// Whether an address may be called under this setting.
pub fn check_address(ip: IpAddr, allow_private: bool) -> Result<(), UrlRefused> {
    match classify(ip) {
        AddressClass::Public => Ok(()),
        AddressClass::Loopback | AddressClass::Private if allow_private => Ok(()),
        AddressClass::Loopback | AddressClass::Private => Err(UrlRefused(format!(
            "the base URL points at a loopback or private address ({ip}), which this gateway does not allow \
             (ALLOW_PRIVATE_PROVIDER_URLS=false)"
        ))),
        AddressClass::Forbidden(what) => Err(UrlRefused(format!(
            "the base URL points at {what} ({ip}), which is never allowed"
        ))),
    }
}

/// The host of a URL: an address, or a lowercase name without a trailing dot.
enum UrlHost {
    Address(IpAddr),
    Name(String),
}

fn host_of(url: &str) -> Result<(UrlHost, u16), UrlRefused> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|_| UrlRefused("the base URL is not a valid URL".into()))?;
    let port = parsed.port_or_known_default().unwrap_or(443);
    // The URL parser already normalised IPv4 spellings (`0x7f.1`, `2130706433`) to dotted quads.
    let host = match parsed.host_str() {
        Some(h) if h.starts_with('[') => h
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<Ipv6Addr>()
            .map(|v6| UrlHost::Address(IpAddr::V6(v6)))
            .map_err(|_| UrlRefused("the base URL has an invalid IPv6 host".into()))?,
        Some(h) => match h.parse::<Ipv4Addr>() {
            Ok(v4) => UrlHost::Address(IpAddr::V4(v4)),
            Err(_) => UrlHost::Name(h.trim_end_matches('.').to_ascii_lowercase()),
        },
        None => return Err(UrlRefused("the base URL has no host".into())),
    };
    Ok((host, port))
}

fn check_name(name: &str, allow_private: bool) -> Result<(), UrlRefused> {
    if METADATA_HOSTS.contains(&name) {
        return Err(UrlRefused(format!(
            "the base URL points at a cloud metadata service ({name}), which is never allowed"
        )));
    }
    if (name == "localhost" || name.ends_with(".localhost")) && !allow_private {
        return Err(UrlRefused(format!(
            "the base URL points at a loopback address ({name}), which this gateway does not allow \
             (ALLOW_PRIVATE_PROVIDER_URLS=false)"
        )));
    }
    Ok(())
}

/// The check without DNS: address literals and known names.
pub fn check_url_as_written(url: &str, allow_private: bool) -> Result<(), UrlRefused> {
    match host_of(url)?.0 {
        UrlHost::Address(ip) => check_address(ip, allow_private),
        UrlHost::Name(name) => check_name(&name, allow_private),
    }
}

/// The full check: as written, then every address the name resolves to now. A name that does not resolve passes
/// (the connection-time resolver still guards it).
pub async fn check_url(url: &str, allow_private: bool) -> Result<(), UrlRefused> {
    check_url_as_written(url, allow_private)?;
    let (UrlHost::Name(name), port) = host_of(url)? else {
        return Ok(());
    };
    let lookup = tokio::net::lookup_host((name.as_str(), port));
    if let Ok(Ok(addresses)) = tokio::time::timeout(Duration::from_secs(3), lookup).await {
        for address in addresses {
            check_address(address.ip(), allow_private)?;
        }
    }
    Ok(())
}

/// The upstream client's DNS resolver: the system's answers minus refused addresses.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    pub allow_private: bool,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl GuardedResolver {
    /// The system's addresses for `host`, minus the refused ones; an error when none is left.
    async fn lookup(self, host: String) -> Result<Vec<SocketAddr>, BoxError> {
        check_name(&host.to_ascii_lowercase(), self.allow_private)?;
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
            .await?
            .filter(|a| check_address(a.ip(), self.allow_private).is_ok())
            .collect();
        if addresses.is_empty() {
            return Err(Box::new(UrlRefused(format!(
                "{host} resolves to no address this gateway may call"
            ))));
        }
        Ok(addresses)
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let lookup = self.lookup(name.as_str().to_owned());
        Box::pin(async move { Ok(Box::new(lookup.await?.into_iter()) as reqwest::dns::Addrs) })
    }
}

/// The direct client's resolver (hyper's connector asks a `tower` service).
impl tower_service::Service<hyper_util::client::legacy::connect::dns::Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, BoxError>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: hyper_util::client::legacy::connect::dns::Name) -> Self::Future {
        let lookup = self.lookup(name.as_str().to_owned());
        Box::pin(async move { Ok(lookup.await?.into_iter()) })
    }
}

/// Redirects are followed (at most 3) only to hosts whose address literal passes the guard; names are checked by
/// the resolver when the redirect connects.
pub fn redirect_policy(allow_private: bool) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= 3 {
            return attempt.error(UrlRefused("too many redirects".into()));
        }
        match check_url_as_written(attempt.url().as_str(), allow_private) {
            Ok(()) => attempt.follow(),
            Err(e) => attempt.error(e),
        }
    })
}

/// The resolver as the client builder wants it.
pub fn resolver(allow_private: bool) -> Arc<GuardedResolver> {
    Arc::new(GuardedResolver { allow_private })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(s: &str) -> AddressClass {
        classify(s.parse().unwrap())
    }

    #[test]
    fn classes() {
        assert!(matches!(
            class("169.254.169.254"),
            AddressClass::Forbidden(_)
        ));
        assert!(matches!(
            class("100.100.100.200"),
            AddressClass::Forbidden(_)
        ));
        assert!(matches!(class("fd00:ec2::254"), AddressClass::Forbidden(_)));
        assert!(matches!(class("fe80::1"), AddressClass::Forbidden(_)));
        assert!(matches!(
            class("::ffff:169.254.169.254"),
            AddressClass::Forbidden(_)
        ));
        assert!(matches!(class("0.0.0.0"), AddressClass::Forbidden(_)));
        assert_eq!(class("127.0.0.1"), AddressClass::Loopback);
        assert_eq!(class("::1"), AddressClass::Loopback);
        assert_eq!(class("::ffff:127.0.0.1"), AddressClass::Loopback);
        assert_eq!(class("10.1.2.3"), AddressClass::Private);
        assert_eq!(class("172.16.0.1"), AddressClass::Private);
        assert_eq!(class("192.168.1.1"), AddressClass::Private);
        assert_eq!(class("100.64.0.1"), AddressClass::Private);
        assert_eq!(class("fd12::1"), AddressClass::Private);
        assert_eq!(class("8.8.8.8"), AddressClass::Public);
        // IPv6 forms that embed an IPv4 address are judged by it.
        for embedded in [
            "::169.254.169.254",
            "::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
            "64:ff9b::169.254.169.254",
            "64:ff9b:1::a9fe:a9fe",
            "::ffff:0:169.254.169.254",
            "2001:0:4136:e378:8000:63bf:5601:5601", // Teredo, client 169.254.169.254 (inverted)
        ] {
            assert!(
                matches!(class(embedded), AddressClass::Forbidden(_)),
                "{embedded}"
            );
        }
        assert_eq!(class("::127.0.0.1"), AddressClass::Loopback);
        assert_eq!(class("2002:c0a8:0101::1"), AddressClass::Private);
        assert_eq!(class("2002:0808:0808::1"), AddressClass::Public);
        assert_eq!(
            class("::"),
            AddressClass::Forbidden("the unspecified address")
        );
        assert_eq!(class("2606:4700::1111"), AddressClass::Public);
    }

    #[test]
    fn urls_as_written() {
        for url in [
            "http://169.254.169.254/latest",
            "http://metadata.google.internal/computeMetadata/v1",
            "http://METADATA.google.internal./",
            "http://[fd00:ec2::254]/",
            "http://100.100.100.200/",
        ] {
            assert!(check_url_as_written(url, true).is_err(), "{url}");
        }
        assert!(check_url_as_written("http://0xa9.254.169.254/", true).is_err());
        assert!(check_url_as_written("http://2852039166/", true).is_err());
        assert!(check_url_as_written("http://127.0.0.1:8080/v1", true).is_ok());
        assert!(check_url_as_written("http://127.0.0.1:8080/v1", false).is_err());
        assert!(check_url_as_written("http://localhost:8080/v1", false).is_err());
        assert!(check_url_as_written("http://192.168.1.5/v1", false).is_err());
        assert!(check_url_as_written("https://api.groq.com/openai/v1", false).is_ok());
    }

    #[tokio::test]
    async fn resolved_names_are_checked() {
        assert!(check_url("http://localhost:1/v1", true).await.is_ok());
        assert!(check_url("http://localhost:1/v1", false).await.is_err());
    }
}
