//! The engine driven as a user would: messages and commands in through the
//! registry, the posts a user would see out, a scripted fake model on the
//! far side of a socket.

use std::time::Duration;

use baton_channel::{Origin, WorkerEventKind, WorkerStatus};
use serde_json::{Value, json};

use baton::store::EventKind;
use baton_channel::Accepted;
use baton_channel::ChannelEvent;

use crate::support::bot::{ORCHESTRATOR_MODEL, Shown, TestBot, WORKER_MODEL};
use crate::support::eventually::until;
use crate::support::fake_llm::{FakeReply, SeenRequest, Wire};

const DELEGATION_TOOLS: [&str; 5] = [
    "spawn_worker",
    "send_to_worker",
    "await_workers",
    "close_worker",
    "cancel_worker",
];

/// Every worker result the `await_workers` calls in a request returned
/// (one call returns every worker that finished since the last), in order,
/// each with its call's `still_running`.
fn awaited(request: &SeenRequest) -> Vec<Value> {
    request.awaited()
}

/// An orchestrator that splits the request over `workers` (label, brief),
/// awaits them until every result is in, and answers with what they
/// returned.
fn delegating_orchestrator(request: &SeenRequest, workers: &[(&str, &str)]) -> FakeReply {
    if request.tool_results().is_empty() {
        return FakeReply::ToolCalls(
            workers
                .iter()
                .map(|(label, brief)| {
                    (
                        "spawn_worker".to_owned(),
                        json!({"label": label, "prompt": brief}),
                    )
                })
                .collect(),
        );
    }
    let results = awaited(request);
    if results.len() < workers.len() {
        return FakeReply::ToolCalls(vec![("await_workers".into(), json!({}))]);
    }
    let parts: Vec<String> = results
        .iter()
        .map(|r| {
            r["result"]
                .as_str()
                .or(r["error"].as_str())
                .unwrap_or("?")
                .to_owned()
        })
        .collect();
    FakeReply::Text(format!("Summary: {}", parts.join(" | ")))
}

/// Workers that answer "<brief> done" after a delay that depends on the brief.
fn slow_worker(request: &SeenRequest) -> FakeReply {
    let brief = request.last_user_text().unwrap_or_default().to_owned();
    let delay = if brief.contains("alpha") {
        100
    } else if brief.contains("beta") {
        400
    } else {
        700
    };
    FakeReply::Delayed(
        Duration::from_millis(delay),
        Box::new(FakeReply::Text(format!("{brief} done"))),
    )
}

const THREE: [(&str, &str); 3] = [
    ("alpha", "research alpha"),
    ("beta", "research beta"),
    ("gamma", "research gamma"),
];

fn three_workers(request: &SeenRequest) -> FakeReply {
    if request.model == WORKER_MODEL {
        slow_worker(request)
    } else {
        delegating_orchestrator(request, &THREE)
    }
}

#[tokio::test]
async fn single_mode_gets_exactly_one_reply_on_every_wire() {
    for wire in [Wire::OpenAi, Wire::Anthropic, Wire::Gemini] {
        let mut bot = TestBot::builder(wire)
            .start(|request| {
                FakeReply::Text(format!(
                    "Hello! You said: {}",
                    request.last_user_text().unwrap_or("")
                ))
            })
            .await;
        bot.say("hi there").await;
        bot.drain().await;

        let shown = bot.channel.shown();
        assert_eq!(shown.len(), 1, "{wire:?}: {shown:#?}");
        let Shown::Reply { origin, text, .. } = &shown[0] else {
            panic!("not a reply: {shown:?}")
        };
        assert_eq!(text, "Hello! You said: Ada: hi there", "{wire:?}");
        assert_eq!(
            *origin,
            Origin::Telegram(1),
            "the reply answers the user's message"
        );
        let requests = bot.llm.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].model, ORCHESTRATOR_MODEL);
        for tool in DELEGATION_TOOLS {
            assert!(!requests[0].has_tool(tool), "single mode offered {tool}");
        }
    }
}

#[tokio::test]
async fn orchestrator_runs_three_workers_in_parallel_and_posts_one_reply() {
    let mut bot = TestBot::start(three_workers).await;
    bot.say("/orchestrator on").await;
    bot.say("research alpha, beta and gamma").await;
    bot.drain().await;

    let replies = bot.channel.replies();
    assert_eq!(replies.len(), 2, "{replies:#?}");
    assert!(replies[0].starts_with("Orchestrator mode on"));
    assert_eq!(
        replies[1],
        "Summary: research alpha done | research beta done | research gamma done"
    );
    assert!(bot.channel.verbose().is_empty(), "verbose is off");

    // The three workers' requests were at the fake at the same time.
    assert!(
        bot.llm.max_in_flight() >= 3,
        "workers did not overlap: {}",
        bot.llm.max_in_flight()
    );

    // await_workers handed them back one at a time, first finished first.
    let requests = bot.llm.requests();
    let last = requests
        .iter()
        .rev()
        .find(|r| r.model == ORCHESTRATOR_MODEL)
        .unwrap();
    let results = awaited(last);
    let order: Vec<&str> = results
        .iter()
        .map(|r| r["label"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["alpha", "beta", "gamma"]);
    let still: Vec<usize> = results
        .iter()
        .map(|r| r["still_running"].as_array().unwrap().len())
        .collect();
    assert_eq!(still, [2, 1, 0]);
    assert!(
        results
            .iter()
            .all(|r| r["status"] == "done" && r["usage"]["output_tokens"].as_u64() > Some(0))
    );

    // Workers saw only their brief, and were never offered delegation or posting.
    let worker_requests: Vec<&SeenRequest> = requests
        .iter()
        .filter(|r| r.model == WORKER_MODEL)
        .collect();
    assert_eq!(worker_requests.len(), 3);
    for request in worker_requests {
        assert_eq!(request.messages.len(), 1, "a worker sees only its brief");
        assert!(request.last_user_text().unwrap().starts_with("research "));
        assert_eq!(
            request.tool_names,
            ["current_time", "fetch_url"],
            "worker tools: {:?}",
            request.tool_names
        );
    }
}

#[tokio::test]
async fn verbose_shows_each_worker_tagged_with_its_label_and_never_in_the_reply_stream() {
    let mut bot = TestBot::start(three_workers).await;
    bot.say("/orchestrator on").await;
    bot.say("/verbose on").await;
    bot.say("research alpha, beta and gamma").await;
    bot.drain().await;

    let replies = bot.channel.replies();
    assert_eq!(replies.len(), 3, "{replies:#?}");
    assert!(replies[2].starts_with("Summary:"));
    for reply in &replies {
        assert!(
            !reply.contains("[alpha]") && !reply.starts_with("research"),
            "worker output in the reply stream: {reply}"
        );
    }
    let verbose = bot.channel.verbose();
    for (label, brief) in THREE {
        let mine: Vec<&WorkerEventKind> = verbose
            .iter()
            .filter(|e| e.label == label)
            .map(|e| &e.kind)
            .collect();
        assert_eq!(
            mine,
            [
                &WorkerEventKind::Started {
                    brief: brief.to_owned()
                },
                &WorkerEventKind::Text(format!("{brief} done")),
                &WorkerEventKind::Finished {
                    status: WorkerStatus::Done
                },
            ],
            "{label}"
        );
    }
    // Verbose events hang under the message that started the turn, and all
    // come before the one reply that sums them up.
    let shown = bot.channel.shown();
    let reply_at = shown
        .iter()
        .position(|s| matches!(s, Shown::Reply { text, .. } if text.starts_with("Summary")))
        .unwrap();
    for (i, item) in shown.iter().enumerate() {
        if let Shown::Verbose { origin, .. } = item {
            assert_eq!(*origin, Origin::Telegram(3));
            assert!(i < reply_at);
        }
    }
}

#[tokio::test]
async fn stop_cancels_the_turn_and_every_worker_and_the_next_message_is_answered() {
    let mut bot = TestBot::start(|request| {
        if request.model == WORKER_MODEL {
            return FakeReply::Delayed(
                Duration::from_secs(60),
                Box::new(FakeReply::Text("too late".into())),
            );
        }
        if request
            .last_user_text()
            .is_some_and(|t| t.contains("again"))
        {
            return FakeReply::Text("Fresh answer.".into());
        }
        delegating_orchestrator(request, &THREE)
    })
    .await;
    bot.say("/orchestrator on").await;
    bot.say("/verbose on").await;
    bot.say("research alpha, beta and gamma").await;
    let llm = &bot.llm;
    until("three workers to start", || {
        llm.requests()
            .iter()
            .filter(|r| r.model == WORKER_MODEL)
            .count()
            >= 3
    })
    .await;
    bot.say("/stop").await;
    bot.channel.wait_for_replies(3).await;
    assert_eq!(bot.channel.replies()[2], "Stopped.");
    let cancelled: Vec<String> = bot
        .channel
        .verbose()
        .into_iter()
        .filter(|e| {
            e.kind
                == WorkerEventKind::Finished {
                    status: WorkerStatus::Cancelled,
                }
        })
        .map(|e| e.label)
        .collect();
    assert_eq!(
        cancelled.len(),
        3,
        "every worker was cancelled: {cancelled:?}"
    );

    bot.say("try again please").await;
    bot.drain().await;
    let replies = bot.channel.replies();
    assert_eq!(replies.len(), 4, "{replies:#?}");
    assert_eq!(replies[3], "Fresh answer.");
}

#[tokio::test]
async fn a_worker_error_reaches_the_orchestrator_as_a_tool_result_without_retries() {
    let mut bot = TestBot::start(|request| {
        if request.model == WORKER_MODEL {
            return FakeReply::Error {
                status: 503,
                body: json!({"error": {"message": "overloaded"}}),
                retry_after: None,
            };
        }
        delegating_orchestrator(request, &[("solo", "do the thing")])
    })
    .await;
    bot.say("/orchestrator on").await;
    bot.say("do the thing").await;
    bot.drain().await;

    let requests = bot.llm.requests();
    assert_eq!(
        requests.iter().filter(|r| r.model == WORKER_MODEL).count(),
        1,
        "workers are single-shot"
    );
    let last = requests
        .iter()
        .rev()
        .find(|r| r.model == ORCHESTRATOR_MODEL)
        .unwrap();
    let results = awaited(last);
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["status"], "error");
    assert!(
        results[0]["error"].as_str().unwrap().contains("overloaded"),
        "{}",
        results[0]
    );
    let replies = bot.channel.replies();
    assert_eq!(replies.len(), 2);
    assert!(
        replies[1].starts_with("Summary:") && replies[1].contains("overloaded"),
        "{}",
        replies[1]
    );
}

#[tokio::test]
async fn unknown_tools_bad_arguments_and_unknown_workers_are_error_results_and_the_turn_completes()
{
    let mut bot = TestBot::start(|request| {
        if request.tool_results().is_empty() {
            return FakeReply::ToolCalls(vec![
                ("frobnicate".into(), json!({})),
                ("await_workers".into(), json!({"worker_ids": ["w99"]})),
                ("spawn_worker".into(), json!({"label": "no prompt"})),
            ]);
        }
        if request.tool_results().len() == 3 {
            return FakeReply::RawToolCall {
                name: "close_worker".into(),
                arguments: "{not json".into(),
            };
        }
        FakeReply::Text("I recovered.".into())
    })
    .await;
    bot.say("/orchestrator on").await;
    bot.say("break things").await;
    bot.drain().await;

    assert_eq!(bot.channel.replies()[1], "I recovered.");
    let requests = bot.llm.requests();
    let results = requests.last().unwrap().tool_results();
    let texts: Vec<&str> = results.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts.len(), 4, "{texts:?}");
    assert!(
        texts[0].contains("unknown tool") && texts[0].contains("frobnicate"),
        "{}",
        texts[0]
    );
    assert!(
        texts[1].contains("unknown worker_id") && texts[1].contains("w99"),
        "{}",
        texts[1]
    );
    assert!(texts[2].contains("prompt"), "{}", texts[2]);
    assert!(texts[3].contains("not valid JSON"), "{}", texts[3]);
}

#[tokio::test]
async fn transient_errors_are_retried_for_the_orchestrator() {
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let mut bot = TestBot::start(move |_| {
        if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
            FakeReply::Error {
                status: 429,
                body: json!({"error": {"message": "slow down"}}),
                retry_after: Some(0),
            }
        } else {
            FakeReply::Text("Third time lucky.".into())
        }
    })
    .await;
    bot.say("hello").await;
    bot.drain().await;
    assert_eq!(bot.llm.requests().len(), 3);
    // One notice for the two retries, then the answer.
    let replies = bot.channel.replies();
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert!(
        replies[0].contains("rate limiting") && replies[0].contains("retrying"),
        "{replies:?}"
    );
    assert_eq!(replies[1], "Third time lucky.");
}

#[tokio::test]
async fn a_permanent_error_is_explained_to_the_user_once() {
    let mut bot = TestBot::start(|_| FakeReply::Error {
        status: 401,
        body: json!({"error": {"message": "Incorrect API key provided"}}),
        retry_after: None,
    })
    .await;
    bot.say("hello").await;
    bot.drain().await;
    assert_eq!(bot.llm.requests().len(), 1, "a 401 is not retried");
    let replies = bot.channel.replies();
    assert_eq!(replies.len(), 1);
    assert!(replies[0].contains("API key"), "{}", replies[0]);
}

#[tokio::test]
async fn a_restart_keeps_settings_and_history() {
    let mut bot = TestBot::start(|request| {
        FakeReply::Text(format!("noted ({} messages)", request.messages.len()))
    })
    .await;
    bot.say("/orchestrator on").await;
    bot.say("/verbose on").await;
    bot.say("/effort high").await;
    bot.say("remember the number 42").await;
    bot.drain().await;
    assert_eq!(bot.channel.replies()[3], "noted (1 messages)");
    let dir = bot.stop().await;

    let mut bot = TestBot::builder(Wire::OpenAi)
        .database(dir)
        .start(|request| {
            FakeReply::Text(format!("still here ({} messages)", request.messages.len()))
        })
        .await;
    bot.say("/status").await;
    bot.say("what number?").await;
    bot.drain().await;
    let replies = bot.channel.replies();
    assert!(replies[0].contains("Mode: orchestrator"), "{}", replies[0]);
    assert!(replies[0].contains("Verbose: on"), "{}", replies[0]);
    assert!(replies[0].contains("Effort: high"), "{}", replies[0]);
    assert_eq!(replies[1], "still here (3 messages)");
    let request = &bot.llm.requests()[0];
    let texts: Vec<&str> = request.messages.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "Ada: remember the number 42",
            "noted (1 messages)",
            "Ada: what number?"
        ]
    );
}

#[tokio::test]
async fn messages_during_a_turn_wait_their_turn_in_order() {
    let mut bot = TestBot::start(|request| {
        let text = request.last_user_text().unwrap_or_default().to_owned();
        FakeReply::Delayed(
            Duration::from_millis(50),
            Box::new(FakeReply::Text(format!("re: {text}"))),
        )
    })
    .await;
    for n in 1..=4 {
        bot.say(&format!("message {n}")).await;
    }
    bot.drain().await;
    assert_eq!(
        bot.channel.replies(),
        [
            "re: Ada: message 1",
            "re: Ada: message 2",
            "re: Ada: message 3",
            "re: Ada: message 4"
        ]
    );
    assert_eq!(bot.llm.max_in_flight(), 1, "one turn at a time");
}

#[tokio::test]
async fn reset_starts_a_new_context_and_bad_commands_get_usage() {
    let mut bot =
        TestBot::start(|request| FakeReply::Text(format!("{} in context", request.messages.len())))
            .await;
    bot.say("first").await;
    bot.say("/reset").await;
    bot.say("/verbose loudly").await;
    bot.say("/frobnicate").await;
    bot.say("second").await;
    bot.drain().await;
    let replies = bot.channel.replies();
    assert_eq!(replies[0], "1 in context");
    assert!(replies[1].starts_with("Context cleared"));
    assert_eq!(replies[2], "usage: /verbose on|off");
    assert!(replies[3].contains("unknown command /frobnicate"));
    assert_eq!(replies[4], "1 in context");
}

#[tokio::test]
async fn send_to_worker_keeps_the_workers_context() {
    let mut bot = TestBot::start(|request| {
        if request.model == WORKER_MODEL {
            return FakeReply::Text(format!("draft {}", request.messages.len()));
        }
        let results = request.tool_results();
        match results.len() {
            0 => FakeReply::ToolCalls(vec![(
                "spawn_worker".into(),
                json!({"label": "writer", "prompt": "write a haiku"}),
            )]),
            1 => FakeReply::ToolCalls(vec![("await_workers".into(), json!({}))]),
            2 => FakeReply::ToolCalls(vec![(
                "send_to_worker".into(),
                json!({"worker_id": "w1", "prompt": "make it about autumn"}),
            )]),
            3 => FakeReply::ToolCalls(vec![(
                "await_workers".into(),
                json!({"worker_ids": ["w1"]}),
            )]),
            4 => FakeReply::ToolCalls(vec![("close_worker".into(), json!({"worker_id": "w1"}))]),
            _ => FakeReply::Text(format!("final: {}", results[3].text)),
        }
    })
    .await;
    bot.say("/orchestrator on").await;
    bot.say("a haiku please").await;
    bot.drain().await;

    let requests = bot.llm.requests();
    let worker: Vec<&SeenRequest> = requests
        .iter()
        .filter(|r| r.model == WORKER_MODEL)
        .collect();
    assert_eq!(worker.len(), 2);
    let second: Vec<&str> = worker[1].messages.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(second, ["write a haiku", "draft 1", "make it about autumn"]);
    let last = requests.last().unwrap();
    let close: Value = serde_json::from_str(&last.tool_results()[4].text).unwrap();
    assert_eq!(close, json!({"worker_id": "w1", "status": "closed"}));
    let reply = &bot.channel.replies()[1];
    assert!(
        reply.starts_with("final: ") && reply.contains("draft 3"),
        "{reply}"
    );
}

#[tokio::test]
async fn the_worker_limit_is_an_error_result_not_a_crash() {
    let mut bot = TestBot::builder(Wire::OpenAi)
        .config("[orchestrator]\nmax_workers = 2")
        .start(|request| {
            if request.model == WORKER_MODEL {
                return FakeReply::Text("ok".into());
            }
            match request.tool_results().len() {
                0 => FakeReply::ToolCalls(
                    ["a", "b", "c"]
                        .iter()
                        .map(|label| {
                            (
                                "spawn_worker".to_owned(),
                                json!({"label": label, "prompt": format!("task {label}")}),
                            )
                        })
                        .collect(),
                ),
                _ => FakeReply::Text("done".into()),
            }
        })
        .await;
    bot.say("/orchestrator on").await;
    bot.say("three things").await;
    bot.drain().await;
    let requests = bot.llm.requests();
    let last = requests
        .iter()
        .rev()
        .find(|r| r.model == ORCHESTRATOR_MODEL)
        .unwrap();
    let texts: Vec<&str> = last
        .tool_results()
        .iter()
        .map(|m| m.text.as_str())
        .collect();
    assert!(texts[0].contains("\"status\":\"running\""), "{texts:?}");
    assert!(texts[1].contains("\"status\":\"running\""), "{texts:?}");
    assert!(
        texts[2].contains("worker limit reached (2 open)"),
        "{texts:?}"
    );
    assert_eq!(bot.channel.replies()[1], "done");
}

#[tokio::test]
async fn a_worker_past_its_timeout_is_reported_timed_out() {
    let mut bot = TestBot::builder(Wire::OpenAi)
        .config("[orchestrator]\nworker_timeout_secs = 1")
        .start(|request| {
            if request.model == WORKER_MODEL {
                return FakeReply::Delayed(
                    Duration::from_secs(60),
                    Box::new(FakeReply::Text("late".into())),
                );
            }
            delegating_orchestrator(request, &[("slowpoke", "take forever")])
        })
        .await;
    bot.say("/orchestrator on").await;
    bot.say("go").await;
    bot.drain().await;
    let requests = bot.llm.requests();
    let results = awaited(requests.last().unwrap());
    assert_eq!(results[0]["status"], "timed_out");
    assert_eq!(results[0]["error"], "no result within 1s");
}

#[tokio::test]
async fn an_idle_conversation_leaves_memory_and_comes_back_from_the_store() {
    let mut bot = TestBot::builder(Wire::OpenAi)
        .config("[engine]\nidle_timeout_secs = 1")
        .start(|request| FakeReply::Text(format!("{} messages", request.messages.len())))
        .await;
    bot.say("/verbose on").await;
    bot.say("first").await;
    bot.channel.wait_for_replies(2).await;
    let registry = &bot.registry;
    until("the idle actor to leave", || {
        registry.live_conversations() == 0
    })
    .await;
    bot.say("/status").await;
    bot.say("second").await;
    bot.drain().await;
    let replies = bot.channel.replies();
    assert!(replies[2].contains("Verbose: on"), "{}", replies[2]);
    assert_eq!(replies[3], "3 messages");
}

#[tokio::test]
async fn the_event_log_records_the_turn_as_it_happens() {
    let mut bot = TestBot::start(three_workers).await;
    bot.say("/orchestrator on").await;
    bot.say("research alpha, beta and gamma").await;
    bot.drain().await;

    let events = bot
        .services
        .store
        .recent_events(&TestBot::key(), 100)
        .await
        .unwrap();
    let count = |kind: EventKind| events.iter().filter(|e| e.kind == Some(kind)).count();
    assert_eq!(count(EventKind::Delegation), 3);
    assert_eq!(count(EventKind::Result), 3);
    assert_eq!(count(EventKind::Message), 2);
    let first = &events[0];
    assert_eq!(
        (first.kind, first.source.as_str()),
        (Some(EventKind::Message), "user:42")
    );
    let last = events.last().unwrap();
    assert_eq!(last.kind, Some(EventKind::Message));
    assert_eq!(last.source, "orchestrator");
    assert!(last.body.starts_with("Summary:"));
    let results: Vec<&str> = events
        .iter()
        .filter(|e| e.kind == Some(EventKind::Result))
        .map(|e| e.source.as_str())
        .collect();
    assert_eq!(results, ["w1", "w2", "w3"]);
}

#[tokio::test]
async fn cancel_worker_aborts_a_running_worker_and_the_turn_goes_on() {
    let mut bot = TestBot::start(|request| {
        if request.model == WORKER_MODEL {
            return FakeReply::Delayed(
                Duration::from_secs(60),
                Box::new(FakeReply::Text("never".into())),
            );
        }
        match request.tool_results().len() {
            0 => FakeReply::ToolCalls(vec![(
                "spawn_worker".into(),
                json!({"label": "doomed", "prompt": "a long job"}),
            )]),
            1 => FakeReply::ToolCalls(vec![("cancel_worker".into(), json!({"worker_id": "w1"}))]),
            2 => FakeReply::ToolCalls(vec![("await_workers".into(), json!({}))]),
            _ => FakeReply::Text("Changed my mind.".into()),
        }
    })
    .await;
    bot.say("/orchestrator on").await;
    bot.say("/verbose on").await;
    bot.say("start and stop").await;
    bot.drain().await;

    let requests = bot.llm.requests();
    let results = requests.last().unwrap().tool_results();
    let cancel: Value = serde_json::from_str(&results[1].text).unwrap();
    assert_eq!(cancel, json!({"worker_id": "w1", "status": "cancelled"}));
    assert!(
        results[2].text.contains("no worker is running"),
        "{}",
        results[2].text
    );
    assert_eq!(bot.channel.replies()[2], "Changed my mind.");
    let finished: Vec<WorkerEventKind> = bot
        .channel
        .verbose()
        .into_iter()
        .filter(|e| matches!(e.kind, WorkerEventKind::Finished { .. }))
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        finished,
        [WorkerEventKind::Finished {
            status: WorkerStatus::Cancelled
        }]
    );
}

#[tokio::test]
async fn a_message_delivered_twice_is_answered_once() {
    let bot = TestBot::start(|_| FakeReply::Text("once".into())).await;
    let message = baton_channel::Inbound {
        key: TestBot::key(),
        author: baton_channel::Author {
            id: "42".into(),
            name: "Ada".into(),
        },
        text: "hello".into(),
        origin: baton_channel::Origin::Telegram(7),
        attachments: Vec::new(),
        chat_title: None,
    };
    let first = bot
        .registry
        .dispatch(ChannelEvent::Message(message.clone()))
        .await
        .unwrap();
    let again = bot
        .registry
        .dispatch(ChannelEvent::Message(message))
        .await
        .unwrap();
    assert_eq!((first, again), (Accepted::New, Accepted::Duplicate));
    bot.drain().await;
    assert_eq!(bot.channel.replies(), ["once"]);
    assert_eq!(bot.llm.requests().len(), 1);
}

#[tokio::test]
async fn a_message_interrupted_by_a_stop_is_answered_once_after_the_restart() {
    let mut bot = TestBot::start(|_| {
        FakeReply::Delayed(
            Duration::from_secs(60),
            Box::new(FakeReply::Text("never sent".into())),
        )
    })
    .await;
    bot.say("/orchestrator on").await;
    bot.say("are you there?").await;
    let llm = &bot.llm;
    until("the turn to start", || !llm.requests().is_empty()).await;
    let before = bot.channel.replies();
    let dir = bot.stop().await;
    assert_eq!(before.len(), 1, "only the command was answered: {before:?}");

    let bot = TestBot::builder(Wire::OpenAi)
        .database(dir)
        .start(|request| {
            FakeReply::Text(format!(
                "yes, {}",
                request.last_user_text().unwrap_or_default()
            ))
        })
        .await;
    assert_eq!(bot.registry.resume().await.unwrap(), 1);
    bot.drain().await;
    let shown = bot.channel.shown();
    assert_eq!(shown.len(), 1, "{shown:#?}");
    let Shown::Reply { origin, text, .. } = &shown[0] else {
        panic!("{shown:?}")
    };
    assert_eq!(text, "yes, Ada: are you there?");
    assert_eq!(
        *origin,
        Origin::Telegram(2),
        "the reply answers the original message"
    );

    // A third start has nothing left to answer.
    let dir = bot.stop().await;
    let bot = TestBot::builder(Wire::OpenAi)
        .database(dir)
        .start(|_| FakeReply::Text("no".into()))
        .await;
    assert_eq!(bot.registry.resume().await.unwrap(), 0);
}
