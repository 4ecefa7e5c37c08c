//! The limits inside a turn end with an answer, not an error: the round
//! limit's last call without tools, the note to an orchestrator that
//! answers while workers run, `await_workers` in finish order, the effort
//! levels the schema offers, and `/greedy on` raising the limits.

use std::time::Duration;

use baton::store::{EventKind, StoredTurn, TurnStatus};
use baton_channel::WorkerStatus;
use serde_json::{Value, json};

use crate::support::bot::{ORCHESTRATOR_MODEL, TestBot, WORKER_MODEL};
use crate::support::fake_llm::{FakeReply, Gate, SeenRequest, Wire};

/// The words that start the note about workers still running.
const NOTE: &str = "Your answer was not sent";

fn orchestrator_requests(bot: &TestBot) -> Vec<SeenRequest> {
    bot.llm
        .requests()
        .into_iter()
        .filter(|r| r.model == ORCHESTRATOR_MODEL)
        .collect()
}

/// The ids of the awaited workers, in the order they were reported.
fn ids(awaited: &[Value]) -> Vec<&str> {
    awaited
        .iter()
        .map(|w| w["worker_id"].as_str().unwrap())
        .collect()
}

/// The user messages of a request that are the running-workers note.
fn notes(request: &SeenRequest) -> Vec<&str> {
    request
        .messages
        .iter()
        .filter(|m| m.role == "user" && m.text.starts_with(NOTE))
        .map(|m| m.text.as_str())
        .collect()
}

/// `spawn_worker` calls for `labels`, each briefed "research <label>".
fn spawn(labels: &[&str]) -> FakeReply {
    FakeReply::ToolCalls(
        labels
            .iter()
            .map(|label| {
                (
                    "spawn_worker".to_owned(),
                    json!({"label": label, "prompt": format!("research {label}")}),
                )
            })
            .collect(),
    )
}

fn await_workers(arguments: Value) -> FakeReply {
    FakeReply::ToolCalls(vec![("await_workers".into(), arguments)])
}

fn current_time() -> FakeReply {
    FakeReply::ToolCalls(vec![("current_time".into(), json!({}))])
}

/// The conversation's one turn, as stored (found through its reply event).
async fn the_turn(bot: &TestBot) -> StoredTurn {
    let store = &bot.services.store;
    let events = store.recent_events(&TestBot::key(), 100).await.unwrap();
    let turn = events.iter().rev().find_map(|e| e.turn).expect("a turn");
    store.load_turn(turn).await.unwrap().expect("its row")
}

#[tokio::test]
async fn at_the_round_limit_the_orchestrator_answers_from_its_workers_results_on_every_wire() {
    for wire in [Wire::OpenAi, Wire::Anthropic, Wire::Gemini] {
        let mut bot = TestBot::builder(wire)
            .config("[orchestrator]\ndefault_mode = \"orchestrator\"\nmax_tool_rounds = 4")
            .start(|request| {
                let brief = request.messages.first().map(|m| m.text.clone());
                if request.model == WORKER_MODEL {
                    let brief = brief.unwrap_or_default();
                    // "loop" reads the clock forever; the limit cuts it short.
                    return if request.tools_forbidden() {
                        let reads = request.tool_results().len();
                        FakeReply::Text(format!("{brief}: {reads} clock reads"))
                    } else if brief.contains("loop") {
                        current_time()
                    } else {
                        FakeReply::Text(format!("{brief}: found"))
                    };
                }
                let mut awaited = request.awaited();
                if request.tools_forbidden() {
                    // Quote what the workers returned, as a model would.
                    awaited.sort_by_key(|w| w["worker_id"].as_str().map(str::to_owned));
                    let parts: Vec<String> = awaited
                        .iter()
                        .map(|w| {
                            let cut = if w["cut_short"] == true {
                                " (cut short)"
                            } else {
                                ""
                            };
                            format!("{}{cut}", w["result"].as_str().unwrap_or("?"))
                        })
                        .collect();
                    return FakeReply::Text(format!("From what I have: {}", parts.join(" | ")));
                }
                if request.tool_results().is_empty() {
                    spawn(&["alpha", "loop"])
                } else if awaited.len() < 2 {
                    await_workers(json!({}))
                } else {
                    current_time()
                }
            })
            .await;
        bot.say("research alpha and loop").await;
        bot.drain().await;

        assert_eq!(
            bot.channel.replies(),
            ["From what I have: research alpha: found | research loop: 4 clock reads (cut short)"],
            "{wire:?}"
        );
        let requests = orchestrator_requests(&bot);
        assert_eq!(
            requests.len(),
            5,
            "{wire:?}: 4 tool rounds, then the last call"
        );
        let forbidden: Vec<bool> = requests.iter().map(SeenRequest::tools_forbidden).collect();
        assert_eq!(forbidden, [false, false, false, false, true], "{wire:?}");
        let last = requests.last().unwrap();
        assert!(
            last.has_tool("spawn_worker"),
            "{wire:?}: the tools stay declared"
        );
        let note = last.last_user_text().unwrap();
        assert!(note.contains("limit of 4 tool rounds"), "{wire:?}: {note}");
        // The worker cut short is `done`, its last answer its result.
        let awaited = last.awaited();
        let looped = awaited.iter().find(|w| w["label"] == "loop").unwrap();
        assert_eq!(looped["status"], "done", "{wire:?}");
        assert_eq!(looped["cut_short"], true, "{wire:?}");
        let alpha = awaited.iter().find(|w| w["label"] == "alpha").unwrap();
        assert!(alpha.get("cut_short").is_none(), "{wire:?}: {alpha}");

        let turn = the_turn(&bot).await;
        assert_eq!(turn.status, TurnStatus::Done, "{wire:?}");
        let workers = bot.services.store.workers(turn.id).await.unwrap();
        let looped = workers.iter().find(|w| w.label == "loop").unwrap();
        assert_eq!(looped.status, WorkerStatus::Done, "{wire:?}");
        assert_eq!(
            looped.result.as_deref(),
            Some("research loop: 4 clock reads"),
            "{wire:?}"
        );
        bot.stop().await;
    }
}

#[tokio::test]
async fn an_answer_while_workers_run_gets_one_note_then_the_results() {
    // The workers answer only once the orchestrator has had the note, so
    // they are surely running when it first answers.
    let noted = Gate::new();
    let gate = noted.clone();
    let mut bot = TestBot::builder(Wire::OpenAi)
        .config("[orchestrator]\ndefault_mode = \"orchestrator\"")
        .start(move |request| {
            if request.model == WORKER_MODEL {
                let brief = request.last_user_text().unwrap_or_default();
                let done = FakeReply::Text(format!("{brief} done"));
                return FakeReply::After(gate.clone(), Box::new(done));
            }
            if request.tool_results().is_empty() {
                return spawn(&["alpha", "beta"]);
            }
            if notes(request).is_empty() {
                return FakeReply::Text("Too early.".into());
            }
            gate.open();
            let mut awaited = request.awaited();
            if awaited.len() < 2 {
                return await_workers(json!({}));
            }
            awaited.sort_by_key(|w| w["worker_id"].as_str().map(str::to_owned));
            let results: Vec<&str> = awaited
                .iter()
                .map(|w| w["result"].as_str().unwrap())
                .collect();
            FakeReply::Text(format!("Second answer: {}", results.join(" | ")))
        })
        .await;
    bot.say("research alpha and beta").await;
    bot.drain().await;

    assert_eq!(
        bot.channel.replies(),
        ["Second answer: research alpha done | research beta done"]
    );
    let requests = orchestrator_requests(&bot);
    let last = requests.last().unwrap();
    let notes = notes(last);
    assert_eq!(notes.len(), 1, "one note: {notes:?}");
    assert!(notes[0].contains("w1 (alpha), w2 (beta)"), "{}", notes[0]);
    // The held-back answer is in its context, just before the note.
    let at = last
        .messages
        .iter()
        .position(|m| m.text == notes[0])
        .unwrap();
    assert_eq!(last.messages[at - 1].text, "Too early.");
    let awaited = last.awaited();
    let mut reported = ids(&awaited);
    reported.sort();
    assert_eq!(reported, ["w1", "w2"]);
    assert!(awaited.iter().all(|w| w["status"] == "done"));

    let events = bot
        .services
        .store
        .recent_events(&TestBot::key(), 100)
        .await
        .unwrap();
    assert!(
        !events
            .iter()
            .any(|e| e.source == "orchestrator" && e.kind == Some(EventKind::Error)),
        "nothing was cancelled: {events:#?}"
    );
    assert_eq!(the_turn(&bot).await.status, TurnStatus::Done);
}

#[tokio::test]
async fn an_orchestrator_that_ignores_the_note_has_its_workers_cancelled_and_its_answer_posted() {
    let never = Gate::new();
    let mut bot = TestBot::builder(Wire::OpenAi)
        .config("[orchestrator]\ndefault_mode = \"orchestrator\"")
        .start(move |request| {
            if request.model == WORKER_MODEL {
                let late = FakeReply::Text("too late".into());
                return FakeReply::After(never.clone(), Box::new(late));
            }
            if request.tool_results().is_empty() {
                return spawn(&["alpha", "beta"]);
            }
            if notes(request).is_empty() {
                FakeReply::Text("First answer.".into())
            } else {
                FakeReply::Text("I will not wait.".into())
            }
        })
        .await;
    bot.say("research alpha and beta").await;
    bot.drain().await;

    assert_eq!(bot.channel.replies(), ["I will not wait."]);
    let requests = orchestrator_requests(&bot);
    assert_eq!(requests.len(), 3, "spawn, the first answer, the second");
    assert_eq!(notes(&requests[2]).len(), 1);

    let events = bot
        .services
        .store
        .recent_events(&TestBot::key(), 100)
        .await
        .unwrap();
    let cancelled: Vec<&str> = events
        .iter()
        .filter(|e| e.source == "orchestrator" && e.kind == Some(EventKind::Error))
        .map(|e| e.body.as_str())
        .collect();
    assert_eq!(cancelled.len(), 1, "{events:#?}");
    assert!(
        cancelled[0].starts_with("cancelled w1 (alpha), w2 (beta)"),
        "{}",
        cancelled[0]
    );
    // The event comes before the reply.
    let event_at = events.iter().position(|e| e.body == cancelled[0]).unwrap();
    let reply_at = events
        .iter()
        .position(|e| e.body == "I will not wait.")
        .unwrap();
    assert!(event_at < reply_at, "{events:#?}");

    let turn = the_turn(&bot).await;
    assert_eq!(turn.status, TurnStatus::Done);
    let workers = bot.services.store.workers(turn.id).await.unwrap();
    let statuses: Vec<WorkerStatus> = workers.iter().map(|w| w.status).collect();
    assert_eq!(statuses, [WorkerStatus::Cancelled, WorkerStatus::Cancelled]);
}

#[tokio::test]
async fn await_workers_returns_every_finished_worker_in_the_order_they_finished() {
    let mut bot = TestBot::builder(Wire::OpenAi)
        .config("[orchestrator]\ndefault_mode = \"orchestrator\"")
        .start(|request| {
            if request.model == WORKER_MODEL {
                let brief = request.last_user_text().unwrap_or_default();
                let done = FakeReply::Text(format!("{brief} done"));
                // w1 (alpha) finishes well after w2 (beta).
                return if brief.contains("alpha") {
                    FakeReply::Delayed(Duration::from_millis(300), Box::new(done))
                } else {
                    done
                };
            }
            match request.tool_results().len() {
                0 => spawn(&["alpha", "beta"]),
                // Both workers finish while this call is in progress.
                2 => FakeReply::Delayed(
                    Duration::from_millis(1500),
                    Box::new(await_workers(json!({}))),
                ),
                _ => FakeReply::Text("Both reviewed.".into()),
            }
        })
        .await;
    bot.say("research alpha and beta").await;
    bot.drain().await;

    assert_eq!(bot.channel.replies(), ["Both reviewed."]);
    let requests = orchestrator_requests(&bot);
    let last = requests.last().unwrap();
    let calls: Vec<Value> = last
        .tool_results()
        .iter()
        .filter(|m| m.tool_name.as_deref() == Some("await_workers"))
        .map(|m| serde_json::from_str(&m.text).unwrap())
        .collect();
    assert_eq!(calls.len(), 1, "one call returned both");
    let finished = calls[0]["finished"].as_array().unwrap();
    assert_eq!(ids(finished), ["w2", "w1"], "finish order: {}", calls[0]);
    assert_eq!(finished[0]["label"], "beta");
    assert_eq!(finished[0]["result"], "research beta done");
    assert_eq!(finished[1]["result"], "research alpha done");
    assert!(finished.iter().all(|w| w["status"] == "done"));
    assert!(
        finished
            .iter()
            .all(|w| w["usage"]["output_tokens"].as_u64() > Some(0))
    );
    assert_eq!(calls[0]["still_running"], json!([]));
}

#[tokio::test]
async fn workers_finishing_close_together_are_reported_in_one_await() {
    // Both workers are released once both were asked; beta answers 20 ms
    // after alpha, well inside await_workers' 100 ms gathering, so the one
    // call that alpha's finish ends also brings beta's result.
    let gate = Gate::new();
    let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut bot = TestBot::builder(Wire::OpenAi)
        .config("[orchestrator]\ndefault_mode = \"orchestrator\"")
        .start(move |request| {
            if request.model == WORKER_MODEL {
                if asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 1 {
                    gate.open();
                }
                let brief = request.last_user_text().unwrap_or_default();
                let done = FakeReply::Text(format!("{brief} done"));
                let done = if brief.contains("beta") {
                    FakeReply::Delayed(Duration::from_millis(20), Box::new(done))
                } else {
                    done
                };
                return FakeReply::After(gate.clone(), Box::new(done));
            }
            if request.tool_results().is_empty() {
                return spawn(&["alpha", "beta"]);
            }
            if request.awaited().len() < 2 {
                return await_workers(json!({}));
            }
            FakeReply::Text("Both reviewed.".into())
        })
        .await;
    bot.say("research alpha and beta").await;
    bot.drain().await;

    assert_eq!(bot.channel.replies(), ["Both reviewed."]);
    let requests = orchestrator_requests(&bot);
    assert_eq!(requests.len(), 3, "spawn, one await, the answer");
    let awaited = requests.last().unwrap().awaited();
    assert_eq!(ids(&awaited), ["w1", "w2"], "in finish order");
}

#[tokio::test]
async fn max_results_caps_a_call_and_the_rest_wait_for_the_next() {
    let mut bot = TestBot::builder(Wire::OpenAi)
        .config("[orchestrator]\ndefault_mode = \"orchestrator\"")
        .start(|request| {
            if request.model == WORKER_MODEL {
                let brief = request.last_user_text().unwrap_or_default();
                return FakeReply::Text(format!("{brief} done"));
            }
            match request.tool_results().len() {
                0 => spawn(&["a", "b", "c"]),
                // All three finish while this call is in progress.
                3 => FakeReply::Delayed(
                    Duration::from_millis(1000),
                    Box::new(await_workers(json!({"max_results": 2}))),
                ),
                4 => await_workers(json!({})),
                _ => FakeReply::Text("All three reviewed.".into()),
            }
        })
        .await;
    bot.say("research a, b and c").await;
    bot.drain().await;

    assert_eq!(bot.channel.replies(), ["All three reviewed."]);
    let requests = orchestrator_requests(&bot);
    let results = requests.last().unwrap().tool_results();
    let first: Value = serde_json::from_str(&results[3].text).unwrap();
    let second: Value = serde_json::from_str(&results[4].text).unwrap();
    let first = first["finished"].as_array().unwrap();
    let second = second["finished"].as_array().unwrap();
    assert_eq!((first.len(), second.len()), (2, 1), "{results:#?}");
    let mut all = ids(first);
    all.extend(ids(second));
    all.sort();
    assert_eq!(all, ["w1", "w2", "w3"]);
}

#[tokio::test]
async fn the_effort_schema_offers_only_what_the_worker_models_support() {
    let mut bot = TestBot::builder(Wire::OpenAi)
        .config(
            r#"
[orchestrator]
default_mode = "orchestrator"

[models.catalog."fake:worker-model"]
efforts = ["off", "on"]
"#,
        )
        .start(|_| FakeReply::Text("fine".into()))
        .await;
    bot.say("hello").await;
    bot.drain().await;
    let request = &orchestrator_requests(&bot)[0];
    for tool in ["spawn_worker", "send_to_worker"] {
        assert_eq!(
            request.argument_enum(tool, "effort"),
            Some(vec!["off".to_owned(), "on".to_owned()]),
            "{tool}"
        );
    }
    bot.stop().await;

    // A specialty's model adds its levels: the orchestrator may ask for them.
    let mut bot = TestBot::builder(Wire::Anthropic)
        .config(
            r#"
[orchestrator]
default_mode = "orchestrator"

[models.specialties]
coder = "fake:coder-model"

[models.catalog."fake:worker-model"]
efforts = ["off", "on"]

[models.catalog."fake:coder-model"]
efforts = ["max"]
"#,
        )
        .start(|_| FakeReply::Text("fine".into()))
        .await;
    bot.say("hello").await;
    bot.drain().await;
    let request = &orchestrator_requests(&bot)[0];
    assert_eq!(
        request.argument_enum("spawn_worker", "effort"),
        Some(vec!["off".to_owned(), "on".to_owned(), "max".to_owned()])
    );
}

/// An orchestrator that needs 4 tool rounds (spawn, await, two clock
/// reads) and a worker that needs 4 clock reads; each says whether it was
/// made to answer early.
fn four_rounds_each(request: &SeenRequest) -> FakeReply {
    let reads = request
        .tool_results()
        .iter()
        .filter(|m| m.tool_name.as_deref() == Some("current_time"))
        .count();
    if request.model == WORKER_MODEL {
        return match (request.tools_forbidden(), reads) {
            (true, _) => FakeReply::Text(format!("worker cut short after {reads}")),
            (false, 0..=3) => current_time(),
            (false, _) => FakeReply::Text("worker finished".into()),
        };
    }
    let awaited = request.awaited();
    let worker = awaited
        .first()
        .and_then(|w| w["result"].as_str())
        .unwrap_or("no worker result");
    if request.tools_forbidden() {
        return FakeReply::Text(format!("cut short; {worker}"));
    }
    match (request.tool_results().len(), reads) {
        (0, _) => spawn(&["clock"]),
        (1, _) => await_workers(json!({})),
        (_, 0 | 1) => current_time(),
        _ => FakeReply::Text(format!("all 4 rounds done; {worker}")),
    }
}

#[tokio::test]
async fn greedy_on_multiplies_the_round_limits() {
    let config = "[orchestrator]\ndefault_mode = \"orchestrator\"\nmax_tool_rounds = 2";
    let mut bot = TestBot::builder(Wire::OpenAi)
        .config(config)
        .start(four_rounds_each)
        .await;
    bot.say("read the clock a lot").await;
    // A settings command applies at once, even during a turn: wait for it.
    bot.channel.wait_for_replies(1).await;
    bot.say("/greedy on").await;
    bot.say("read the clock a lot again").await;
    bot.drain().await;

    let replies = bot.channel.replies();
    assert_eq!(replies.len(), 3, "{replies:#?}");
    // Without greedy, 2 rounds: both are cut short.
    assert_eq!(replies[0], "cut short; worker cut short after 2");
    // With greedy (factor 3 by default), 6 rounds: neither is.
    assert_eq!(replies[2], "all 4 rounds done; worker finished");
    let requests = bot.llm.requests();
    let greedy_turn = requests
        .iter()
        .position(|r| r.last_user_text() == Some("Ada: read the clock a lot again"))
        .unwrap();
    assert!(
        requests[greedy_turn..].iter().all(|r| !r.tools_forbidden()),
        "nothing was cut short with greedy on"
    );
}
