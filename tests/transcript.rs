//! The context each turn sends the model is the stored transcript: the
//! actor's in-memory copy and a fresh read after a restart agree, across
//! answered, failed and reset turns.

use serde_json::json;

use crate::support::bot::TestBot;
use crate::support::fake_llm::{FakeReply, SeenRequest, Wire};

fn texts(request: &SeenRequest) -> Vec<String> {
    request
        .messages
        .iter()
        .map(|m| format!("{}: {}", m.role, m.text))
        .collect()
}

fn script(request: &SeenRequest) -> FakeReply {
    let last = request.last_user_text().unwrap_or_default();
    if last.contains("fail") {
        return FakeReply::Error {
            status: 400,
            body: json!({"error": {"message": "bad request"}}),
            retry_after: None,
        };
    }
    FakeReply::Text(format!("re {}", last.trim_start_matches("Ada: ")))
}

#[tokio::test]
async fn each_turn_sees_the_stored_transcript_before_and_after_a_restart() {
    let mut bot = TestBot::builder(Wire::OpenAi).start(script).await;
    bot.say("one").await;
    bot.say("please fail").await;
    bot.say("two").await;
    bot.drain().await;
    let dir = bot.stop().await;

    let expected = [
        "user: Ada: one",
        "assistant: re one",
        "user: Ada: please fail",
        "user: Ada: two",
    ];
    // The in-memory copy served the third turn.
    let mut bot = TestBot::builder(Wire::OpenAi)
        .database(dir)
        .start(script)
        .await;
    bot.next_message = 100; // the platform's ids go on after the restart
    // A fresh actor reads the store for the next turn: the same history,
    // plus the reply to "two" and the new message.
    bot.say("three").await;
    bot.say("/reset").await;
    bot.say("four").await;
    bot.say("five").await;
    bot.drain().await;
    let requests = bot.llm.requests();
    let mut after_restart = expected.map(str::to_owned).to_vec();
    after_restart.extend(["assistant: re two".into(), "user: Ada: three".into()]);
    assert_eq!(texts(&requests[0]), after_restart);
    assert_eq!(texts(&requests[1]), ["user: Ada: four"], "after /reset");
    assert_eq!(
        texts(&requests[2]),
        ["user: Ada: four", "assistant: re four", "user: Ada: five"]
    );
}
