//! OpenAI Chat Completions: a request's messages (with `image_url` data
//! URLs) read into a [`SeenRequest`], and an answer written as a
//! `chat.completion` whose usage reports `cached_tokens`.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::prompt_cache::Counted;
use super::seen::{
    SeenImage, SeenRequest, arguments_value, array_at, message, seen_image, str_at, text_of,
};
use super::serve::Answer;

/// The images in an OpenAI message's `content` parts.
fn images(content: Option<&Value>) -> Vec<SeenImage> {
    let parts = content
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    parts
        .iter()
        .filter(|part| part.get("type").and_then(Value::as_str) == Some("image_url"))
        .filter_map(|part| part.pointer("/image_url/url").and_then(Value::as_str))
        .filter_map(|url| url.strip_prefix("data:"))
        .filter_map(|rest| rest.split_once(";base64,"))
        .map(|(media_type, data)| seen_image(media_type.to_owned(), data))
        .collect()
}

pub(super) fn parse(path: String, raw: Value, auth: Option<String>) -> SeenRequest {
    let mut system = Vec::new();
    let mut messages = Vec::new();
    let mut call_names: HashMap<String, String> = HashMap::new();
    for wire in array_at(&raw, "messages") {
        let text = wire.get("content").map(text_of).unwrap_or_default();
        match wire.get("role").and_then(Value::as_str).unwrap_or_default() {
            "system" | "developer" => system.push(text),
            "assistant" => {
                let mut seen = message("assistant", text);
                for call in array_at(wire, "tool_calls") {
                    let function = call.get("function").cloned().unwrap_or_default();
                    let name = str_at(&function, "name");
                    call_names.insert(str_at(call, "id"), name.clone());
                    seen.tool_calls
                        .push((name, arguments_value(&str_at(&function, "arguments"))));
                }
                messages.push(seen);
            }
            "tool" => {
                let mut seen = message("tool", text);
                seen.tool_name = call_names.get(&str_at(wire, "tool_call_id")).cloned();
                messages.push(seen);
            }
            _ => {
                let mut seen = message("user", text);
                seen.images = images(wire.get("content"));
                messages.push(seen);
            }
        }
    }
    let tool_names = array_at(&raw, "tools")
        .iter()
        .map(|tool| {
            tool.pointer("/function/name")
                .map(text_of)
                .unwrap_or_default()
        })
        .collect();
    SeenRequest {
        path,
        model: str_at(&raw, "model"),
        system: system.join("\n"),
        tool_names,
        messages,
        raw,
        auth,
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
    let (message, finish_reason) = match answer {
        Answer::Text(text) => (json!({"role": "assistant", "content": text}), "stop"),
        Answer::Calls(calls) => {
            let tool_calls: Vec<Value> = calls
                .into_iter()
                .enumerate()
                .map(|(index, (name, arguments))| {
                    json!({
                        "id": format!("call_{sequence}_{index}"),
                        "type": "function",
                        "function": {"name": name, "arguments": arguments},
                    })
                })
                .collect();
            let message = json!({"role": "assistant", "content": null, "tool_calls": tool_calls});
            (message, "tool_calls")
        }
    };
    json!({
        "id": format!("chatcmpl-fake-{sequence}"),
        "object": "chat.completion",
        "created": 0,
        "model": seen.model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {
            "prompt_tokens": input,
            "completion_tokens": output,
            "total_tokens": input + output,
            "prompt_tokens_details": {"cached_tokens": counted.cached, "audio_tokens": 0},
        },
    })
}
