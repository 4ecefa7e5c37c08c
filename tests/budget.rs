//! Daily budgets: above the soft limit orchestrator mode answers without
//! workers (with a notice), above the hard cap the bot says so without
//! calling a model; `/status` shows what today cost.

use crate::support::bot::{ORCHESTRATOR_MODEL, TestBot};
use crate::support::eventually::until;
use crate::support::fake_llm::{FakeReply, Wire};

#[tokio::test]
async fn over_the_soft_limit_workers_stop_and_over_the_hard_cap_no_model_is_called() {
    // The fake reports 10 input tokens per message in the request, so at
    // $100,000 per million input tokens the first turn (1 message) costs $1
    // and the second (3 messages) $3.
    let mut bot = TestBot::builder(Wire::OpenAi)
        .config(&format!(
            r#"
[models.catalog."fake:{ORCHESTRATOR_MODEL}"]
input_price = 100000.0
output_price = 0.0

[budget]
conversation_soft_usd = 0.5
conversation_hard_usd = 3.5
"#
        ))
        .start(|request| FakeReply::Text(format!("{} messages seen", request.messages.len())))
        .await;
    bot.say("first").await;
    bot.channel.wait_for_replies(1).await;
    bot.say("/orchestrator on").await;
    bot.say("second").await;
    bot.say("third").await;
    // `/status` skips the queue: ask once the others are answered.
    bot.channel.wait_for_replies(4).await;
    bot.say("/status").await;
    bot.drain().await;

    let replies = bot.channel.replies();
    assert_eq!(replies.len(), 5, "{replies:#?}");
    assert_eq!(replies[0], "1 messages seen");
    assert!(replies[1].starts_with("Orchestrator mode on"));
    assert!(
        replies[2].contains("passed the $0.50 budget (today: $1.00, 10 in (0 cached) / ")
            && replies[2].ends_with("3 messages seen"),
        "the soft limit answers in single mode with a notice: {}",
        replies[2]
    );
    assert!(
        replies[3].contains("used its daily budget ($3.50; today: $4.00, "),
        "the hard cap refuses: {}",
        replies[3]
    );
    assert!(
        replies[4].contains("$4.0000"),
        "status shows the cost: {}",
        replies[4]
    );

    let requests = bot.llm.requests();
    assert_eq!(requests.len(), 2, "no model call past the hard cap");
    assert!(
        !requests[1].has_tool("spawn_worker"),
        "above the soft limit no delegation tools are offered"
    );
    assert!(requests.iter().all(|r| r.model == ORCHESTRATOR_MODEL));
}

#[tokio::test]
async fn cached_input_tokens_are_priced_apart_in_status_and_budgets() {
    // The fake OpenAI reports 10 input tokens per message, of which those of
    // every message before the last were read from the prompt cache. At
    // $100,000 per million input tokens and a tenth of it cached:
    // turn 1 (1 message, none cached) $1; turn 2 (3 messages, 2 cached)
    // $1 + $0.20; turn 3 (5 messages, 4 cached) $1 + $0.40: $3.60 in all.
    // Priced as plain input the second turn would already reach $4 and the
    // $2.50 cap would refuse the third message.
    let mut bot = TestBot::builder(Wire::OpenAi)
        .config(&format!(
            r#"
[models.catalog."fake:{ORCHESTRATOR_MODEL}"]
input_price = 100000.0
cached_input_price = 10000.0
output_price = 0.0

[budget]
conversation_hard_usd = 2.5
"#
        ))
        .start(|request| FakeReply::Text(format!("{} messages seen", request.messages.len())))
        .await;
    bot.say("first").await;
    bot.say("second").await;
    bot.say("third").await;
    bot.say("fourth").await;
    bot.channel.wait_for_replies(4).await;
    bot.say("/status").await;
    bot.drain().await;

    let replies = bot.channel.replies();
    assert_eq!(replies.len(), 5, "{replies:#?}");
    assert_eq!(
        replies[..3],
        ["1 messages seen", "3 messages seen", "5 messages seen"]
    );
    assert!(
        replies[3].contains("used its daily budget ($2.50; today: $3.60, 90 in (60 cached) / "),
        "the refusal shows the cached tokens apart: {}",
        replies[3]
    );
    let status = &replies[4];
    assert!(
        status.contains("Today: 90 in (60 cached) / ") && status.contains("$3.6000"),
        "status shows cached tokens apart and prices them: {status}"
    );
    assert!(
        status.contains("Last turn: 50 in (40 cached) / ") && status.contains("$1.4000"),
        "{status}"
    );
    assert_eq!(
        bot.llm.requests().len(),
        3,
        "no model call past the hard cap"
    );
}

#[tokio::test]
async fn without_budgets_spending_is_not_limited() {
    let mut bot = TestBot::builder(Wire::OpenAi)
        .config(&format!(
            r#"
[models.catalog."fake:{ORCHESTRATOR_MODEL}"]
input_price = 100000.0
"#
        ))
        .start(|_| FakeReply::Text("ok".into()))
        .await;
    for text in ["one", "two", "three"] {
        bot.say(text).await;
    }
    bot.drain().await;
    assert_eq!(bot.channel.replies(), ["ok", "ok", "ok"]);
}

#[tokio::test]
async fn a_stopped_turn_still_counts_the_calls_it_made() {
    let mut bot = TestBot::start(|request| {
        if request.model != ORCHESTRATOR_MODEL {
            // A worker that would take far longer than the test.
            return FakeReply::Delayed(
                std::time::Duration::from_secs(60),
                Box::new(FakeReply::Text("late".into())),
            );
        }
        if request.tool_results().is_empty() {
            FakeReply::ToolCalls(vec![(
                "spawn_worker".into(),
                serde_json::json!({"prompt": "take your time"}),
            )])
        } else {
            FakeReply::ToolCalls(vec![("await_workers".into(), serde_json::json!({}))])
        }
    })
    .await;
    bot.say("/orchestrator on").await;
    bot.say("start something long").await;
    // Stop once the orchestrator waits for its worker (its 2 calls and the
    // worker's 1 reached the fake).
    let llm = &bot.llm;
    until("the worker to start", || llm.requests().len() >= 3).await;
    bot.say("/stop").await;
    bot.channel.wait_for_replies(2).await;
    bot.say("/status").await;
    bot.drain().await;

    let orchestrator_input: usize = bot
        .llm
        .requests()
        .iter()
        .filter(|r| r.model == ORCHESTRATOR_MODEL)
        .map(|r| r.messages.len() * 10)
        .sum();
    let replies = bot.channel.replies();
    assert_eq!(replies[1], "Stopped.");
    let status = replies.last().unwrap();
    assert!(
        status.contains(&format!("Today: {orchestrator_input} in")),
        "the stopped turn's orchestrator calls ({orchestrator_input} tokens) count: {status}"
    );
}
