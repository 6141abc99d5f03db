//! Context handoff (`FREELLMAPI_CONTEXT_HANDOFF=on_model_switch`): when the model serving a conversation changes
//! between turns — a failover, a profile's rotation, `auto` — the new model gets a short system note saying that
//! the earlier assistant turns came from another model, so it continues them consistently instead of disowning
//! them.
//!
//! A conversation is recognised without any client cooperation: it is the user plus the text of its first system
//! message and its first user message (clients resend the whole history every turn, so those never change). The
//! gateway remembers, per conversation, the model that served the last turn (in memory, up to
//! [`MAX_CONVERSATIONS`], forgotten after [`TTL`]). A request with no assistant turn yet starts a conversation and
//! never gets a note.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

pub const MAX_CONVERSATIONS: usize = 10_000;
pub const TTL: Duration = Duration::from_secs(6 * 3600);

/// A conversation's identity.
pub type ConversationId = [u8; 32];

#[derive(Deserialize)]
struct Body<'a> {
    #[serde(borrow)]
    messages: Vec<Message<'a>>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    role: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
}

/// What the handoff needs to know about one chat request.
#[derive(Debug, Clone, Copy)]
pub struct Turn {
    pub conversation: ConversationId,
    /// The request already holds an assistant turn (a continuation).
    pub continues: bool,
}

/// Recognises the conversation of a chat body (`None` when the body has no usable `messages`).
pub fn recognise(user_id: &str, body: &[u8]) -> Option<Turn> {
    let parsed: Body<'_> = serde_json::from_slice(body).ok()?;
    let first = |role: &str| {
        parsed
            .messages
            .iter()
            .find(|m| m.role == role)
            .and_then(|m| m.content)
            .map_or("", |c| c.get())
    };
    let mut hash = Sha256::new();
    hash.update(user_id.as_bytes());
    hash.update([0]);
    hash.update(first("system").as_bytes());
    hash.update([0]);
    hash.update(first("user").as_bytes());
    Some(Turn {
        conversation: hash.finalize().into(),
        continues: parsed.messages.iter().any(|m| m.role == "assistant"),
    })
}

/// The last model of each recent conversation.
#[derive(Debug, Default)]
pub struct Conversations {
    last: Mutex<HashMap<ConversationId, (String, Instant)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Conversations {
    /// The model that served the conversation's previous turn, if it is not `model`.
    pub fn switched_from(&self, turn: &Turn, model: &str, now: Instant) -> Option<String> {
        if !turn.continues {
            return None;
        }
        let last = lock(&self.last);
        let (previous, at) = last.get(&turn.conversation)?;
        (previous != model && now.saturating_duration_since(*at) < TTL).then(|| previous.clone())
    }

    /// Remembers that `model` served the conversation's latest turn.
    pub fn served(&self, turn: &Turn, model: &str, now: Instant) {
        let mut last = lock(&self.last);
        if last.len() >= MAX_CONVERSATIONS && !last.contains_key(&turn.conversation) {
            last.retain(|_, (_, at)| now.saturating_duration_since(*at) < TTL);
            if last.len() >= MAX_CONVERSATIONS {
                // Still full of live conversations: forget the older half.
                let mut ages: Vec<Instant> = last.values().map(|(_, at)| *at).collect();
                ages.sort_unstable();
                let cutoff = ages[ages.len() / 2];
                last.retain(|_, (_, at)| *at > cutoff);
            }
        }
        last.insert(turn.conversation, (model.to_owned(), now));
    }
}

/// The body with a handoff note inserted after the leading system messages.
pub fn with_note(body: &[u8], previous: &str, current: &str) -> Option<Bytes> {
    let mut value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let messages = value.get_mut("messages")?.as_array_mut()?;
    let at = messages
        .iter()
        .take_while(|m| m.get("role").and_then(|r| r.as_str()) == Some("system"))
        .count();
    let note = format!(
        "Context handoff: the earlier assistant turns of this conversation were written by the model `{previous}`; \
         you are `{current}`, continuing the same conversation. Treat those turns as your own: keep their facts, \
         decisions and style consistent."
    );
    messages.insert(at, serde_json::json!({ "role": "system", "content": note }));
    serde_json::to_vec(&value).ok().map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: &[u8] = br#"{"model":"m","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Plan a trip"}]}"#;
    const SECOND: &[u8] = br#"{"model":"m","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Plan a trip"},{"role":"assistant","content":"Rome, 3 days."},{"role":"user","content":"Cheaper?"}]}"#;

    #[tokio::test(start_paused = true)]
    async fn a_switch_between_turns_is_noticed_once() {
        let book = Conversations::default();
        let first = recognise("u", FIRST).unwrap();
        let second = recognise("u", SECOND).unwrap();
        assert_eq!(first.conversation, second.conversation);
        assert!(!first.continues && second.continues);
        let now = Instant::now();
        assert_eq!(book.switched_from(&first, "a", now), None);
        book.served(&first, "a", now);
        assert_eq!(book.switched_from(&second, "a", now), None, "same model");
        assert_eq!(book.switched_from(&second, "b", now).as_deref(), Some("a"));
        book.served(&second, "b", now);
        assert_eq!(book.switched_from(&second, "b", now), None);
        // Another user's identical conversation is another conversation.
        assert_ne!(
            recognise("v", SECOND).unwrap().conversation,
            second.conversation
        );
        tokio::time::advance(TTL).await;
        assert_eq!(
            book.switched_from(&second, "c", Instant::now()),
            None,
            "forgotten"
        );
    }

    #[test]
    fn the_note_follows_the_system_prompt() {
        let out = with_note(SECOND, "a", "b").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let messages = v["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 5);
        assert_eq!(messages[0]["content"], "Be brief.");
        assert_eq!(messages[1]["role"], "system");
        assert!(messages[1]["content"].as_str().unwrap().contains("`a`"));
        assert_eq!(messages[2]["content"], "Plan a trip");
    }

    #[tokio::test(start_paused = true)]
    async fn the_book_stays_bounded() {
        let book = Conversations::default();
        let now = Instant::now();
        for i in 0..(MAX_CONVERSATIONS + 50) {
            let turn = Turn {
                conversation: Sha256::digest(i.to_le_bytes()).into(),
                continues: false,
            };
            book.served(&turn, "m", now + Duration::from_millis(i as u64));
        }
        assert!(lock(&book.last).len() <= MAX_CONVERSATIONS);
    }
}
