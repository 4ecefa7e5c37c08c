//! Model-call limits through the whole engine and the fake provider over
//! HTTP: a provider that takes only N calls at once, one that recovers,
//! `Retry-After`, orchestrator calls first when slots are short, fairness
//! between conversations, and what `/status` says about it all.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use baton::agent::ProviderLoad;
use baton::conversation::Registry;
use baton_channel::{Author, ChannelEvent, ConversationKey, Inbound, Origin, Platform};
use serde_json::json;

use crate::support::bot::{RecordingChannel, Shown, TestBot, WORKER_MODEL, test_config};
use crate::support::eventually::until;
use crate::support::fake_llm::{FakeLlm, FakeReply, Gate, SeenRequest, Wire};

fn key(chat: i64) -> ConversationKey {
    ConversationKey::telegram(chat, None)
}

/// Sends `text` in conversation `chat` as that conversation's own user
/// (so the per-user flood limit never counts one user for all).
async fn say_in(bot: &TestBot, chat: i64, n: i32, text: &str) {
    let author = Author {
        id: format!("user-{chat}"),
        name: format!("U{chat}"),
    };
    let origin = Origin::Telegram(n);
    let event = match baton_channel::parse_command(text, None) {
        Some(command) => ChannelEvent::Command {
            key: key(chat),
            author,
            origin,
            command,
        },
        None => ChannelEvent::Message(Inbound {
            key: key(chat),
            author,
            text: text.to_owned(),
            origin,
            attachments: Vec::new(),
            chat_title: None,
        }),
    };
    bot.registry.dispatch(event).await.unwrap();
}

/// The start of the notice a turn posts (once) when its model call is
/// retried: information, not an answer and not an error.
const RETRY_NOTICE: &str = "_The model is slow to answer";

/// The posts in conversation `chat`, in order, retry notices left out.
fn replies_in(bot: &TestBot, chat: i64) -> Vec<String> {
    answers(&bot.channel.shown())
        .into_iter()
        .filter(|(k, _)| *k == key(chat))
        .map(|(_, text)| text)
        .collect()
}

/// Every post but retry notices, with its conversation.
fn answers(shown: &[Shown]) -> Vec<(ConversationKey, String)> {
    shown
        .iter()
        .filter_map(|shown| match shown {
            Shown::Reply { key, text, .. } if !text.starts_with(RETRY_NOTICE) => {
                Some((key.clone(), text.clone()))
            }
            _ => None,
        })
        .collect()
}

/// Waits until `n` posts that are not retry notices have been made.
async fn wait_for_answers(bot: &TestBot, n: usize) {
    bot.channel
        .wait_for(&format!("{n} answers"), |shown| answers(shown).len() >= n)
        .await;
}

/// The fake provider's load as the limiter sees it.
fn fake_load(bot: &TestBot, provider: &str) -> ProviderLoad {
    bot.services
        .limiter
        .load()
        .providers
        .into_iter()
        .find(|load| load.provider == provider)
        .unwrap()
}

/// Answers `echo <what the user said>` after `delay`.
fn echo_after(delay: Duration) -> impl Fn(&SeenRequest) -> FakeReply + Send + Sync + 'static {
    move |request| {
        let said = request.last_user_text().unwrap_or_default();
        FakeReply::Delayed(delay, Box::new(FakeReply::Text(format!("echo {said}"))))
    }
}

#[tokio::test]
async fn a_provider_that_takes_four_calls_at_once_gets_about_four_and_every_message_is_answered() {
    let bot = TestBot::builder(Wire::OpenAi)
        .env("BATON__PROVIDERS__FAKE__MAX_CONCURRENCY", "64")
        // Retries spaced as the shipped policy spaces them, scaled down.
        .env("BATON__ENGINE__RETRY_BASE_DELAY_MS", "100")
        .env("BATON__ENGINE__RETRY_MAX_DELAY_MS", "1000")
        .start(echo_after(Duration::from_millis(200)))
        .await;
    bot.llm.limit_concurrency(4);
    const CHATS: usize = 12;
    for n in 1..=2 {
        for chat in 0..CHATS {
            say_in(&bot, 100 + chat as i64, n, &format!("message {n}")).await;
        }
    }
    wait_for_answers(&bot, 2 * CHATS).await;

    for chat in 0..CHATS {
        let chat = 100 + chat as i64;
        assert_eq!(
            replies_in(&bot, chat),
            [
                format!("echo U{chat}: message 1"),
                format!("echo U{chat}: message 2")
            ],
            "no error reached {chat}"
        );
    }
    // The limit settled about the provider's four, well under the 64
    // allowed, and the provider was kept busy at four.
    let load = fake_load(&bot, "fake");
    assert!((2..=5).contains(&load.limit), "{load:?}");
    assert_eq!(load.max_concurrency, 64);
    assert_eq!(bot.llm.max_served(), 4);
    assert!(bot.llm.refused() > 0, "the provider refused some calls");

    // /status shows it.
    say_in(&bot, 100, 3, "/status").await;
    wait_for_answers(&bot, 2 * CHATS + 1).await;
    let status = replies_in(&bot, 100).pop().unwrap();
    assert!(
        status.contains(&format!(
            "- fake: limit {} of 64, 0 in flight, 0 waiting",
            load.limit
        )),
        "{status}"
    );
    assert!(
        status.contains("Model calls (all conversations): 0 in flight, at most 512"),
        "{status}"
    );
}

#[tokio::test]
async fn a_provider_that_recovers_gets_its_limit_back() {
    let bot = TestBot::builder(Wire::OpenAi)
        .env("BATON__PROVIDERS__FAKE__MAX_CONCURRENCY", "8")
        .env("BATON__ENGINE__RETRY_BASE_DELAY_MS", "100")
        .env("BATON__ENGINE__RETRY_MAX_DELAY_MS", "1000")
        .start(echo_after(Duration::from_millis(100)))
        .await;
    bot.llm.limit_concurrency(2);
    for chat in 0..8 {
        say_in(&bot, 200 + chat, 1, "busy").await;
    }
    wait_for_answers(&bot, 8).await;
    let lowered = fake_load(&bot, "fake").limit;
    assert!(lowered <= 3, "limit {lowered}");

    // The provider takes any number again: successes grow the limit back
    // to its ceiling.
    bot.llm.limit_concurrency(usize::MAX);
    for n in 2..=13 {
        for chat in 0..8 {
            say_in(&bot, 200 + chat, n, "again").await;
        }
    }
    wait_for_answers(&bot, 8 * 13).await;
    assert_eq!(fake_load(&bot, "fake").limit, 8);
    let answers = answers(&bot.channel.shown());
    assert!(
        answers.iter().all(|(_, text)| text.starts_with("echo ")),
        "{answers:#?}"
    );
}

#[tokio::test]
async fn retry_after_holds_every_call_to_the_provider_for_that_long() {
    // The first call is refused with `Retry-After: 3`; the rest answer.
    let refused = AtomicBool::new(false);
    let bot = TestBot::builder(Wire::OpenAi)
        .env("BATON__PROVIDERS__FAKE__MAX_CONCURRENCY", "16")
        .start(move |request| {
            let said = request.last_user_text().unwrap_or_default();
            if said == "U1: first" && !refused.swap(true, Ordering::SeqCst) {
                return FakeReply::Error {
                    status: 429,
                    body: json!({"error": {"message": "slow down", "type": "rate_limit"}}),
                    retry_after: Some(3),
                };
            }
            FakeReply::Text(format!("echo {said}"))
        })
        .await;
    say_in(&bot, 1, 1, "first").await;
    until("the provider to pause", || {
        fake_load(&bot, "fake").paused.is_some()
    })
    .await;
    // The retry policy's own wait is 5 ms here (retry_max_delay_ms caps
    // Retry-After), yet neither the retry nor another conversation's call
    // reaches the provider during its pause: both wait in the limiter.
    say_in(&bot, 2, 1, "second").await;
    until("the retry and the other call to wait", || {
        fake_load(&bot, "fake").waiting == 2
    })
    .await;
    assert_eq!(bot.llm.requests().len(), 1);
    // /status says so.
    say_in(&bot, 3, 1, "/status").await;
    bot.channel
        .wait_for("the status", |shown| {
            answers(shown).iter().any(|(k, _)| *k == key(3))
        })
        .await;
    let status = replies_in(&bot, 3).pop().unwrap();
    assert!(status.contains("2 waiting; paused"), "{status}");
    assert!(status.contains("(Retry-After)"), "{status}");

    wait_for_answers(&bot, 3).await;
    assert_eq!(replies_in(&bot, 1), ["echo U1: first"]);
    assert_eq!(replies_in(&bot, 2), ["echo U2: second"]);
    assert_eq!(bot.llm.requests().len(), 3);
}

/// Orchestrators that start one worker per label (conversation b: one
/// worker), await them all, and answer `<conversation> done`; workers
/// answer once `gate` opens.
fn team(
    labels: &'static [&'static str],
    gate: Gate,
) -> impl Fn(&SeenRequest) -> FakeReply + Send + Sync + 'static {
    move |request| {
        if request.model == WORKER_MODEL {
            let brief = request.last_user_text().unwrap_or_default();
            let done = FakeReply::Text(format!("{brief} done"));
            return FakeReply::After(gate.clone(), Box::new(done));
        }
        let name = conversation_of(request);
        let labels: &[&str] = if name == "b" { &labels[..1] } else { labels };
        if request.tool_results().is_empty() {
            return FakeReply::ToolCalls(
                labels
                    .iter()
                    .map(|label| {
                        let brief = format!("{name} {label}");
                        (
                            "spawn_worker".to_owned(),
                            json!({"label": label, "prompt": brief}),
                        )
                    })
                    .collect(),
            );
        }
        if request.awaited().len() < labels.len() {
            return FakeReply::ToolCalls(vec![("await_workers".into(), json!({}))]);
        }
        FakeReply::Text(format!("{name} done"))
    }
}

/// Which conversation an orchestrator request is from (by its user's name).
fn conversation_of(request: &SeenRequest) -> &'static str {
    let first = request
        .messages
        .iter()
        .find(|message| message.role == "user")
        .map(|message| message.text.as_str())
        .unwrap_or_default();
    if first.starts_with("U2:") { "b" } else { "a" }
}

/// The index in `requests` of the first request that satisfies `is`.
fn index_of(requests: &[SeenRequest], what: &str, is: impl Fn(&SeenRequest) -> bool) -> usize {
    requests
        .iter()
        .position(is)
        .unwrap_or_else(|| panic!("no request for {what}"))
}

#[tokio::test]
async fn orchestrator_calls_go_ahead_of_waiting_workers() {
    let gate = Gate::new();
    let bot = TestBot::builder(Wire::OpenAi)
        .config("[orchestrator]\ndefault_mode = \"orchestrator\"")
        .env("BATON__PROVIDERS__FAKE__MAX_CONCURRENCY", "1")
        .start(team(&["w1", "w2", "w3"], gate.clone()))
        .await;
    // Conversation a starts three workers: one holds the only slot (its
    // model waits on the gate) and two queue. a's next round either went
    // first (it is awaiting its workers) or queues too.
    say_in(&bot, 1, 1, "split it").await;
    let a_settled = || {
        let requests = bot.llm.requests();
        let rounds = requests.iter().filter(|r| r.model != WORKER_MODEL).count();
        let holding = requests.iter().any(|r| r.model == WORKER_MODEL);
        match fake_load(&bot, "fake").waiting {
            3 => holding,
            2 => holding && rounds == 2,
            _ => false,
        }
    };
    until("a's workers to start and queue", a_settled).await;
    let queued = fake_load(&bot, "fake").waiting;
    // Conversation b's first call queues after them.
    say_in(&bot, 2, 1, "just answer").await;
    until("b's call to queue", || {
        fake_load(&bot, "fake").waiting == queued + 1
    })
    .await;
    gate.open();
    wait_for_answers(&bot, 2).await;

    assert_eq!(replies_in(&bot, 2), ["b done"]);
    assert_eq!(replies_in(&bot, 1), ["a done"]);
    let requests = bot.llm.requests();
    let b = index_of(&requests, "b's first call", |r| {
        r.model != WORKER_MODEL && conversation_of(r) == "b"
    });
    let workers: Vec<usize> = (0..requests.len())
        .filter(|&i| {
            requests[i].model == WORKER_MODEL
                && requests[i]
                    .last_user_text()
                    .is_some_and(|t| t.starts_with("a "))
        })
        .collect();
    assert_eq!(workers.len(), 3);
    // Only the worker that held the slot came before b's call.
    assert!(
        b < workers[1] && b < workers[2],
        "b at {b}, workers at {workers:?}"
    );
}

#[tokio::test]
async fn one_conversations_workers_do_not_queue_ahead_of_anothers() {
    let gate = Gate::new();
    let bot = bot_with_a_worker_provider(team(&["w1", "w2", "w3", "w4"], gate.clone())).await;
    // a's four workers: two run (waiting on the gate), two queue.
    say_in(&bot, 1, 1, "split it four ways").await;
    until("a's workers to queue", || {
        let load = fake_load(&bot, "workers");
        load.in_flight == 2 && load.waiting == 2
    })
    .await;
    // b's one worker queues after them.
    say_in(&bot, 2, 1, "one worker will do").await;
    // (and both orchestrators to be awaiting, with no call in flight)
    until("b's worker to queue", || {
        fake_load(&bot, "workers").waiting == 3 && fake_load(&bot, "fake").in_flight == 0
    })
    .await;
    gate.open();
    wait_for_answers(&bot, 2).await;
    assert_eq!(replies_in(&bot, 1), ["a done"]);
    assert_eq!(replies_in(&bot, 2), ["b done"]);

    // The first slot that freed went to b, which had nothing running,
    // not to a's third worker, which asked first.
    let requests = bot.llm.requests();
    let worker = |brief: &'static str| {
        index_of(&requests, brief, move |r| {
            r.model == WORKER_MODEL && r.last_user_text() == Some(brief)
        })
    };
    let (b1, a3, a4) = (worker("b w1"), worker("a w3"), worker("a w4"));
    assert!(
        b1 < a3 && b1 < a4,
        "b w1 at {b1}, a w3 at {a3}, a w4 at {a4}"
    );
}

/// A bot in orchestrator mode whose workers run on a provider of their
/// own, `workers` (the same fake), which takes two calls at once; the
/// orchestrators' provider takes 64, so they never wait.
async fn bot_with_a_worker_provider(
    script: impl Fn(&SeenRequest) -> FakeReply + Send + Sync + 'static,
) -> TestBot {
    let llm = FakeLlm::start(Wire::OpenAi, script).await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let extra = format!(
        "[orchestrator]\ndefault_mode = \"orchestrator\"\n\n\
         [providers.workers]\nkind = \"openai\"\nbase_url = \"{}\"\nmax_concurrency = 2\n",
        llm.base_url()
    );
    let mut config = test_config(&llm, Wire::OpenAi, &dir.path().join("baton.db"), &extra);
    config.models.worker = Some(format!("workers:{WORKER_MODEL}"));
    if let Some(fake) = config.providers.get_mut("fake") {
        fake.max_concurrency = Some(64);
    }
    let services = baton::app::services(config).await.unwrap();
    let channel = RecordingChannel::default();
    let registry =
        Registry::new(services.clone()).with_channel(Platform::Telegram, Arc::new(channel.clone()));
    TestBot {
        llm,
        channel,
        registry,
        services,
        dir,
        next_message: 0,
    }
}

#[tokio::test]
async fn quota_headers_reach_the_limiter_and_a_429_without_retry_after() {
    use baton::llm::anthropic::AnthropicProvider;
    use baton::llm::openai::OpenAiProvider;
    use baton::llm::{CompletionRequest, Effort, Message, Provider, ProviderError, ToolChoice};

    let request = CompletionRequest {
        model: "m".into(),
        system: String::new(),
        messages: vec![Message::user("hi")],
        tools: Vec::new(),
        tool_choice: ToolChoice::Auto,
        effort: Effort::Off,
        max_output_tokens: None,
        cache_key: None,
    };
    let headers = |pairs: &[(&'static str, &str)]| {
        pairs
            .iter()
            .map(|(name, value)| (*name, (*value).to_owned()))
            .collect::<Vec<_>>()
    };
    // OpenAI: 59 requests left; then a 429 whose only hint is the reset of
    // the used-up request budget.
    let openai_headers = headers(&[
        ("x-ratelimit-remaining-requests", "59"),
        ("x-ratelimit-remaining-tokens", "90000"),
    ]);
    let refused_headers = headers(&[
        ("x-ratelimit-remaining-requests", "0"),
        ("x-ratelimit-reset-requests", "7s"),
    ]);
    let fake = FakeLlm::start(Wire::OpenAi, move |request| {
        if request.last_user_text() == Some("hi") {
            let ok = FakeReply::Text("hello".into());
            return FakeReply::Headers(openai_headers.clone(), Box::new(ok));
        }
        let refused = FakeReply::Error {
            status: 429,
            body: json!({"error": {"message": "rate limit reached"}}),
            retry_after: None,
        };
        FakeReply::Headers(refused_headers.clone(), Box::new(refused))
    })
    .await;
    let openai = OpenAiProvider::new("openai", fake.base_url(), None, reqwest::Client::new());
    let completion = openai.complete(&request).await.unwrap();
    assert_eq!(completion.quota.requests_remaining, Some(59));
    assert_eq!(completion.quota.exhausted_for, None);
    let again = CompletionRequest {
        messages: vec![Message::user("more")],
        ..request.clone()
    };
    let error = openai.complete(&again).await.unwrap_err();
    assert!(
        matches!(error, ProviderError::RateLimited { retry_after: Some(wait), .. } if wait == Duration::from_secs(7)),
        "{error:?}"
    );

    // Anthropic: a token budget at zero, reset as a time (far off here: the
    // limiter caps the pause).
    let anthropic_headers = headers(&[
        ("anthropic-ratelimit-requests-remaining", "3"),
        ("anthropic-ratelimit-tokens-remaining", "0"),
        ("anthropic-ratelimit-tokens-reset", "2999-01-01T00:00:00Z"),
    ]);
    let bot = TestBot::builder(Wire::Anthropic)
        .start(move |_| {
            let ok = FakeReply::Text("hello".into());
            FakeReply::Headers(anthropic_headers.clone(), Box::new(ok))
        })
        .await;
    let anthropic = AnthropicProvider::new("a", bot.llm.base_url(), None, reqwest::Client::new());
    let completion = anthropic.complete(&request).await.unwrap();
    assert_eq!(completion.quota.requests_remaining, Some(3));
    assert!(completion.quota.exhausted_for.is_some());
    // Through the engine: the call is answered, and the provider pauses
    // new calls for as long as the limiter allows.
    say_in(&bot, 17, 1, "hi").await;
    wait_for_answers(&bot, 1).await;
    assert_eq!(replies_in(&bot, 17), ["hello"]);
    let paused = fake_load(&bot, "fake").paused;
    assert!(
        matches!(paused, Some((wait, "its quota is used up")) if wait > Duration::from_secs(50) && wait <= baton::agent::MAX_PAUSE),
        "{paused:?}"
    );
}
