//! Usage for streams whose client did not ask for it. The gateway asks the upstream anyway
//! (`stream_options.include_usage`), so that its token counts come from the provider rather than from an estimate,
//! and takes the extra usage-only chunk (`"choices":[]` and `"usage"`) out of what the client receives.

use std::sync::LazyLock;

use memchr::memmem::Finder;

static STREAM_OPTIONS: LazyLock<Finder<'static>> =
    LazyLock::new(|| Finder::new(b"\"stream_options\""));
static USAGE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"usage\""));
static EMPTY_CHOICES: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"choices\":[]"));

/// The body with `"stream_options":{"include_usage":true}` added, if it has no `stream_options` of its own; `None`
/// when it has (the client chose) or is not a JSON object. Every other byte is kept.
pub fn with_usage_requested(body: &[u8]) -> Option<Vec<u8>> {
    if STREAM_OPTIONS.find(body).is_some() {
        return None;
    }
    let open = body.iter().position(|b| !b.is_ascii_whitespace())?;
    if body[open] != b'{' {
        return None;
    }
    let rest = &body[open + 1..];
    let empty = rest.iter().all(|b| b.is_ascii_whitespace() || *b == b'}');
    const FIELD: &[u8] = br#""stream_options":{"include_usage":true}"#;
    let mut out = Vec::with_capacity(body.len() + FIELD.len() + 1);
    out.extend_from_slice(&body[..=open]);
    out.extend_from_slice(FIELD);
    if !empty {
        out.push(b',');
    }
    out.extend_from_slice(rest);
    Some(out)
}

/// Hands `keep` the bytes of `chunk` without its usage-only events (`data: {…"choices":[]…"usage":…}` up to the
/// blank line that ends it), in order. An event split across chunks is passed as it is; a chunk without `"usage"` is
/// handed over whole at once.
pub fn without_usage_events(chunk: &[u8], mut keep: impl FnMut(&[u8])) {
    let mut from = 0;
    while let Some(hit) = USAGE.find(&chunk[from..]).map(|i| from + i) {
        // The event holding the hit: from just after the blank line before it to the blank line after it.
        let start = chunk[from..hit]
            .windows(2)
            .rposition(|w| w == b"\n\n")
            .map_or(from, |i| from + i + 2);
        let Some(end) = chunk[hit..]
            .windows(2)
            .position(|w| w == b"\n\n")
            .map(|i| hit + i + 2)
        else {
            break;
        };
        let usage_only = chunk[start..].starts_with(b"data:")
            && EMPTY_CHOICES.find(&chunk[start..end]).is_some();
        if usage_only {
            keep(&chunk[from..start]);
        } else {
            keep(&chunk[from..end]);
        }
        from = end;
    }
    keep(&chunk[from..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_requested_unless_the_client_set_stream_options() {
        let out = with_usage_requested(br#" {"model":"m","stream":true}"#).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#" {"stream_options":{"include_usage":true},"model":"m","stream":true}"#
        );
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert!(with_usage_requested(br#"{"stream_options":{"include_usage":false}}"#).is_none());
        assert!(with_usage_requested(b"[1]").is_none());
        assert_eq!(
            with_usage_requested(b"{}").unwrap(),
            br#"{"stream_options":{"include_usage":true}}"#
        );
    }

    fn filtered(chunk: &str) -> String {
        let mut out = Vec::new();
        without_usage_events(chunk.as_bytes(), |b| out.extend_from_slice(b));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn only_the_usage_only_event_is_taken_out() {
        let content = "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n";
        let usage = "data: {\"id\":\"x\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\n";
        let done = "data: [DONE]\n\n";
        assert_eq!(
            filtered(&format!("{content}{usage}{done}")),
            format!("{content}{done}")
        );
        assert_eq!(filtered(usage), "");
        assert_eq!(filtered(content), content);
        // A final content chunk that carries usage itself (some platforms do) stays: it has choices.
        let both = "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":3}}\n\n";
        assert_eq!(filtered(&format!("{both}{done}")), format!("{both}{done}"));
        // The word in content is not an event of its own.
        let word = "data: {\"choices\":[{\"delta\":{\"content\":\"\\\"usage\\\"\"}}]}\n\n";
        assert_eq!(filtered(word), word);
        // Half an event: passed on as it is.
        assert_eq!(
            filtered("data: {\"choices\":[],\"usage\":{"),
            "data: {\"choices\":[],\"usage\":{"
        );
    }
}
