//! Model routing, effort clamping, `/model`, `/greedy` and `/autonomy`,
//! driven through the engine: the model each request went to is read off
//! the fake model server.

use serde_json::{Value, json};

use crate::support::bot::{ORCHESTRATOR_MODEL, TestBot, WORKER_MODEL};
use crate::support::fake_llm::{FakeReply, SeenRequest, Wire};

/// The parsed result of the first call to `tool` in a request.
fn tool_result(request: &SeenRequest, tool: &str) -> Option<Value> {
    request
        .tool_results()
        .into_iter()
        .find(|m| m.tool_name.as_deref() == Some(tool))
        .map(|m| serde_json::from_str(&m.text).unwrap())
}

/// An orchestrator that spawns one worker with `spawn` arguments, awaits it
/// and answers with the spawn result and the worker's result. Workers (any
/// other model) answer "done on <model>".
fn one_worker(spawn: Value) -> impl Fn(&SeenRequest) -> FakeReply + Send + Sync + 'static {
    move |request: &SeenRequest| {
        if request.model != ORCHESTRATOR_MODEL && request.system.contains("You are a worker") {
            return FakeReply::Text(format!("done on {}", request.model));
        }
        if let Some(awaited) = request.awaited().first() {
            let spawned = tool_result(request, "spawn_worker").unwrap();
            let result = awaited["result"].as_str().or(awaited["error"].as_str());
            return FakeReply::Text(format!("{spawned} => {}", result.unwrap_or("?")));
        }
        if let Some(spawned) = tool_result(request, "spawn_worker") {
            if spawned.get("worker_id").is_none() {
                return FakeReply::Text(format!("spawn failed: {spawned}"));
            }
            return FakeReply::ToolCalls(vec![("await_workers".into(), json!({}))]);
        }
        FakeReply::ToolCalls(vec![("spawn_worker".into(), spawn.clone())])
    }
}

fn worker_requests(bot: &TestBot) -> Vec<SeenRequest> {
    bot.llm
        .requests()
        .into_iter()
        .filter(|r| r.system.contains("You are a worker"))
        .collect()
}

#[tokio::test]
async fn a_worker_with_a_specialty_runs_on_that_specialtys_model_with_its_preamble() {
    let mut bot = TestBot::builder(Wire::OpenAi)
        .config(
            r#"
[models.specialties]
coder = "fake:coder-model"

[models.catalog."fake:coder-model"]
efforts = ["off", "on"]
"#,
        )
        .start(one_worker(json!({
            "prompt": "write the parser",
            "label": "parser",
            "specialty": "coder",
            "effort": "max"
        })))
        .await;
    bot.say("/orchestrator on").await;
    bot.say("build me a parser").await;
    bot.drain().await;

    let workers = worker_requests(&bot);
    assert_eq!(workers.len(), 1, "{workers:#?}");
    assert_eq!(workers[0].model, "coder-model");
    assert!(
        workers[0]
            .system
            .starts_with("You are an expert software engineer"),
        "the coder preamble leads: {}",
        workers[0].system
    );
    assert_eq!(
        workers[0].raw["reasoning_effort"], "medium",
        "max clamped to the coder model's highest level, on"
    );

    let reply = &bot.channel.replies()[1];
    let (spawned, result) = reply.split_once(" => ").unwrap();
    let spawned: Value = serde_json::from_str(spawned).unwrap();
    assert_eq!(spawned["model"], "fake:coder-model");
    assert_eq!(spawned["specialty"], "coder");
    assert_eq!(spawned["effort"], "on");
    assert_eq!(spawned["effort_clamped_from"], "max");
    assert_eq!(result, "done on coder-model");

    // The orchestrator was offered every specialty by name.
    let orchestrator = &bot.llm.requests()[0];
    let spawn = orchestrator.raw["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["function"]["name"] == "spawn_worker")
        .unwrap()
        .clone();
    let specialties = &spawn["function"]["parameters"]["properties"]["specialty"]["enum"];
    assert_eq!(specialties.as_array().unwrap().len(), 8, "{specialties}");
    assert!(
        spawn["function"]["parameters"]["properties"]
            .get("profile")
            .is_none(),
        "no profiles configured, no profile argument"
    );
}

#[tokio::test]
async fn a_profiles_model_beats_its_specialtys_and_brings_its_instructions() {
    let mut bot = TestBot::builder(Wire::OpenAi)
        .config(
            r#"
[models.specialties]
security = "fake:security-model"

[models.profiles.reviewer]
model = "fake:review-model"
specialty = "security"
instructions = "Check every claim twice."
"#,
        )
        .start(one_worker(
            json!({"prompt": "review the design", "profile": "reviewer"}),
        ))
        .await;
    bot.say("/orchestrator on").await;
    bot.say("review this").await;
    bot.drain().await;

    let workers = worker_requests(&bot);
    assert_eq!(workers.len(), 1, "{workers:#?}");
    assert_eq!(workers[0].model, "review-model");
    assert!(workers[0].system.starts_with("You are a security reviewer"));
    assert!(workers[0].system.contains("Check every claim twice."));
    let reply = &bot.channel.replies()[1];
    assert!(
        reply.contains(r#""label":"reviewer""#) && reply.ends_with("done on review-model"),
        "{reply}"
    );
    let orchestrator = &bot.llm.requests()[0];
    let profile_enum = orchestrator.raw["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|t| t["function"]["parameters"]["properties"].get("profile"))
        .unwrap()["enum"]
        .clone();
    assert_eq!(profile_enum, json!(["reviewer"]));
}

#[tokio::test]
async fn an_unknown_profile_or_specialty_is_an_error_result() {
    for spawn in [
        json!({"prompt": "x", "profile": "wizard"}),
        json!({"prompt": "x", "specialty": "wizard"}),
    ] {
        let mut bot = TestBot::builder(Wire::OpenAi)
            .start(one_worker(spawn.clone()))
            .await;
        bot.say("/orchestrator on").await;
        bot.say("go").await;
        bot.drain().await;
        let reply = &bot.channel.replies()[1];
        assert!(
            reply.starts_with("spawn failed:") && reply.contains("wizard"),
            "{spawn}: {reply}"
        );
        assert!(worker_requests(&bot).is_empty());
    }
}

#[tokio::test]
async fn the_conversations_model_wins_for_the_orchestrator_and_its_workers() {
    let mut bot = TestBot::builder(Wire::OpenAi)
        .config(
            r#"
[models.catalog."fake:picked-model"]
input_price = 3.0
output_price = 15.0
"#,
        )
        .start(one_worker(
            json!({"prompt": "part one", "specialty": "writer"}),
        ))
        .await;
    bot.say("/model").await;
    bot.say("/model fake:nonexistent").await;
    bot.say("/model fake:picked-model").await;
    bot.say("/orchestrator on").await;
    bot.say("do it").await;
    bot.channel.wait_for_replies(5).await;
    bot.say("/model default").await;
    bot.say("again").await;
    bot.drain().await;

    let replies = bot.channel.replies();
    assert!(
        replies[0].contains(&format!("orchestrator fake:{ORCHESTRATOR_MODEL}"))
            && replies[0].contains("- fake:picked-model: effort off|on|high; $3.00 / $15.00"),
        "{}",
        replies[0]
    );
    assert!(replies[1].starts_with("Unknown model"), "{}", replies[1]);
    assert!(
        replies[2].contains("now runs on fake:picked-model"),
        "{}",
        replies[2]
    );
    assert!(
        replies[4].ends_with("done on picked-model"),
        "{}",
        replies[4]
    );
    assert!(
        replies[6].ends_with(&format!("done on {WORKER_MODEL}")),
        "{}",
        replies[6]
    );

    let models: Vec<String> = bot.llm.requests().iter().map(|r| r.model.clone()).collect();
    let (first, second) = models.split_at(4);
    assert!(
        first.iter().all(|m| m == "picked-model"),
        "orchestrator and worker on the picked model: {models:?}"
    );
    assert!(
        second
            .iter()
            .all(|m| m == ORCHESTRATOR_MODEL || m == WORKER_MODEL),
        "back to routing: {models:?}"
    );
}

#[tokio::test]
async fn auto_tier_sends_simple_messages_in_single_mode_to_the_cheap_model() {
    let mut bot = TestBot::builder(Wire::OpenAi)
        .models("cheap_model = \"fake:cheap-model\"\nauto_tier = true")
        .start(|request| FakeReply::Text(format!("answered by {}", request.model)))
        .await;
    bot.say("hi, what time zone is Lisbon in?").await;
    bot.say("Compare three approaches to rate limiting and explain why one wins")
        .await;
    bot.drain().await;
    assert_eq!(
        bot.channel.replies(),
        [
            "answered by cheap-model".to_owned(),
            format!("answered by {ORCHESTRATOR_MODEL}"),
        ]
    );
}

#[tokio::test]
async fn greedy_and_autonomy_change_the_orchestrators_instructions_only() {
    let mut bot = TestBot::builder(Wire::OpenAi)
        .start(one_worker(json!({"prompt": "part"})))
        .await;
    bot.say("/orchestrator on").await;
    bot.say("first").await;
    bot.channel.wait_for_replies(2).await;
    bot.say("/greedy on").await;
    bot.say("/autonomy on").await;
    bot.say("second").await;
    bot.drain().await;

    let replies = bot.channel.replies();
    assert!(replies[2].starts_with("Greedy on"), "{}", replies[2]);
    assert!(replies[3].starts_with("Autonomy on"), "{}", replies[3]);
    let orchestrator: Vec<SeenRequest> = bot
        .llm
        .requests()
        .into_iter()
        .filter(|r| r.model == ORCHESTRATOR_MODEL)
        .collect();
    let before = &orchestrator[0].system;
    let after = &orchestrator.last().unwrap().system;
    assert!(!before.contains("greedy") && !before.contains("autonomously"));
    assert!(after.contains("Be greedy about quality"), "{after}");
    assert!(after.contains("Act autonomously"), "{after}");
    for worker in worker_requests(&bot) {
        assert!(!worker.system.contains("greedy") && !worker.system.contains("autonomously"));
    }
}

#[tokio::test]
async fn status_shows_the_last_turns_totals_with_its_workers() {
    let mut bot = TestBot::builder(Wire::OpenAi)
        .start(one_worker(json!({"prompt": "part"})))
        .await;
    bot.say("/orchestrator on").await;
    bot.say("go").await;
    bot.channel.wait_for_replies(2).await;
    bot.say("/status").await;
    bot.drain().await;

    // The fake reports 10 input tokens per message it was sent, those of
    // every message before the last read from the cache.
    let requests = bot.llm.requests();
    let input: usize = requests.iter().map(|r| r.messages.len() * 10).sum();
    let cached: usize = requests
        .iter()
        .map(|r| r.messages.len().saturating_sub(1) * 10)
        .sum();
    let status = &bot.channel.replies()[2];
    assert!(
        status.contains(&format!("Last turn: {input} in ({cached} cached) /")),
        "orchestrator and worker tokens together ({input}, {cached} cached): {status}"
    );
    assert!(status.contains("Greedy: off, autonomy: off"), "{status}");
}

#[tokio::test]
async fn a_small_context_window_drops_the_oldest_history() {
    // 60% of 300 tokens: about two of these ~60-token messages fit.
    let mut bot = TestBot::builder(Wire::OpenAi)
        .config(&format!(
            "[models.catalog.\"fake:{ORCHESTRATOR_MODEL}\"]\ncontext_window = 300\n"
        ))
        .start(|request| FakeReply::Text(format!("{} seen", request.messages.len())))
        .await;
    let long = "word ".repeat(45);
    for n in 1..=4 {
        bot.say(&format!("{n} {long}")).await;
    }
    bot.drain().await;
    let requests = bot.llm.requests();
    let last = requests.last().unwrap();
    assert!(
        last.messages.len() < 7,
        "the oldest messages were dropped: {} sent",
        last.messages.len()
    );
    assert_eq!(
        last.messages[0].role, "user",
        "the context opens with a user message"
    );
    assert!(last.last_user_text().unwrap().starts_with("Ada: 4 "));
}
