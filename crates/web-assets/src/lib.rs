//! The dashboard's built files, embedded at compile time by `build.rs` (which runs the npm build of `web/` when
//! Node.js is available). Lookups are by URL path; content types come from the file extension.

mod generated {
    include!(concat!(env!("OUT_DIR"), "/assets.rs"));
}

/// Whether the real dashboard is embedded; when false only [`FALLBACK_PAGE`] is available.
pub const BUILT: bool = generated::BUILT;

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    pub bytes: &'static [u8],
    /// The same file gzip-compressed, for clients that accept it (text files the compression pays for).
    pub gzip: Option<&'static [u8]>,
    pub content_type: &'static str,
    /// Vite puts a content hash in every file name under `/assets/`: those can be cached forever.
    pub immutable: bool,
}

/// The file served at `path` (`/index.html`, `/assets/index-3f2a.js`, …).
pub fn get(path: &str) -> Option<Asset> {
    let (_, bytes, gzip) = generated::FILES.iter().find(|(url, ..)| *url == path)?;
    Some(Asset {
        bytes,
        gzip: *gzip,
        content_type: content_type(path),
        immutable: path.starts_with("/assets/"),
    })
}

/// The page for client-side routes: the dashboard's `index.html`, or the fallback page when it was not built.
pub fn index() -> Asset {
    get("/index.html").unwrap_or(Asset {
        bytes: FALLBACK_PAGE.as_bytes(),
        gzip: None,
        content_type: "text/html; charset=utf-8",
        immutable: false,
    })
}

fn content_type(path: &str) -> &'static str {
    let extension = path.rsplit_once('.').map_or("", |(_, e)| e);
    match extension {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Served when the binary was built without Node.js (or the front-end build failed).
pub const FALLBACK_PAGE: &str = concat!(
    "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">",
    "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>FreeLLMAPI</title>",
    "<style>body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:3rem auto;padding:0 1rem}",
    "code{background:#8882;padding:0 .3em;border-radius:4px}",
    "@media(prefers-color-scheme:dark){body{background:#111;color:#ddd}}</style></head><body>",
    "<h1>FreeLLMAPI is running</h1><p>Version ",
    env!("CARGO_PKG_VERSION"),
    ". The OpenAI-compatible API is at <code>/v1</code> and works without the dashboard.</p>",
    "<p>The dashboard was not built into this binary, because Node.js/npm was missing or the front-end build ",
    "failed when it was compiled. Install Node.js 20 or newer with npm, then rebuild: ",
    "<code>cargo run --release -p freellmapi</code> builds <code>web/</code> automatically.</p>",
    "<p>Meanwhile the admin API (<code>/api/auth/login</code>, <code>/api/keys</code>, ",
    "<code>/api/gateway-keys</code>) and the configuration file (<code>docs/configuration.md</code>) do everything.</p>",
    "<p>Health: <a href=\"/api/ping\"><code>/api/ping</code></a></p></body></html>"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_is_always_html() {
        let page = index();
        assert!(page.content_type.starts_with("text/html"));
        assert!(!page.bytes.is_empty());
    }

    #[test]
    fn content_types_by_extension() {
        assert_eq!(
            content_type("/assets/a.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type("/assets/a.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("/x"), "application/octet-stream");
    }
}
