//! Engine benchmarks: `cargo bench --bench engine` prints a readable report.
//!
//! Three parts, each against a real engine (config, SQLite file store in a
//! temporary folder, registry, conversation actors) on a multi-thread tokio
//! runtime with 2 worker threads:
//!
//! - **memory**: resident memory of the idle engine, and per idle live
//!   conversation (10,000 conversations of one message each). Run first, so
//!   the other parts' freed heap does not blur it.
//! - **parallel**: orchestrator mode through the real OpenAI provider and the
//!   fake model server: 8 workers of 500 ms each in one round. The delegation
//!   phase should take one worker delay, not eight.
//! - **overhead**: single mode on a zero-delay in-process provider, 1,000
//!   conversations × 10 messages: turns per second, and the latency from
//!   `dispatch` to the channel's `post` (all of it engine time).
//!
//! - **throughput**: single mode through the real OpenAI provider and the
//!   fake model answering in 1 s, 100 chats × 5 messages: replies per
//!   second with the default config, with the old fixed cap of 32, and
//!   against a provider that takes only 20 calls at once
//!   (`engine/throughput.rs`).
//!
//! - **postgres** (only when named): the overhead part on PostgreSQL, one
//!   instance, on the tests' throwaway server (`tests/support/postgres.rs`).
//! - **cost**: one orchestrator turn with 8 workers after a 20-message
//!   history on each wire format, before and after issue 16's changes:
//!   orchestrator calls, input tokens sent, cached and billed, output
//!   tokens, dollars at list prices (`engine/cost.rs`).
//! - **metrics**: the overhead part's runs without a metrics recorder (the
//!   `metrics` macros are no-ops, as in every other part) and then with the
//!   Prometheus recorder `baton run` installs: what `/metrics` costs a turn.
//!
//! `cargo bench --bench engine -- parallel` runs only the parts named.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/fake_llm/mod.rs"]
#[allow(dead_code, unused_imports)]
mod fake_llm;

#[path = "engine/throughput.rs"]
mod throughput;

#[path = "../tests/support/postgres.rs"]
#[allow(dead_code)]
mod postgres;

#[path = "engine/cost.rs"]
mod cost;

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use baton::config::Config;
use baton::conversation::Registry;
use baton::domain::{Mode, Usage};
use baton::llm::models::Models;
use baton::llm::{
    AssistantMessage, Completion, CompletionRequest, Provider, ProviderError, StopReason,
};
use baton::services::Services;
use baton::store::{Store, TurnStatus};
use baton_channel::{
    Author, Channel, ChannelError, ChannelEvent, ConversationKey, Inbound, Origin, Platform, Reply,
    WorkerEvent,
};
use fake_llm::{FakeLlm, FakeReply, SeenRequest, Wire};
use serde_json::json;
use tokio::sync::{Notify, Semaphore, mpsc};

fn main() -> anyhow::Result<()> {
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    let runs = |part: &str| wanted.is_empty() || wanted.iter().any(|w| w == part);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    println!("Baton engine benchmarks (tokio multi-thread runtime, 2 worker threads)");
    runtime.block_on(async {
        if runs("memory") {
            memory::run().await?;
        }
        if runs("parallel") {
            parallel::run().await?;
        }
        if runs("overhead") {
            overhead::run().await?;
        }
        if runs("throughput") {
            throughput::run().await?;
        }
        if runs("cost") {
            cost::run().await?;
        }
        // Not in the default run: it needs PostgreSQL's server binaries.
        if wanted.iter().any(|w| w == "postgres") {
            overhead::run_postgres().await?;
        }
        // Last: it installs the Prometheus recorder for the rest of the process.
        if runs("metrics") {
            overhead::metrics_cost().await?;
        }
        anyhow::Ok(())
    })
}

// ---------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------

/// A user's message `n` in conversation `key`.
fn message(key: &ConversationKey, n: usize, text: &str) -> ChannelEvent {
    ChannelEvent::Message(Inbound {
        key: key.clone(),
        author: Author {
            id: "42".into(),
            name: "Ada".into(),
        },
        text: text.to_owned(),
        origin: Origin::Telegram(n as i32),
        attachments: Vec::new(),
        chat_title: None,
    })
}

/// A conversation key for the `n`th conversation of a run.
fn conversation(run: &str, n: usize) -> ConversationKey {
    ConversationKey::terminal(format!("{run}-{n}"))
}

/// The `p`-quantile (0 < p <= 1) of sorted samples, nearest rank.
fn quantile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn verdict(met: bool) -> &'static str {
    if met { "MET" } else { "NOT MET" }
}

/// Resident memory of this process in KiB (`VmRSS` in /proc/self/status).
fn rss_kib() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .context("no VmRSS line in /proc/self/status")?;
    let kib = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim();
    Ok(kib.parse()?)
}

/// What a channel was asked to post in one conversation.
struct Posted {
    at: Instant,
    text: String,
}

/// A channel that hands each post, with the instant it arrived, to whoever
/// registered for that conversation with [`TimingChannel::expect`].
#[derive(Default)]
struct TimingChannel {
    waiting: Mutex<HashMap<ConversationKey, mpsc::UnboundedSender<Posted>>>,
}

impl TimingChannel {
    /// Registers for the posts of `key`; call before its first message.
    fn expect(&self, key: &ConversationKey) -> mpsc::UnboundedReceiver<Posted> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.waiting.lock().unwrap().insert(key.clone(), tx);
        rx
    }
}

impl Channel for TimingChannel {
    fn reply_to(&self, key: &ConversationKey) -> Box<dyn Reply> {
        // Cloned, not taken: in a cluster more than one actor may start for
        // a conversation (the one that does not hold it hands over).
        let posts = self.waiting.lock().unwrap().get(key).cloned();
        Box::new(TimingReply { posts })
    }
}

struct TimingReply {
    posts: Option<mpsc::UnboundedSender<Posted>>,
}

#[async_trait::async_trait]
impl Reply for TimingReply {
    async fn post(&mut self, _origin: &Origin, text: &str) -> Result<(), ChannelError> {
        let at = Instant::now();
        if let Some(posts) = &self.posts {
            let _ = posts.send(Posted {
                at,
                text: text.to_owned(),
            });
        }
        Ok(())
    }

    async fn verbose(&mut self, _: &Origin, _: &WorkerEvent) -> Result<(), ChannelError> {
        Ok(())
    }
}

/// A channel that only counts posts: its replies hold no per-conversation
/// buffers, so memory measured with it is the engine's.
#[derive(Default)]
struct CountingChannel {
    counter: Arc<PostCounter>,
}

#[derive(Default)]
struct PostCounter {
    posts: AtomicUsize,
    changed: Notify,
}

impl CountingChannel {
    /// Waits until `n` posts have been made in all.
    async fn wait_for(&self, n: usize) {
        loop {
            let changed = self.counter.changed.notified();
            if self.counter.posts.load(Ordering::SeqCst) >= n {
                return;
            }
            changed.await;
        }
    }
}

impl Channel for CountingChannel {
    fn reply_to(&self, _key: &ConversationKey) -> Box<dyn Reply> {
        Box::new(CountingReply(self.counter.clone()))
    }
}

struct CountingReply(Arc<PostCounter>);

#[async_trait::async_trait]
impl Reply for CountingReply {
    async fn post(&mut self, _origin: &Origin, _text: &str) -> Result<(), ChannelError> {
        self.0.posts.fetch_add(1, Ordering::SeqCst);
        self.0.changed.notify_waiters();
        Ok(())
    }

    async fn verbose(&mut self, _: &Origin, _: &WorkerEvent) -> Result<(), ChannelError> {
        Ok(())
    }
}

/// A model that answers at once: everything measured with it is engine time.
#[derive(Debug)]
struct ZeroDelay;

#[async_trait::async_trait]
impl Provider for ZeroDelay {
    fn name(&self) -> &str {
        "bench"
    }

    async fn complete(&self, _request: &CompletionRequest) -> Result<Completion, ProviderError> {
        Ok(Completion {
            message: AssistantMessage {
                text: Some("ok".into()),
                ..AssistantMessage::default()
            },
            usage: Usage {
                input_tokens: 10,
                output_tokens: 1,
                ..Usage::default()
            },
            stop: StopReason::EndTurn,
            quota: Default::default(),
        })
    }
}

/// The config of an engine whose one provider, `fake`, is the fake model
/// server `llm` speaking `kind` (`openai`, `anthropic` or `gemini`), with
/// its store in a SQLite file in `dir`: `provider_keys` are added to
/// `[providers.fake]`, and `sections` (`[models]` and the rest) follow it.
fn fake_provider_config(
    llm: &FakeLlm,
    kind: &str,
    dir: &Path,
    provider_keys: &str,
    sections: &str,
) -> anyhow::Result<Config> {
    let text = format!(
        r#"
[storage]
url = "sqlite://{db}"

[providers.fake]
kind = "{kind}"
base_url = "{url}"
{provider_keys}

{sections}
"#,
        db = dir.join("baton.db").display(),
        url = llm.base_url(),
    );
    Ok(Config::from_toml(&text, Vec::new())?)
}

/// Single-mode services on the zero-delay model and a SQLite file database
/// in `dir`; actors stay live for an hour without messages.
async fn zero_delay_services(dir: &Path) -> anyhow::Result<Arc<Services>> {
    zero_delay_services_on(&format!("sqlite://{}", dir.join("baton.db").display())).await
}

/// Like [`zero_delay_services`], on the database at `url`.
async fn zero_delay_services_on(url: &str) -> anyhow::Result<Arc<Services>> {
    let mut config = Config::default();
    config.storage.url = url.to_owned();
    config.engine.idle_timeout_secs = 3600;
    // Every conversation's messages come from the same user here.
    config.engine.max_messages_per_user_per_minute = 0;
    config.models.orchestrator = Some("bench:zero".into());
    let store = Store::connect(&config.storage.url).await?;
    let providers =
        BTreeMap::from([("bench".to_owned(), Arc::new(ZeroDelay) as Arc<dyn Provider>)]);
    let models = Models::with_providers(config.models.clone(), providers)?;
    Ok(Arc::new(Services::new(config, store, models)))
}

/// [`zero_delay_services_on`] a Postgres `url`, as a member of the
/// cluster on that database, as `baton run` is: each conversation claimed
/// by the actor, its messages queued in the store, the instances woken
/// through `NOTIFY`. Returns the services and what keeps the membership
/// alive (drop it, then cancel the token, to leave).
async fn cluster_member_on(
    url: &str,
) -> anyhow::Result<(Arc<Services>, baton::cluster::Membership)> {
    let services = zero_delay_services_on(url).await?;
    let services = Arc::into_inner(services).context("fresh services are not shared")?;
    let heartbeat = services.store.with_own_pool(url, 1).await?;
    let cluster = Arc::new(baton::cluster::Cluster::new(
        services.store.clone(),
        heartbeat,
        services.config.cluster.clone(),
    ));
    let membership = baton::cluster::Membership::join(cluster.clone()).await;
    Ok((Arc::new(services.with_cluster(cluster)), membership))
}

// ---------------------------------------------------------------------------
// Part 1: parallel efficiency of orchestrator mode
// ---------------------------------------------------------------------------

mod parallel {
    use super::*;

    const ORCHESTRATOR_MODEL: &str = "orch-model";
    const WORKER_MODEL: &str = "worker-model";
    /// Workers the orchestrator starts in its first round.
    const WORKERS: usize = 8;
    /// How long each worker's model takes to answer.
    const WORKER_DELAY: Duration = Duration::from_millis(500);
    /// Measured runs (after one warm-up run).
    const RUNS: usize = 5;
    /// The orchestrator's answer once every worker is reported.
    const ANSWER: &str = "all workers reported";

    /// When the fake saw what, during one turn.
    #[derive(Debug, Default, Clone)]
    struct Timeline {
        first_worker: Option<Instant>,
        last_worker: Option<Instant>,
        first_result: Option<Instant>,
        all_results: Option<Instant>,
        orchestrator_rounds: usize,
    }

    /// One measured turn.
    struct RunTimes {
        /// First worker request to the request carrying the last result.
        delegation: Duration,
        /// `dispatch` to `post`.
        turn: Duration,
        /// First to last worker request.
        worker_spread: Duration,
        /// First result to last result (the orchestrator's await rounds).
        await_rounds: Duration,
        orchestrator_rounds: usize,
    }

    pub async fn run() -> anyhow::Result<()> {
        println!();
        println!(
            "== Parallel efficiency: orchestrator mode, OpenAI wire, fake model on 127.0.0.1 =="
        );
        let timeline = Arc::new(Mutex::new(Timeline::default()));
        let llm = FakeLlm::start(Wire::OpenAi, script(timeline.clone())).await;
        let dir = tempfile::tempdir()?;
        let services = baton::app::services(config(&llm, dir.path())?).await?;
        let channel = Arc::new(TimingChannel::default());
        let registry =
            Registry::new(services.clone()).with_channel(Platform::Terminal, channel.clone());

        one_turn(&registry, &channel, &timeline, 0).await?; // warm-up: connections, statements
        let mut runs = Vec::new();
        for n in 1..=RUNS {
            runs.push(one_turn(&registry, &channel, &timeline, n).await?);
        }
        report(&runs);
        registry.shutdown().await;
        services.store.close().await;
        Ok(())
    }

    fn config(llm: &FakeLlm, dir: &Path) -> anyhow::Result<Config> {
        super::fake_provider_config(
            llm,
            "openai",
            dir,
            // The hosted default: on loopback the default would be 4 calls
            // at once, and the 8 workers would start in two waves.
            "timeout_secs = 30\nmax_concurrency = 256",
            &format!(
                r#"
[models]
orchestrator = "fake:{ORCHESTRATOR_MODEL}"
worker = "fake:{WORKER_MODEL}"

[orchestrator]
default_mode = "orchestrator"
max_workers = {WORKERS}
"#
            ),
        )
    }

    /// The fake's script: the orchestrator starts 8 workers, awaits them
    /// until all 8 results are in, then answers; each worker answers after
    /// [`WORKER_DELAY`].
    fn script(
        timeline: Arc<Mutex<Timeline>>,
    ) -> impl Fn(&SeenRequest) -> FakeReply + Send + Sync + 'static {
        move |request| {
            let now = Instant::now();
            let mut timeline = timeline.lock().unwrap();
            if request.model == WORKER_MODEL {
                timeline.first_worker.get_or_insert(now);
                timeline.last_worker = Some(now);
                let text =
                    FakeReply::Text(format!("done: {}", request.last_user_text().unwrap_or("")));
                return FakeReply::Delayed(WORKER_DELAY, Box::new(text));
            }
            timeline.orchestrator_rounds += 1;
            if request.tool_results().is_empty() {
                let spawns = (1..=WORKERS)
                    .map(|n| {
                        (
                            "spawn_worker".to_owned(),
                            json!({"label": format!("part {n}"), "prompt": format!("do part {n}")}),
                        )
                    })
                    .collect();
                return FakeReply::ToolCalls(spawns);
            }
            let reported = reported_results(request);
            if reported >= 1 && timeline.first_result.is_none() {
                // One await may bring several results at once.
                timeline.first_result = Some(now);
            }
            if reported < WORKERS {
                return FakeReply::ToolCalls(vec![("await_workers".into(), json!({}))]);
            }
            timeline.all_results = Some(now);
            FakeReply::Text(ANSWER.into())
        }
    }

    /// How many worker results the `await_workers` calls returned (one
    /// call returns every worker that finished since the last).
    fn reported_results(request: &SeenRequest) -> usize {
        request
            .awaited()
            .iter()
            .filter(|worker| worker.get("result").is_some())
            .count()
    }

    async fn one_turn(
        registry: &Registry,
        channel: &TimingChannel,
        timeline: &Mutex<Timeline>,
        n: usize,
    ) -> anyhow::Result<RunTimes> {
        *timeline.lock().unwrap() = Timeline::default();
        let key = conversation("parallel", n);
        let mut posts = channel.expect(&key);
        let start = Instant::now();
        registry
            .dispatch(message(&key, 1, "split this over 8 workers"))
            .await?;
        let posted = tokio::time::timeout(Duration::from_secs(30), posts.recv())
            .await
            .context("no reply within 30 s")?
            .context("the channel closed")?;
        ensure!(posted.text == ANSWER, "unexpected reply: {}", posted.text);
        let t = timeline.lock().unwrap().clone();
        let (Some(first_worker), Some(last_worker), Some(first_result), Some(all_results)) =
            (t.first_worker, t.last_worker, t.first_result, t.all_results)
        else {
            bail!("the fake did not see every phase of the turn: {t:?}");
        };
        Ok(RunTimes {
            delegation: all_results - first_worker,
            turn: posted.at - start,
            worker_spread: last_worker - first_worker,
            await_rounds: all_results - first_result,
            orchestrator_rounds: t.orchestrator_rounds,
        })
    }

    fn median(mut samples: Vec<Duration>) -> Duration {
        samples.sort();
        samples[samples.len() / 2]
    }

    fn report(runs: &[RunTimes]) {
        let med = |f: fn(&RunTimes) -> Duration| median(runs.iter().map(f).collect());
        let delegation = med(|r| r.delegation);
        let turn = med(|r| r.turn);
        let spread = med(|r| r.worker_spread);
        let await_rounds = med(|r| r.await_rounds);
        let rounds = runs.first().map_or(0, |r| r.orchestrator_rounds);
        let all: Vec<String> = runs
            .iter()
            .map(|r| format!("{:.1}", ms(r.delegation)))
            .collect();
        let overhead = delegation.saturating_sub(WORKER_DELAY);
        let target = WORKER_DELAY.mul_f64(1.05);
        println!(
            "{WORKERS} workers × D = {} ms each, spawned in one round; median of {} runs (after 1 warm-up)",
            WORKER_DELAY.as_millis(),
            runs.len()
        );
        println!(
            "  delegation phase (first worker request -> request with the {WORKERS}th result): {:.1} ms  [runs: {} ms]",
            ms(delegation),
            all.join(", ")
        );
        println!(
            "    = {:.3} × D; overhead over one delay {:.1} ms ({:.1}% of D)",
            delegation.as_secs_f64() / WORKER_DELAY.as_secs_f64(),
            ms(overhead),
            100.0 * overhead.as_secs_f64() / WORKER_DELAY.as_secs_f64()
        );
        println!(
            "    of which: worker starts spread over {:.2} ms; from the first result to the last (one await may bring several): {:.2} ms",
            ms(spread),
            ms(await_rounds)
        );
        println!(
            "  whole turn (dispatch -> post, {rounds} orchestrator model calls): {:.1} ms",
            ms(turn)
        );
        println!(
            "  sequential workers would take {} ms",
            (WORKER_DELAY * WORKERS as u32).as_millis()
        );
        println!(
            "  target: delegation <= 1.05 × D = {:.0} ms (the fake orchestrator's own rounds take no model time): {}",
            ms(target),
            verdict(delegation <= target)
        );
    }
}

// ---------------------------------------------------------------------------
// Part 2: engine overhead with a zero-delay model
// ---------------------------------------------------------------------------

mod overhead {
    use super::*;

    const CONVERSATIONS: usize = 1_000;
    const MESSAGES: usize = 10;
    /// Conversations in flight at once, one run each; the last is all of them.
    const CONCURRENCY: [usize; 4] = [1, 8, 64, CONVERSATIONS];
    /// Turns timed store call by store call.
    const STORE_TURNS: usize = 2_000;

    const P99_TARGET: Duration = Duration::from_millis(2);
    const THROUGHPUT_TARGET: f64 = 2_000.0;

    struct Level {
        concurrency: usize,
        turns_per_sec: f64,
        p50: Duration,
        p90: Duration,
        p99: Duration,
        max: Duration,
    }

    pub async fn run() -> anyhow::Result<()> {
        println!();
        println!(
            "== Engine overhead: single mode, zero-delay in-process model, SQLite file store =="
        );
        print_header();
        let mut levels = Vec::new();
        for concurrency in CONCURRENCY {
            let dir = tempfile::tempdir()?;
            let services = zero_delay_services(dir.path()).await?;
            let level = measure(concurrency, services).await?;
            print_level(&level);
            levels.push(level);
        }
        verdicts(&levels);
        store_breakdown().await
    }

    /// The same measure on PostgreSQL (a fresh database for each run), on
    /// the throwaway server the tests use: one instance as a cluster member
    /// (as `baton run` on Postgres is), then two members on one database
    /// with each conversation's messages sent to them in turn (every other
    /// message reaches the instance that does not hold the conversation,
    /// which wakes the owner through `NOTIFY`).
    pub async fn run_postgres() -> anyhow::Result<()> {
        println!();
        println!("== Engine overhead on PostgreSQL: single mode, zero-delay model ==");
        println!(
            "  the tests' throwaway server on this machine: fsync, synchronous_commit and full_page_writes off"
        );
        for instances in [1, 2] {
            println!("  -- {instances} instance(s), each a cluster member");
            print_header();
            for concurrency in CONCURRENCY {
                let Some(url) = crate::postgres::database().await else {
                    bail!("no PostgreSQL server binaries (apt-get install postgresql)");
                };
                let mut members = Vec::new();
                for _ in 0..instances {
                    members.push(cluster_member_on(&url).await?);
                }
                let level = measure_members(concurrency, &members).await?;
                for (services, membership) in members {
                    membership.leave().await;
                    services.store.close().await;
                }
                print_level(&level);
            }
        }
        Ok(())
    }

    /// [`measure`] over several cluster members on one database, each with
    /// its wake-up listener and sweep running; message `n` of every
    /// conversation goes to member `n % members`.
    async fn measure_members(
        concurrency: usize,
        members: &[(Arc<Services>, baton::cluster::Membership)],
    ) -> anyhow::Result<Level> {
        let channel = Arc::new(TimingChannel::default());
        let stop = tokio_util::sync::CancellationToken::new();
        let mut registries = Vec::new();
        for (services, _) in members {
            let registry = Arc::new(
                Registry::new(services.clone()).with_channel(Platform::Terminal, channel.clone()),
            );
            let cluster = services.cluster.clone().context("a cluster member")?;
            let url = services.config.storage.url.clone();
            tokio::spawn(baton::conversation::listen(
                registry.clone(),
                cluster.clone(),
                url,
                stop.clone(),
            ));
            tokio::spawn(baton::conversation::sweep(
                registry.clone(),
                cluster,
                stop.clone(),
            ));
            registries.push(registry);
        }
        let registries = Arc::new(registries);
        let gate = Arc::new(Semaphore::new(concurrency));
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..CONVERSATIONS {
            let (registries, channel, gate) = (registries.clone(), channel.clone(), gate.clone());
            tasks.spawn(async move {
                let _slot = gate.acquire_owned().await?;
                talk_to(&registries, &channel, &conversation("overhead", n)).await
            });
        }
        let mut latencies = Vec::with_capacity(CONVERSATIONS * MESSAGES);
        while let Some(joined) = tasks.join_next().await {
            latencies.extend(joined??);
        }
        let elapsed = start.elapsed();
        stop.cancel();
        for registry in registries.iter() {
            registry.shutdown().await;
        }
        Ok(level(concurrency, latencies, elapsed))
    }

    fn print_header() {
        println!(
            "{CONVERSATIONS} conversations × {MESSAGES} messages; each conversation sends its next message when the previous reply is posted"
        );
        println!("  latency = dispatch() -> Reply::post (the model takes no time)");
        println!(
            "  {:>11}  {:>10}  {:>9}  {:>9}  {:>9}  {:>9}",
            "in flight", "turns/s", "p50 ms", "p90 ms", "p99 ms", "max ms"
        );
    }

    /// The overhead runs without, then with, the Prometheus recorder
    /// installed (it stays installed: this part runs last).
    pub async fn metrics_cost() -> anyhow::Result<()> {
        println!();
        println!(
            "== Metrics cost: the overhead runs without, then with, the Prometheus recorder =="
        );
        println!(
            "  {:>9}  {:>11}  {:>10}  {:>9}  {:>9}  {:>9}",
            "recorder", "in flight", "turns/s", "p50 ms", "p90 ms", "p99 ms"
        );
        for recorder in ["off", "on"] {
            if recorder == "on" {
                ensure!(
                    baton::metrics::install().is_some(),
                    "the recorder could not be installed"
                );
            }
            for concurrency in CONCURRENCY {
                let dir = tempfile::tempdir()?;
                let services = zero_delay_services(dir.path()).await?;
                let level = measure(concurrency, services).await?;
                println!(
                    "  {:>9}  {:>11}  {:>10.0}  {:>9.3}  {:>9.3}  {:>9.3}",
                    recorder,
                    level.concurrency,
                    level.turns_per_sec,
                    ms(level.p50),
                    ms(level.p90),
                    ms(level.p99)
                );
            }
        }
        Ok(())
    }

    fn print_level(level: &Level) {
        println!(
            "  {:>11}  {:>10.0}  {:>9.3}  {:>9.3}  {:>9.3}  {:>9.3}",
            level.concurrency,
            level.turns_per_sec,
            ms(level.p50),
            ms(level.p90),
            ms(level.p99),
            ms(level.max)
        );
    }

    /// One run on `services` (a fresh engine and database),
    /// `concurrency` conversations at a time.
    async fn measure(concurrency: usize, services: Arc<Services>) -> anyhow::Result<Level> {
        let channel = Arc::new(TimingChannel::default());
        let registry = Arc::new(
            Registry::new(services.clone()).with_channel(Platform::Terminal, channel.clone()),
        );
        let gate = Arc::new(Semaphore::new(concurrency));
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..CONVERSATIONS {
            let (registry, channel, gate) = (registry.clone(), channel.clone(), gate.clone());
            tasks.spawn(async move {
                let _slot = gate.acquire_owned().await?;
                talk(&registry, &channel, &conversation("overhead", n)).await
            });
        }
        let mut latencies = Vec::with_capacity(CONVERSATIONS * MESSAGES);
        while let Some(joined) = tasks.join_next().await {
            latencies.extend(joined??);
        }
        let elapsed = start.elapsed();
        registry.shutdown().await;
        services.store.close().await;
        Ok(level(concurrency, latencies, elapsed))
    }

    /// The figures of one run.
    fn level(concurrency: usize, mut latencies: Vec<Duration>, elapsed: Duration) -> Level {
        latencies.sort();
        Level {
            concurrency,
            turns_per_sec: latencies.len() as f64 / elapsed.as_secs_f64(),
            p50: quantile(&latencies, 0.50),
            p90: quantile(&latencies, 0.90),
            p99: quantile(&latencies, 0.99),
            max: latencies.last().copied().unwrap_or_default(),
        }
    }

    /// One conversation: [`MESSAGES`] messages, each after the previous
    /// reply; returns each message's dispatch-to-post latency.
    async fn talk(
        registry: &Arc<Registry>,
        channel: &TimingChannel,
        key: &ConversationKey,
    ) -> anyhow::Result<Vec<Duration>> {
        talk_to(std::slice::from_ref(registry), channel, key).await
    }

    /// [`talk`], message `n` to `registries[n % len]`.
    async fn talk_to(
        registries: &[Arc<Registry>],
        channel: &TimingChannel,
        key: &ConversationKey,
    ) -> anyhow::Result<Vec<Duration>> {
        let mut posts = channel.expect(key);
        let mut latencies = Vec::with_capacity(MESSAGES);
        for n in 1..=MESSAGES {
            let sent = Instant::now();
            let registry = &registries[n % registries.len()];
            registry.dispatch(message(key, n, "hello")).await?;
            let posted = posts.recv().await.context("the channel closed")?;
            ensure!(posted.text == "ok", "unexpected reply: {}", posted.text);
            latencies.push(posted.at - sent);
        }
        Ok(latencies)
    }

    fn verdicts(levels: &[Level]) {
        let best = levels.iter().map(|l| l.turns_per_sec).fold(0.0, f64::max);
        println!(
            "  target: over {THROUGHPUT_TARGET:.0} turns/s: best {best:.0} turns/s: {}",
            verdict(best > THROUGHPUT_TARGET)
        );
        for level in levels {
            println!(
                "  target: p99 under {} ms at {} in flight: {:.3} ms: {}",
                P99_TARGET.as_millis(),
                level.concurrency,
                ms(level.p99),
                verdict(level.p99 < P99_TARGET)
            );
        }
        println!(
            "  (Little's law: latency ≈ conversations in flight / throughput, so at 1,000 in flight"
        );
        println!(
            "   no engine of this throughput can answer in 2 ms; the 1-in-flight row is the engine's own latency.)"
        );
    }

    /// The store calls one single-mode turn makes, timed one by one on a
    /// fresh database, serially: where the latency above goes.
    async fn store_breakdown() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let services = zero_delay_services(dir.path()).await?;
        let store = &services.store;
        let author = Author {
            id: "42".into(),
            name: "Ada".into(),
        };
        let mut times: [Vec<Duration>; 5] = Default::default();
        for n in 0..STORE_TURNS {
            let key = conversation("store", n % 100);
            let timed = Instant::now();
            let inbound = store
                .record_inbound(&key, &author, "hello", Some(&format!("m{n}")))
                .await?
                .context("a fresh message was taken for a duplicate")?;
            let t1 = Instant::now();
            store.history(&key, 40).await?;
            let t2 = Instant::now();
            let turn = store
                .start_turn(&key, Some(inbound), Mode::Single, "bench:zero")
                .await?;
            let t3 = Instant::now();
            store.record_reply(&key, turn, "ok", None).await?;
            let t4 = Instant::now();
            store
                .finish_turn(turn, TurnStatus::Done, Usage::default(), None)
                .await?;
            let t5 = Instant::now();
            for (slot, d) in times
                .iter_mut()
                .zip([t1 - timed, t2 - t1, t3 - t2, t4 - t3, t5 - t4])
            {
                slot.push(d);
            }
        }
        services.store.close().await;
        println!(
            "  store calls of one turn, serial, {STORE_TURNS} turns over 100 conversations (p50 / p99 ms):"
        );
        let names = [
            "record_inbound",
            "history",
            "start_turn",
            "record_reply",
            "finish_turn",
        ];
        let mut total = Duration::ZERO;
        for (name, mut samples) in names.into_iter().zip(times) {
            samples.sort();
            total += quantile(&samples, 0.5);
            println!(
                "    {name:<15} {:>7.3} / {:>7.3}",
                ms(quantile(&samples, 0.5)),
                ms(quantile(&samples, 0.99))
            );
        }
        println!("    sum of p50s     {:>7.3}", ms(total));
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Part 3: memory
// ---------------------------------------------------------------------------

mod memory {
    use super::*;

    /// Idle conversations held live.
    const CONVERSATIONS: usize = 10_000;
    /// Conversations started before the baseline, to warm the store's
    /// connections and caches.
    const WARM_UP: usize = 200;
    /// Messages in flight while filling the registry.
    const IN_FLIGHT: usize = 64;

    const IDLE_TARGET_KIB: u64 = 20 * 1024;
    const PER_CONVERSATION_TARGET: f64 = 10.0 * 1024.0;

    pub async fn run() -> anyhow::Result<()> {
        println!();
        println!("== Memory: resident set (VmRSS) ==");
        let dir = tempfile::tempdir()?;
        let services = zero_delay_services(dir.path()).await?;
        let channel = Arc::new(CountingChannel::default());
        let registry =
            Registry::new(services.clone()).with_channel(Platform::Terminal, channel.clone());
        settle().await;
        let idle = rss_kib()?;

        fill(&registry, &channel, 0..WARM_UP).await?;
        settle().await;
        let warm = rss_kib()?;

        fill(&registry, &channel, WARM_UP..WARM_UP + CONVERSATIONS).await?;
        settle().await;
        let full = rss_kib()?;
        let live = registry.live_conversations();
        ensure!(
            live == WARM_UP + CONVERSATIONS,
            "expected {} live conversations, found {live}",
            WARM_UP + CONVERSATIONS
        );

        let per_conversation = (full.saturating_sub(warm) * 1024) as f64 / CONVERSATIONS as f64;
        let naive = (full.saturating_sub(idle) * 1024) as f64 / (WARM_UP + CONVERSATIONS) as f64;
        println!(
            "  engine built and idle (process total, no conversation): {:.1} MiB",
            idle as f64 / 1024.0
        );
        println!(
            "  after {WARM_UP} warm-up conversations: {:.1} MiB",
            warm as f64 / 1024.0
        );
        println!(
            "  after {CONVERSATIONS} more (one message each, all still live: registry holds {live}): {:.1} MiB",
            full as f64 / 1024.0
        );
        println!(
            "  per idle live conversation (after - warm) / {CONVERSATIONS}: {:.2} KiB  [from the cold baseline: {:.2} KiB]",
            per_conversation / 1024.0,
            naive / 1024.0
        );
        println!(
            "    (includes the actor's tokio task, its queue and control channel buffers, its Reply handle, the registry entry,"
        );
        println!(
            "     and whatever the allocator and SQLite's page cache keep from filling; not the stored transcript on disk)"
        );
        println!(
            "  target: idle under {} MiB: {}",
            IDLE_TARGET_KIB / 1024,
            verdict(idle < IDLE_TARGET_KIB)
        );
        println!(
            "  target: under 10 KiB per idle conversation: {}",
            verdict(per_conversation < PER_CONVERSATION_TARGET)
        );
        registry.shutdown().await;
        services.store.close().await;
        Ok(())
    }

    /// Lets background work (connection setup, actors' first poll) finish.
    async fn settle() {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    /// Starts one conversation per number in `range` with one message each,
    /// at most [`IN_FLIGHT`] unanswered at a time, and waits for every reply.
    async fn fill(
        registry: &Registry,
        channel: &CountingChannel,
        range: std::ops::Range<usize>,
    ) -> anyhow::Result<()> {
        let answered_before = channel.counter.posts.load(Ordering::SeqCst);
        let expected = answered_before + range.len();
        let sending = async {
            for (sent, n) in range.enumerate() {
                if sent >= IN_FLIGHT {
                    channel
                        .wait_for(answered_before + sent + 1 - IN_FLIGHT)
                        .await;
                }
                registry
                    .dispatch(message(&conversation("memory", n), 1, "hello"))
                    .await?;
            }
            channel.wait_for(expected).await;
            anyhow::Ok(())
        };
        tokio::time::timeout(Duration::from_secs(120), sending)
            .await
            .context("not every conversation was answered within 120 s")??;
        Ok(())
    }
}
