//! Browser-facing protection of `/api` and `/v1`, one middleware in front of every route:
//! - **CORS**: the dashboard's own origin (the request's `Host`) and `DASHBOARD_ORIGINS` may call from a browser,
//!   with credentials; a preflight from any other origin is refused (403), and its responses carry no CORS headers.
//! - **CSRF**: a state-changing `/api` request (POST, PUT, PATCH, DELETE) whose `Origin` — or, without one, whose
//!   `Referer` — is not an allowed origin is refused with 403, whatever its credentials; so is one a browser marks
//!   `Sec-Fetch-Site: cross-site` unless it comes from one of `DASHBOARD_ORIGINS`. This comes on top of the SameSite=Strict cookie and the `application/json`
//!   requirement (which a cross-site form cannot meet without a preflight).
//! - **DNS rebinding**: a browser request (one with `Origin` or `Sec-Fetch-Site`) whose `Host` is not a name the
//!   gateway is served under is refused with 403 `host_not_allowed`, so a page on an attacker's domain that resolves
//!   to the gateway's address is never "the gateway's own origin". The names are [`AllowedHosts`]: by default, on a
//!   loopback-bound gateway, `localhost`, `*.localhost` and IP literals; anywhere else any name (the operator names
//!   them with `ALLOWED_HOSTS`). The hosts of `DASHBOARD_ORIGINS` are always allowed. Non-browser clients (SDKs,
//!   agents, curl) send neither header and are never affected.
//! - **Headers**: `/api` answers are `no-store` and carry `nosniff`, `X-Frame-Options: DENY` and
//!   `Referrer-Policy: no-referrer`.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use wire::{ApiError, ErrorType};

use crate::error::error_response;

const ALLOWED_METHODS: &str = "GET, POST, PATCH, PUT, DELETE, OPTIONS";
const ALLOWED_HEADERS: &str = "authorization, content-type, x-request-id, x-api-key, x-goog-api-key, anthropic-version, anthropic-beta";

/// `scheme://host[:port]` of an origin or URL, lowercase, without path or trailing slash; `None` if it has none.
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.trim().split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    if scheme.is_empty() || authority.is_empty() || authority.contains('@') {
        return None;
    }
    Some(format!("{scheme}://{authority}").to_ascii_lowercase())
}

/// Whether `origin` may act on this gateway from a browser: it is the gateway's own (its authority is the
/// request's `Host`, or the `X-Forwarded-Host` a proxy set), or one of `DASHBOARD_ORIGINS`.
fn origin_allowed(origin: &str, headers: &HeaderMap, configured: &[String]) -> bool {
    let Some(origin) = origin_of(origin) else {
        return false;
    };
    if configured.contains(&origin) {
        return true;
    }
    let authority = origin.split_once("://").map_or("", |(_, a)| a);
    [header::HOST.as_str(), "x-forwarded-host"]
        .iter()
        .filter_map(|name| headers.get(*name).and_then(|v| v.to_str().ok()))
        .any(|host| host.trim().eq_ignore_ascii_case(authority))
}

/// The host names a browser may reach the gateway under (see the module comment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedHosts {
    /// Any name (`ALLOWED_HOSTS=*`, and the default when the gateway listens beyond loopback).
    Any,
    /// `localhost`, `*.localhost`, IP literals, and these names (lowercase; `.example.com` also matches its
    /// subdomains).
    Listed(Vec<String>),
}

impl AllowedHosts {
    /// The rule for `ALLOWED_HOSTS` (comma-separated names, `*` for any; empty: the default for `bind`, the
    /// listening address) plus the hosts of `origins` (`DASHBOARD_ORIGINS`).
    pub fn new(setting: &str, bind: &str, origins: &[String]) -> Self {
        let names: Vec<String> = setting
            .split(',')
            .map(|n| n.trim().to_ascii_lowercase())
            .filter(|n| !n.is_empty())
            .collect();
        if names.iter().any(|n| n == "*") {
            return AllowedHosts::Any;
        }
        let loopback = bind == "localhost"
            || bind
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if names.is_empty() && !loopback {
            return AllowedHosts::Any;
        }
        let from_origins = origins.iter().filter_map(|o| {
            let authority = o.split_once("://")?.1;
            Some(host_name(authority).to_string())
        });
        AllowedHosts::Listed(names.into_iter().chain(from_origins).collect())
    }

    /// Whether a `Host` header value (with or without a port) names the gateway.
    pub fn allows(&self, host: &str) -> bool {
        let names = match self {
            AllowedHosts::Any => return true,
            AllowedHosts::Listed(names) => names,
        };
        let name = host_name(host.trim()).to_ascii_lowercase();
        if name == "localhost"
            || name.ends_with(".localhost")
            || name
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok()
        {
            return true;
        }
        names.iter().any(|n| match n.strip_prefix('.') {
            Some(domain) => name == domain || name.ends_with(n.as_str()),
            None => *n == name,
        })
    }
}

/// The name of a `host[:port]` authority (an IPv6 literal keeps its brackets).
fn host_name(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority
            .find(']')
            .map_or(authority, |end| &authority[..=end]);
    }
    authority
        .rsplit_once(':')
        .map_or(authority, |(name, _)| name)
}

/// A request a browser sent: browsers add `Origin` to every cross-origin and every non-GET request, and
/// `Sec-Fetch-Site` to every request.
fn from_browser(headers: &HeaderMap) -> bool {
    headers.contains_key(header::ORIGIN) || headers.contains_key("sec-fetch-site")
}

fn is_state_changing(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn header_str(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The CSRF rule for a state-changing request (see the module comment). A request without `Origin`, `Referer`
/// and `Sec-Fetch-Site` does not come from a browser page, so there is no forged cross-site request to stop. A
/// browser's `Sec-Fetch-Site: cross-site` is believed whatever else the request says: such a request passes only
/// from an origin in `DASHBOARD_ORIGINS` (the gateway's own origin is never cross-site to itself).
fn csrf_allowed(headers: &HeaderMap, configured: &[String]) -> bool {
    let cross_site =
        header_str(headers, "sec-fetch-site").is_some_and(|s| s.eq_ignore_ascii_case("cross-site"));
    let claimed =
        header_str(headers, header::ORIGIN).or_else(|| header_str(headers, header::REFERER));
    match claimed {
        Some(origin) if cross_site => origin_of(origin).is_some_and(|o| configured.contains(&o)),
        Some(origin) => origin_allowed(origin, headers, configured),
        None => !cross_site,
    }
}

fn refused(code: &'static str, message: &str) -> Response {
    error_response(&ApiError::new(
        403,
        ErrorType::PermissionError,
        code,
        message,
    ))
}

fn add_cors(response: &mut Response, origin: &str) {
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(
                "retry-after, x-request-id, x-freellmapi-provider, x-freellmapi-model, x-freellmapi-attempts",
            ),
        );
    }
}

fn add_api_headers(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
}

/// What the middleware needs from the settings.
#[derive(Debug)]
pub struct Inbound {
    /// `DASHBOARD_ORIGINS`.
    pub origins: Vec<String>,
    /// `/api` requests are answered 503 past this (`API_TIMEOUT_MS`; zero: never).
    pub api_timeout: std::time::Duration,
    /// The host names a browser may use (`ALLOWED_HOSTS`).
    pub hosts: AllowedHosts,
}

/// `/api` routes whose work is bounded by its own deadlines and may take longer than `API_TIMEOUT_MS`: the
/// playground (a relayed request that may wait in the queue) and the proxy pool's bulk tests and imports.
fn runs_long(path: &str) -> bool {
    path.starts_with("/api/playground") || path.starts_with("/api/proxies")
}

/// The middleware (installed by [`crate::app`]).
/// Its state is the list of extra allowed origins (`DASHBOARD_ORIGINS`), shared.
pub async fn protect(
    State(settings): State<std::sync::Arc<Inbound>>,
    request: Request,
    next: Next,
) -> Response {
    let configured = &settings.origins;
    let path = request.uri().path();
    let is_api = path == "/api" || path.starts_with("/api/");
    let is_v1 = path == "/v1" || path.starts_with("/v1/") || path.starts_with("/v1beta/");
    if !is_api && !is_v1 {
        return next.run(request).await;
    }
    let headers = request.headers();
    if from_browser(headers) {
        let host = header_str(headers, header::HOST).unwrap_or_default();
        if !settings.hosts.allows(host) {
            tracing::warn!(
                path,
                host,
                "browser request under a host name the gateway is not served as refused (DNS rebinding guard)"
            );
            let mut response = refused(
                "host_not_allowed",
                "this gateway is not served under this host name; add it to ALLOWED_HOSTS",
            );
            response
                .headers_mut()
                .append(header::VARY, HeaderValue::from_static("origin"));
            return response;
        }
    }
    let origin = header_str(headers, header::ORIGIN).map(str::to_owned);
    let cors_origin = origin
        .as_deref()
        .filter(|o| origin_allowed(o, headers, configured))
        .map(str::to_owned);
    let mut response = if request.method() == Method::OPTIONS
        && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        match &cors_origin {
            Some(_) => {
                let mut r = Response::new(axum::body::Body::empty());
                *r.status_mut() = StatusCode::NO_CONTENT;
                let h = r.headers_mut();
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static(ALLOWED_METHODS),
                );
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static(ALLOWED_HEADERS),
                );
                h.insert(
                    header::ACCESS_CONTROL_MAX_AGE,
                    HeaderValue::from_static("600"),
                );
                r
            }
            None => refused(
                "cors_origin_refused",
                "this origin may not call the gateway from a browser; add it to DASHBOARD_ORIGINS",
            ),
        }
    } else if is_api && is_state_changing(request.method()) && !csrf_allowed(headers, configured) {
        tracing::warn!(
            path,
            origin = origin.as_deref().unwrap_or("-"),
            "cross-site request refused"
        );
        refused(
            "cross_site_request",
            "cross-site request refused: this call must come from the dashboard's own origin or one in DASHBOARD_ORIGINS",
        )
    } else if is_api && !settings.api_timeout.is_zero() && !runs_long(path) {
        let path = path.to_owned();
        match tokio::time::timeout(settings.api_timeout, next.run(request)).await {
            Ok(response) => response,
            Err(_) => {
                // A stalled disk or database must not hang the dashboard: the caller hears why.
                tracing::warn!(
                    path,
                    "an /api request ran past API_TIMEOUT_MS and was abandoned"
                );
                error_response(&ApiError::new(
                    503,
                    ErrorType::ServiceUnavailable,
                    "api_timeout",
                    "the gateway could not complete this in time (its database is slow or unreachable); try again",
                ))
            }
        }
    } else {
        next.run(request).await
    };
    if let Some(origin) = &cors_origin {
        add_cors(&mut response, origin);
    }
    response
        .headers_mut()
        .append(header::VARY, HeaderValue::from_static("origin"));
    if is_api {
        add_api_headers(&mut response);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn origins_are_normalised() {
        assert_eq!(
            origin_of("HTTPS://Dash.Example.com:8443/path?q#f").as_deref(),
            Some("https://dash.example.com:8443")
        );
        assert_eq!(origin_of("null"), None);
        assert_eq!(origin_of("https://user@evil.example"), None);
    }

    #[test]
    fn host_names_a_browser_may_use() {
        let origins = vec!["https://dash.example.com".to_owned()];
        let local = AllowedHosts::new("", "127.0.0.1", &origins);
        for ok in [
            "localhost:3001",
            "LOCALHOST",
            "app.localhost:3001",
            "127.0.0.1:3001",
            "[::1]:3001",
            "10.0.0.5",
            "dash.example.com",
        ] {
            assert!(local.allows(ok), "{ok}");
        }
        for refused in [
            "evil.example:3001",
            "localhost.evil.example",
            "",
            "example.com",
        ] {
            assert!(!local.allows(refused), "{refused}");
        }
        assert_eq!(AllowedHosts::new("", "0.0.0.0", &[]), AllowedHosts::Any);
        assert_eq!(AllowedHosts::new("*", "127.0.0.1", &[]), AllowedHosts::Any);
        let listed = AllowedHosts::new("gw.lan, .corp.example", "0.0.0.0", &[]);
        assert!(listed.allows("gw.lan:3001"));
        assert!(listed.allows("a.corp.example"));
        assert!(listed.allows("corp.example"));
        assert!(!listed.allows("evilcorp.example"));
        assert!(!listed.allows("gw.lan.evil.example"));
    }

    #[test]
    fn csrf_rules() {
        let configured = vec!["https://dash.example.com".to_owned()];
        let ok = |pairs: &[(&str, &str)]| csrf_allowed(&headers(pairs), &configured);
        assert!(ok(&[("host", "gw:3001"), ("origin", "http://gw:3001")]));
        assert!(ok(&[
            ("host", "gw:3001"),
            ("origin", "https://dash.example.com")
        ]));
        assert!(!ok(&[
            ("host", "gw:3001"),
            ("origin", "https://evil.example")
        ]));
        assert!(!ok(&[("host", "gw:3001"), ("origin", "null")]));
        assert!(ok(&[
            ("host", "gw:3001"),
            ("referer", "http://gw:3001/keys")
        ]));
        assert!(!ok(&[
            ("host", "gw:3001"),
            ("referer", "https://evil.example/x")
        ]));
        assert!(!ok(&[
            ("host", "gw:3001"),
            ("sec-fetch-site", "cross-site")
        ]));
        assert!(ok(&[("host", "gw:3001")]));
        // A look-alike host does not pass as the same origin.
        assert!(!ok(&[
            ("host", "gw:3001"),
            ("origin", "http://gw:3001.evil.example")
        ]));
    }
}
