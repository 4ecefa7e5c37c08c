//! Several instances on one PostgreSQL database: the real binary, two or
//! three times, against the throwaway Postgres, the fake Bot API and a fake
//! model. In polling mode one instance polls; killed, or paused past its
//! lease, it is replaced by the standby. In webhook mode every instance
//! takes updates behind the test's load balancer and each conversation
//! runs on the instance holding its lease; one is killed under load. In
//! both, nothing is lost or answered twice.

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

/// Conversations in the failover test, each a different user's DM.
const CONVERSATIONS: u64 = 100;
/// Messages each of them sends.
const MESSAGES: usize = 5;
/// The first of their user ids.
const FIRST_USER: u64 = 5_000;
const SECRET: &str = "s3cret";

/// A free port on loopback (bound, then let go for a child to take).
fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// One message of `user` as Telegram would post it to the webhook.
fn update(update_id: u64, message_id: i64, user: u64, text: &str) -> serde_json::Value {
    serde_json::json!({"update_id": update_id, "message": {
        "message_id": message_id, "date": 1_700_000_000,
        "chat": crate::support::fake_telegram::private_chat(user),
        "from": crate::support::fake_telegram::user_json(user),
        "text": text,
    }})
}

/// The test's load balancer: posts `update` to the instance at `first`,
/// and, while an instance refuses (killed) or fails, to the next one, as
/// Telegram retries an update until some instance confirms it.
async fn post_update(
    client: &reqwest::Client,
    addresses: &[String],
    first: usize,
    update: &serde_json::Value,
) {
    for attempt in 0..addresses.len() * 20 {
        let address = &addresses[(first + attempt) % addresses.len()];
        let sent = client
            .post(format!("http://{address}/telegram/webhook"))
            .header(baton_telegram::webhook::SECRET_HEADER, SECRET)
            .json(update)
            .send()
            .await;
        if sent.is_ok_and(|response| response.status().is_success()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no instance took update {update}");
}

async fn wait_until_serving(client: &reqwest::Client, address: &str) {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let health = client.get(format!("http://{address}/healthz")).send().await;
            if health.is_ok_and(|response| response.status().is_success()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the instance serves HTTP");
}

/// Every turn of the database, per conversation in start order:
/// (conversation, started_at, finished_at).
async fn turn_times(database: &str) -> Vec<(String, i64, Option<i64>)> {
    let store = baton::store::Store::connect(database).await.unwrap();
    let turns = store
        .with_connection(|conn| {
            Box::pin(async move {
                sqlx::query_as(
                    "SELECT conversation, started_at, finished_at FROM turns \
                     ORDER BY conversation, started_at, id",
                )
                .fetch_all(conn)
                .await
            })
        })
        .await
        .unwrap();
    store.close().await;
    turns
}

#[tokio::test]
async fn three_instances_behind_a_load_balancer_answer_everything_once_through_a_kill() {
    let Some(database) = postgres::database().await else {
        return;
    };
    let telegram = FakeTelegram::start().await;
    // Each answer takes a moment, so that turns are running at the kill.
    let llm = FakeLlm::start(Wire::OpenAi, |request: &SeenRequest| {
        FakeReply::Delayed(Duration::from_millis(200), Box::new(echo(request)))
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let users: Vec<String> = (0..CONVERSATIONS)
        .map(|n| (FIRST_USER + n).to_string())
        .collect();
    let config = format!(
        r#"
[telegram]
api_url = "{api}"
allowed_users = [{users}]
min_send_interval_ms = 1
mode = "webhook"
webhook_url = "https://bot.example.org/telegram/webhook"
webhook_secret_env = "BATON_TEST_WEBHOOK_SECRET"

{CLUSTER}
"#,
        api = telegram.api_url(),
        users = users.join(", "),
    );
    let run = crate::cli::telegram_service(dir.path(), &llm, &config);
    let addresses: Vec<String> = (0..3).map(|_| free_address()).collect();
    let mut instances: Vec<Child> = addresses
        .iter()
        .enumerate()
        .map(|(i, address)| {
            // Kept beside the database, for a look after a failure.
            let log = std::fs::File::create(dir.path().join(format!("instance{i}.log"))).unwrap();
            run()
                .stderr(log)
                .env("BATON__STORAGE__URL", &database)
                .env("BATON__SERVER__LISTEN", address)
                .env("BATON_TEST_WEBHOOK_SECRET", SECRET)
                .spawn()
                .unwrap()
        })
        .collect();
    let client = reqwest::Client::new();
    for address in &addresses {
        wait_until_serving(&client, address).await;
    }

    // Round by round, every conversation's next message, round-robin over
    // the instances; the third instance is killed during the third round.
    let mut sent: Vec<Vec<i64>> = vec![Vec::new(); CONVERSATIONS as usize];
    let mut update_id = 0;
    let mut killed_at = None;
    let mut victims = Vec::new();
    for round in 0..MESSAGES {
        let mut posts = Vec::new();
        for n in 0..CONVERSATIONS {
            update_id += 1;
            let message_id = i64::try_from(1_000 * (round as u64 + 1) + n).unwrap();
            sent[n as usize].push(message_id);
            let update = update(update_id, message_id, FIRST_USER + n, &format!("m{round}"));
            let client = client.clone();
            let addresses = addresses.clone();
            let first = usize::try_from(update_id).unwrap() % 3;
            posts.push(tokio::spawn(async move {
                post_update(&client, &addresses, first, &update).await
            }));
            if round == 2 && n == CONVERSATIONS / 2 {
                // Whatever the victim holds now is what the others must
                // take over.
                let victim = &mut instances[2];
                victims = held_by(&database, victim.id()).await;
                victim.kill().unwrap();
                victim.wait().unwrap();
                killed_at = Some(std::time::Instant::now());
            }
        }
        for post in posts {
            post.await.unwrap();
        }
    }
    let killed_at = killed_at.unwrap();
    assert!(
        !victims.is_empty(),
        "the killed instance held conversations"
    );

    // Every message is answered, in order, in its conversation. Telegram
    // has no idempotency key: a reply the killed instance had sent but not
    // yet marked sent (a few milliseconds) is sent again by the new owner,
    // right after itself (at least once, as the README says); collapsed
    // here, and counted.
    let delivered = |chat: i64| -> (Vec<i64>, usize) {
        let mut answered: Vec<(i64, String)> = Vec::new();
        let mut repeats = 0;
        for call in telegram.sent_to(chat) {
            let reply = (call.reply_to().unwrap_or_default(), call.text().to_owned());
            if answered.last() == Some(&reply) {
                repeats += 1;
            } else {
                answered.push(reply);
            }
        }
        (answered.into_iter().map(|(to, _)| to).collect(), repeats)
    };
    let all_answered = || {
        (0..CONVERSATIONS).all(|n| {
            let chat = i64::try_from(FIRST_USER + n).unwrap();
            delivered(chat).0.len() >= MESSAGES
        })
    };
    // Telegram's pace (30 messages a second per instance) makes this take
    // a while. (If they never all come, the check of each conversation
    // below says which one is short.)
    let _ = tokio::time::timeout(Duration::from_secs(120), async {
        while !all_answered() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    // The first answer the victims' conversations got after the kill: the
    // new owner's.
    let failover = victims
        .iter()
        .filter_map(|user| {
            let chat = i64::try_from(*user).unwrap();
            telegram
                .sent_to(chat)
                .iter()
                .map(|call| call.at)
                .find(|at| *at > killed_at)
        })
        .min()
        .map(|answered| answered.saturating_duration_since(killed_at));
    for instance in &mut instances[..2] {
        instance.kill().unwrap();
        instance.wait().unwrap();
    }
    let mut repeated = 0;
    for n in 0..CONVERSATIONS {
        let chat = i64::try_from(FIRST_USER + n).unwrap();
        let (answered, repeats) = delivered(chat);
        assert_eq!(answered, sent[n as usize], "conversation {chat}");
        repeated += repeats;
    }
    eprintln!("replies the killed instance sent but had not marked, sent again: {repeated}");
    // Each message was answered by one turn that finished ("done"): none
    // twice, none skipped.
    let answers = done_turns_per_message(&database).await;
    assert_eq!(
        answers.len(),
        CONVERSATIONS as usize * MESSAGES,
        "{answers:?}"
    );
    assert!(answers.iter().all(|&(_, turns)| turns == 1), "{answers:?}");
    // No two turns of one conversation ever ran at the same time.
    let turns = turn_times(&database).await;
    for pair in turns.windows(2) {
        let [(a, _, a_end), (b, b_start, _)] = pair else {
            continue;
        };
        if a == b {
            let a_end = a_end.expect("every turn finished");
            assert!(*b_start >= a_end, "turns overlap in {a}: {pair:?}");
        }
    }
    let failover = failover.expect("the victims' conversations answered again");
    eprintln!(
        "failover: the first answer in the killed instance's conversations came {failover:?} after the kill"
    );
    assert!(
        failover < Duration::from_secs(3 + 5),
        "failover took {failover:?} (lease 3 s)"
    );
}

/// For each user's message, how many of its turns finished answering it.
async fn done_turns_per_message(database: &str) -> Vec<(i64, i64)> {
    let store = baton::store::Store::connect(database).await.unwrap();
    let answers = store
        .with_connection(|conn| {
            Box::pin(async move {
                sqlx::query_as(
                    "SELECT m.id, (SELECT COUNT(*) FROM turns t \
                         WHERE t.inbound_message_id = m.id AND t.status = 'done') \
                     FROM messages m WHERE m.role = 'user' ORDER BY m.id",
                )
                .fetch_all(conn)
                .await
            })
        })
        .await
        .unwrap();
    store.close().await;
    answers
}

/// Unix milliseconds, as the store's times are.
fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since.as_millis()).unwrap()
}

/// The users whose conversations instance `pid` holds.
async fn held_by(database: &str, pid: u32) -> Vec<u64> {
    let store = baton::store::Store::connect(database).await.unwrap();
    let owner = format!("{pid}-%");
    let names: Vec<String> = store
        .with_connection(move |conn| {
            Box::pin(async move {
                sqlx::query_scalar("SELECT name FROM leases WHERE owner LIKE $1 AND expires_at > 0")
                    .bind(owner)
                    .fetch_all(conn)
                    .await
            })
        })
        .await
        .unwrap();
    store.close().await;
    names
        .iter()
        .filter_map(|name| name.strip_prefix("conversation:telegram/")?.parse().ok())
        .collect()
}

#[tokio::test]
async fn a_turn_end_under_a_lease_taken_over_by_another_instance_writes_nothing() {
    use baton::domain::Mode;
    use baton::store::{
        EndingTurn, ReplyToStore, Store, StoreError, TurnEnd, TurnStatus, UnderLease,
    };
    let Some(database) = postgres::database().await else {
        return;
    };
    let store = Store::connect(&database).await.unwrap();
    let key: baton_channel::ConversationKey = "telegram/42".parse().unwrap();
    let name = baton::store::conversation_lease(&key);
    let now = now_ms();
    let epoch = store
        .take_lease(&name, "first", now, now + 60_000)
        .await
        .unwrap()
        .expect("a free lease is taken");
    let ada = baton_channel::Author {
        id: "42".into(),
        name: "Ada".into(),
    };
    let end = |message| {
        let store = store.clone();
        let key = key.clone();
        let name = name.clone();
        async move {
            let under = |owner: &str, epoch| UnderLease {
                name: name.clone(),
                owner: owner.to_owned(),
                epoch,
            };
            let ended = TurnEnd {
                status: TurnStatus::Done,
                usage: Default::default(),
                error: None,
            };
            let turn = EndingTurn::Whole {
                inbound: Some(message),
                mode: Mode::Single,
                model: "fake:model",
                started_at: 0,
            };
            let reply = Some(ReplyToStore {
                text: "the answer",
                reply_to: None,
            });
            (
                store
                    .end_turn(&key, turn, ended, reply, Some(under("second", epoch)))
                    .await,
                store
                    .end_turn(&key, turn, ended, reply, Some(under("first", epoch)))
                    .await,
            )
        }
    };
    let first = store
        .record_inbound(&key, &ada, "one", Some("1"))
        .await
        .unwrap()
        .unwrap();
    let (wrong_owner, holder) = end(first).await;
    assert!(
        matches!(wrong_owner, Err(StoreError::LeaseLost)),
        "{wrong_owner:?}"
    );
    let (_, stored) = holder.expect("the holder writes");
    assert!(stored.is_some(), "the reply is stored with the turn");

    // Another instance takes the conversation over once the lease expired:
    // the first holder's next turn end writes nothing.
    store.release_lease(&name, "first", epoch, 1).await.unwrap();
    let now = now_ms();
    store
        .take_lease(&name, "second", now, now + 60_000)
        .await
        .unwrap()
        .expect("an expired lease is taken");
    let second = store
        .record_inbound(&key, &ada, "two", Some("2"))
        .await
        .unwrap()
        .unwrap();
    let (_, stale) = end(second).await;
    assert!(matches!(stale, Err(StoreError::LeaseLost)), "{stale:?}");
    let unsent = store.unsent_replies(0, 10).await.unwrap();
    assert_eq!(unsent.len(), 1, "only the holder's reply: {unsent:?}");
    let waiting = store.unanswered_messages(0, 10).await.unwrap();
    assert_eq!(
        waiting.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
        ["two"],
        "the second message is still unanswered, for the new owner"
    );
    store.close().await;
}
