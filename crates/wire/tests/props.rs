//! Property tests of the wire pieces the request path reads: the SSE splitter gives the same events however the
//! stream is cut; the request views and chunk inspection never panic; the usage-chunk filter keeps every other
//! byte.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use fuzz_inputs::{body_bytes, chunks, json_value, sse_stream};
use proptest::prelude::*;

fn events_of(parts: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut splitter = wire::SseSplitter::default();
    let mut events = Vec::new();
    for part in parts {
        splitter.push(part, |e| events.push(e.to_vec()));
    }
    splitter.finish(|e| events.push(e.to_vec()));
    events
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_splitter_does_not_care_where_the_stream_is_cut((bytes, cuts) in sse_stream()) {
        let whole = events_of(std::slice::from_ref(&bytes));
        let cut = events_of(&chunks(&bytes, &cuts));
        prop_assert_eq!(whole, cut);
    }

    #[test]
    fn request_views_refuse_or_read(body in body_bytes()) {
        if let Ok(view) = wire::ChatRequestView::parse(&body) {
            let _ = view.estimated_prompt_tokens();
        }
        if let Ok(view) = wire::EmbeddingsRequestView::parse(&body) {
            let _ = view.estimated_tokens();
        }
    }

    #[test]
    fn chunk_inspection_never_panics(event in prop_oneof![
        json_value().prop_map(|v| v.to_string().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..128),
    ]) {
        let _ = wire::inspect_chunk(&event);
    }

    #[test]
    fn usage_is_asked_for_without_changing_the_rest(body in body_bytes()) {
        if let Some(asked) = wire::stream_usage::with_usage_requested(&body) {
            let before: serde_json::Value = match serde_json::from_slice(&body) {
                Ok(v) => v,
                // Not JSON to begin with: nothing to compare, the gateway forwards what the client sent.
                Err(_) => return Ok(()),
            };
            let mut after: serde_json::Value = serde_json::from_slice(&asked).unwrap();
            prop_assert_eq!(&after["stream_options"]["include_usage"], &serde_json::json!(true));
            after.as_object_mut().unwrap().remove("stream_options");
            prop_assert_eq!(before, after);
        }
    }

    #[test]
    fn the_usage_filter_only_takes_out_usage_only_events((bytes, cuts) in sse_stream()) {
        let mut out = Vec::new();
        for part in chunks(&bytes, &cuts) {
            wire::stream_usage::without_usage_events(&part, |b| out.extend_from_slice(b));
        }
        // What was taken out are whole usage-only events: the rest comes through in order.
        let kept = events_of(std::slice::from_ref(&out));
        let all: Vec<Vec<u8>> = events_of(std::slice::from_ref(&bytes));
        for e in &kept {
            prop_assert!(all.contains(e), "an event that was not in the input came out");
        }
        prop_assert!(kept.len() <= all.len());
        if !bytes.windows(7).any(|w| w == b"\"usage\"") {
            prop_assert_eq!(out, bytes);
        }
    }
}
