//! The operator's HTTP routes through the real service on 127.0.0.1:0:
//! `/readyz`, `/metrics`, the token check, the JSON API and the SSE stream.

use secrecy::SecretString;
use serde_json::{Value, json};

use crate::support::bot::{ORCHESTRATOR_MODEL, WORKER_MODEL, test_config};
use crate::support::eventually::eventually_async;
use crate::support::fake_llm::{FakeLlm, FakeReply, Gate, SeenRequest, Wire};
use crate::support::fake_telegram::FakeTelegram;
use crate::support::service::App;

pub(crate) const TOKEN: &str = "dashboard-test-token";
pub(crate) const ADA: u64 = 42;

/// The service with the dashboard on, against fake Telegram and `llm`.
pub(crate) async fn start(
    telegram: &FakeTelegram,
    llm: &FakeLlm,
    dir: &tempfile::TempDir,
    extra: &str,
) -> (App, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let extra = format!(
        "[telegram]\napi_url = \"{}\"\nallowed_users = [{ADA}]\nmin_send_interval_ms = 10\npoll_timeout_secs = 1\n{extra}",
        telegram.api_url()
    );
    let mut config = test_config(llm, Wire::OpenAi, &dir.path().join("baton.db"), &extra);
    config.telegram.token = Some(SecretString::from("123456:TEST-TOKEN"));
    config.server.dashboard_token = Some(SecretString::from(TOKEN));
    (App::spawn_on(config, listener), base)
}

/// An orchestrator that starts two workers, awaits both, and answers.
pub(crate) fn two_workers(gate: Gate) -> impl Fn(&SeenRequest) -> FakeReply + Send + Sync {
    move |request| {
        if request.model == WORKER_MODEL {
            let brief = request.last_user_text().unwrap_or_default().to_owned();
            return FakeReply::After(
                gate.clone(),
                Box::new(FakeReply::Text(format!("{brief} done"))),
            );
        }
        assert_eq!(request.model, ORCHESTRATOR_MODEL);
        if request.tool_results().is_empty() {
            return FakeReply::ToolCalls(vec![
                (
                    "spawn_worker".into(),
                    json!({"label": "alpha", "prompt": "research alpha"}),
                ),
                (
                    "spawn_worker".into(),
                    json!({"label": "beta", "prompt": "research beta"}),
                ),
            ]);
        }
        if request.awaited().len() < 2 {
            return FakeReply::ToolCalls(vec![("await_workers".into(), json!({}))]);
        }
        FakeReply::Text("Summary: both done".into())
    }
}

async fn get(client: &reqwest::Client, url: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = client.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

/// Asks `url` until `done` holds for its JSON (bounded).
pub(crate) async fn until(
    client: &reqwest::Client,
    url: &str,
    what: &str,
    done: impl Fn(u16, &Value) -> bool,
) -> Value {
    eventually_async(what, async || {
        let response = get(client, url, Some(TOKEN)).await;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        done(status, &body).then_some(body)
    })
    .await
}

#[tokio::test]
async fn readiness_metrics_api_and_stream_through_the_real_server() {
    let telegram = FakeTelegram::start().await;
    let gate = Gate::new();
    let llm = FakeLlm::start(Wire::OpenAi, two_workers(gate.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let (app, base) = start(
        &telegram,
        &llm,
        &dir,
        "\n[mcp.servers.missing]\ncommand = \"/nonexistent/baton-mcp-server\"\n",
    )
    .await;
    let client = reqwest::Client::new();

    // Liveness at once; readiness names the MCP server that is down.
    until(&client, &format!("{base}/healthz"), "liveness", |s, _| {
        s == 200
    })
    .await;
    let ready = until(
        &client,
        &format!("{base}/readyz"),
        "telegram polled",
        |s, b| s == 503 && b["checks"]["telegram"] == "ok",
    )
    .await;
    assert_eq!(ready["not_ready"], json!(["mcp:missing"]), "{ready}");
    assert_eq!(ready["checks"]["store"], "ok", "{ready}");

    // The API: 401 without the token or with a wrong one, as JSON.
    for token in [None, Some("wrong-token"), Some("dashboard-test-tokeN")] {
        let response = get(&client, &format!("{base}/api/conversations"), token).await;
        assert_eq!(response.status().as_u16(), 401, "{token:?}");
    }
    let page = get(&client, &format!("{base}/"), None).await;
    assert_eq!(page.status().as_u16(), 401);
    assert!(
        page.text().await.unwrap().contains("name=\"token\""),
        "the page asks for the token"
    );

    // The live stream, opened before the turn.
    let mut stream = get(&client, &format!("{base}/api/events/stream"), Some(TOKEN)).await;
    assert_eq!(stream.status().as_u16(), 200);

    telegram.dm(ADA, "/orchestrator on");
    telegram.wait_for_sent(ADA as i64, 1).await;
    telegram.dm(ADA, "research two things");
    let mut seen = String::new();
    while !(seen.contains("\"delegation\"") && seen.matches("event: entry").count() >= 3) {
        let chunk = stream
            .chunk()
            .await
            .unwrap()
            .expect("the stream stays open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("id: "), "entries carry ids: {seen}");
    gate.open();
    telegram.wait_for_sent(ADA as i64, 2).await;

    let key = format!("telegram/{ADA}");
    let list = until(
        &client,
        &format!("{base}/api/conversations"),
        "the conversation",
        |s, b| s == 200 && b["items"].as_array().is_some_and(|i| !i.is_empty()),
    )
    .await;
    assert!(
        list["items"][0]["key"].as_str().unwrap().starts_with(&key),
        "{list}"
    );
    let conversation = list["items"][0]["key"].as_str().unwrap().to_owned();
    let turns = until(
        &client,
        &format!(
            "{base}/api/turns?conversation={}",
            conversation.replace('/', "%2F")
        ),
        "the turn",
        |s, b| {
            s == 200
                && b["items"]
                    .as_array()
                    .is_some_and(|i| i.iter().any(|t| t["status"] == "done"))
        },
    )
    .await;
    let turn = turns["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["mode"] == "orchestrator")
        .unwrap();
    assert_eq!(turn["reply"], "Summary: both done", "{turns}");
    let tree: Value = get(
        &client,
        &format!("{base}/api/turns/{}", turn["id"]),
        Some(TOKEN),
    )
    .await
    .json()
    .await
    .unwrap();
    let labels: Vec<&str> = tree["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["alpha", "beta"], "{tree}");
    assert!(
        tree["workers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["status"] == "done"),
        "{tree}"
    );
    let events: Value = get(
        &client,
        &format!("{base}/api/events?after=0&limit=2"),
        Some(TOKEN),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(events["items"].as_array().unwrap().len(), 2);
    assert!(
        events["next"].is_string(),
        "a full page has a cursor: {events}"
    );

    // Metrics, in Prometheus text.
    let metrics = get(&client, &format!("{base}/metrics"), None)
        .await
        .text()
        .await
        .unwrap();
    for name in [
        "baton_turns_total",
        "baton_model_calls_total",
        "baton_model_tokens_total",
        "baton_workers_running",
        "baton_conversations_live",
        "baton_store_statement_duration_seconds_bucket",
        "baton_event_log_lost 0",
        "baton_model_call_limit{provider=\"fake\"} 4",
        "baton_model_calls_waiting{provider=\"fake\"} 0",
        "baton_platform_requests_total{platform=\"telegram\",method=\"sendMessage\",status=\"200\"}",
    ] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }
    assert!(metrics.contains("outcome=\"answered\""), "{metrics}");
    assert!(!metrics.contains(TOKEN) && !metrics.contains("TEST-TOKEN"));
    app.stop().await;
}

/// The conversation list through the real server: most recently active
/// first, paged by its cursor, each named by its chat's title (a group's,
/// as the platform last gave it) or, for a direct chat, by its user; cached
/// prompt tokens counted apart in the list and in a turn's tree.
#[tokio::test]
async fn conversations_are_listed_by_last_activity_named_by_chat_title() {
    let telegram = FakeTelegram::start().await;
    let llm = FakeLlm::start(Wire::OpenAi, |_| FakeReply::Text("ok".into())).await;
    let dir = tempfile::tempdir().unwrap();
    let (app, base) = start(&telegram, &llm, &dir, "").await;
    let client = reqwest::Client::new();
    let group = |chat: i64, title: &str| {
        telegram.message(
            json!({"id": chat, "type": "supergroup", "title": title}),
            ADA,
            json!({"text": "@baton_bot hi"}),
        );
        telegram.wait_for_sent(chat, 1)
    };

    telegram.dm(ADA, "hello");
    telegram.wait_for_sent(ADA as i64, 1).await;
    group(-1001, "Alpha team").await;
    group(-1002, "Beta team").await;
    telegram.dm(ADA, "again");
    telegram.wait_for_sent(ADA as i64, 2).await;
    // The first group is renamed and speaks last.
    telegram.message(
        json!({"id": -1001, "type": "supergroup", "title": "Alpha renamed"}),
        ADA,
        json!({"text": "@baton_bot and now?"}),
    );
    telegram.wait_for_sent(-1001, 2).await;

    let first = until(
        &client,
        &format!("{base}/api/conversations?limit=2"),
        "two conversations",
        |s, b| s == 200 && b["items"].as_array().is_some_and(|i| i.len() == 2),
    )
    .await;
    let keys = |page: &Value| -> Vec<(String, String)> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["key"].as_str().unwrap().to_owned(),
                    c["name"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    };
    assert_eq!(
        keys(&first),
        [
            ("telegram/-1001".to_owned(), "Alpha renamed".to_owned()),
            (format!("telegram/{ADA}"), "Ada".to_owned()),
        ],
        "{first}"
    );
    let next = first["next"].as_str().expect("a full page has a cursor");
    let second: Value = get(
        &client,
        &format!(
            "{base}/api/conversations?limit=2&cursor={}",
            next.replace('/', "%2F").replace(':', "%3A")
        ),
        Some(TOKEN),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        keys(&second),
        [("telegram/-1002".to_owned(), "Beta team".to_owned())],
        "{second}"
    );
    assert!(second["next"].is_null(), "the last page: {second}");

    // The direct chat's second turn sent 3 messages, 2 of them (20 tokens)
    // read from the fake's cache: counted apart in the list and the tree.
    let dm = &first["items"][1];
    assert_eq!(dm["cached_tokens_today"], 20, "{dm}");
    let turns: Value = get(
        &client,
        &format!("{base}/api/turns?conversation=telegram%2F{ADA}"),
        Some(TOKEN),
    )
    .await
    .json()
    .await
    .unwrap();
    let newest = turns["items"][0]["id"].clone();
    let tree: Value = get(&client, &format!("{base}/api/turns/{newest}"), Some(TOKEN))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            &tree["turn"]["input_tokens"],
            &tree["turn"]["cached_input_tokens"]
        ),
        (&json!(30), &json!(20)),
        "{tree}"
    );
    let page = get(&client, &format!("{base}/turn/{newest}"), Some(TOKEN))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("(20 cached)"), "{page}");
    app.stop().await;
}
