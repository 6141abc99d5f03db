//! `GET /api/openapi.json`: the OpenAPI 3.1 description of every `/api` and `/v1` route, hand-written in
//! `openapi.json` and compiled in. A test walks the route declarations of this crate's sources and fails when a
//! served route is missing from the document (or the document names one that is not served).

use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::{header, HeaderValue};

use crate::runtime::state::AppState;

pub const DOCUMENT: &str = include_str!("openapi.json");

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/openapi.json", get(document))
}

async fn document() -> Response {
    let mut response = DOCUMENT.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    const METHODS: &[&str] = &["get", "post", "patch", "put", "delete", "any"];
    // (`put` is matched as a call `put(`; `.put(` inside a chain counts too.)

    /// Every `(method, path)` declared with `.route("path", method(handler).method(handler)…)` in `source`.
    fn declared_routes(source: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut rest = source;
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            let Some(open) = rest.find('"') else { break };
            let Some(len) = rest[open + 1..].find('"') else {
                break;
            };
            let path = &rest[open + 1..open + 1 + len];
            // The handlers run until the parenthesis that closes `.route(`.
            let after = &rest[open + 2 + len..];
            let (mut depth, mut end) = (1i32, after.len());
            for (i, c) in after.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let handlers = &after[..end];
            for method in METHODS {
                let call = format!("{method}(");
                let mut from = 0;
                while let Some(i) = handlers[from..].find(&call) {
                    let start = from + i;
                    let before = handlers[..start].chars().last();
                    if before.is_none_or(|c| !(c.is_alphanumeric() || c == '_')) {
                        out.push(((*method).to_owned(), path.to_owned()));
                    }
                    from = start + call.len();
                }
            }
        }
        out
    }

    #[test]
    fn every_served_route_is_documented_and_nothing_more() {
        let mut files = Vec::new();
        let mut dirs = vec![std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    files.push(path);
                }
            }
        }
        let mut served = BTreeSet::new();
        for path in files {
            {
                let source = std::fs::read_to_string(&path).unwrap();
                // This file's own test code mentions `.route(` in strings; only the router above counts.
                let source = source.split("#[cfg(test)]").next().unwrap_or("");
                for (method, route) in declared_routes(source) {
                    // Catch-alls answer "unknown route" in the error shape; they are not operations.
                    if route.contains("{*rest}") || method == "any" {
                        continue;
                    }
                    served.insert((method, route.replace("{*", "{")));
                }
            }
        }
        assert!(
            served.len() > 25,
            "the route walk found too little: {served:?}"
        );
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                if METHODS.contains(&method.as_str()) {
                    documented.insert((method.clone(), path.clone()));
                }
            }
        }
        let missing: Vec<_> = served.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(&served).collect();
        assert!(
            missing.is_empty(),
            "served but not in openapi.json: {missing:?}"
        );
        assert!(
            extra.is_empty(),
            "in openapi.json but not served: {extra:?}"
        );
    }

    #[test]
    fn every_operation_documents_the_error_shape() {
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).unwrap();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                if method == "parameters" {
                    continue;
                }
                // The Gemini surface (and its methods under `/v1`) answers errors in Google's shape; everything else
                // in the gateway's.
                let gemini = path.starts_with("/v1beta/") || op["operationId"] == "geminiCallV1";
                let expected = if gemini {
                    "#/components/responses/GoogleError"
                } else {
                    "#/components/responses/Error"
                };
                assert_eq!(
                    op["responses"]["default"]["$ref"], expected,
                    "{method} {path}"
                );
            }
        }
    }

    #[test]
    fn the_route_walk_reads_multi_line_declarations() {
        let source = r#"Router::new()
            .route("/a", get(x))
            .route(
                "/b/{id}",
                patch(update).delete(remove),
            )
            .route("/c", axum::routing::any(y))"#;
        assert_eq!(
            declared_routes(source),
            [
                ("get".to_owned(), "/a".to_owned()),
                ("patch".to_owned(), "/b/{id}".to_owned()),
                ("delete".to_owned(), "/b/{id}".to_owned()),
                ("any".to_owned(), "/c".to_owned()),
            ]
        );
    }
}
