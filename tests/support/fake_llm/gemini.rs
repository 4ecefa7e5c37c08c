//! Gemini generateContent: a request's `contents` (text, `inline_data`,
//! `functionCall`, `functionResponse`) read into a [`SeenRequest`], the model
//! taken from the path, and an answer written as a candidate (with thought
//! signatures on function calls unless thinking is off).

use serde_json::{Value, json};

use super::prompt_cache::Counted;
use super::seen::{SeenRequest, array_at, message, seen_image, str_at, text_of};
use super::serve::{Answer, arguments_object};

/// A Gemini `functionResponse.response` as text: the `result` or `error`
/// it wraps (a string as it is, anything else as JSON), else the object.
fn function_response_text(response: &Value) -> String {
    let inner = match response.as_object() {
        Some(object) if object.len() == 1 => object.get("result").or_else(|| object.get("error")),
        _ => None,
    };
    match inner.unwrap_or(response) {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

pub(super) fn parse(path: String, raw: Value, auth: Option<String>) -> SeenRequest {
    let model = path
        .strip_prefix("/v1beta/models/")
        .and_then(|rest| rest.split(':').next())
        .unwrap_or_default()
        .to_owned();
    let mut messages = Vec::new();
    for content in array_at(&raw, "contents") {
        let is_model = str_at(content, "role") == "model";
        let mut seen = message(if is_model { "assistant" } else { "user" }, String::new());
        let mut has_text = false;
        for part in array_at(content, "parts") {
            if let Some(text) = part.get("text").and_then(Value::as_str) {
                seen.text.push_str(text);
                has_text = true;
            } else if let Some(inline) = part.get("inline_data").or_else(|| part.get("inlineData"))
            {
                let media_type = inline
                    .get("mime_type")
                    .or_else(|| inline.get("mimeType"))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                seen.images
                    .push(seen_image(media_type.to_owned(), &str_at(inline, "data")));
            } else if let Some(call) = part.get("functionCall") {
                let args = call.get("args").cloned().unwrap_or_else(|| json!({}));
                seen.tool_calls.push((str_at(call, "name"), args));
            } else if let Some(response) = part.get("functionResponse") {
                let text = response
                    .get("response")
                    .map(function_response_text)
                    .unwrap_or_default();
                let mut result = message("tool", text);
                result.tool_name = Some(str_at(response, "name"));
                messages.push(result);
            }
        }
        if is_model || has_text {
            messages.push(seen);
        }
    }
    let tool_names = array_at(&raw, "tools")
        .iter()
        .flat_map(|tool| array_at(tool, "functionDeclarations"))
        .map(|declaration| str_at(declaration, "name"))
        .collect();
    let system = raw
        .pointer("/systemInstruction/parts")
        .map(text_of)
        .unwrap_or_default();
    SeenRequest {
        path,
        model,
        system,
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
    let thinking = seen
        .raw
        .pointer("/generationConfig/thinkingConfig/thinkingBudget")
        .and_then(Value::as_u64)
        != Some(0);
    let parts: Vec<Value> = match answer {
        Answer::Text(text) => vec![json!({"text": text})],
        Answer::Calls(calls) => calls
            .into_iter()
            .enumerate()
            .map(|(index, (name, arguments))| {
                let mut part =
                    json!({"functionCall": {"name": name, "args": arguments_object(&arguments)}});
                if thinking {
                    part["thoughtSignature"] = json!(format!("fake-signature-{sequence}-{index}"));
                }
                part
            })
            .collect(),
    };
    json!({
        "candidates": [{
            "content": {"role": "model", "parts": parts},
            "finishReason": "STOP",
            "index": 0,
        }],
        "usageMetadata": {
            "promptTokenCount": input,
            "candidatesTokenCount": output,
            "totalTokenCount": input + output,
            "cachedContentTokenCount": counted.cached,
        },
        "modelVersion": seen.model,
    })
}
