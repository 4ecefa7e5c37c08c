//! Provider faults as a chat user meets them, through the whole engine: a
//! key the provider echoes back never reaches the chat, the store or the
//! event log; a stalled answer is retried with one notice; a turn past its
//! deadline and an oversized answer end with a clear message.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;

use crate::support::bot::{TestBot, WORKER_MODEL};
use crate::support::fake_llm::{FakeReply, SeenRequest, Wire};

/// Not shaped like any known key, so only the configured secret can catch it.
const KEY: &str = "baton-test-key-Q7wZ9xLp";
const KEY_VAR: &str = "BATON_TEST_FAKE_KEY";

/// A 401 (Gemini: its real 400 `API_KEY_INVALID`) whose body quotes the key
/// the request carried.
fn echo_the_key(wire: Wire) -> impl Fn(&SeenRequest) -> FakeReply + Send + Sync + 'static {
    move |seen| {
        let auth = seen.auth.clone().unwrap_or_default();
        let key = auth.strip_prefix("Bearer ").unwrap_or(&auth).to_owned();
        let message = format!("Incorrect API key provided: {key}");
        let (status, body) = match wire {
            Wire::OpenAi => (
                401,
                json!({"error": {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}}),
            ),
            Wire::Anthropic => (
                401,
                json!({"type": "error", "error": {"type": "authentication_error", "message": message}}),
            ),
            Wire::Gemini => (
                400,
                json!({"error": {
                    "code": 400,
                    "message": message,
                    "status": "INVALID_ARGUMENT",
                    "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}],
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
async fn a_key_echoed_by_the_provider_reaches_neither_the_chat_nor_the_store() {
    for wire in [Wire::OpenAi, Wire::Anthropic, Wire::Gemini] {
        let mut bot = TestBot::builder(wire)
            .env("BATON__PROVIDERS__FAKE__API_KEY_ENV", KEY_VAR)
            .env(KEY_VAR, KEY)
            .start(echo_the_key(wire))
            .await;
        bot.say("hello").await;
        bot.drain().await;

        let seen = bot.llm.requests();
        assert!(
            seen[0]
                .auth
                .as_deref()
                .is_some_and(|auth| auth.contains(KEY)),
            "{wire:?}: the key is sent: {:?}",
            seen[0].auth
        );
        let replies = bot.channel.replies();
        assert_eq!(replies.len(), 1, "{wire:?}: {replies:?}");
        let reply = &replies[0];
        assert!(!reply.contains(KEY), "{wire:?}: {reply}");
        assert!(!reply.contains("Incorrect API key"), "{wire:?}: {reply}");
        assert!(
            reply.contains("rejected Baton's API key") && reply.contains(KEY_VAR),
            "{wire:?}: {reply}"
        );

        let store = &bot.services.store;
        store.flush_events().await;
        let events = store.recent_events(&TestBot::key(), 100).await.unwrap();
        assert!(!events.is_empty());
        for event in &events {
            assert!(!event.body.contains(KEY), "{wire:?}: {event:?}");
        }
        let turn = events
            .iter()
            .find_map(|event| event.turn)
            .expect("the turn is in the event log");
        let turn = store.load_turn(turn).await.unwrap().expect("the turn row");
        let error = turn.error.expect("the failed turn keeps its error");
        assert!(
            !error.contains(KEY) && error.contains("[redacted]"),
            "{wire:?}: {error}"
        );
        bot.stop().await;
    }
}

#[tokio::test]
async fn a_stalled_answer_is_retried_after_one_notice() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let mut bot = TestBot::builder(Wire::OpenAi)
        .env("BATON__PROVIDERS__FAKE__IDLE_TIMEOUT_SECS", "1")
        .start(move |_| {
            if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                // Headers and one byte, then nothing for far longer than
                // the idle timeout (and than the test waits).
                FakeReply::Chunked {
                    stall: Some(Duration::from_secs(120)),
                    reply: Box::new(FakeReply::Text("too late".into())),
                }
            } else {
                FakeReply::Text("Here is the answer.".into())
            }
        })
        .await;
    bot.say("hello").await;
    bot.channel.wait_for_replies(2).await;
    bot.drain().await;

    let replies = bot.channel.replies();
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert!(
        replies[0].contains("slow") && replies[0].contains("retrying"),
        "{replies:?}"
    );
    assert_eq!(replies[1], "Here is the answer.");
    assert_eq!(bot.llm.requests().len(), 2);
}

#[tokio::test]
async fn a_turn_past_its_deadline_ends_with_a_clear_answer() {
    let mut bot = TestBot::builder(Wire::OpenAi)
        .config("[engine]\nturn_deadline_secs = 1")
        .start(|request| match request.last_user_text() {
            Some(text) if text.contains("think hard") => FakeReply::Delayed(
                Duration::from_secs(120),
                Box::new(FakeReply::Text("finally".into())),
            ),
            _ => FakeReply::Text("quick answer".into()),
        })
        .await;
    bot.say("think hard").await;
    bot.say("and now?").await;
    bot.drain().await;

    let replies = bot.channel.replies();
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert!(
        replies[0].contains("took too long") && replies[0].contains("1 second"),
        "{replies:?}"
    );
    assert_eq!(replies[1], "quick answer", "the conversation goes on");

    let store = &bot.services.store;
    store.flush_events().await;
    let events = store.recent_events(&TestBot::key(), 100).await.unwrap();
    let turn = events.iter().find_map(|event| event.turn).expect("a turn");
    let turn = store.load_turn(turn).await.unwrap().expect("the turn row");
    assert!(
        turn.error
            .as_deref()
            .is_some_and(|error| error.contains("turn_deadline_secs")),
        "{turn:?}"
    );
}

#[tokio::test]
async fn the_deadline_also_stops_the_turns_workers() {
    let mut bot = TestBot::builder(Wire::OpenAi)
        .config("[engine]\nturn_deadline_secs = 1")
        .start(|request| {
            if request.model == WORKER_MODEL {
                FakeReply::Delayed(
                    Duration::from_secs(120),
                    Box::new(FakeReply::Text("late work".into())),
                )
            } else if request.tool_results().is_empty() {
                FakeReply::ToolCalls(vec![(
                    "spawn_worker".into(),
                    json!({"label": "slow", "prompt": "take forever"}),
                )])
            } else {
                FakeReply::ToolCalls(vec![("await_workers".into(), json!({}))])
            }
        })
        .await;
    bot.say("/orchestrator on").await;
    bot.say("delegate this").await;
    bot.drain().await;

    let replies = bot.channel.replies();
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert!(replies[1].contains("took too long"), "{replies:?}");
    let store = &bot.services.store;
    store.flush_events().await;
    let events = store.recent_events(&TestBot::key(), 100).await.unwrap();
    let turn = events.iter().find_map(|event| event.turn).expect("a turn");
    let workers = store.workers(turn).await.unwrap();
    assert_eq!(workers.len(), 1, "{workers:?}");
    assert_ne!(
        workers[0].status,
        baton_channel::WorkerStatus::Running,
        "no worker outlives the turn: {workers:?}"
    );
}

#[tokio::test]
async fn an_oversized_answer_is_refused_with_a_clear_message() {
    let mut bot = TestBot::builder(Wire::Anthropic)
        .env("BATON__PROVIDERS__FAKE__MAX_RESPONSE_BYTES", "10000")
        .start(|_| FakeReply::Text("blah ".repeat(20_000)))
        .await;
    bot.say("write me a novel").await;
    bot.drain().await;

    let replies = bot.channel.replies();
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert!(
        replies[0].starts_with("Sorry, I could not answer")
            && replies[0].contains("10000 bytes")
            && !replies[0].contains("blah"),
        "{replies:?}"
    );
    assert_eq!(
        bot.llm.requests().len(),
        1,
        "a permanent error is not retried"
    );
}
