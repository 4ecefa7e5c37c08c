//! Part 5 of the engine benchmarks: what an orchestrator turn costs in
//! tokens and dollars, on each of the three wire formats.
//!
//! A conversation in orchestrator mode first builds a 20-message history
//! (10 questions answered directly), then sends one message the fake
//! orchestrator splits over 8 workers in one round; the workers' answers
//! wait until all 8 have been asked, so they finish together; the
//! orchestrator awaits them until all 8 are reported and answers. The fake
//! model server reports usage that follows each request
//! (`FakeLlm::model_prompt_caching`: input tokens = the prompt's bytes / 4,
//! cached tokens under each provider's rules), and the numbers below are
//! what Baton stored for that one turn (the orchestrator's row and its
//! workers' rows), priced with list prices in the catalog.
//!
//! Two variants, each on a fresh engine, database and fake cache:
//! - **before** issue 16: `await_workers` with `max_results = 1` (one result
//!   per round, the old shape), and on Anthropic the requests read as if
//!   they carried no `cache_control` breakpoints (Baton's requests had none);
//!   OpenAI's and Gemini's automatic caching applied before too;
//! - **after**: `await_workers` returns every finished worker, and
//!   Anthropic's breakpoints count.

use super::*;

use baton::budget::Spend;
use baton::store::ModelUsage;
use fake_llm::Gate;

/// Workers the orchestrator starts in its one spawning round.
const WORKERS: usize = 8;
/// Earlier turns in the conversation (a user message and a reply each).
const HISTORY_TURNS: usize = 10;
/// Runs of each variant (their calls per turn are shown as a range).
const RUNS: usize = 3;
/// The message the orchestrator splits over the workers.
const TASK: &str = "Compare the eight candidate designs below and recommend one";

/// One wire, with the models priced at their providers' list prices
/// (US dollars per million tokens, late 2025).
struct WireSetup {
    wire: Wire,
    kind: &'static str,
    orchestrator: Priced,
    worker: Priced,
}

struct Priced {
    model: &'static str,
    input: f64,
    output: f64,
    cached: f64,
    write: Option<f64>,
}

static WIRES: [WireSetup; 3] = [
    WireSetup {
        wire: Wire::OpenAi,
        kind: "openai",
        orchestrator: Priced {
            model: "gpt-5.1",
            input: 1.25,
            output: 10.0,
            cached: 0.125,
            write: None,
        },
        worker: Priced {
            model: "gpt-5-mini",
            input: 0.25,
            output: 2.0,
            cached: 0.025,
            write: None,
        },
    },
    WireSetup {
        wire: Wire::Anthropic,
        kind: "anthropic",
        orchestrator: Priced {
            model: "claude-sonnet-4-5",
            input: 3.0,
            output: 15.0,
            cached: 0.30,
            write: Some(3.75),
        },
        worker: Priced {
            model: "claude-haiku-4-5",
            input: 1.0,
            output: 5.0,
            cached: 0.10,
            write: Some(1.25),
        },
    },
    WireSetup {
        wire: Wire::Gemini,
        kind: "gemini",
        orchestrator: Priced {
            model: "gemini-2.5-pro",
            input: 1.25,
            output: 10.0,
            cached: 0.125,
            write: None,
        },
        worker: Priced {
            model: "gemini-2.5-flash",
            input: 0.30,
            output: 2.50,
            cached: 0.03,
            write: None,
        },
    },
];

/// What one measured turn cost.
struct TurnCost {
    orchestrator_calls: usize,
    /// Every prompt token sent (orchestrator and workers).
    input: u64,
    /// Of those, read from the cache / written to it.
    cached: u64,
    written: u64,
    /// Input tokens as billed: each at its price relative to the plain
    /// input price of its model (a cached token at a tenth counts 0.1).
    billed_input: f64,
    /// The orchestrator's share of `input` and `billed_input`.
    orchestrator_input: u64,
    orchestrator_billed: f64,
    output: u64,
    usd: f64,
}

pub async fn run() -> anyhow::Result<()> {
    println!();
    println!(
        "== Orchestration cost: one turn with {WORKERS} workers after a {}-message history, fake model with prompt caching ==",
        HISTORY_TURNS * 2
    );
    println!(
        "  usage as each provider would report it (tokens = bytes / 4; cache rules in tests/support/fake_llm/prompt_cache.rs); {RUNS} runs each"
    );
    println!(
        "  {:<10} {:<7} {:>6} {:>9} {:>8} {:>7} {:>9} {:>10} {:>10} {:>7} {:>9}",
        "wire",
        "variant",
        "calls",
        "input",
        "cached",
        "written",
        "billed",
        "orch. in",
        "orch. bill",
        "output",
        "dollars"
    );
    for setup in &WIRES {
        let mut billed = [0.0; 2];
        for (slot, before) in [(0, true), (1, false)] {
            let mut costs = Vec::new();
            for _ in 0..RUNS {
                costs.push(measure(setup, before).await?);
            }
            let calls_min = costs
                .iter()
                .map(|c| c.orchestrator_calls)
                .min()
                .unwrap_or(0);
            let calls_max = costs
                .iter()
                .map(|c| c.orchestrator_calls)
                .max()
                .unwrap_or(0);
            // The token figures of the run with the median calls.
            costs.sort_by_key(|c| c.orchestrator_calls);
            let c = &costs[costs.len() / 2];
            billed[slot] = c.billed_input;
            let calls = if calls_min == calls_max {
                calls_min.to_string()
            } else {
                format!("{calls_min}-{calls_max}")
            };
            println!(
                "  {:<10} {:<7} {:>6} {:>9} {:>8} {:>7} {:>9.0} {:>10} {:>10.0} {:>7} {:>9.4}",
                setup.kind,
                if before { "before" } else { "after" },
                calls,
                c.input,
                c.cached,
                c.written,
                c.billed_input,
                c.orchestrator_input,
                c.orchestrator_billed,
                c.output,
                c.usd
            );
        }
        println!(
            "  {:<10} billed input tokens cut {:.1}x (target: 3x or more)",
            setup.kind,
            billed[0] / billed[1].max(1.0)
        );
    }
    println!(
        "  target: at most 3 orchestrator calls per 8-worker turn when the workers finish together"
    );
    Ok(())
}

fn config(setup: &WireSetup, llm: &FakeLlm, dir: &Path) -> anyhow::Result<Config> {
    let catalog = |p: &Priced| {
        let write = p
            .write
            .map_or(String::new(), |w| format!("cache_write_price = {w}\n"));
        format!(
            "[models.catalog.\"fake:{}\"]\ninput_price = {}\noutput_price = {}\ncached_input_price = {}\n{write}",
            p.model, p.input, p.output, p.cached
        )
    };
    let sections = format!(
        r#"
[models]
orchestrator = "fake:{orchestrator}"
worker = "fake:{worker}"

{orchestrator_prices}
{worker_prices}
[orchestrator]
default_mode = "orchestrator"
max_workers = {WORKERS}
"#,
        orchestrator = setup.orchestrator.model,
        worker = setup.worker.model,
        orchestrator_prices = catalog(&setup.orchestrator),
        worker_prices = catalog(&setup.worker),
    );
    fake_provider_config(
        llm,
        setup.kind,
        dir,
        "timeout_secs = 30\nmax_concurrency = 64",
        &sections,
    )
}

/// Text of about `chars` characters.
fn prose(seed: &str, chars: usize) -> String {
    let sentence = format!("{seed}: the trade-offs, the risks and what to measure next. ");
    sentence.repeat(chars / sentence.len() + 1)[..chars].to_owned()
}

/// The fake's script. History questions get a direct answer; the task
/// spawns the workers in one round, awaits them (one result a round
/// `before`), then answers. Workers answer once all 8 were asked.
fn script(
    setup: &'static WireSetup,
    before: bool,
    gate: Gate,
    asked: Arc<AtomicUsize>,
) -> impl Fn(&SeenRequest) -> FakeReply + Send + Sync + 'static {
    move |request| {
        if request.model == setup.worker.model {
            if asked.fetch_add(1, Ordering::SeqCst) + 1 >= WORKERS {
                gate.open();
            }
            let brief = request.last_user_text().unwrap_or("").to_owned();
            let result = prose(&format!("findings for {brief}"), 2_000);
            return FakeReply::After(gate.clone(), Box::new(FakeReply::Text(result)));
        }
        let question = request.last_user_text().unwrap_or("");
        if !question.contains(TASK) {
            return FakeReply::Text(prose("a direct answer", 800));
        }
        if request.tool_results().is_empty() {
            let spawns = (1..=WORKERS)
                .map(|n| {
                    let prompt = prose(&format!("design {n}: evaluate it"), 600);
                    (
                        "spawn_worker".to_owned(),
                        json!({"label": format!("design {n}"), "prompt": prompt}),
                    )
                })
                .collect();
            return FakeReply::ToolCalls(spawns);
        }
        let reported = request
            .awaited()
            .iter()
            .filter(|worker| worker.get("result").is_some())
            .count();
        if reported < WORKERS {
            let arguments = if before {
                json!({"max_results": 1})
            } else {
                json!({})
            };
            return FakeReply::ToolCalls(vec![("await_workers".into(), arguments)]);
        }
        FakeReply::Text(prose("the recommendation", 1_500))
    }
}

async fn measure(setup: &'static WireSetup, before: bool) -> anyhow::Result<TurnCost> {
    let gate = Gate::new();
    let asked = Arc::new(AtomicUsize::new(0));
    let llm = FakeLlm::start(setup.wire, script(setup, before, gate, asked)).await;
    llm.model_prompt_caching(before && setup.wire == Wire::Anthropic);
    let dir = tempfile::tempdir()?;
    let services = baton::app::services(config(setup, &llm, dir.path())?).await?;
    let channel = Arc::new(TimingChannel::default());
    let registry =
        Registry::new(services.clone()).with_channel(Platform::Terminal, channel.clone());
    let key = conversation("cost", 0);
    let mut posts = channel.expect(&key);
    let mut say = async |n: usize, text: String| -> anyhow::Result<()> {
        registry.dispatch(message(&key, n, &text)).await?;
        tokio::time::timeout(Duration::from_secs(60), posts.recv())
            .await
            .context("no reply within 60 s")?
            .context("the channel closed")?;
        Ok(())
    };
    for n in 1..=HISTORY_TURNS {
        say(n, prose(&format!("question {n}"), 300)).await?;
    }
    let calls_before = llm.requests().len();
    let task = format!("{TASK}. {}", prose("the designs", 1_200));
    say(HISTORY_TURNS + 1, task).await?;
    let orchestrator_calls = llm.requests()[calls_before..]
        .iter()
        .filter(|r| r.model == setup.orchestrator.model)
        .count();

    let store = &services.store;
    let turns = store.browse_turns(&key.to_string(), None, 1).await?;
    let turn = turns.first().context("the turn was not recorded")?;
    let stored = store
        .load_turn(baton::store::TurnId(turn.id))
        .await?
        .context("the turn row is gone")?;
    let workers = store.workers(stored.id).await?;
    ensure!(
        workers.len() == WORKERS,
        "{} workers recorded",
        workers.len()
    );
    let mut parts = vec![ModelUsage {
        model: stored.model.clone(),
        usage: stored.usage,
    }];
    parts.extend(workers.iter().map(|w| ModelUsage {
        model: w.model.clone(),
        usage: w.usage,
    }));
    let models = &services.config.models;
    let spend = Spend::of(&parts, models);
    let billed = |part: &ModelUsage| {
        let spec = models.spec(&part.model.parse::<baton::domain::ModelRef>().unwrap());
        // The input's cost in plain-input-token equivalents.
        let input_only = Usage {
            output_tokens: 0,
            ..part.usage
        };
        spec.cost(input_only) * 1e6 / spec.input_price
    };
    let orchestrator_billed = billed(&parts[0]);
    let billed_input = parts.iter().map(billed).sum();
    registry.shutdown().await;
    services.store.close().await;
    Ok(TurnCost {
        orchestrator_calls,
        input: spend.usage.input_tokens,
        cached: spend.usage.cached_input_tokens,
        written: spend.usage.cache_write_tokens,
        billed_input,
        orchestrator_input: stored.usage.input_tokens,
        orchestrator_billed,
        output: spend.usage.output_tokens,
        usd: spend.usd,
    })
}
