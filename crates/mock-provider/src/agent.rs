//! The `agent` scenario: one scripted turn of a coding agent, so real agents (Codex CLI, Claude Code, Gemini CLI)
//! can be driven end to end against the gateway without a model.
//!
//! The task is written into the prompt as `<<path:/abs/file>>` and `<<content:text>>`. While the conversation has
//! no tool result yet, the answer is one tool call that writes `text` to the file, through whichever file or shell
//! tool the agent offers (see [`TOOLS`]); once a tool result is in the conversation, the answer is a short final
//! text. Streamed or not, as the request asks.

use serde_json::{json, Value};

/// The tools tried, in order, and how each one's arguments write the file.
const TOOLS: &[&str] = &[
    "Write",
    "write_file",
    "exec_command",
    "shell_command",
    "shell",
    "Bash",
    "run_shell_command",
    "local_shell",
];

/// The final answer once the tool ran.
pub(crate) const FINAL_TEXT: &str = "Done: the file is written.";

fn marker<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<<{name}:");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find(">>")? + start;
    Some(&text[start..end])
}

fn texts(message: &Value) -> String {
    match message.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn tool_names(req: &Value) -> Vec<String> {
    req.get("tools")
        .and_then(Value::as_array)
        .map(|tools| {
            tools
                .iter()
                .filter_map(|t| t.pointer("/function/name").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// What this turn answers: a tool call (name, JSON arguments) or the final text.
pub(crate) enum Turn {
    Call { name: String, arguments: String },
    Final(String),
}

pub(crate) fn next_turn(req: &Value) -> Turn {
    let messages = req
        .get("messages")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if messages
        .iter()
        .any(|m| m.get("role").and_then(Value::as_str) == Some("tool"))
    {
        return Turn::Final(FINAL_TEXT.to_owned());
    }
    let prompt: String = messages.iter().map(texts).collect::<Vec<_>>().join("\n");
    let (Some(path), Some(content)) = (marker(&prompt, "path"), marker(&prompt, "content")) else {
        return Turn::Final(
            "No task found: put <<path:…>> and <<content:…>> in the prompt.".to_owned(),
        );
    };
    let offered = tool_names(req);
    let Some(tool) = TOOLS.iter().find(|t| offered.iter().any(|o| o == *t)) else {
        return Turn::Final(format!(
            "No file or shell tool among: {}",
            offered.join(", ")
        ));
    };
    let script = format!("printf %s {} > {}", shell_quote(content), shell_quote(path));
    let arguments = match *tool {
        "Write" => json!({ "file_path": path, "content": content }),
        "write_file" => json!({ "file_path": path, "content": content }),
        "exec_command" => json!({ "cmd": script }),
        "shell" | "local_shell" => json!({ "command": ["bash", "-lc", script] }),
        _ => json!({ "command": script }),
    };
    Turn::Call {
        name: (*tool).to_owned(),
        arguments: arguments.to_string(),
    }
}

/// A complete `chat.completion` for `turn`.
pub(crate) fn completion(id: u64, created: u64, model: &str, prompt: u64, turn: &Turn) -> String {
    let (message, finish) = match turn {
        Turn::Call { name, arguments } => (
            json!({ "role": "assistant", "content": null, "tool_calls": [{
                "id": format!("call_agent_{id}"), "type": "function",
                "function": { "name": name, "arguments": arguments } }] }),
            "tool_calls",
        ),
        Turn::Final(text) => (json!({ "role": "assistant", "content": text }), "stop"),
    };
    json!({
        "id": format!("chatcmpl-mock-{id}"), "object": "chat.completion", "created": created, "model": model,
        "choices": [{ "index": 0, "message": message, "finish_reason": finish }],
        "usage": { "prompt_tokens": prompt, "completion_tokens": 12, "total_tokens": prompt + 12 },
    })
    .to_string()
}

/// The same answer as a whole `chat.completion.chunk` event stream.
pub(crate) fn stream(
    id: u64,
    created: u64,
    model: &str,
    prompt: u64,
    usage: bool,
    turn: &Turn,
) -> String {
    let chunk = |delta: Value, finish: Value| {
        let event = json!({
            "id": format!("chatcmpl-mock-{id}"), "object": "chat.completion.chunk", "created": created,
            "model": model, "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
        });
        format!("data: {event}\n\n")
    };
    let mut out = chunk(json!({ "role": "assistant", "content": "" }), Value::Null);
    let finish = match turn {
        Turn::Call { name, arguments } => {
            let (head, tail) = arguments.split_at(arguments.len() / 2);
            out += &chunk(
                json!({ "tool_calls": [{ "index": 0, "id": format!("call_agent_{id}"), "type": "function",
                    "function": { "name": name, "arguments": head } }] }),
                Value::Null,
            );
            out += &chunk(
                json!({ "tool_calls": [{ "index": 0, "function": { "arguments": tail } }] }),
                Value::Null,
            );
            "tool_calls"
        }
        Turn::Final(text) => {
            for word in text.split_inclusive(' ') {
                out += &chunk(json!({ "content": word }), Value::Null);
            }
            "stop"
        }
    };
    out += &chunk(json!({}), json!(finish));
    if usage {
        let event = json!({
            "id": format!("chatcmpl-mock-{id}"), "object": "chat.completion.chunk", "created": created,
            "model": model, "choices": [],
            "usage": { "prompt_tokens": prompt, "completion_tokens": 12, "total_tokens": prompt + 12 },
        });
        out += &format!("data: {event}\n\n");
    }
    out + "data: [DONE]\n\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_a_tool_call_through_the_offered_tool_then_the_final_text() {
        let req = json!({
            "messages": [{ "role": "user", "content": "Please <<path:/tmp/x y.txt>> <<content:it's done>>" }],
            "tools": [{ "type": "function", "function": { "name": "Read" } },
                      { "type": "function", "function": { "name": "Bash" } }],
        });
        let Turn::Call { name, arguments } = next_turn(&req) else {
            panic!("expected a tool call");
        };
        assert_eq!(name, "Bash");
        let args: Value = serde_json::from_str(&arguments).unwrap();
        assert_eq!(
            args["command"],
            r#"printf %s 'it'\''s done' > '/tmp/x y.txt'"#
        );
        let mut done = req.clone();
        done["messages"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "role": "tool", "tool_call_id": "c", "content": "ok" }));
        assert!(matches!(next_turn(&done), Turn::Final(t) if t == FINAL_TEXT));
        let sse = stream(1, 0, "m", 5, true, &next_turn(&req));
        assert!(
            sse.ends_with("data: [DONE]\n\n") && sse.contains(r#""finish_reason":"tool_calls""#)
        );
    }
}
