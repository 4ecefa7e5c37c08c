//! The limiter on its own, with paused tokio time: priorities, fairness
//! between conversations, provider limits under the global ceiling,
//! `Retry-After`, and AIMD against a simulated provider that refuses calls
//! above its capacity.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_channel::ConversationKey;

use super::*;
use crate::domain::Usage;
use crate::llm::{AssistantMessage, Completion, ProviderError, Quota, StopReason};

fn key(name: &str) -> ConversationKey {
    ConversationKey::terminal(name)
}

fn answered() -> Result<Completion, ProviderError> {
    Ok(Completion {
        message: AssistantMessage::default(),
        usage: Usage::default(),
        stop: StopReason::EndTurn,
        quota: Quota::default(),
    })
}

fn rate_limited(retry_after: Option<Duration>) -> Result<Completion, ProviderError> {
    Err(ProviderError::RateLimited {
        provider: "p".into(),
        retry_after,
        message: "slow down".into(),
    })
}

fn load_of(limiter: &ModelCallLimiter, provider: &str) -> ProviderLoad {
    limiter
        .load()
        .providers
        .into_iter()
        .find(|load| load.provider == provider)
        .unwrap()
}

/// Starts a task that takes a slot as `caller` and records `name` in
/// `order` once it has it, holding the slot until `release` fires.
fn queue_up(
    limiter: &ModelCallLimiter,
    order: &Arc<Mutex<Vec<String>>>,
    name: &str,
    provider: &'static str,
    priority: Priority,
    conversation: &str,
) -> tokio::task::JoinHandle<()> {
    let (limiter, order, name) = (limiter.clone(), order.clone(), name.to_owned());
    let conversation = key(conversation);
    tokio::spawn(async move {
        let caller = Caller {
            provider,
            priority,
            conversation: &conversation,
        };
        let permit = limiter.acquire(caller).await;
        order.lock().unwrap().push(name);
        permit.finish(&answered());
    })
}

#[tokio::test(start_paused = true)]
async fn orchestrator_calls_go_first_and_projects_last_when_saturated() {
    let limiter = ModelCallLimiter::new(1);
    let held = limiter
        .acquire(Caller {
            provider: "p",
            priority: Priority::Worker,
            conversation: &key("a"),
        })
        .await;
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for (name, priority) in [
        ("project", Priority::Project),
        ("worker", Priority::Worker),
        ("orchestrator", Priority::Orchestrator),
    ] {
        tasks.push(queue_up(&limiter, &order, name, "p", priority, name));
        tokio::task::yield_now().await;
    }
    assert_eq!(load_of(&limiter, "p").waiting, 3);
    drop(held);
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        *order.lock().unwrap(),
        vec!["orchestrator", "worker", "project"]
    );
    assert_eq!(limiter.available(), 1);
}

#[tokio::test(start_paused = true)]
async fn one_conversations_workers_take_turns_with_anothers() {
    let limiter = ModelCallLimiter::new(1);
    let held = limiter
        .acquire(Caller {
            provider: "p",
            priority: Priority::Worker,
            conversation: &key("busy"),
        })
        .await;
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    // The busy conversation queues four more workers before the quiet one
    // asks for its first.
    for n in 2..=5 {
        let name = format!("busy-{n}");
        tasks.push(queue_up(
            &limiter,
            &order,
            &name,
            "p",
            Priority::Worker,
            "busy",
        ));
        tokio::task::yield_now().await;
    }
    tasks.push(queue_up(
        &limiter,
        &order,
        "quiet-1",
        "p",
        Priority::Worker,
        "quiet",
    ));
    tokio::task::yield_now().await;
    drop(held);
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        *order.lock().unwrap(),
        vec!["quiet-1", "busy-2", "busy-3", "busy-4", "busy-5"]
    );
}

#[tokio::test(start_paused = true)]
async fn the_conversation_with_fewer_calls_running_goes_next() {
    let limiter = ModelCallLimiter::new(4);
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(
            limiter
                .acquire(Caller {
                    provider: "p",
                    priority: Priority::Worker,
                    conversation: &key("busy"),
                })
                .await,
        );
    }
    held.push(
        limiter
            .acquire(Caller {
                provider: "p",
                priority: Priority::Worker,
                conversation: &key("quiet"),
            })
            .await,
    );
    let order = Arc::new(Mutex::new(Vec::new()));
    let busy = queue_up(&limiter, &order, "busy", "p", Priority::Worker, "busy");
    tokio::task::yield_now().await;
    let other = queue_up(&limiter, &order, "other", "p", Priority::Worker, "other");
    tokio::task::yield_now().await;
    // A busy conversation's call ends, yet the slot goes to the
    // conversation with nothing running.
    drop(held.remove(0));
    busy.await.unwrap();
    other.await.unwrap();
    assert_eq!(*order.lock().unwrap(), vec!["other", "busy"]);
}

#[tokio::test(start_paused = true)]
async fn a_full_provider_holds_up_no_other_and_the_ceiling_caps_them_all() {
    let limiter = ModelCallLimiter::new(3).with_provider("local", 1);
    let first = limiter
        .acquire(Caller {
            provider: "local",
            priority: Priority::Orchestrator,
            conversation: &key("a"),
        })
        .await;
    let order = Arc::new(Mutex::new(Vec::new()));
    let waiting = queue_up(
        &limiter,
        &order,
        "local",
        "local",
        Priority::Orchestrator,
        "b",
    );
    tokio::task::yield_now().await;
    // The local provider is full; a worker call to another provider goes
    // ahead of the waiting orchestrator call.
    let hosted = limiter
        .acquire(Caller {
            provider: "hosted",
            priority: Priority::Project,
            conversation: &key("c"),
        })
        .await;
    let hosted_too = limiter
        .acquire(Caller {
            provider: "hosted",
            priority: Priority::Project,
            conversation: &key("c"),
        })
        .await;
    assert_eq!(limiter.available(), 0);
    let load = limiter.load();
    assert_eq!((load.ceiling, load.in_flight), (3, 3));
    let local = load_of(&limiter, "local");
    assert_eq!((local.limit, local.in_flight, local.waiting), (1, 1, 1));
    let blocked = queue_up(&limiter, &order, "hosted", "hosted", Priority::Worker, "d");
    tokio::task::yield_now().await;
    assert!(order.lock().unwrap().is_empty());
    // A hosted slot frees: the ceiling lets the hosted call in, while the
    // local one still waits for its provider.
    drop(hosted);
    blocked.await.unwrap();
    assert_eq!(*order.lock().unwrap(), vec!["hosted"]);
    drop(first);
    waiting.await.unwrap();
    drop(hosted_too);
    assert_eq!(limiter.available(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_wait_loses_no_slot() {
    let limiter = ModelCallLimiter::new(1);
    let caller = |priority| Caller {
        provider: "p",
        priority,
        conversation: Box::leak(Box::new(key("a"))),
    };
    let held = limiter.acquire(caller(Priority::Orchestrator)).await;
    let gave_up = tokio::time::timeout(
        Duration::from_millis(10),
        limiter.acquire(caller(Priority::Worker)),
    )
    .await;
    assert!(gave_up.is_err());
    assert_eq!(load_of(&limiter, "p").waiting, 0);
    drop(held);
    assert_eq!(limiter.available(), 1);
    let _again = limiter.acquire(caller(Priority::Worker)).await;
    assert_eq!(limiter.available(), 0);
}

#[tokio::test(start_paused = true)]
async fn retry_after_pauses_the_provider_and_only_it() {
    let limiter = ModelCallLimiter::new(8).with_provider("p", 8);
    let conversation = key("a");
    let caller = |provider| Caller {
        provider,
        priority: Priority::Orchestrator,
        conversation: &conversation,
    };
    let refused = limiter.acquire(caller("p")).await;
    refused.finish(&rate_limited(Some(Duration::from_secs(5))));
    let load = load_of(&limiter, "p");
    assert_eq!(load.paused, Some((Duration::from_secs(5), "Retry-After")));

    let started = Instant::now();
    // Another provider is not held up.
    let other = limiter.acquire(caller("q")).await;
    assert_eq!(started.elapsed(), Duration::ZERO);
    other.finish(&answered());
    // A new call to the paused provider waits the whole pause, then starts
    // without anything else happening (the limiter wakes it).
    let next = limiter.acquire(caller("p")).await;
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    next.finish(&answered());
}

#[tokio::test(start_paused = true)]
async fn a_pause_made_longer_keeps_waiting_calls_waiting() {
    let limiter = ModelCallLimiter::new(8);
    let conversation = key("a");
    let caller = Caller {
        provider: "p",
        priority: Priority::Orchestrator,
        conversation: &conversation,
    };
    let first = limiter.acquire(caller).await;
    let second = limiter.acquire(caller).await;
    let started = Instant::now();
    first.finish(&rate_limited(Some(Duration::from_secs(2))));
    let waiting = tokio::spawn({
        let limiter = limiter.clone();
        async move {
            let other = key("b");
            let permit = limiter
                .acquire(Caller {
                    provider: "p",
                    priority: Priority::Worker,
                    conversation: &other,
                })
                .await;
            permit.finish(&answered());
            Instant::now()
        }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    // A second 429, a second after the first, asks for 5 s more.
    second.finish(&rate_limited(Some(Duration::from_secs(5))));
    let started_at = waiting.await.unwrap();
    assert_eq!(started_at - started, Duration::from_secs(6));
}

/// A provider that answers in 1 s and refuses (429, at once) every call
/// beyond `capacity` running.
#[derive(Clone)]
struct Simulated {
    capacity: Arc<AtomicUsize>,
    running: Arc<AtomicUsize>,
    answered: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
}

impl Simulated {
    fn new(capacity: usize) -> Self {
        Simulated {
            capacity: Arc::new(AtomicUsize::new(capacity)),
            running: Arc::new(AtomicUsize::new(0)),
            answered: Arc::new(AtomicUsize::new(0)),
            refused: Arc::new(AtomicUsize::new(0)),
        }
    }

    async fn call(&self) -> Result<Completion, ProviderError> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        if now > self.capacity.load(Ordering::SeqCst) {
            self.running.fetch_sub(1, Ordering::SeqCst);
            self.refused.fetch_add(1, Ordering::SeqCst);
            return rate_limited(None);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        self.answered.fetch_add(1, Ordering::SeqCst);
        answered()
    }

    /// `clients` conversations calling in a loop for `run`; a refused
    /// call waits 250 ms before it asks again (a retry's backoff).
    async fn drive(&self, limiter: &ModelCallLimiter, clients: usize, run: Duration) {
        let until = Instant::now() + run;
        let mut tasks = Vec::new();
        for n in 0..clients {
            let (limiter, provider) = (limiter.clone(), self.clone());
            tasks.push(tokio::spawn(async move {
                let conversation = key(&format!("c{n}"));
                while Instant::now() < until {
                    let caller = Caller {
                        provider: "p",
                        priority: Priority::Orchestrator,
                        conversation: &conversation,
                    };
                    let permit = limiter.acquire(caller).await;
                    let result = provider.call().await;
                    permit.finish(&result);
                    if result.is_err() {
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    }
}

#[tokio::test(start_paused = true)]
async fn aimd_converges_to_a_providers_capacity_and_grows_back_when_it_recovers() {
    const CAPACITY: usize = 20;
    let limiter = ModelCallLimiter::new(512).with_provider("p", 256);
    let provider = Simulated::new(CAPACITY);

    // 100 conversations against a provider that takes 20 at a time.
    provider
        .drive(&limiter, 100, Duration::from_secs(120))
        .await;
    let limit = load_of(&limiter, "p").limit;
    assert!(
        (CAPACITY / 2..=CAPACITY + 1).contains(&limit),
        "limit {limit}"
    );
    let answered = provider.answered.swap(0, Ordering::SeqCst);
    let refused = provider.refused.swap(0, Ordering::SeqCst);
    // Close to 20 answers a second over the two minutes, start included
    // (2,381 when written), and few refusals (9).
    assert!(answered >= 120 * CAPACITY * 90 / 100, "answered {answered}");
    assert!(refused * 100 < answered, "refused {refused} of {answered}");

    // The provider recovers: the limit grows back well past 20.
    provider.capacity.store(256, Ordering::SeqCst);
    provider.drive(&limiter, 100, Duration::from_secs(60)).await;
    let limit = load_of(&limiter, "p").limit;
    assert!(limit >= 60, "limit {limit}");
    assert_eq!(provider.refused.load(Ordering::SeqCst), 0);
}
