//! The agent loop against an in-process scripted provider and toolbox: the
//! round limit's last call, and the toolbox's say before an answer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::json;

use super::*;
use crate::config::ModelSpec;
use crate::llm::{Completion, Provider, StopReason};

type Script = dyn Fn(&CompletionRequest) -> AssistantMessage + Send + Sync;

/// A provider that answers with `script` and keeps every request.
struct Scripted {
    script: Box<Script>,
    seen: Mutex<Vec<CompletionRequest>>,
}

impl std::fmt::Debug for Scripted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scripted")
    }
}

#[async_trait::async_trait]
impl Provider for Scripted {
    fn name(&self) -> &str {
        "fake"
    }

    async fn complete(&self, request: &CompletionRequest) -> Result<Completion, ProviderError> {
        self.seen.lock().unwrap().push(request.clone());
        let message = (self.script)(request);
        Ok(Completion {
            stop: if message.tool_calls.is_empty() {
                StopReason::EndTurn
            } else {
                StopReason::ToolUse
            },
            message,
            usage: Usage {
                input_tokens: 10,
                output_tokens: 1,
                ..Usage::default()
            },
            quota: crate::llm::Quota::default(),
        })
    }
}

impl Scripted {
    fn requests(&self) -> Vec<CompletionRequest> {
        self.seen.lock().unwrap().clone()
    }
}

/// One tool, `ping`; `before_answer` says `note` every time it is asked.
#[derive(Default)]
struct Tools {
    note: Option<String>,
    asked: AtomicUsize,
    settled: AtomicUsize,
}

#[async_trait::async_trait]
impl Toolbox for Tools {
    fn specs(&self) -> Vec<ToolSpec> {
        vec![ToolSpec {
            name: "ping".into(),
            description: "Pings.".into(),
            parameters: json!({"type": "object"}),
        }]
    }

    async fn call(&self, _name: &str, _arguments: serde_json::Value) -> Result<String, ToolError> {
        Ok("pong".into())
    }

    async fn before_answer(&self) -> Option<String> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        self.note.clone()
    }

    async fn after_answer(&self) {
        self.settled.fetch_add(1, Ordering::SeqCst);
    }
}

fn text(text: &str) -> AssistantMessage {
    AssistantMessage {
        text: Some(text.into()),
        ..AssistantMessage::default()
    }
}

fn ping(text: Option<&str>) -> AssistantMessage {
    AssistantMessage {
        text: text.map(str::to_owned),
        tool_calls: vec![ToolCall {
            id: "call".into(),
            name: "ping".into(),
            arguments: "{}".into(),
        }],
        provider_state: None,
    }
}

fn tool_results(request: &CompletionRequest) -> usize {
    request
        .messages
        .iter()
        .filter(|m| matches!(m, Message::ToolResult(_)))
        .count()
}

/// Runs an agent with `max_rounds` over `script` and `tools` on "go".
async fn run(
    max_rounds: usize,
    tools: &Tools,
    script: impl Fn(&CompletionRequest) -> AssistantMessage + Send + Sync + 'static,
) -> (AgentOutput, Vec<Message>, Vec<CompletionRequest>) {
    let provider = Arc::new(Scripted {
        script: Box::new(script),
        seen: Mutex::new(Vec::new()),
    });
    let model = ModelHandle {
        provider: provider.clone(),
        model: "fake:model".parse().unwrap(),
        spec: ModelSpec::default(),
    };
    let limiter = ModelCallLimiter::new(1);
    let conversation = baton_channel::ConversationKey::terminal("t");
    let agent = Agent {
        model: &model,
        system: "be brief",
        toolbox: tools,
        effort: Effort::Off,
        max_rounds,
        limiter: &limiter,
        priority: Priority::Worker,
        conversation: &conversation,
        retry: None,
        observer: &Unobserved,
    };
    let mut history = vec![Message::user("go")];
    let output = agent.run(&mut history).await.unwrap();
    (output, history, provider.requests())
}

#[tokio::test]
async fn a_plain_answer_is_not_cut_short() {
    let tools = Tools::default();
    let (output, history, requests) = run(3, &tools, |_| text("hello")).await;
    assert_eq!(output.text, "hello");
    assert!(!output.cut_short);
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].tool_choice, ToolChoice::Auto);
    assert_eq!(history.len(), 2);
    assert_eq!(tools.asked.load(Ordering::SeqCst), 1);
    assert_eq!(tools.settled.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn at_the_round_limit_the_model_answers_once_more_without_tools() {
    let tools = Tools::default();
    let (output, history, requests) = run(3, &tools, |request| match request.tool_choice {
        ToolChoice::Auto => ping(None),
        ToolChoice::None => text(&format!("from {} pongs", tool_results(request))),
    })
    .await;
    assert_eq!(output.text, "from 3 pongs");
    assert!(output.cut_short);
    assert_eq!(
        output.usage,
        Usage {
            input_tokens: 40,
            output_tokens: 4,
            ..Usage::default()
        }
    );
    let choices: Vec<ToolChoice> = requests.iter().map(|r| r.tool_choice).collect();
    assert_eq!(
        choices,
        [
            ToolChoice::Auto,
            ToolChoice::Auto,
            ToolChoice::Auto,
            ToolChoice::None
        ]
    );
    // Every round carries the conversation's prompt-cache key, and it names
    // no chat.
    let conversation = baton_channel::ConversationKey::terminal("t");
    let key = super::prompt_cache_key(&conversation);
    assert!(
        key.starts_with("baton-") && !key.contains("terminal"),
        "{key}"
    );
    assert!(requests.iter().all(|r| r.cache_key.as_ref() == Some(&key)));
    let other = baton_channel::ConversationKey::terminal("u");
    assert_ne!(super::prompt_cache_key(&other), key);
    let last = &requests[3];
    assert_eq!(last.tools, tools.specs(), "the tools stay declared");
    let Some(Message::User { text: note, .. }) = last.messages.last() else {
        panic!("the last call ends with the note: {:?}", last.messages);
    };
    assert!(
        note.contains("limit of 3 tool rounds") && note.contains("Answer now"),
        "{note}"
    );
    assert_eq!(history.last(), Some(&Message::assistant("from 3 pongs")));
    assert_eq!(tools.settled.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn tool_calls_in_the_last_call_are_dropped() {
    let tools = Tools::default();
    let (output, history, requests) = run(1, &tools, |request| match request.tool_choice {
        ToolChoice::Auto => ping(None),
        ToolChoice::None => ping(Some("what I have")),
    })
    .await;
    assert_eq!(
        (output.text.as_str(), output.cut_short),
        ("what I have", true)
    );
    assert_eq!(requests.len(), 2);
    // The history stays valid to continue from: no call without a result.
    assert_eq!(history.last(), Some(&Message::assistant("what I have")));

    let (output, _, _) = run(1, &tools, |_| ping(None)).await;
    assert_eq!(output.text, CUT_SHORT_FALLBACK);
    assert!(output.cut_short);
}

#[tokio::test]
async fn the_toolbox_holds_an_answer_back_once_and_the_note_is_no_tool_round() {
    let tools = Tools {
        note: Some("w1 is still running".into()),
        ..Tools::default()
    };
    // One tool round allowed: answer (held back), ping, answer again.
    let (output, history, requests) = run(1, &tools, |request| {
        match (request.messages.len(), request.tool_choice) {
            (1, _) => text("too early"),
            (3, ToolChoice::Auto) => ping(None),
            (_, choice) => text(&format!("second answer ({choice:?})")),
        }
    })
    .await;
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[1].messages[1], Message::assistant("too early"));
    assert_eq!(
        requests[1].messages[2],
        Message::user("w1 is still running")
    );
    assert_eq!(output.text, "second answer (None)");
    assert!(output.cut_short);
    assert_eq!(tools.asked.load(Ordering::SeqCst), 1, "the note comes once");
    assert_eq!(tools.settled.load(Ordering::SeqCst), 1);
    assert_eq!(history.len(), 7);

    // Answering again after the note is final, note or not.
    let tools = Tools {
        note: Some("w1 is still running".into()),
        ..Tools::default()
    };
    let (output, _, requests) = run(5, &tools, |request| {
        text(&format!("answer {}", request.messages.len()))
    })
    .await;
    assert_eq!(
        (output.text.as_str(), output.cut_short),
        ("answer 3", false)
    );
    assert_eq!(requests.len(), 2);
    assert_eq!(tools.asked.load(Ordering::SeqCst), 1);
    assert_eq!(tools.settled.load(Ordering::SeqCst), 1);
}
