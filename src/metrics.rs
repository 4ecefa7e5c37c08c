//! Prometheus metrics: the names, the recorder, and small helpers that the
//! engine's call sites use (the `metrics` facade's macros underneath).
//!
//! The recorder is `metrics-exporter-prometheus`'s, installed once per
//! process by [`install`]; `/metrics` renders it. Before it is installed
//! (unit tests, `baton chat`) the macros are no-ops. Gauges that describe
//! state the service already holds (live conversations, queued messages,
//! projects by status) are set when `/metrics` is scraped
//! (`web/health.rs`), so they cost nothing between scrapes.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::domain::{Mode, ModelRef, Usage};

/// Turns by `mode` and `outcome` (counter).
pub const TURNS: &str = "baton_turns_total";
/// Turn duration in seconds by `mode` (histogram).
pub const TURN_DURATION: &str = "baton_turn_duration_seconds";
/// Model calls by `provider`, `model`, `role` and `outcome` (counter).
pub const MODEL_CALLS: &str = "baton_model_calls_total";
/// Model call duration in seconds by `provider`, `model`, `role` (histogram).
pub const MODEL_CALL_DURATION: &str = "baton_model_call_duration_seconds";
/// Tokens by `model`, `role` and `direction` (`in`, `out`; and, as part of
/// `in`, `cached`: read from the prompt cache, `cache_write`: written to it)
/// (counter).
pub const MODEL_TOKENS: &str = "baton_model_tokens_total";
/// Cost in US dollars by `model` (a gauge that only grows: counters are integers).
pub const COST: &str = "baton_cost_dollars";
/// Workers running now (gauge).
pub const WORKERS_RUNNING: &str = "baton_workers_running";
/// Conversation actors alive now (gauge, set at scrape).
pub const CONVERSATIONS_LIVE: &str = "baton_conversations_live";
/// Messages waiting in conversation queues (gauge, set at scrape).
pub const QUEUE_WAITING: &str = "baton_queue_waiting";
/// Platform API requests and 429s waited out: counted by the adapters,
/// named in `baton-channel`.
pub use baton_channel::metrics::{PLATFORM_RATE_LIMITED, PLATFORM_REQUESTS};
/// Store statement duration in seconds (histogram).
pub const STORE_STATEMENT_DURATION: &str = "baton_store_statement_duration_seconds";
/// Projects by `status` (gauge, set at scrape).
pub const PROJECTS: &str = "baton_projects";
/// Event log entries that could not be written since the start (gauge,
/// set at scrape).
pub const EVENTS_LOST: &str = "baton_event_log_lost";
/// Each provider's current model-call limit, by `provider` (gauge, set at scrape).
pub const MODEL_CALL_LIMIT: &str = "baton_model_call_limit";
/// Model calls in flight, by `provider` (gauge, set at scrape).
pub const MODEL_CALLS_IN_FLIGHT: &str = "baton_model_calls_in_flight";
/// Model calls waiting for a slot, by `provider` (gauge, set at scrape).
pub const MODEL_CALLS_WAITING: &str = "baton_model_calls_waiting";

/// Every metric name, for the README and the tests.
pub const NAMES: [&str; 17] = [
    TURNS,
    TURN_DURATION,
    MODEL_CALLS,
    MODEL_CALL_DURATION,
    MODEL_TOKENS,
    COST,
    WORKERS_RUNNING,
    CONVERSATIONS_LIVE,
    QUEUE_WAITING,
    PLATFORM_REQUESTS,
    PLATFORM_RATE_LIMITED,
    STORE_STATEMENT_DURATION,
    PROJECTS,
    EVENTS_LOST,
    MODEL_CALL_LIMIT,
    MODEL_CALLS_IN_FLIGHT,
    MODEL_CALLS_WAITING,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder (once per process; later calls return
/// the same handle). `None` if another recorder was installed first.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(STORE_STATEMENT_DURATION.into()),
                    &[0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0],
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Suffix("duration_seconds".into()),
                        &[0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 180.0, 600.0],
                    )
                });
            let recorder = match builder {
                Ok(builder) => builder.build_recorder(),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics buckets refused; using summaries");
                    PrometheusBuilder::new().build_recorder()
                }
            };
            let handle = recorder.handle();
            match metrics::set_global_recorder(recorder) {
                Ok(()) => {
                    describe();
                    start_upkeep(handle.clone());
                    Some(handle)
                }
                Err(_) => None,
            }
        })
        .clone()
}

/// How often the recorder's histograms are drained into their buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Drains the recorder's histogram samples every [`UPKEEP_EVERY`] on a
/// thread of its own, for the life of the process. The recorder keeps every
/// sample until it is drained, and only a scrape of `/metrics` would drain
/// it otherwise: a service nobody scrapes would grow without bound (about
/// 8 bytes per store statement and per model call).
fn start_upkeep(handle: PrometheusHandle) {
    let started = std::thread::Builder::new()
        .name("baton-metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                handle.run_upkeep();
            }
        });
    if let Err(e) = started {
        tracing::warn!(error = %e, "metrics upkeep thread not started; histograms drain only when /metrics is scraped");
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(TURNS, "Turns by mode and outcome");
    describe_histogram!(TURN_DURATION, metrics::Unit::Seconds, "Turn duration");
    describe_counter!(MODEL_CALLS, "Model calls by provider, model, role, outcome");
    describe_histogram!(
        MODEL_CALL_DURATION,
        metrics::Unit::Seconds,
        "Model call duration"
    );
    describe_counter!(MODEL_TOKENS, "Tokens by model, role and direction");
    describe_counter!(COST, "Cost in US dollars by model");
    describe_gauge!(WORKERS_RUNNING, "Workers running");
    describe_gauge!(CONVERSATIONS_LIVE, "Conversation actors alive");
    describe_gauge!(QUEUE_WAITING, "Messages waiting in conversation queues");
    describe_counter!(
        PLATFORM_REQUESTS,
        "Platform API requests by platform, method, status"
    );
    describe_counter!(PLATFORM_RATE_LIMITED, "Platform 429 answers waited out");
    describe_histogram!(
        STORE_STATEMENT_DURATION,
        metrics::Unit::Seconds,
        "Store statement duration"
    );
    describe_gauge!(PROJECTS, "Projects by status");
    describe_gauge!(
        EVENTS_LOST,
        "Event log entries that could not be written since the start"
    );
    describe_gauge!(
        MODEL_CALL_LIMIT,
        "Each provider's adaptive model-call limit"
    );
    describe_gauge!(MODEL_CALLS_IN_FLIGHT, "Model calls in flight by provider");
    describe_gauge!(
        MODEL_CALLS_WAITING,
        "Model calls waiting for a slot by provider"
    );
}

/// One provider's model-call limit, calls in flight and waiting (set when
/// `/metrics` is scraped).
pub fn provider_load(provider: &str, limit: usize, in_flight: usize, waiting: usize) {
    let name = provider.to_owned();
    gauge!(MODEL_CALL_LIMIT, "provider" => name.clone()).set(limit as f64);
    gauge!(MODEL_CALLS_IN_FLIGHT, "provider" => name.clone()).set(in_flight as f64);
    gauge!(MODEL_CALLS_WAITING, "provider" => name).set(waiting as f64);
}

/// A turn ended with `outcome` (its label: `answered`, `cut_short`,
/// `failed`, ...) after `took`.
pub fn turn_ended(mode: Mode, outcome: &'static str, took: Duration) {
    counter!(TURNS, "mode" => mode.as_str(), "outcome" => outcome).increment(1);
    histogram!(TURN_DURATION, "mode" => mode.as_str()).record(took.as_secs_f64());
}

/// One model call (one attempt) on `model` for `role` (`orchestrator`,
/// `worker`, `project`) ended, `ok` or not, after `took`.
pub fn model_call(model: &ModelRef, role: &'static str, ok: bool, took: Duration) {
    let outcome = if ok { "ok" } else { "error" };
    let (provider, name) = (model.provider.clone(), model.model.clone());
    counter!(MODEL_CALLS, "provider" => provider.clone(), "model" => name.clone(), "role" => role, "outcome" => outcome)
        .increment(1);
    histogram!(MODEL_CALL_DURATION, "provider" => provider, "model" => name, "role" => role)
        .record(took.as_secs_f64());
}

/// A model call on `model` for `role` used `usage`, costing `cost` US
/// dollars (the catalog's price, `ModelSpec::cost`).
pub fn model_usage(model: &ModelRef, role: &'static str, usage: Usage, cost: f64) {
    let name = model.to_string();
    counter!(MODEL_TOKENS, "model" => name.clone(), "role" => role, "direction" => "in")
        .increment(usage.input_tokens);
    counter!(MODEL_TOKENS, "model" => name.clone(), "role" => role, "direction" => "out")
        .increment(usage.output_tokens);
    if usage.cached_input_tokens > 0 {
        counter!(MODEL_TOKENS, "model" => name.clone(), "role" => role, "direction" => "cached")
            .increment(usage.cached_input_tokens);
    }
    if usage.cache_write_tokens > 0 {
        counter!(MODEL_TOKENS, "model" => name.clone(), "role" => role, "direction" => "cache_write")
            .increment(usage.cache_write_tokens);
    }
    if cost > 0.0 {
        // Counters are integers: the cost is kept as a float gauge that only grows.
        gauge!(COST, "model" => name).increment(cost);
    }
}

/// Counts `task` among the running workers while it runs (aborted or not).
pub async fn count_worker<F: std::future::Future>(task: F) -> F::Output {
    struct Running;
    impl Drop for Running {
        fn drop(&mut self) {
            gauge!(WORKERS_RUNNING).decrement(1.0);
        }
    }
    gauge!(WORKERS_RUNNING).increment(1.0);
    let _running = Running;
    task.await
}

/// One store statement (or job) took `took`.
pub fn store_statement(took: Duration) {
    histogram!(STORE_STATEMENT_DURATION).record(took.as_secs_f64());
}
