//! Part 4 of the engine benchmarks: replies per second when the model is
//! slow, through the real OpenAI provider and the fake model server over
//! HTTP. 100 chats (each its own user) × 5 messages in single mode; each
//! chat sends its next message when the reply to the previous one is
//! posted; the model answers each call after 1 s.
//!
//! Three runs, each on a fresh engine and database:
//! - the default config (`[engine] max_concurrent_model_calls` = 512, the
//!   provider's `max_concurrency` = 256, the hosted default; the fake is on
//!   loopback, where the default would be 4, so the bench sets it);
//! - the same with the old fixed cap of 32 calls, for comparison;
//! - the default config against a provider that takes only 20 calls at
//!   once and answers 429 (no `Retry-After`) to any more.

use super::*;

const CHATS: usize = 100;
const MESSAGES: usize = 5;
const MODEL_DELAY: Duration = Duration::from_secs(1);
/// The start of the notice a turn posts once when its model call is retried.
const RETRY_NOTICE: &str = "_The model is slow to answer";

struct Row {
    label: &'static str,
    replies_per_sec: f64,
    p50: Duration,
    p99: Duration,
    errors: usize,
    notices: usize,
    refused: usize,
    limit: usize,
}

pub async fn run() -> anyhow::Result<()> {
    println!();
    println!(
        "== Throughput with a slow model: single mode, OpenAI wire, fake model on 127.0.0.1 answering in {} s ==",
        MODEL_DELAY.as_secs()
    );
    println!(
        "{CHATS} chats × {MESSAGES} messages, each chat its own user; next message when the previous reply is posted"
    );
    let rows = [
        measure("default config", None, None).await?,
        measure("old fixed cap of 32 calls", Some(32), None).await?,
        measure("provider takes 20 at once (429 above)", None, Some(20)).await?,
    ];
    println!(
        "  {:<40} {:>9} {:>8} {:>8} {:>7} {:>8} {:>6} {:>6}",
        "run", "replies/s", "p50 s", "p99 s", "errors", "notices", "429s", "limit"
    );
    for row in &rows {
        println!(
            "  {:<40} {:>9.1} {:>8.2} {:>8.2} {:>7} {:>8} {:>6} {:>6}",
            row.label,
            row.replies_per_sec,
            row.p50.as_secs_f64(),
            row.p99.as_secs_f64(),
            row.errors,
            row.notices,
            row.refused,
            row.limit
        );
    }
    println!(
        "  (errors: replies that are not the model's answer; notices: \"slow to answer, retrying\" posts; 429s: calls the fake refused; limit: the provider's limit at the end)"
    );
    let [default, _, tight] = &rows;
    println!(
        "  target: default config at least 80 replies/s: {:.1}: {}",
        default.replies_per_sec,
        verdict(default.replies_per_sec >= 80.0 && default.errors == 0)
    );
    println!(
        "  target: 20-at-once provider, no error reaches a user and close to 20 replies/s: {} errors, {:.1}/s: {}",
        tight.errors,
        tight.replies_per_sec,
        verdict(tight.errors == 0 && tight.replies_per_sec >= 17.0)
    );
    Ok(())
}

/// One run on a fresh engine: `ceiling` overrides the engine-wide cap,
/// `capacity` makes the fake refuse calls beyond that many at once.
async fn measure(
    label: &'static str,
    ceiling: Option<usize>,
    capacity: Option<usize>,
) -> anyhow::Result<Row> {
    let llm = FakeLlm::start(Wire::OpenAi, |_: &SeenRequest| {
        FakeReply::Delayed(MODEL_DELAY, Box::new(FakeReply::Text("ok".into())))
    })
    .await;
    if let Some(capacity) = capacity {
        llm.limit_concurrency(capacity);
    }
    let dir = tempfile::tempdir()?;
    let mut config = fake_provider_config(
        &llm,
        "openai",
        dir.path(),
        "max_concurrency = 256",
        "[models]\norchestrator = \"fake:model\"",
    )?;
    if let Some(ceiling) = ceiling {
        config.engine.max_concurrent_model_calls = ceiling;
    }
    let services = baton::app::services(config).await?;
    let channel = Arc::new(TimingChannel::default());
    let registry =
        Arc::new(Registry::new(services.clone()).with_channel(Platform::Terminal, channel.clone()));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..CHATS {
        let (registry, channel) = (registry.clone(), channel.clone());
        tasks.spawn(async move { talk(&registry, &channel, n).await });
    }
    let mut latencies = Vec::with_capacity(CHATS * MESSAGES);
    let (mut errors, mut notices) = (0, 0);
    while let Some(joined) = tasks.join_next().await {
        let chat = joined??;
        latencies.extend(chat.latencies);
        errors += chat.errors;
        notices += chat.notices;
    }
    let elapsed = start.elapsed();
    let limit = services
        .limiter
        .load()
        .providers
        .iter()
        .find(|load| load.provider == "fake")
        .map_or(0, |load| load.limit);
    registry.shutdown().await;
    services.store.close().await;
    latencies.sort();
    Ok(Row {
        label,
        replies_per_sec: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: quantile(&latencies, 0.50),
        p99: quantile(&latencies, 0.99),
        errors,
        notices,
        refused: llm.refused(),
        limit,
    })
}

/// What one chat saw.
struct Chat {
    latencies: Vec<Duration>,
    errors: usize,
    notices: usize,
}

/// One chat: its own user sends [`MESSAGES`] messages, each once the
/// previous one is answered.
async fn talk(registry: &Registry, channel: &TimingChannel, n: usize) -> anyhow::Result<Chat> {
    let key = conversation("throughput", n);
    let mut posts = channel.expect(&key);
    let mut chat = Chat {
        latencies: Vec::with_capacity(MESSAGES),
        errors: 0,
        notices: 0,
    };
    for m in 1..=MESSAGES {
        let sent = Instant::now();
        let event = ChannelEvent::Message(Inbound {
            key: key.clone(),
            author: Author {
                id: format!("user-{n}"),
                name: format!("User {n}"),
            },
            text: "hello".into(),
            origin: Origin::Telegram(m as i32),
            attachments: Vec::new(),
            chat_title: None,
        });
        registry.dispatch(event).await?;
        loop {
            let posted = tokio::time::timeout(Duration::from_secs(120), posts.recv())
                .await
                .context("no reply within 120 s")?
                .context("the channel closed")?;
            if posted.text.starts_with(RETRY_NOTICE) {
                chat.notices += 1;
                continue;
            }
            if posted.text != "ok" {
                chat.errors += 1;
            }
            chat.latencies.push(posted.at - sent);
            break;
        }
    }
    Ok(chat)
}
