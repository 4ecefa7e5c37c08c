//! MCP servers' tools, end to end: a real stdio MCP server (built with
//! rmcp, in examples/) started by the engine, its tools called by the fake
//! model as a worker or as the orchestrator, its results reaching the reply.

use serde_json::{Value, json};

use crate::cli::baton;
use crate::support::bot::{TestBot, WORKER_MODEL, test_config_text};
use crate::support::eventually::until;
use crate::support::fake_llm::{FakeLlm, FakeReply, SeenRequest, Wire};
use crate::support::mcp::{BATON_ENTRY, offered_schema, processes_tagged, server_table};
use crate::support::mcp_server::serve_http;

const LOOKUP: &str = "mcp__glossary__lookup";
const SLOW: &str = "mcp__glossary__slow";
const BROKEN: &str = "mcp__glossary__broken";

/// A worker that looks "baton" up through MCP, then says what it found.
fn looking_up_worker(request: &SeenRequest) -> FakeReply {
    match request.tool_results().first() {
        None => FakeReply::ToolCalls(vec![(LOOKUP.into(), json!({"word": "baton"}))]),
        Some(result) => FakeReply::Text(format!("found {}", result.text)),
    }
}

/// An orchestrator that gives one worker the job, awaits it and answers
/// with its result.
fn delegating_orchestrator(request: &SeenRequest) -> FakeReply {
    let results = request.tool_results();
    match results.len() {
        0 => FakeReply::ToolCalls(vec![(
            "spawn_worker".into(),
            json!({"label": "glossary", "prompt": "look up baton"}),
        )]),
        1 => FakeReply::ToolCalls(vec![("await_workers".into(), json!({}))]),
        _ => {
            let awaited = request.awaited();
            FakeReply::Text(format!(
                "Answer: {}",
                awaited[0]["result"].as_str().unwrap()
            ))
        }
    }
}

/// A single-mode orchestrator that calls `calls` in one round, then answers
/// with every result, one per line.
fn calling(calls: Vec<(String, Value)>) -> impl Fn(&SeenRequest) -> FakeReply {
    move |request| {
        let results = request.tool_results();
        if results.is_empty() {
            return FakeReply::ToolCalls(calls.clone());
        }
        let texts: Vec<&str> = results.iter().map(|r| r.text.as_str()).collect();
        FakeReply::Text(texts.join("\n"))
    }
}

#[tokio::test]
async fn a_worker_calls_an_mcp_tool_and_its_result_reaches_the_orchestrator() {
    let mut bot = TestBot::builder(Wire::OpenAi)
        .config("[orchestrator]\ndefault_mode = \"orchestrator\"")
        .config(&server_table("glossary", &[]))
        .start(|request| {
            if request.model == WORKER_MODEL {
                looking_up_worker(request)
            } else {
                delegating_orchestrator(request)
            }
        })
        .await;
    bot.say("what is a baton?").await;
    bot.drain().await;

    assert_eq!(
        bot.channel.replies(),
        [format!("Answer: found {BATON_ENTRY}")]
    );
    let requests = bot.llm.requests();
    let worker: Vec<&SeenRequest> = requests
        .iter()
        .filter(|r| r.model == WORKER_MODEL)
        .collect();
    assert_eq!(worker.len(), 2, "{worker:#?}");
    // Offered under its prefixed name, with the server's own schema.
    for tool in [LOOKUP, SLOW, BROKEN, "current_time", "fetch_url"] {
        assert!(worker[0].has_tool(tool), "{:?}", worker[0].tool_names);
    }
    let schema = offered_schema(worker[0], LOOKUP).unwrap();
    assert_eq!(schema["type"], "object");
    assert_eq!(schema["properties"]["word"]["type"], "string");
    assert_eq!(schema["required"], json!(["word"]));
    // The worker's next request carries the server's real answer.
    let results = worker[1].tool_results();
    assert_eq!(results[0].tool_name.as_deref(), Some(LOOKUP));
    assert_eq!(results[0].text, BATON_ENTRY);
    bot.stop().await;
}

#[tokio::test]
async fn in_single_mode_the_orchestrator_gets_the_mcp_tools_and_their_errors() {
    let mut bot = TestBot::builder(Wire::OpenAi)
        .config(&server_table("glossary", &[]))
        .start(calling(vec![
            (LOOKUP.into(), json!({"word": "baton"})),
            (BROKEN.into(), json!({})),
        ]))
        .await;
    bot.say("what is a baton?").await;
    bot.drain().await;

    let replies = bot.channel.replies();
    assert_eq!(replies.len(), 1, "{replies:?}");
    let lines: Vec<&str> = replies[0].lines().collect();
    assert_eq!(lines[0], BATON_ENTRY);
    let broken: Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(broken["error"], "the glossary is on fire");
    let first = &bot.llm.requests()[0];
    assert!(first.has_tool(LOOKUP), "{:?}", first.tool_names);
    assert!(!first.has_tool("spawn_worker"));
    bot.stop().await;
}

#[tokio::test]
async fn a_call_past_the_timeout_is_an_error_result_and_the_server_still_answers() {
    let mut bot = TestBot::builder(Wire::OpenAi)
        .config("[mcp]\ncall_timeout_secs = 1")
        .config(&server_table("glossary", &[]))
        .start(|request| match request.tool_results().as_slice() {
            [] => FakeReply::ToolCalls(vec![(SLOW.into(), json!({"seconds": 60}))]),
            [_] => FakeReply::ToolCalls(vec![(LOOKUP.into(), json!({"word": "baton"}))]),
            results => FakeReply::Text(format!("{}\n{}", results[0].text, results[1].text)),
        })
        .await;
    bot.say("take your time").await;
    bot.drain().await;

    let replies = bot.channel.replies();
    assert_eq!(replies.len(), 1, "{replies:?}");
    let (timed_out, then) = replies[0].split_once('\n').unwrap();
    let timed_out: Value = serde_json::from_str(timed_out).unwrap();
    assert_eq!(
        timed_out["error"],
        "MCP server glossary did not answer slow within 1s"
    );
    assert_eq!(then, BATON_ENTRY);
    bot.stop().await;
}

#[tokio::test]
async fn servers_that_fail_to_start_are_skipped_and_the_bot_still_answers() {
    let config = format!(
        "{}\n[mcp.servers.missing]\ncommand = \"/nonexistent/baton-mcp-server\"\n\n[mcp.servers.quits]\ncommand = \"false\"\n",
        server_table("glossary", &[])
    );
    let mut bot = TestBot::builder(Wire::OpenAi)
        .config(&config)
        .start(|request| {
            let tools: Vec<&String> = request
                .tool_names
                .iter()
                .filter(|t| t.starts_with("mcp__"))
                .collect();
            FakeReply::Text(format!("tools: {tools:?}"))
        })
        .await;
    bot.say("hello").await;
    bot.drain().await;
    assert_eq!(
        bot.channel.replies(),
        [format!("tools: {:?}", [BROKEN, LOOKUP, SLOW])]
    );
    bot.stop().await;
}

#[tokio::test]
async fn stopping_the_service_stops_the_server_processes() {
    let tag = format!("baton-test-{}", std::process::id());
    let mut bot = TestBot::builder(Wire::OpenAi)
        .config(&server_table("glossary", &[&tag]))
        .start(|_| FakeReply::Text("hi".into()))
        .await;
    bot.say("hello").await;
    bot.drain().await;
    assert_eq!(processes_tagged(&tag).len(), 1, "the server runs");
    bot.stop().await;
    until("the server process to exit when the service stops", || {
        processes_tagged(&tag).is_empty()
    })
    .await;
}

#[tokio::test]
async fn check_starts_each_server_and_reports_one_that_fails() {
    let servers = format!(
        "{}\n[mcp.servers.missing]\ncommand = \"/nonexistent/baton-mcp-server\"\n\n[mcp.servers.off]\ncommand = \"/nonexistent/too\"\nenabled = false\n",
        server_table("glossary", &[])
    );
    let (passed, stdout) = check(&servers, &[]).await;
    assert!(!passed, "{stdout}");
    assert!(
        stdout.contains("ok: mcp server glossary: started, 3 tools"),
        "{stdout}"
    );
    assert!(stdout.contains("ok: mcp server off: disabled"), "{stdout}");
    assert!(
        stdout.contains(
            "problem: mcp server missing: cannot start \"/nonexistent/baton-mcp-server\""
        ),
        "{stdout}"
    );
    let problems: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("problem:"))
        .collect();
    assert_eq!(problems.len(), 1, "{stdout}");
}

/// Runs `baton check` on a config with `mcp` tables, with `env` set; gives
/// whether it passed and what it printed (stdout and stderr).
async fn check(mcp: &str, env: &[(&str, &str)]) -> (bool, String) {
    let llm = FakeLlm::start(Wire::OpenAi, |_| FakeReply::Text("unused".into())).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("baton.toml");
    let text = test_config_text(&llm, Wire::OpenAi, &dir.path().join("baton.db"), mcp);
    std::fs::write(&config, text).unwrap();
    let mut command = baton();
    command.args(["check", "--config"]).arg(&config);
    for (name, value) in env {
        command.env(name, value);
    }
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), printed)
}

#[tokio::test]
async fn a_streamable_http_server_is_reached_with_the_bearer_token_from_its_variable() {
    let url = serve_http("s3cret-mcp-token").await.unwrap();
    let table = format!(
        "[mcp.servers.web]\nurl = \"{url}\"\nbearer_token_env = \"BATON_TEST_MCP_TOKEN\"\n"
    );

    let (passed, printed) = check(&table, &[("BATON_TEST_MCP_TOKEN", "s3cret-mcp-token")]).await;
    assert!(passed, "{printed}");
    assert!(
        printed.contains("ok: mcp server web: started, 3 tools"),
        "{printed}"
    );
    assert!(
        !printed.contains("s3cret"),
        "the token is never printed: {printed}"
    );

    let (passed, printed) = check(&table, &[("BATON_TEST_MCP_TOKEN", "wrong-token")]).await;
    assert!(!passed, "{printed}");
    assert!(
        printed.contains("problem: mcp server web: the MCP handshake failed"),
        "{printed}"
    );
    assert!(!printed.contains("wrong-token"), "{printed}");

    let (passed, printed) = check(&table, &[]).await;
    assert!(!passed, "{printed}");
    assert!(
        printed.contains("problem: mcp server web: the environment variable BATON_TEST_MCP_TOKEN (bearer_token_env) is not set"),
        "{printed}"
    );
}
