//! Projects end to end, through the fake Telegram and the scripted fake
//! model: started by `/project` or by the orchestrator's `start_project`,
//! running while the chat goes on, paused and resumed, cancelled, asking
//! the user, surviving a kill -9, and stopped by a budget cap. Each result
//! is posted once, by the conversation's actor.

use baton::config::Config;
use baton::store::{ProjectId, ProjectStatus, Store};
use baton_channel::WorkerStatus;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::support::bot::{WORKER_MODEL, test_config, test_config_text};
use crate::support::eventually::until;
use crate::support::fake_llm::{FakeLlm, FakeReply, Gate, SeenRequest, Wire};
use crate::support::fake_telegram::{Call, FakeTelegram};
use crate::support::service::App;
use crate::support::telegram_config::{telegram_config, telegram_only};

/// The user (in `allowed_users`); her DM is chat 42.
const ADA: u64 = 42;
const CHAT: i64 = ADA as i64;
/// Words only the boss's system prompt has.
const BOSS: &str = "running a long project in the background";
/// Words only a resumed boss's note has.
const EARLIER_WORKERS: &str = "Your earlier workers";

fn start_app(telegram: &FakeTelegram, llm: &FakeLlm, dir: &tempfile::TempDir, extra: &str) -> App {
    let db = dir.path().join("baton.db");
    App::spawn(telegram_config(
        telegram,
        ADA,
        llm,
        Wire::OpenAi,
        &db,
        extra,
    ))
}

fn is_boss(request: &SeenRequest) -> bool {
    request.system.contains(BOSS)
}

fn call(name: &str, arguments: Value) -> FakeReply {
    FakeReply::ToolCalls(vec![(name.to_owned(), arguments)])
}

/// Workers answer `<brief>: findings` once `gate` opens.
fn worker(request: &SeenRequest, gate: &Gate) -> FakeReply {
    let brief = request.last_user_text().unwrap_or_default();
    FakeReply::After(
        gate.clone(),
        Box::new(FakeReply::Text(format!("{brief}: findings"))),
    )
}

/// A boss that spawns two workers, awaits both and completes with their
/// results; resumed, it completes from the note it is given.
fn boss(request: &SeenRequest) -> FakeReply {
    let last = request.last_user_text().unwrap_or_default();
    if last.contains(EARLIER_WORKERS) {
        return call(
            "project_complete",
            json!({"summary": format!("Resumed report. {last}")}),
        );
    }
    if request.tool_results().is_empty() {
        return FakeReply::ToolCalls(vec![
            (
                "spawn_worker".into(),
                json!({"label": "tides", "prompt": "research tides"}),
            ),
            (
                "spawn_worker".into(),
                json!({"label": "costs", "prompt": "research costs"}),
            ),
        ]);
    }
    let results: Vec<String> = request
        .awaited()
        .iter()
        .filter_map(|worker| worker["result"].as_str().map(str::to_owned))
        .collect();
    if results.len() < 2 {
        return call("await_workers", json!({}));
    }
    call(
        "project_complete",
        json!({"summary": format!("Report: {}", results.join(" / "))}),
    )
}

/// The fake model of most tests: [`boss`], its [`worker`]s behind `gate`,
/// and [`chat`] turns.
async fn team(gate: &Gate) -> FakeLlm {
    let workers = gate.clone();
    FakeLlm::start(Wire::OpenAi, move |request| {
        if request.model == WORKER_MODEL {
            worker(request, &workers)
        } else if is_boss(request) {
            boss(request)
        } else {
            chat(request)
        }
    })
    .await
}

/// Chat turns echo the user.
fn chat(request: &SeenRequest) -> FakeReply {
    FakeReply::Text(format!(
        "echo {}",
        request.last_user_text().unwrap_or_default()
    ))
}

/// Waits (up to 20 s) until the fake model has seen `n` worker requests.
async fn wait_for_workers(llm: &FakeLlm, n: usize) {
    until(&format!("{n} worker requests"), || {
        llm.requests()
            .iter()
            .filter(|r| r.model == WORKER_MODEL)
            .count()
            >= n
    })
    .await;
}

fn texts(calls: &[Call]) -> Vec<String> {
    calls.iter().map(|call| call.text().to_owned()).collect()
}

fn completions(telegram: &FakeTelegram) -> Vec<Call> {
    telegram
        .sent_to(CHAT)
        .into_iter()
        .filter(|call| call.text().contains("is complete"))
        .collect()
}

async fn open_store(dir: &tempfile::TempDir) -> Store {
    Store::connect(&format!(
        "sqlite://{}",
        dir.path().join("baton.db").display()
    ))
    .await
    .unwrap()
}

#[tokio::test]
async fn a_project_started_by_command_runs_while_the_chat_goes_on_and_posts_its_result_once() {
    let gate = Gate::new();
    let telegram = FakeTelegram::start().await;
    let llm = team(&gate).await;
    let dir = tempfile::tempdir().unwrap();
    let app = start_app(&telegram, &llm, &dir, "");

    let (_, start) = telegram.dm(ADA, "/project research tidal power");
    let sent = telegram.wait_for_sent(CHAT, 1).await;
    assert!(
        sent[0]
            .text()
            .starts_with("Started project 1: research tidal power"),
        "{:?}",
        texts(&sent)
    );
    wait_for_workers(&llm, 2).await;

    // The conversation stays free while the project's workers run.
    telegram.dm(ADA, "hi");
    telegram.wait_for_sent(CHAT, 2).await;
    telegram.dm(ADA, "/project status");
    let sent = telegram.wait_for_sent(CHAT, 3).await;
    assert_eq!(sent[1].text(), "echo Ada: hi");
    let status = sent[2].text();
    assert!(
        status.contains("1: research tidal power (running); 2 workers (2 running)"),
        "{status}"
    );

    gate.open();
    let sent = telegram.wait_for_sent(CHAT, 4).await;
    let result = &sent[3];
    assert!(
        result
            .text()
            .starts_with("Project 1 is complete: research tidal power"),
        "{:?}",
        texts(&sent)
    );
    assert!(
        result.text().contains("research tides: findings")
            && result.text().contains("research costs: findings"),
        "{}",
        result.text()
    );
    assert_eq!(
        result.reply_to(),
        Some(start),
        "a reply to the /project message"
    );
    // Still once after a while, and once across a restart.
    app.stop().await;
    let app = start_app(&telegram, &llm, &dir, "");
    telegram.dm(ADA, "hello again");
    telegram.wait_for_sent(CHAT, 5).await;
    app.stop().await;
    assert_eq!(
        completions(&telegram).len(),
        1,
        "{:?}",
        texts(&telegram.sent_to(CHAT))
    );

    let store = open_store(&dir).await;
    let project = store.load_project(ProjectId(1)).await.unwrap().unwrap();
    assert_eq!(project.status, ProjectStatus::Completed);
    assert!(project.posted_at.is_some());
    let workers = store.workers(project.turn).await.unwrap();
    assert_eq!(workers.len(), 2);
    assert!(workers.iter().all(|w| w.status == WorkerStatus::Done));
    store.close().await;
}

#[tokio::test]
async fn the_orchestrator_starts_a_project_with_start_project_and_its_result_is_posted_once() {
    let gate = Gate::new();
    let workers = gate.clone();
    let telegram = FakeTelegram::start().await;
    let llm = FakeLlm::start(Wire::OpenAi, move |request| {
        if request.model == WORKER_MODEL {
            return worker(request, &workers);
        }
        if is_boss(request) {
            return boss(request);
        }
        let started = request
            .tool_results()
            .iter()
            .find(|m| m.tool_name.as_deref() == Some("start_project"))
            .and_then(|m| serde_json::from_str::<Value>(&m.text).ok());
        match started {
            None if request.has_tool("start_project") => call(
                "start_project",
                json!({"goal": "A thorough report on tidal power", "plan": "tides, then costs"}),
            ),
            None => chat(request),
            Some(started) => FakeReply::Text(format!(
                "Started project {}: a report on tidal power. I'll post the result here.",
                started["project_id"]
            )),
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let app = start_app(&telegram, &llm, &dir, "");

    telegram.dm(ADA, "/orchestrator on");
    telegram.wait_for_sent(CHAT, 1).await;
    let (_, asked) = telegram.dm(ADA, "research tidal power thoroughly and write a report");
    let sent = telegram.wait_for_sent(CHAT, 2).await;
    assert_eq!(
        sent[1].text(),
        "Started project 1: a report on tidal power. I'll post the result here."
    );
    wait_for_workers(&llm, 2).await;
    // The boss got the goal and the plan.
    let first_boss = llm.requests().into_iter().find(is_boss).unwrap();
    let brief = first_boss.messages[0].text.clone();
    assert!(
        brief.contains("A thorough report on tidal power") && brief.contains("tides, then costs"),
        "{brief}"
    );

    gate.open();
    let sent = telegram.wait_for_sent(CHAT, 3).await;
    assert!(
        sent[2].text().starts_with("Project 1 is complete"),
        "{:?}",
        texts(&sent)
    );
    assert_eq!(sent[2].reply_to(), Some(asked));
    app.stop().await;
    assert_eq!(completions(&telegram).len(), 1);
}

#[tokio::test]
async fn a_paused_project_lets_its_workers_finish_and_completes_when_resumed() {
    let gate = Gate::new();
    let telegram = FakeTelegram::start().await;
    let llm = team(&gate).await;
    let dir = tempfile::tempdir().unwrap();
    let app = start_app(&telegram, &llm, &dir, "");

    telegram.dm(ADA, "/project research tidal power");
    telegram.wait_for_sent(CHAT, 1).await;
    wait_for_workers(&llm, 2).await;
    telegram.dm(ADA, "/project pause");
    let sent = telegram.wait_for_sent(CHAT, 2).await;
    assert!(
        sent[1].text().starts_with("Pausing project 1"),
        "{:?}",
        texts(&sent)
    );
    // The workers' current calls finish, then it stops.
    gate.open();
    let sent = telegram.wait_for_sent(CHAT, 3).await;
    assert_eq!(
        sent[2].text(),
        "Project 1 is paused; /project resume 1 goes on."
    );

    telegram.dm(ADA, "/project resume 1");
    let sent = telegram.wait_for_sent(CHAT, 5).await;
    assert_eq!(sent[3].text(), "Project 1 goes on.");
    let result = sent[4].text();
    assert!(result.starts_with("Project 1 is complete"), "{result}");
    // The resumed boss was told what its workers found while it paused.
    assert!(
        result.contains("research tides: findings") && result.contains("research costs: findings"),
        "{result}"
    );
    app.stop().await;
    assert_eq!(completions(&telegram).len(), 1);
}

#[tokio::test]
async fn a_cancelled_project_leaves_no_worker_running() {
    let gate = Gate::new();
    let telegram = FakeTelegram::start().await;
    let llm = team(&gate).await;
    let dir = tempfile::tempdir().unwrap();
    let app = start_app(&telegram, &llm, &dir, "");

    telegram.dm(ADA, "/project research tidal power");
    telegram.wait_for_sent(CHAT, 1).await;
    wait_for_workers(&llm, 2).await;
    telegram.dm(ADA, "/project cancel 1");
    let sent = telegram.wait_for_sent(CHAT, 3).await;
    assert_eq!(sent[1].text(), "Cancelling project 1…");
    assert_eq!(
        sent[2].text(),
        "Project 1 is cancelled; none of its workers is running."
    );
    app.stop().await;

    let store = open_store(&dir).await;
    let project = store.load_project(ProjectId(1)).await.unwrap().unwrap();
    assert_eq!(project.status, ProjectStatus::Cancelled);
    let workers = store.workers(project.turn).await.unwrap();
    assert_eq!(workers.len(), 2);
    assert!(
        workers.iter().all(|w| w.status == WorkerStatus::Cancelled),
        "{workers:?}"
    );
    store.close().await;
}

#[tokio::test]
async fn a_blocked_boss_asks_the_user_and_goes_on_with_the_answer() {
    let telegram = FakeTelegram::start().await;
    let llm = FakeLlm::start(Wire::OpenAi, |request| {
        if !is_boss(request) {
            return chat(request);
        }
        let last = request.last_user_text().unwrap_or_default();
        match last.split_once("The user answers: ") {
            Some((_, answer)) => call(
                "project_complete",
                json!({"summary": format!("Covering {answer}.")}),
            ),
            None => call(
                "report_progress",
                json!({"status": "blocked", "message": "Which year should the report cover?"}),
            ),
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let app = start_app(&telegram, &llm, &dir, "");

    telegram.dm(ADA, "/project write the yearly report");
    let sent = telegram.wait_for_sent(CHAT, 2).await;
    assert_eq!(
        sent[1].text(),
        "Project 1 needs your answer: Which year should the report cover?\n\n\
         Answer with /project resume 1 followed by your answer."
    );
    telegram.dm(ADA, "/project status");
    let sent = telegram.wait_for_sent(CHAT, 3).await;
    assert!(
        sent[2].text().contains("(paused); 0 workers (0 running)")
            && sent[2].text().contains("waiting for your answer"),
        "{}",
        sent[2].text()
    );

    telegram.dm(ADA, "/project resume 1 2024, please");
    let sent = telegram.wait_for_sent(CHAT, 5).await;
    assert_eq!(sent[3].text(), "Project 1 goes on.");
    assert!(
        sent[4].text().ends_with("Covering 2024, please."),
        "{}",
        sent[4].text()
    );
    // The boss saw its question and the answer.
    let last_boss = llm.requests().into_iter().rfind(is_boss).unwrap();
    let note = last_boss.last_user_text().unwrap();
    assert!(
        note.contains("Which year should the report cover?") && note.contains("2024, please"),
        "{note}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_budget_cap_stops_a_project_with_a_clear_post() {
    let telegram = FakeTelegram::start().await;
    // A boss that never finishes on its own.
    let llm = FakeLlm::start(Wire::OpenAi, |request| {
        if is_boss(request) {
            call("current_time", json!({}))
        } else {
            chat(request)
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let models = r#"
[models.catalog."fake:orch-model"]
input_price = 1000.0
output_price = 1000.0

[budget]
conversation_hard_usd = 0.05
"#;
    let extra = telegram_only(&telegram, ADA, "");
    let text = format!(
        "{}\n{models}",
        test_config_text(&llm, Wire::OpenAi, &dir.path().join("baton.db"), &extra)
    );
    let mut config = Config::from_toml(&text, Vec::new()).unwrap();
    config.telegram.token = Some(SecretString::from("123456:TEST-TOKEN"));
    let app = App::spawn(config);

    telegram.dm(ADA, "/project count the stars");
    let sent = telegram.wait_for_sent(CHAT, 2).await;
    assert!(
        sent[1].text().starts_with("Project 1 stopped: "),
        "{:?}",
        texts(&sent)
    );
    assert!(sent[1].text().contains("budget"), "{}", sent[1].text());
    app.stop().await;

    let store = open_store(&dir).await;
    let project = store.load_project(ProjectId(1)).await.unwrap().unwrap();
    assert_eq!(project.status, ProjectStatus::Failed);
    store.close().await;
}

#[tokio::test]
async fn a_project_survives_kill_9_and_posts_its_result_once() {
    let telegram = FakeTelegram::start().await;
    // The first run's workers never answer; after the restart the boss is
    // told they were interrupted and completes from that.
    let gate = Gate::new();
    let llm = team(&gate).await;
    let dir = tempfile::tempdir().unwrap();
    let run = crate::cli::telegram_service(dir.path(), &llm, &telegram_only(&telegram, ADA, ""));

    let mut first = run().spawn().unwrap();
    telegram.dm(ADA, "/project research tidal power");
    telegram.wait_for_sent(CHAT, 1).await;
    wait_for_workers(&llm, 2).await;
    first.kill().unwrap();
    first.wait().unwrap();

    let mut second = run().spawn().unwrap();
    let sent = telegram.wait_for_sent(CHAT, 2).await;
    let result = sent[1].text().to_owned();
    assert!(result.starts_with("Project 1 is complete"), "{result}");
    assert!(
        result.contains("interrupted") && result.contains("research tides"),
        "the boss heard of its interrupted workers: {result}"
    );
    // Answers go on, and the result is not posted again.
    telegram.dm(ADA, "hi");
    telegram.wait_for_sent(CHAT, 3).await;
    second.kill().unwrap();
    second.wait().unwrap();
    assert_eq!(completions(&telegram).len(), 1);
}

#[tokio::test]
async fn with_verbose_on_progress_reports_appear_tagged_with_the_project() {
    let telegram = FakeTelegram::start().await;
    let llm = FakeLlm::start(Wire::OpenAi, |request| {
        if !is_boss(request) {
            return chat(request);
        }
        if request.tool_results().is_empty() {
            call(
                "report_progress",
                json!({"status": "working", "message": "Planning the report"}),
            )
        } else {
            call("project_complete", json!({"summary": "All done."}))
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let app = start_app(&telegram, &llm, &dir, "");

    telegram.dm(ADA, "/verbose on");
    telegram.wait_for_sent(CHAT, 1).await;
    let (_, start) = telegram.dm(ADA, "/project write the report");
    telegram
        .wait_for("the completion and the progress line", |calls| {
            calls.iter().any(|c| c.text().contains("is complete"))
                && calls.iter().any(|c| c.text().contains("[project 1]"))
        })
        .await;
    app.stop().await;
    let sent = telegram.sent_to(CHAT);
    let progress: Vec<&Call> = sent
        .iter()
        .filter(|c| {
            c.text()
                .contains("[project 1] working: Planning the report")
        })
        .collect();
    assert_eq!(progress.len(), 1, "{:?}", texts(&sent));
    assert_eq!(
        progress[0].reply_to(),
        Some(start),
        "under the /project message"
    );
}

#[tokio::test]
async fn baton_chat_waits_for_a_projects_result() {
    use tokio::io::AsyncReadExt;
    let llm = FakeLlm::start(Wire::OpenAi, |request| {
        if is_boss(request) {
            call("project_complete", json!({"summary": "Five, seven, five."}))
        } else {
            chat(request)
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(&llm, Wire::OpenAi, &dir.path().join("baton.db"), "");
    let services = baton::app::services(config).await.unwrap();
    let (writer, mut reader) = tokio::io::duplex(64 * 1024);
    let input = "/project write a haiku\n";
    baton::chat::chat(services, "local", input.as_bytes(), writer)
        .await
        .unwrap();
    let mut output = String::new();
    reader.read_to_string(&mut output).await.unwrap();
    assert!(
        output.contains("Started project 1: write a haiku"),
        "{output}"
    );
    assert!(
        output.contains("Project 1 is complete: write a haiku")
            && output.contains("Five, seven, five."),
        "{output}"
    );
}
