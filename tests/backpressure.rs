//! Backpressure, flood control and bounded replies end to end, through the
//! fake Telegram: one busy chat never holds up another, a flooded
//! conversation still answers every message in order, a user past the
//! per-minute limit is told once instead of costing a model call per
//! message, and a huge answer is cut instead of flooding the chat.

use std::time::Duration;

use baton::config::Config;
use baton::store::Store;
use baton_channel::ConversationKey;
use secrecy::SecretString;

use crate::support::bot::test_config;
use crate::support::fake_llm::{FakeLlm, FakeReply, SeenRequest, Wire};
use crate::support::fake_telegram::FakeTelegram;
use crate::support::service::App;

/// The flooding user (in `allowed_users`).
const ADA: u64 = 42;
/// A bystander in another private chat.
const BOB: u64 = 7;

fn start_app(telegram: &FakeTelegram, llm: &FakeLlm, db: &std::path::Path, engine: &str) -> App {
    let extra = format!(
        r#"
[server]
enabled = false

[engine]
{engine}

[telegram]
api_url = "{api}"
allowed_users = [{ADA}]
dm_policy = "open"
min_send_interval_ms = 1
poll_timeout_secs = 1
"#,
        api = telegram.api_url()
    );
    let mut config: Config = test_config(llm, Wire::OpenAi, db, &extra);
    config.telegram.token = Some(SecretString::from("123456:TEST-TOKEN"));
    App::spawn(config)
}

/// Echoes the user's text after `delay`.
fn slow_echo(delay: Duration) -> impl Fn(&SeenRequest) -> FakeReply {
    move |request| {
        let said = request.last_user_text().unwrap_or_default().to_owned();
        FakeReply::Delayed(delay, Box::new(FakeReply::Text(format!("echo {said}"))))
    }
}

#[tokio::test]
async fn a_flooded_chat_does_not_hold_up_a_bystander_and_still_answers_everything_in_order() {
    const FLOOD: usize = 30;
    let telegram = FakeTelegram::start().await;
    let llm = FakeLlm::start(Wire::OpenAi, slow_echo(Duration::from_millis(100))).await;
    let dir = tempfile::tempdir().unwrap();
    let app = start_app(
        &telegram,
        &llm,
        &dir.path().join("baton.db"),
        "queue_capacity = 2\nmax_messages_per_user_per_minute = 0",
    );

    let flood: Vec<i64> = (0..FLOOD)
        .map(|n| telegram.dm(ADA, &format!("flood {n}")).1)
        .collect();
    let (bystander_update, bystander) = telegram.dm(BOB, "are you there?");

    let sent = telegram.wait_for_sent(BOB as i64, 1).await;
    telegram.wait_confirmed(bystander_update).await;
    let ada_answered_before = telegram.sent_to(ADA as i64).len();
    assert_eq!(sent[0].text(), "echo User7: are you there?");
    assert_eq!(sent[0].reply_to(), Some(bystander));
    // Before the fix, the poll loop waited on the flooded chat's full queue,
    // so the bystander came after nearly the whole flood (27 of 30).
    assert!(
        ada_answered_before < 10,
        "the bystander waited for {ada_answered_before} of the flooded chat's answers"
    );

    // Every flooded message is answered once, in order, as a reply to itself.
    let sent = telegram.wait_for_sent(ADA as i64, FLOOD).await;
    app.stop().await;
    let texts: Vec<&str> = sent.iter().map(|call| call.text()).collect();
    let expected: Vec<String> = (0..FLOOD).map(|n| format!("echo Ada: flood {n}")).collect();
    assert_eq!(texts, expected);
    let replied: Vec<Option<i64>> = sent.iter().map(|call| call.reply_to()).collect();
    let flood: Vec<Option<i64>> = flood.into_iter().map(Some).collect();
    assert_eq!(replied, flood);
    assert_eq!(
        llm.requests().len(),
        FLOOD + 1,
        "one model call per message"
    );
}

#[tokio::test]
async fn past_the_per_user_limit_messages_are_stored_and_answered_once_with_a_notice() {
    const SENT: usize = 12;
    const LIMIT: usize = 5;
    let telegram = FakeTelegram::start().await;
    let llm = FakeLlm::start(Wire::OpenAi, slow_echo(Duration::ZERO)).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("baton.db");
    let app = start_app(
        &telegram,
        &llm,
        &db,
        &format!("max_messages_per_user_per_minute = {LIMIT}"),
    );

    for n in 0..SENT {
        telegram.dm(ADA, &format!("spam {n}"));
    }
    telegram.wait_for_sent(ADA as i64, LIMIT + 1).await;
    // Another user is not limited; once their answer is out, every update
    // before it was handled.
    let (update, _) = telegram.dm(BOB, "hello");
    telegram.wait_for_sent(BOB as i64, 1).await;
    telegram.wait_confirmed(update).await;
    app.stop().await;

    let sent = telegram.sent_to(ADA as i64);
    let texts: Vec<&str> = sent.iter().map(|call| call.text()).collect();
    let notices = texts.iter().filter(|t| t.contains("slow down")).count();
    assert_eq!(notices, 1, "{texts:#?}");
    let answers: Vec<&str> = texts
        .iter()
        .copied()
        .filter(|t| t.starts_with("echo"))
        .collect();
    let expected: Vec<String> = (0..LIMIT).map(|n| format!("echo Ada: spam {n}")).collect();
    assert_eq!(answers, expected);
    assert_eq!(sent.len(), LIMIT + 1, "{texts:#?}");
    assert_eq!(
        llm.requests().len(),
        LIMIT + 1,
        "no model call past the limit"
    );

    // Nothing is lost: every message is in the transcript.
    let store = Store::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let key = ConversationKey::telegram(ADA as i64, None);
    let history = store.history(&key, 100).await.unwrap();
    for n in 0..SENT {
        let text = format!("spam {n}");
        assert!(
            history.iter().any(|m| m.content == text),
            "{text} is stored"
        );
    }
    store.close().await;
}

#[tokio::test]
async fn a_huge_answer_is_cut_to_a_few_messages_and_does_not_fill_the_next_context() {
    let telegram = FakeTelegram::start().await;
    let llm = FakeLlm::start(Wire::OpenAi, |request| {
        if request.last_user_text() == Some("Ada: tell me everything") {
            // 50,000 characters in 10-character words over many lines.
            let line = "everything ".repeat(10);
            FakeReply::Text(format!("{line}\n").repeat(455))
        } else {
            FakeReply::Text("short".into())
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let app = start_app(
        &telegram,
        &llm,
        &dir.path().join("baton.db"),
        "max_reply_chars = 6000",
    );

    telegram.dm(ADA, "tell me everything");
    telegram
        .wait_for("the cut answer", |calls| {
            calls
                .iter()
                .any(|c| c.text().contains("This answer was cut"))
        })
        .await;
    telegram.dm(ADA, "and now?");
    telegram
        .wait_for("the next answer", |calls| {
            calls.iter().any(|c| c.text() == "short")
        })
        .await;
    app.stop().await;

    let sent = telegram.sent_to(ADA as i64);
    // 6,000 characters fit in two Telegram messages; then the short answer.
    assert_eq!(sent.len(), 3, "{} messages", sent.len());
    let posted: usize = sent[..2].iter().map(|c| c.text().chars().count()).sum();
    assert!(posted < 6_200, "{posted} characters posted");
    // The next request carries the cut answer, not 50,000 characters.
    let next = llm.requests().pop().unwrap();
    let context: usize = next.messages.iter().map(|m| m.text.len()).sum();
    assert!(context < 7_000, "{context} bytes of context");
}
