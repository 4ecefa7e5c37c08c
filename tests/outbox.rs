//! The durable outbox, as a user sees it: a reply that was stored but not
//! yet sent when the process was killed is posted after the restart, once,
//! and the message is not answered again. (The Discord side, a create
//! retried after a lost answer, is in `discord.rs`.)

use crate::support::fake_llm::{FakeLlm, Wire};
use crate::support::fake_telegram::{FakeFailure, FakeTelegram};
use crate::support::telegram_config::telegram_only;
use crate::telegram::echo;

const ADA: u64 = 42;
const CHAT: i64 = ADA as i64;

#[tokio::test]
async fn a_reply_stored_but_not_sent_at_a_kill_9_is_posted_after_the_restart() {
    let telegram = FakeTelegram::start().await;
    let llm = FakeLlm::start(Wire::OpenAi, echo).await;
    let dir = tempfile::tempdir().unwrap();
    let run = crate::cli::telegram_service(dir.path(), &llm, &telegram_only(&telegram, ADA, ""));

    // First life: Telegram asks the bot to wait ten minutes before sending,
    // so the reply is stored and waiting when the process is killed.
    telegram.fail_next(
        "sendMessage",
        FakeFailure::TooManyRequests { retry_after: 600 },
    );
    let mut first = run().spawn().unwrap();
    let (_, message) = telegram.dm(ADA, "remember me");
    telegram
        .wait_for("the reply's first attempt", |calls| {
            calls.iter().any(|c| c.method == "sendmessage")
        })
        .await;
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(telegram.sent_to(CHAT).is_empty());

    // Second life: the stored reply goes out, and later messages after it.
    let mut second = run().spawn().unwrap();
    telegram.wait_for_sent(CHAT, 1).await;
    let (_, later) = telegram.dm(ADA, "still there?");
    telegram.wait_for_sent(CHAT, 2).await;
    second.kill().unwrap();
    second.wait().unwrap();

    let sent = telegram.sent_to(CHAT);
    assert_eq!(sent.len(), 2, "{sent:#?}");
    assert_eq!(sent[0].text(), "Hello! You said: Ada: remember me");
    assert_eq!(sent[0].reply_to(), Some(message));
    assert_eq!(sent[1].reply_to(), Some(later));
    assert_eq!(
        llm.requests().len(),
        2,
        "the first message was answered by the model once"
    );
}
