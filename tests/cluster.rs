//! Several instances on one PostgreSQL database (active/standby): the real
//! binary, twice, against the throwaway Postgres, the fake Bot API in
//! polling mode and a fake model. One instance leads (it alone polls and
//! answers); killed, or paused past its lease, it is replaced by the
//! standby, and nothing is lost or answered twice.

use std::process::{Child, Command};
use std::time::Duration;

use crate::support::fake_llm::{FakeLlm, FakeReply, SeenRequest, Wire};
use crate::support::fake_telegram::FakeTelegram;
use crate::support::postgres;
use crate::support::telegram_config::telegram_only;
use crate::telegram::echo;

const ADA: u64 = 42;
const CHAT: i64 = ADA as i64;
/// Short leases, so that a takeover is quick.
const CLUSTER: &str = "[cluster]\nlease_secs = 3\n";

/// `baton run` on `database`, as a child process.
fn instance(run: &impl Fn() -> Command, database: &str) -> Child {
    run().env("BATON__STORAGE__URL", database).spawn().unwrap()
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name}");
}

#[tokio::test]
async fn a_standby_takes_over_polling_and_answering_when_the_leader_is_killed() {
    let Some(database) = postgres::database().await else {
        return;
    };
    let telegram = FakeTelegram::start().await;
    let llm = FakeLlm::start(Wire::OpenAi, echo).await;
    let dir = tempfile::tempdir().unwrap();
    let run =
        crate::cli::telegram_service(dir.path(), &llm, &telegram_only(&telegram, ADA, CLUSTER));

    let mut leader = instance(&run, &database);
    let (_, first) = telegram.dm(ADA, "one");
    telegram.wait_for_sent(CHAT, 1).await;
    let mut standby = instance(&run, &database);
    // The standby waits: the leader keeps answering, and polls alone.
    let (_, second) = telegram.dm(ADA, "two");
    telegram.wait_for_sent(CHAT, 2).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    leader.kill().unwrap();
    leader.wait().unwrap();
    // Sent while nobody leads: answered once the standby took over.
    let (_, third) = telegram.dm(ADA, "three");
    telegram.wait_for_sent(CHAT, 3).await;
    standby.kill().unwrap();
    standby.wait().unwrap();

    assert_eq!(telegram.most_polling_at_once(), 1, "one poller at a time");
    let sent = telegram.sent_to(CHAT);
    let answered: Vec<Option<i64>> = sent.iter().map(|c| c.reply_to()).collect();
    assert_eq!(answered, [Some(first), Some(second), Some(third)]);
    assert_eq!(sent[2].text(), "Hello! You said: Ada: three");
    assert_eq!(
        llm.requests().len(),
        3,
        "each message reached the model once"
    );
}

/// The first request waits `delay`; the others echo at once.
fn slow_first(delay: Duration) -> impl Fn(&SeenRequest) -> FakeReply + Send + Sync + 'static {
    let first = std::sync::atomic::AtomicBool::new(true);
    move |request| {
        let reply = echo(request);
        if first.swap(false, std::sync::atomic::Ordering::SeqCst) {
            FakeReply::Delayed(delay, Box::new(reply))
        } else {
            reply
        }
    }
}

#[tokio::test]
async fn a_leader_paused_past_its_lease_posts_nothing_when_it_wakes() {
    let Some(database) = postgres::database().await else {
        return;
    };
    let telegram = FakeTelegram::start().await;
    // The leader's model call answers while it is paused.
    let llm = FakeLlm::start(Wire::OpenAi, slow_first(Duration::from_secs(1))).await;
    let dir = tempfile::tempdir().unwrap();
    let run =
        crate::cli::telegram_service(dir.path(), &llm, &telegram_only(&telegram, ADA, CLUSTER));

    let mut leader = instance(&run, &database);
    let (_, hello) = telegram.dm(ADA, "/help");
    telegram.wait_for_sent(CHAT, 1).await;
    let mut standby = instance(&run, &database);
    let (_, message) = telegram.dm(ADA, "remember me");
    tokio::time::timeout(Duration::from_secs(20), async {
        while llm.requests().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the leader asked the model");
    signal(&leader, "STOP");
    // The standby takes over and answers the message again.
    telegram.wait_for_sent(CHAT, 2).await;
    signal(&leader, "CONT");
    // The old leader wakes with its answer in hand, and stops without
    // posting it.
    let exited = tokio::task::spawn_blocking(move || leader.wait().unwrap())
        .await
        .unwrap();
    assert!(!exited.success(), "the old leader stops with an error");
    let (_, later) = telegram.dm(ADA, "still there?");
    telegram.wait_for_sent(CHAT, 3).await;
    standby.kill().unwrap();
    standby.wait().unwrap();

    let sent = telegram.sent_to(CHAT);
    let answered: Vec<Option<i64>> = sent.iter().map(|c| c.reply_to()).collect();
    assert_eq!(
        answered,
        [Some(hello), Some(message), Some(later)],
        "{sent:#?}"
    );
    assert_eq!(sent[1].text(), "Hello! You said: Ada: remember me");
}
