//! Proxy URLs: `http://`, `https://`, `socks5://`, `socks5h://` and `socks4://`, with optional `user:password@`.
//! Parsed once into [`ProxyUrl`], whose `Display` and `Debug` never print the credentials.

use std::fmt;

use crate::guard::url_guard::UrlRefused;

/// The guard's words are about base URLs; here the subject is the proxy.
fn for_proxy(e: UrlRefused) -> UrlRefused {
    UrlRefused(e.0.replacen("the base URL", "the proxy", 1))
}

/// The protocols an outbound proxy may speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyScheme {
    /// HTTP proxy: CONNECT tunnels for https upstreams.
    Http,
    /// HTTP proxy reached over TLS.
    Https,
    /// SOCKS5, names resolved by the gateway.
    Socks5,
    /// SOCKS5, names resolved by the proxy.
    Socks5h,
    Socks4,
}

impl ProxyScheme {
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyScheme::Http => "http",
            ProxyScheme::Https => "https",
            ProxyScheme::Socks5 => "socks5",
            ProxyScheme::Socks5h => "socks5h",
            ProxyScheme::Socks4 => "socks4",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            ProxyScheme::Http => 80,
            ProxyScheme::Https => 443,
            _ => 1080,
        }
    }
}

/// Why a proxy URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyUrlError {
    #[error("proxy URL must start with http://, https://, socks5://, socks5h:// or socks4://")]
    BadScheme,
    #[error("proxy URL is not a valid URL: {0}")]
    BadUrl(String),
    #[error("proxy URL has no host")]
    NoHost,
    #[error(
        "proxy URL must be scheme://[user:password@]host:port, without a path, query or fragment"
    )]
    ExtraParts,
}

/// A validated proxy address with its optional credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    pub scheme: ProxyScheme,
    /// Host as written (IPv6 in brackets).
    pub host: String,
    pub port: u16,
    /// `user:password` as written in the URL (percent-encoded), never printed.
    credentials: Option<String>,
}

impl ProxyUrl {
    /// Parses `scheme://[user:password@]host[:port]`. A bare `host:port` is taken as an HTTP proxy.
    pub fn parse(text: &str) -> Result<Self, ProxyUrlError> {
        let text = text.trim();
        let with_scheme = if text.contains("://") {
            text.to_owned()
        } else {
            // Without a scheme, only `host:port` (a word alone is not taken for a proxy).
            let has_port = text.rsplit_once(':').is_some_and(|(_, port)| {
                !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
            });
            if !has_port {
                return Err(ProxyUrlError::BadScheme);
            }
            format!("http://{text}")
        };
        let (scheme_text, _) = with_scheme
            .split_once("://")
            .ok_or(ProxyUrlError::BadScheme)?;
        let scheme = match scheme_text.to_ascii_lowercase().as_str() {
            "http" => ProxyScheme::Http,
            "https" => ProxyScheme::Https,
            "socks5" => ProxyScheme::Socks5,
            "socks5h" => ProxyScheme::Socks5h,
            "socks4" => ProxyScheme::Socks4,
            _ => return Err(ProxyUrlError::BadScheme),
        };
        let parsed = reqwest::Url::parse(&with_scheme)
            // The parser's message never echoes the input, so it cannot leak a password.
            .map_err(|e| ProxyUrlError::BadUrl(e.to_string()))?;
        if !matches!(parsed.path(), "" | "/")
            || parsed.query().is_some()
            || parsed.fragment().is_some()
        {
            return Err(ProxyUrlError::ExtraParts);
        }
        // IPv6 hosts come back in brackets, as a URL needs them.
        let host = parsed.host_str().ok_or(ProxyUrlError::NoHost)?.to_owned();
        if host.is_empty() {
            return Err(ProxyUrlError::NoHost);
        }
        let port = parsed.port().unwrap_or(scheme.default_port());
        let credentials = (!parsed.username().is_empty() || parsed.password().is_some())
            .then(|| format!("{}:{}", parsed.username(), parsed.password().unwrap_or("")));
        Ok(Self {
            scheme,
            host,
            port,
            credentials,
        })
    }

    /// The same proxy with these credentials (`user:password`, as written in a URL), or none.
    pub fn with_credentials(mut self, credentials: Option<String>) -> Self {
        self.credentials = credentials.filter(|c| !c.is_empty());
        self
    }

    pub fn credentials(&self) -> Option<&str> {
        self.credentials.as_deref()
    }

    /// `scheme://host:port`: safe to store in clear, log and return.
    pub fn address(&self) -> String {
        format!("{}://{}:{}", self.scheme.as_str(), self.host, self.port)
    }

    /// `host:port`, for labels and events.
    pub fn host_port(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The outbound address guard applied to the proxy itself, as written (no DNS): a proxy is an outbound target
    /// like a provider base URL, so cloud-metadata and link-local addresses are refused always and loopback or
    /// private ones only when private provider URLs are allowed (a local Tor or Squid is a real use).
    pub fn check_as_written(&self, allow_private: bool) -> Result<(), UrlRefused> {
        crate::guard::url_guard::check_url_as_written(&self.guard_url(), allow_private)
            .map_err(for_proxy)
    }

    /// The full guard: as written, then every address the host resolves to now.
    pub async fn check(&self, allow_private: bool) -> Result<(), UrlRefused> {
        crate::guard::url_guard::check_url(&self.guard_url(), allow_private)
            .await
            .map_err(for_proxy)
    }

    fn guard_url(&self) -> String {
        format!("http://{}:{}/", self.host, self.port)
    }

    /// The proxy for reqwest, credentials included.
    pub fn to_reqwest(&self) -> Result<reqwest::Proxy, reqwest::Error> {
        let full = match &self.credentials {
            Some(c) => format!("{}://{c}@{}:{}", self.scheme.as_str(), self.host, self.port),
            None => self.address(),
        };
        reqwest::Proxy::all(full)
    }
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.address())
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let creds = if self.credentials.is_some() {
            "[redacted]@"
        } else {
            ""
        };
        write!(
            f,
            "ProxyUrl({}://{creds}{}:{})",
            self.scheme.as_str(),
            self.host,
            self.port
        )
    }
}

/// Whether requests to `base_url` may travel through a proxy. HTTPS always may. Plain HTTP never does — a proxy would
/// read the provider key in the `Authorization` header — except, when `allow_plain_http_loopback` is set, to a
/// loopback upstream (a local mock, in tests).
pub fn may_proxy(base_url: &str, allow_plain_http_loopback: bool) -> bool {
    let Ok(url) = reqwest::Url::parse(base_url) else {
        return false;
    };
    match url.scheme() {
        "https" => true,
        "http" if allow_plain_http_loopback => url.host_str().is_some_and(|host| {
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            bare.eq_ignore_ascii_case("localhost")
                || bare
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_address_guard_applies_to_proxies() {
        for refused in [
            "http://169.254.169.254:80",
            "socks5://[::169.254.169.254]:1080",
            "http://[2002:a9fe:a9fe::1]:3128",
            "http://metadata.google.internal:80",
        ] {
            let url = ProxyUrl::parse(refused).unwrap();
            let e = url.check_as_written(true).unwrap_err();
            assert!(e.0.starts_with("the proxy points at"), "{refused}: {e}");
            assert!(url.check(true).await.is_err(), "{refused}");
        }
        let local = ProxyUrl::parse("socks5h://127.0.0.1:9050").unwrap();
        assert!(local.check_as_written(true).is_ok());
        assert!(local.check_as_written(false).is_err());
        assert!(ProxyUrl::parse("http://localhost:3128")
            .unwrap()
            .check(false)
            .await
            .is_err());
    }

    #[test]
    fn parses_every_scheme_and_hides_credentials() {
        let p = ProxyUrl::parse("socks5h://alice:p%40ss@10.0.0.1:1080").unwrap();
        assert_eq!(p.scheme, ProxyScheme::Socks5h);
        assert_eq!(p.address(), "socks5h://10.0.0.1:1080");
        assert_eq!(p.credentials(), Some("alice:p%40ss"));
        assert!(!format!("{p} {p:?}").contains("p%40ss"));
        assert_eq!(
            ProxyUrl::parse("1.2.3.4:3128").unwrap().address(),
            "http://1.2.3.4:3128"
        );
        assert_eq!(ProxyUrl::parse("https://proxy.example").unwrap().port, 443);
        assert_eq!(
            ProxyUrl::parse("socks4://[::1]:9").unwrap().address(),
            "socks4://[::1]:9"
        );
        assert_eq!(ProxyUrl::parse("ftp://x:1"), Err(ProxyUrlError::BadScheme));
        assert_eq!(
            ProxyUrl::parse("http://x:1/path"),
            Err(ProxyUrlError::ExtraParts)
        );
        assert!(ProxyUrl::parse("http://:1").is_err());
        assert!(ProxyUrl::parse("garbage").is_err());
        assert!(p.to_reqwest().is_ok());
    }

    #[test]
    fn plain_http_upstreams_stay_direct() {
        assert!(may_proxy("https://api.groq.com/openai/v1", false));
        assert!(!may_proxy("http://example.com/v1", false));
        assert!(!may_proxy("http://example.com/v1", true));
        assert!(!may_proxy("http://127.0.0.1:9/v1", false));
        assert!(may_proxy("http://127.0.0.1:9/v1", true));
        assert!(may_proxy("http://localhost:9/v1", true));
    }
}
