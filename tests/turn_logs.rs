//! Every log line of a turn carries the conversation key and the turn id
//! through the turn's span (issue 17), in the JSON lines `[log] format =
//! "json"` writes (the same tracing-subscriber settings as `logging.rs`).

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tracing_subscriber::fmt::MakeWriter;

use crate::support::bot::TestBot;
use crate::support::fake_llm::FakeReply;

/// Log output kept in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Captured {
    fn lines(&self) -> Vec<Value> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

#[tokio::test]
async fn a_turns_log_lines_carry_the_conversation_and_the_turn_id_in_both_modes() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(true)
        .with_max_level(tracing::Level::INFO)
        .with_writer(captured.clone())
        .finish();
    // The test's runtime runs on this thread, the engine's tasks with it.
    let _guard = tracing::subscriber::set_default(subscriber);

    // Every model call fails for good (a 400), so each turn logs a warning.
    let mut bot = TestBot::start(|_| FakeReply::Error {
        status: 400,
        body: json!({"error": {"message": "bad request", "type": "invalid_request_error"}}),
        retry_after: None,
    })
    .await;
    bot.say("in single mode").await;
    bot.channel.wait_for_replies(1).await;
    bot.say("/orchestrator on").await;
    bot.say("in orchestrator mode").await;
    bot.drain().await;

    let key = TestBot::key().to_string();
    let turns = bot
        .services
        .store
        .browse_turns(&key, None, 10)
        .await
        .unwrap();
    let mut ids: Vec<(i64, String)> = turns.iter().map(|t| (t.id, t.mode.clone())).collect();
    ids.sort();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert_eq!(
        (ids[0].1.as_str(), ids[1].1.as_str()),
        ("single", "orchestrator")
    );

    let failed: Vec<Value> = captured
        .lines()
        .into_iter()
        .filter(|line| line["fields"]["message"] == "turn failed")
        .collect();
    assert_eq!(failed.len(), 2, "{failed:#?}");
    for (line, (id, mode)) in failed.iter().zip(&ids) {
        assert_eq!(line["span"]["name"], "turn", "{line}");
        assert_eq!(line["span"]["conversation"], key.as_str(), "{mode}: {line}");
        assert_eq!(line["span"]["turn"], *id, "{mode}: {line}");
        assert!(line["span"]["message"].is_i64(), "{mode}: {line}");
    }
}
