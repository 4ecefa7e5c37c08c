//! Anthropic Messages: a request's content blocks (text, `tool_use`,
//! `tool_result`, base64 `image`) read into a [`SeenRequest`], the prompt
//! cache's `(read, written)` tokens from its `cache_control` breakpoints,
//! and an answer written as a `message` (with a thinking block when the
//! request enabled thinking).

use std::collections::HashMap;

use serde_json::{Value, json};

use super::prompt_cache::Counted;
use super::seen::{SeenRequest, array_at, message, seen_image, str_at, text_of};
use super::serve::{Answer, arguments_object};

pub(super) fn parse(path: String, raw: Value, auth: Option<String>) -> SeenRequest {
    let mut messages = Vec::new();
    let mut call_names: HashMap<String, String> = HashMap::new();
    for wire in array_at(&raw, "messages") {
        let role = str_at(wire, "role");
        let content = wire.get("content").cloned().unwrap_or_default();
        let blocks = match content {
            Value::String(text) => vec![json!({"type": "text", "text": text})],
            Value::Array(blocks) => blocks,
            _ => Vec::new(),
        };
        let mut seen = message(
            if role == "assistant" {
                "assistant"
            } else {
                "user"
            },
            String::new(),
        );
        let mut has_text = false;
        for block in &blocks {
            match block
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default()
            {
                "text" => {
                    seen.text.push_str(&str_at(block, "text"));
                    has_text = true;
                }
                "tool_use" => {
                    let name = str_at(block, "name");
                    call_names.insert(str_at(block, "id"), name.clone());
                    let input = block.get("input").cloned().unwrap_or_default();
                    seen.tool_calls.push((name, input));
                }
                "image" => {
                    let source = block.get("source").cloned().unwrap_or_default();
                    if str_at(&source, "type") == "base64" {
                        seen.images.push(seen_image(
                            str_at(&source, "media_type"),
                            &str_at(&source, "data"),
                        ));
                    }
                }
                "tool_result" => {
                    let text = block.get("content").map(text_of).unwrap_or_default();
                    let mut result = message("tool", text);
                    result.tool_name = call_names.get(&str_at(block, "tool_use_id")).cloned();
                    messages.push(result);
                }
                _ => {}
            }
        }
        if seen.role == "assistant" || has_text {
            messages.push(seen);
        }
    }
    let tool_names = array_at(&raw, "tools")
        .iter()
        .map(|tool| str_at(tool, "name"))
        .collect();
    SeenRequest {
        path,
        model: str_at(&raw, "model"),
        system: raw.get("system").map(text_of).unwrap_or_default(),
        tool_names,
        messages,
        raw,
        auth,
    }
}

/// Anthropic cache tokens `(read, written)` out of `input`: the wire
/// messages before the last one with a breakpoint are read, that one is
/// written.
pub(super) fn cache(seen: &SeenRequest, input: usize) -> (usize, usize) {
    let last_marked = array_at(&seen.raw, "messages").iter().rposition(|message| {
        message
            .get("content")
            .and_then(Value::as_array)
            .is_some_and(|blocks| {
                blocks
                    .iter()
                    .any(|block| block.get("cache_control").is_some())
            })
    });
    match last_marked {
        None => (0, 0),
        Some(index) => {
            let read = (index * 10).min(input);
            (read, 10.min(input - read))
        }
    }
}

pub(super) fn body(
    seen: &SeenRequest,
    answer: Answer,
    sequence: usize,
    counted: Counted,
    output: usize,
) -> Value {
    let input = counted.input;
    let (read, written) = (counted.cached, counted.written);
    let mut content = Vec::new();
    if seen.raw.pointer("/thinking/type").and_then(Value::as_str) == Some("enabled") {
        content.push(json!({
            "type": "thinking",
            "thinking": "fake thoughts",
            "signature": format!("fake-signature-{sequence}"),
        }));
    }
    let stop_reason = match answer {
        Answer::Text(text) => {
            content.push(json!({"type": "text", "text": text}));
            "end_turn"
        }
        Answer::Calls(calls) => {
            for (index, (name, arguments)) in calls.into_iter().enumerate() {
                content.push(json!({
                    "type": "tool_use",
                    "id": format!("toolu_{sequence}_{index}"),
                    "name": name,
                    "input": arguments_object(&arguments),
                }));
            }
            "tool_use"
        }
    };
    json!({
        "id": format!("msg_fake_{sequence}"),
        "type": "message",
        "role": "assistant",
        "model": seen.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": {
            "input_tokens": input - read - written,
            "cache_read_input_tokens": read,
            "cache_creation_input_tokens": written,
            "output_tokens": output,
        },
    })
}
