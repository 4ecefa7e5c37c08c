//! The three real providers (OpenAI, Anthropic, Gemini) against the scripted
//! fake model server: text and usage, tool-call round trips, system prompt,
//! effort mapping, error classification, retries, redaction of echoed keys
//! and the bounds on answers (size, idle body).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use baton::domain::ToolSpec;
use baton::llm::anthropic::AnthropicProvider;
use baton::llm::gemini::GeminiProvider;
use baton::llm::openai::OpenAiProvider;
use baton::llm::retry::{RetryPolicy, with_retry};
use baton::llm::{
    Completion, CompletionRequest, Effort, Message, Provider, ProviderError, ProviderOptions,
    StopReason, ToolChoice, ToolResult,
};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::support::fake_llm::{FakeLlm, FakeReply, SeenRequest, Wire};

const WIRES: [Wire; 3] = [Wire::OpenAi, Wire::Anthropic, Wire::Gemini];
const SYSTEM: &str = "You are Baton, a helpful assistant.";
const KEY: &str = "test-key-123";

fn provider_for(wire: Wire, fake: &FakeLlm) -> Box<dyn Provider> {
    let key = Some(SecretString::from(KEY));
    let http = reqwest::Client::new();
    match wire {
        Wire::OpenAi => Box::new(OpenAiProvider::new("openai", fake.base_url(), key, http)),
        Wire::Anthropic => Box::new(AnthropicProvider::new(
            "anthropic",
            fake.base_url(),
            key,
            http,
        )),
        Wire::Gemini => Box::new(GeminiProvider::new("gemini", fake.base_url(), key, http)),
    }
}

fn tools() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "lookup".into(),
            description: "Looks something up.".into(),
            parameters: json!({"type": "object", "properties": {"q": {"type": "string"}}}),
        },
        ToolSpec {
            name: "clock".into(),
            description: "The time.".into(),
            parameters: json!({"type": "object", "properties": {}}),
        },
    ]
}

fn request(messages: Vec<Message>, effort: Effort) -> CompletionRequest {
    CompletionRequest {
        model: "test-model".into(),
        system: SYSTEM.into(),
        messages,
        tools: tools(),
        tool_choice: ToolChoice::Auto,
        effort,
        max_output_tokens: None,
        cache_key: None,
    }
}

async fn complete(provider: &dyn Provider, request: &CompletionRequest) -> Completion {
    provider
        .complete(request)
        .await
        .unwrap_or_else(|error| panic!("{}: {error}", provider.name()))
}

fn only_request(fake: &FakeLlm) -> SeenRequest {
    let mut requests = fake.requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    requests.remove(0)
}

#[tokio::test]
async fn text_answer_with_usage_and_system_prompt() {
    for wire in WIRES {
        let fake = FakeLlm::start(wire, |_| FakeReply::Text("Hello from the fake.".into())).await;
        let provider = provider_for(wire, &fake);
        let completion = complete(
            provider.as_ref(),
            &request(vec![Message::user("hi there")], Effort::Off),
        )
        .await;

        assert_eq!(
            completion.message.text.as_deref(),
            Some("Hello from the fake."),
            "{wire:?}"
        );
        assert!(completion.message.tool_calls.is_empty());
        assert_eq!(completion.stop, StopReason::EndTurn, "{wire:?}");
        assert!(completion.usage.input_tokens > 0, "{wire:?}");
        assert!(completion.usage.output_tokens > 0, "{wire:?}");

        let seen = only_request(&fake);
        assert_eq!(seen.system, SYSTEM, "{wire:?}");
        assert_eq!(seen.model, "test-model", "{wire:?}");
        assert_eq!(seen.last_user_text(), Some("hi there"), "{wire:?}");
        assert!(
            seen.has_tool("lookup") && seen.has_tool("clock"),
            "{wire:?}"
        );
        assert!(!seen.has_tool("spawn_worker"));
        let expected_auth = match wire {
            Wire::OpenAi => format!("Bearer {KEY}"),
            Wire::Anthropic | Wire::Gemini => KEY.to_owned(),
        };
        assert_eq!(
            seen.auth.as_deref(),
            Some(expected_auth.as_str()),
            "{wire:?}"
        );
        let expected_path = match wire {
            Wire::OpenAi => "/v1/chat/completions",
            Wire::Anthropic => "/v1/messages",
            Wire::Gemini => "/v1beta/models/test-model:generateContent",
        };
        assert_eq!(seen.path, expected_path);
        match wire {
            Wire::OpenAi => assert_eq!(seen.raw["messages"][0]["role"], "system"),
            Wire::Anthropic => {
                assert_eq!(seen.raw["system"][0]["text"], SYSTEM);
                assert_eq!(seen.raw["max_tokens"], 8192);
            }
            Wire::Gemini => assert_eq!(seen.raw["systemInstruction"]["parts"][0]["text"], SYSTEM),
        }
    }
}

#[tokio::test]
async fn cached_tokens_are_read_from_each_wire() {
    // An earlier turn, then the newest user message.
    let history = vec![
        Message::user("first question"),
        Message::assistant("first answer"),
        Message::user("second question"),
    ];
    for wire in WIRES {
        let fake = FakeLlm::start(wire, |_| FakeReply::Text("ok".into())).await;
        let provider = provider_for(wire, &fake);
        let mut request = request(history.clone(), Effort::Off);
        request.cache_key = Some("baton-conversation".into());
        let usage = complete(provider.as_ref(), &request).await.usage;
        // The fake: 10 tokens a message; on Anthropic the breakpoint on the
        // last message is written and those before it read.
        assert_eq!(usage.input_tokens, 30, "{wire:?}");
        assert_eq!(usage.cached_input_tokens, 20, "{wire:?}");
        let written = if wire == Wire::Anthropic { 10 } else { 0 };
        assert_eq!(usage.cache_write_tokens, written, "{wire:?}");
        let mut total = baton::domain::Usage::default();
        total.add(usage);
        total.add(usage);
        assert_eq!(total.cached_input_tokens, 40, "{wire:?}");
        assert_eq!(total.cache_write_tokens, 2 * written, "{wire:?}");

        let seen = only_request(&fake);
        let cache_key = seen.raw.get("prompt_cache_key").and_then(Value::as_str);
        match wire {
            Wire::OpenAi => assert_eq!(cache_key, Some("baton-conversation")),
            Wire::Anthropic | Wire::Gemini => assert_eq!(cache_key, None, "{wire:?}"),
        }
    }
}

/// The `cache_control` breakpoints of an Anthropic body: the system block's
/// (`None`) and each message block's (`Some((message, block))`).
fn anthropic_breakpoints(raw: &Value) -> Vec<Option<(usize, usize)>> {
    let mut found = Vec::new();
    let blocks = |value: &Value| value.as_array().cloned().unwrap_or_default();
    for block in blocks(&raw["system"]) {
        if block.get("cache_control").is_some() {
            assert_eq!(block["cache_control"], json!({"type": "ephemeral"}));
            found.push(None);
        }
    }
    for (m, message) in blocks(&raw["messages"]).iter().enumerate() {
        for (b, block) in blocks(&message["content"]).iter().enumerate() {
            if block.get("cache_control").is_some() {
                assert_eq!(block["cache_control"], json!({"type": "ephemeral"}));
                found.push(Some((m, b)));
            }
        }
    }
    found
}

#[tokio::test]
async fn anthropic_caches_the_system_prompt_and_the_stable_history() {
    let fake = FakeLlm::start(Wire::Anthropic, tool_script).await;
    let provider = provider_for(Wire::Anthropic, &fake);
    let mut history = vec![
        Message::user("what is rust?"),
        Message::assistant("a language"),
        Message::user("look it up"),
    ];
    // Round one: the tool call; round two, with its result: the answer.
    let first = complete(provider.as_ref(), &request(history.clone(), Effort::Off)).await;
    history.push(Message::Assistant(first.message.clone()));
    for call in &first.message.tool_calls {
        history.push(Message::ToolResult(ToolResult {
            call_id: call.id.clone(),
            name: call.name.clone(),
            content: "a systems language".into(),
            is_error: false,
        }));
    }
    complete(provider.as_ref(), &request(history, Effort::Off)).await;

    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    for seen in &requests {
        assert_eq!(seen.raw["system"][0]["type"], "text");
        assert_eq!(seen.raw["system"][0]["text"], SYSTEM);
        let found = anthropic_breakpoints(&seen.raw);
        assert!(found.len() <= 4, "{found:?}");
        assert_eq!(found[0], None, "the system prompt is cached");
        // The stable prefix: "a language", the end of the earlier turn.
        assert_eq!(found[1], Some((1, 0)), "{found:?}");
    }
    // Round one ends on the newest user message; round two on the tool
    // results, so that a third round would read all of round two.
    let last_message = |seen: &SeenRequest| seen.raw["messages"].as_array().map_or(0, Vec::len) - 1;
    assert_eq!(
        anthropic_breakpoints(&requests[0].raw)[2],
        Some((last_message(&requests[0]), 0))
    );
    let second = &requests[1];
    let last = last_message(second);
    let last_blocks = second.raw["messages"][last]["content"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(
        anthropic_breakpoints(&second.raw),
        vec![None, Some((1, 0)), Some((last, last_blocks - 1))]
    );
}

#[tokio::test]
async fn no_key_sends_no_auth_header() {
    let fake = FakeLlm::start(Wire::OpenAi, |_| FakeReply::Text("local".into())).await;
    let provider = OpenAiProvider::new("ollama", fake.base_url(), None, reqwest::Client::new());
    complete(&provider, &request(vec![Message::user("hi")], Effort::Off)).await;
    assert_eq!(only_request(&fake).auth, None);
}

/// Asks for two tools at once, then answers with what the results said.
fn tool_script(seen: &SeenRequest) -> FakeReply {
    let results = seen.tool_results();
    if results.is_empty() {
        FakeReply::ToolCalls(vec![
            ("lookup".into(), json!({"q": "rust"})),
            ("clock".into(), json!({})),
        ])
    } else {
        let texts: Vec<&str> = results.iter().map(|result| result.text.as_str()).collect();
        FakeReply::Text(format!("results: {}", texts.join(", ")))
    }
}

#[tokio::test]
async fn tool_call_round_trip() {
    for wire in WIRES {
        let fake = FakeLlm::start(wire, tool_script).await;
        let provider = provider_for(wire, &fake);
        let mut messages = vec![Message::user("look up rust")];

        let first = complete(provider.as_ref(), &request(messages.clone(), Effort::On)).await;
        assert_eq!(first.stop, StopReason::ToolUse, "{wire:?}");
        let calls = first.message.tool_calls.clone();
        assert_eq!(calls.len(), 2, "{wire:?}");
        assert_eq!(calls[0].name, "lookup");
        let arguments: Value = serde_json::from_str(&calls[0].arguments)
            .unwrap_or_else(|error| panic!("{wire:?}: {error}"));
        assert_eq!(arguments, json!({"q": "rust"}));
        assert_ne!(calls[0].id, calls[1].id, "{wire:?}");

        messages.push(Message::Assistant(first.message.clone()));
        messages.push(Message::ToolResult(ToolResult {
            call_id: calls[0].id.clone(),
            name: "lookup".into(),
            content: "a systems language".into(),
            is_error: false,
        }));
        messages.push(Message::ToolResult(ToolResult {
            call_id: calls[1].id.clone(),
            name: "clock".into(),
            content: "no clock here".into(),
            is_error: true,
        }));
        let second = complete(provider.as_ref(), &request(messages, Effort::On)).await;
        assert_eq!(second.stop, StopReason::EndTurn, "{wire:?}");

        let requests = fake.requests();
        assert_eq!(requests.len(), 2);
        let seen = &requests[1];
        let assistant = seen
            .messages
            .iter()
            .find(|message| message.role == "assistant")
            .unwrap_or_else(|| panic!("{wire:?}: no assistant message in {seen:#?}"));
        assert_eq!(
            assistant.tool_calls,
            vec![
                ("lookup".into(), json!({"q": "rust"})),
                ("clock".into(), json!({}))
            ],
            "{wire:?}"
        );
        let results = seen.tool_results();
        assert_eq!(results.len(), 2, "{wire:?}: {seen:#?}");
        assert_eq!(results[0].tool_name.as_deref(), Some("lookup"), "{wire:?}");
        assert_eq!(results[0].text, "a systems language", "{wire:?}");
        assert_eq!(results[1].tool_name.as_deref(), Some("clock"), "{wire:?}");
        assert_eq!(
            second.message.text.as_deref(),
            Some("results: a systems language, no clock here"),
            "{wire:?}"
        );
        assert_wire_shape(wire, seen, &calls[0].id, &calls[1].id);
    }
}

/// The second request of the round trip, as each wire wants it.
fn assert_wire_shape(wire: Wire, seen: &SeenRequest, first_id: &str, second_id: &str) {
    match wire {
        Wire::OpenAi => {
            let messages = seen.raw["messages"].as_array().cloned().unwrap_or_default();
            let assistant = &messages[2];
            assert_eq!(assistant["role"], "assistant");
            assert!(assistant["tool_calls"][0]["function"]["arguments"].is_string());
            assert_eq!(
                messages[3],
                json!({"role": "tool", "tool_call_id": first_id, "content": "a systems language"})
            );
            assert_eq!(messages[4]["role"], "tool");
            assert_eq!(messages[4]["tool_call_id"], second_id);
        }
        Wire::Anthropic => {
            let messages = seen.raw["messages"].as_array().cloned().unwrap_or_default();
            assert_eq!(messages.len(), 3, "{messages:#?}");
            let assistant = &messages[1]["content"];
            assert_eq!(assistant[0]["type"], "thinking", "thinking goes back first");
            assert_eq!(assistant[0]["signature"], "fake-signature-1");
            assert_eq!(assistant[1]["type"], "tool_use");
            assert_eq!(assistant[1]["id"], first_id);
            let results = &messages[2];
            assert_eq!(results["role"], "user");
            assert_eq!(results["content"][0]["type"], "tool_result");
            assert_eq!(results["content"][0]["tool_use_id"], first_id);
            assert_eq!(results["content"][0]["is_error"], false);
            assert_eq!(results["content"][1]["tool_use_id"], second_id);
            assert_eq!(results["content"][1]["is_error"], true);
        }
        Wire::Gemini => {
            let contents = seen.raw["contents"].as_array().cloned().unwrap_or_default();
            assert_eq!(contents.len(), 3, "{contents:#?}");
            let model = &contents[1];
            assert_eq!(model["role"], "model");
            assert_eq!(model["parts"][0]["functionCall"]["name"], "lookup");
            assert_eq!(model["parts"][0]["thoughtSignature"], "fake-signature-1-0");
            assert_eq!(model["parts"][1]["thoughtSignature"], "fake-signature-1-1");
            let results = &contents[2];
            assert_eq!(results["role"], "user");
            assert_eq!(
                results["parts"][0]["functionResponse"],
                json!({"name": "lookup", "response": {"result": "a systems language"}})
            );
            assert_eq!(
                results["parts"][1]["functionResponse"],
                json!({"name": "clock", "response": {"error": "no clock here"}})
            );
        }
    }
}

#[tokio::test]
async fn malformed_tool_arguments_pass_through_on_openai() {
    let fake = FakeLlm::start(Wire::OpenAi, |_| FakeReply::RawToolCall {
        name: "lookup".into(),
        arguments: "{\"q\": \"unterminated".into(),
    })
    .await;
    let provider = provider_for(Wire::OpenAi, &fake);
    let completion = complete(
        provider.as_ref(),
        &request(vec![Message::user("x")], Effort::Off),
    )
    .await;
    assert_eq!(
        completion.message.tool_calls[0].arguments,
        "{\"q\": \"unterminated"
    );

    // Sent back verbatim on the next round.
    let mut messages = vec![Message::user("x"), Message::Assistant(completion.message)];
    messages.push(Message::user("again"));
    let _ = provider.complete(&request(messages, Effort::Off)).await;
    let requests = fake.requests();
    assert_eq!(
        requests[1].messages[1].tool_calls[0].1,
        json!("{\"q\": \"unterminated"),
        "the fake reports invalid arguments as a JSON string"
    );
}

#[tokio::test]
async fn effort_is_mapped_to_each_wire() {
    for wire in WIRES {
        let fake = FakeLlm::start(wire, |_| FakeReply::Text("ok".into())).await;
        let provider = provider_for(wire, &fake);
        for effort in Effort::ALL {
            complete(
                provider.as_ref(),
                &request(vec![Message::user("think")], effort),
            )
            .await;
        }
        let requests = fake.requests();
        assert_eq!(requests.len(), 4);
        for (effort, seen) in Effort::ALL.into_iter().zip(&requests) {
            let raw = &seen.raw;
            match wire {
                Wire::OpenAi => {
                    let expected = match effort {
                        Effort::Off => Value::Null,
                        Effort::On => json!("medium"),
                        Effort::High => json!("high"),
                        Effort::Max => json!("xhigh"),
                    };
                    assert_eq!(raw["reasoning_effort"], expected, "{effort}");
                }
                Wire::Anthropic => {
                    let budget = match effort {
                        Effort::Off => None,
                        Effort::On => Some(4096),
                        Effort::High => Some(16384),
                        Effort::Max => Some(32000),
                    };
                    match budget {
                        None => assert!(raw.get("thinking").is_none(), "{effort}"),
                        Some(budget) => {
                            assert_eq!(
                                raw["thinking"],
                                json!({"type": "enabled", "budget_tokens": budget})
                            );
                            let max_tokens = raw["max_tokens"].as_u64().unwrap_or(0);
                            assert!(max_tokens > budget, "{effort}: {max_tokens}");
                        }
                    }
                }
                Wire::Gemini => {
                    let budget = match effort {
                        Effort::Off => 0,
                        Effort::On => 4096,
                        Effort::High => 16384,
                        Effort::Max => 24576,
                    };
                    assert_eq!(
                        raw["generationConfig"]["thinkingConfig"]["thinkingBudget"], budget,
                        "{effort}"
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn max_output_tokens_reaches_the_wire() {
    for wire in WIRES {
        let fake = FakeLlm::start(wire, |_| FakeReply::Text("ok".into())).await;
        let provider = provider_for(wire, &fake);
        let mut request = request(vec![Message::user("short")], Effort::Off);
        request.max_output_tokens = Some(321);
        complete(provider.as_ref(), &request).await;
        let raw = only_request(&fake).raw;
        let field = match wire {
            Wire::OpenAi => &raw["max_completion_tokens"],
            Wire::Anthropic => &raw["max_tokens"],
            Wire::Gemini => &raw["generationConfig"]["maxOutputTokens"],
        };
        assert_eq!(field, &json!(321), "{wire:?}");
    }
}

/// A context-too-long error body in each provider's own words.
fn context_too_long_body(wire: Wire) -> Value {
    match wire {
        Wire::OpenAi => json!({"error": {
            "message": "This model's maximum context length is 128000 tokens.",
            "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}),
        Wire::Anthropic => json!({"type": "error", "error": {
            "type": "invalid_request_error", "message": "prompt is too long: 250000 tokens > 200000 maximum"}}),
        Wire::Gemini => json!({"error": {"code": 400,
            "message": "The input token count (2000000) exceeds the maximum number of tokens allowed (1048576).",
            "status": "INVALID_ARGUMENT"}}),
    }
}

fn error_script(wire: Wire) -> impl Fn(&SeenRequest) -> FakeReply + Send + Sync + 'static {
    move |seen| {
        let error = |status: u16, message: &str, retry_after: Option<u64>| FakeReply::Error {
            status,
            body: json!({"error": {"message": message, "type": "error"}}),
            retry_after,
        };
        match seen.last_user_text().unwrap_or_default() {
            "429" => error(429, "Rate limit reached", Some(7)),
            "500" => error(500, "internal error", None),
            "529" => error(529, "Overloaded", None),
            "401" => error(401, "invalid x-api-key", None),
            "404" => error(404, "model not found", None),
            "long" => FakeReply::Error {
                status: 400,
                body: context_too_long_body(wire),
                retry_after: None,
            },
            _ => FakeReply::Text("fine".into()),
        }
    }
}

#[tokio::test]
async fn errors_are_classified() {
    for wire in WIRES {
        let fake = FakeLlm::start(wire, error_script(wire)).await;
        let provider = provider_for(wire, &fake);
        let call = |text: &'static str| {
            let provider = provider.as_ref();
            async move {
                match provider
                    .complete(&request(vec![Message::user(text)], Effort::Off))
                    .await
                {
                    Ok(completion) => {
                        panic!("{wire:?} {text}: expected an error, got {completion:?}")
                    }
                    Err(error) => error,
                }
            }
        };

        let limited = call("429").await;
        assert!(
            matches!(&limited, ProviderError::RateLimited { message, .. } if message == "Rate limit reached"),
            "{wire:?}: {limited:?}"
        );
        assert_eq!(
            limited.retry_after(),
            Some(Duration::from_secs(7)),
            "{wire:?}"
        );
        assert!(limited.is_transient());

        let server = call("500").await;
        assert!(
            matches!(server, ProviderError::Server { status: 500, .. }),
            "{wire:?}: {server:?}"
        );
        assert!(server.is_transient());
        let overloaded = call("529").await;
        assert!(overloaded.is_transient(), "{wire:?}: {overloaded:?}");

        let auth = call("401").await;
        assert!(
            matches!(auth, ProviderError::Auth { status: 401, .. }),
            "{wire:?}: {auth:?}"
        );
        assert!(!auth.is_transient());
        assert!(
            !auth.to_string().contains(KEY),
            "the key never shows in errors"
        );

        let long = call("long").await;
        assert!(
            matches!(long, ProviderError::ContextTooLong { .. }),
            "{wire:?}: {long:?}"
        );
        assert!(!long.is_transient());

        let missing = call("404").await;
        assert!(
            matches!(missing, ProviderError::BadRequest { status: 404, .. }),
            "{wire:?}: {missing:?}"
        );
    }
}

#[tokio::test]
async fn unreachable_server_is_a_network_error() {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|error| panic!("bind: {error}"));
    let address = listener
        .local_addr()
        .unwrap_or_else(|error| panic!("address: {error}"));
    drop(listener);
    let provider = AnthropicProvider::new(
        "anthropic",
        format!("http://{address}"),
        None,
        reqwest::Client::new(),
    );
    let error = provider
        .complete(&request(vec![Message::user("anyone?")], Effort::Off))
        .await
        .err();
    assert!(
        matches!(error, Some(ProviderError::Network { .. })),
        "{error:?}"
    );
    assert!(error.is_some_and(|error| error.is_transient()));
}

fn tiny_retry_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    }
}

#[tokio::test]
async fn transient_errors_are_retried_until_success() {
    for wire in WIRES {
        let failures = Arc::new(AtomicUsize::new(0));
        let counter = failures.clone();
        let fake = FakeLlm::start(wire, move |_| {
            if counter.fetch_add(1, Ordering::SeqCst) < 2 {
                FakeReply::Error {
                    status: 503,
                    body: json!({"error": {"message": "try again"}}),
                    retry_after: None,
                }
            } else {
                FakeReply::Text("third time lucky".into())
            }
        })
        .await;
        let provider = provider_for(wire, &fake);
        let request = request(vec![Message::user("hello")], Effort::Off);
        let completion = with_retry(&tiny_retry_policy(), || provider.complete(&request))
            .await
            .unwrap_or_else(|error| panic!("{wire:?}: {error}"));
        assert_eq!(completion.message.text.as_deref(), Some("third time lucky"));
        assert_eq!(fake.requests().len(), 3, "{wire:?}");
    }
}

#[tokio::test]
async fn permanent_errors_are_not_retried() {
    for wire in WIRES {
        let fake = FakeLlm::start(wire, |_| FakeReply::Error {
            status: 401,
            body: json!({"error": {"message": "bad key"}}),
            retry_after: None,
        })
        .await;
        let provider = provider_for(wire, &fake);
        let request = request(vec![Message::user("hello")], Effort::Off);
        let result = with_retry(&tiny_retry_policy(), || provider.complete(&request)).await;
        assert!(
            matches!(result, Err(ProviderError::Auth { .. })),
            "{wire:?}: {result:?}"
        );
        assert_eq!(fake.requests().len(), 1, "{wire:?}");
    }
}

#[tokio::test]
async fn delayed_replies_are_answered_in_parallel() {
    let fake = FakeLlm::start(Wire::Gemini, |seen| {
        FakeReply::Delayed(
            Duration::from_millis(300),
            Box::new(FakeReply::Text(format!(
                "echo {}",
                seen.last_user_text().unwrap_or_default()
            ))),
        )
    })
    .await;
    let provider = provider_for(Wire::Gemini, &fake);
    let requests: Vec<CompletionRequest> = (0..3)
        .map(|index| request(vec![Message::user(format!("n{index}"))], Effort::Off))
        .collect();
    let answers =
        futures::future::join_all(requests.iter().map(|request| provider.complete(request))).await;
    for (index, answer) in answers.into_iter().enumerate() {
        let completion = answer.unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(completion.message.text, Some(format!("echo n{index}")));
    }
    assert_eq!(fake.requests().len(), 3);
    assert_eq!(fake.max_in_flight(), 3);
}

/// A 401 (Gemini: its real 400 `API_KEY_INVALID`) whose body quotes the key
/// the request carried, in each provider's words.
fn echo_the_key(wire: Wire) -> impl Fn(&SeenRequest) -> FakeReply + Send + Sync + 'static {
    move |seen| {
        let auth = seen.auth.clone().unwrap_or_default();
        let key = auth.strip_prefix("Bearer ").unwrap_or(&auth).to_owned();
        let (status, body) = match wire {
            Wire::OpenAi => (
                401,
                json!({"error": {
                    "message": format!("Incorrect API key provided: {key}. You can find your API key at https://platform.openai.com/account/api-keys."),
                    "type": "invalid_request_error",
                    "code": "invalid_api_key",
                }}),
            ),
            Wire::Anthropic => (
                401,
                json!({"type": "error", "error": {
                    "type": "authentication_error",
                    "message": format!("invalid x-api-key {key}"),
                }}),
            ),
            Wire::Gemini => (
                400,
                json!({"error": {
                    "code": 400,
                    "message": format!("API key not valid ({key}). Please pass a valid API key."),
                    "status": "INVALID_ARGUMENT",
                    "details": [{
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                    }],
                }}),
            ),
        };
        FakeReply::Error {
            status,
            body,
            retry_after: None,
        }
    }
}

#[tokio::test]
async fn a_key_echoed_in_an_error_body_is_redacted_from_the_error() {
    for wire in WIRES {
        let fake = FakeLlm::start(wire, echo_the_key(wire)).await;
        let options = ProviderOptions {
            key_env: Some("TEST_PROVIDER_KEY".into()),
            ..ProviderOptions::default()
        };
        let provider = provider_with(wire, &fake, options);
        let error = provider
            .complete(&request(vec![Message::user("hi")], Effort::Off))
            .await
            .expect_err("the key is refused");
        assert!(
            matches!(error, ProviderError::Auth { .. }),
            "{wire:?}: {error:?}"
        );
        let logged = error.to_string();
        assert!(
            !logged.contains(KEY) && logged.contains("[redacted]"),
            "{wire:?}: {logged}"
        );
        assert!(!format!("{error:?}").contains(KEY), "{wire:?}");
        let told = error.user_message();
        assert!(
            !told.contains(KEY)
                && told.contains(
                    "rejected Baton's API key; the operator must check TEST_PROVIDER_KEY"
                ),
            "{wire:?}: {told}"
        );
        assert!(!error.is_transient());
    }
}

#[tokio::test]
async fn an_answer_over_max_response_bytes_fails_permanently() {
    let options = ProviderOptions {
        max_response_bytes: 2_000,
        ..ProviderOptions::default()
    };
    for chunked in [false, true] {
        for wire in WIRES {
            let fake = FakeLlm::start(wire, move |_| {
                let text = FakeReply::Text("x".repeat(20_000));
                if chunked {
                    FakeReply::Chunked {
                        stall: None,
                        reply: Box::new(text),
                    }
                } else {
                    text
                }
            })
            .await;
            let provider = provider_with(wire, &fake, options.clone());
            let error = provider
                .complete(&request(vec![Message::user("say a lot")], Effort::Off))
                .await
                .expect_err("the answer is too large");
            assert_eq!(
                error,
                ProviderError::TooLarge {
                    provider: provider.name().to_owned(),
                    limit: 2_000
                },
                "{wire:?}, chunked {chunked}"
            );
            assert!(!error.is_transient());
            assert!(error.to_string().contains("max_response_bytes"));
            assert!(error.user_message().contains("2000 bytes"));
        }
    }
    // Just under the limit is fine, in chunks too.
    let fake = FakeLlm::start(Wire::OpenAi, |_| FakeReply::Chunked {
        stall: None,
        reply: Box::new(FakeReply::Text("y".repeat(1_000))),
    })
    .await;
    let provider = provider_with(Wire::OpenAi, &fake, options);
    let completion = complete(
        provider.as_ref(),
        &request(vec![Message::user("a little")], Effort::Off),
    )
    .await;
    assert_eq!(completion.message.text, Some("y".repeat(1_000)));
}

#[tokio::test]
async fn a_body_that_stalls_fails_as_transient_at_the_idle_timeout() {
    let options = ProviderOptions {
        idle_timeout: Duration::from_millis(200),
        ..ProviderOptions::default()
    };
    for wire in WIRES {
        let fake = FakeLlm::start(wire, |_| FakeReply::Chunked {
            stall: Some(Duration::from_secs(60)),
            reply: Box::new(FakeReply::Text("too late".into())),
        })
        .await;
        let provider = provider_with(wire, &fake, options.clone());
        let error = provider
            .complete(&request(vec![Message::user("hello?")], Effort::Off))
            .await
            .expect_err("the stalled answer is given up");
        assert!(
            matches!(&error, ProviderError::Network { message, .. } if message.contains("idle_timeout_secs")),
            "{wire:?}: {error:?}"
        );
        assert!(error.is_transient(), "{wire:?}");
    }
}

fn provider_with(wire: Wire, fake: &FakeLlm, options: ProviderOptions) -> Box<dyn Provider> {
    let key = Some(SecretString::from(KEY));
    let http = reqwest::Client::new();
    let url = fake.base_url();
    match wire {
        Wire::OpenAi => {
            Box::new(OpenAiProvider::new("openai", url, key, http).with_options(options))
        }
        Wire::Anthropic => {
            Box::new(AnthropicProvider::new("anthropic", url, key, http).with_options(options))
        }
        Wire::Gemini => {
            Box::new(GeminiProvider::new("gemini", url, key, http).with_options(options))
        }
    }
}
