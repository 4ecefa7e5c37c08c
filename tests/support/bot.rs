//! A whole engine for tests: real config, store, providers, registry and
//! actors, a scripted fake model on the far side of a socket, and a
//! recording channel standing in for a platform.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton::config::Config;
use baton::conversation::Registry;
use baton::services::Services;
use baton_channel::{
    Author, Channel, ChannelError, ChannelEvent, ConversationKey, Inbound, Origin, Platform, Reply,
    WorkerEvent, parse_command,
};
use tokio::sync::Notify;

use super::fake_llm::{FakeLlm, FakeReply, SeenRequest, Wire};

/// The orchestrator's model name at the fake.
pub const ORCHESTRATOR_MODEL: &str = "orch-model";
/// The workers' model name at the fake.
pub const WORKER_MODEL: &str = "worker-model";

/// What the channel was asked to show.
#[derive(Debug, Clone, PartialEq)]
pub enum Shown {
    /// A post to the conversation.
    Reply {
        key: ConversationKey,
        origin: Origin,
        text: String,
    },
    /// A verbose worker event.
    Verbose {
        key: ConversationKey,
        origin: Origin,
        event: WorkerEvent,
    },
}

/// A channel that records everything shown, in order (clones share it).
#[derive(Clone, Default)]
pub struct RecordingChannel {
    recorded: Arc<Recorded>,
}

#[derive(Default)]
struct Recorded {
    shown: Mutex<Vec<Shown>>,
    changed: Notify,
}

impl RecordingChannel {
    /// Everything shown so far.
    pub fn shown(&self) -> Vec<Shown> {
        self.recorded.shown.lock().unwrap().clone()
    }

    /// The texts of the posts (not verbose events), in order.
    pub fn replies(&self) -> Vec<String> {
        self.shown()
            .into_iter()
            .filter_map(|s| match s {
                Shown::Reply { text, .. } => Some(text),
                Shown::Verbose { .. } => None,
            })
            .collect()
    }

    /// The verbose events, in order.
    pub fn verbose(&self) -> Vec<WorkerEvent> {
        self.shown()
            .into_iter()
            .filter_map(|s| match s {
                Shown::Verbose { event, .. } => Some(event),
                Shown::Reply { .. } => None,
            })
            .collect()
    }

    /// Waits (up to 20 s, then panics) until `done` holds for what was shown.
    pub async fn wait_for(&self, what: &str, done: impl Fn(&[Shown]) -> bool) {
        let waiting = async {
            loop {
                let notified = self.recorded.changed.notified();
                if done(&self.shown()) {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(20), waiting)
            .await
            .is_err()
        {
            panic!("timed out waiting for {what}; shown: {:#?}", self.shown());
        }
    }

    /// Waits until `n` replies have been posted.
    pub async fn wait_for_replies(&self, n: usize) {
        self.wait_for(&format!("{n} replies"), |shown| {
            shown
                .iter()
                .filter(|s| matches!(s, Shown::Reply { .. }))
                .count()
                >= n
        })
        .await;
    }

    fn push(&self, shown: Shown) {
        self.recorded.shown.lock().unwrap().push(shown);
        self.recorded.changed.notify_waiters();
    }
}

impl Channel for RecordingChannel {
    fn reply_to(&self, key: &ConversationKey) -> Box<dyn Reply> {
        Box::new(RecordingReply {
            key: key.clone(),
            channel: self.clone(),
        })
    }
}

struct RecordingReply {
    key: ConversationKey,
    channel: RecordingChannel,
}

#[async_trait::async_trait]
impl Reply for RecordingReply {
    async fn post(&mut self, origin: &Origin, text: &str) -> Result<(), ChannelError> {
        self.channel.push(Shown::Reply {
            key: self.key.clone(),
            origin: *origin,
            text: text.to_owned(),
        });
        Ok(())
    }

    async fn verbose(&mut self, origin: &Origin, event: &WorkerEvent) -> Result<(), ChannelError> {
        self.channel.push(Shown::Verbose {
            key: self.key.clone(),
            origin: *origin,
            event: event.clone(),
        });
        Ok(())
    }
}

/// The config a test bot runs with: the fake for both models, a database
/// in `dir`, tiny retry delays. `extra` is appended (TOML).
pub fn test_config(llm: &FakeLlm, wire: Wire, db: &std::path::Path, extra: &str) -> Config {
    test_config_with_models(llm, wire, db, "", extra)
}

/// Like [`test_config`], with `models_keys` added to the `[models]` table.
pub fn test_config_with_models(
    llm: &FakeLlm,
    wire: Wire,
    db: &std::path::Path,
    models_keys: &str,
    extra: &str,
) -> Config {
    test_config_with_env(llm, wire, db, models_keys, extra, &[])
}

/// Like [`test_config_with_models`], with more variables in the list given
/// to `Config::from_toml` (overrides such as
/// `BATON__PROVIDERS__FAKE__API_KEY_ENV`, and the key variable itself).
fn test_config_with_env(
    llm: &FakeLlm,
    wire: Wire,
    db: &std::path::Path,
    models_keys: &str,
    extra: &str,
    more_env: &[(String, String)],
) -> Config {
    // Tiny retry delays, as overrides so that `extra` may hold an [engine] table.
    let env = [
        ("BATON__ENGINE__RETRY_BASE_DELAY_MS", "1"),
        ("BATON__ENGINE__RETRY_MAX_DELAY_MS", "5"),
    ];
    let env = env
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into_iter()
        .chain(more_env.iter().cloned());
    let text = test_config_text_with_models(llm, wire, db, models_keys, extra);
    Config::from_toml(&text, env).expect("test config parses")
}

/// The TOML of [`test_config`] (without its retry overrides), for a
/// config file the real binary reads.
pub fn test_config_text(llm: &FakeLlm, wire: Wire, db: &std::path::Path, extra: &str) -> String {
    test_config_text_with_models(llm, wire, db, "", extra)
}

fn test_config_text_with_models(
    llm: &FakeLlm,
    wire: Wire,
    db: &std::path::Path,
    models_keys: &str,
    extra: &str,
) -> String {
    let kind = match wire {
        Wire::OpenAi => "openai",
        Wire::Anthropic => "anthropic",
        Wire::Gemini => "gemini",
    };
    format!(
        r#"
[storage]
url = "sqlite://{db}"

[providers.fake]
kind = "{kind}"
base_url = "{url}"
timeout_secs = 30

[models]
orchestrator = "fake:{ORCHESTRATOR_MODEL}"
worker = "fake:{WORKER_MODEL}"
{models_keys}

{extra}
"#,
        db = db.display(),
        url = llm.base_url(),
    )
}

/// A running engine with a recording channel.
pub struct TestBot {
    /// The fake model server.
    pub llm: FakeLlm,
    /// What the engine showed.
    pub channel: RecordingChannel,
    /// The engine.
    pub registry: Registry,
    /// Its services (store included).
    pub services: Arc<Services>,
    /// The database folder (kept until the bot is dropped).
    pub dir: Arc<tempfile::TempDir>,
    /// The number of the last platform message id sent (`m1`, `m2`, ...);
    /// a restarted bot sets it past the earlier run's.
    pub next_message: i32,
}

impl TestBot {
    /// An OpenAI-wire bot whose fake model answers with `script`.
    pub async fn start(
        script: impl Fn(&SeenRequest) -> FakeReply + Send + Sync + 'static,
    ) -> TestBot {
        Self::builder(Wire::OpenAi).start(script).await
    }

    /// A builder for other wires and config.
    pub fn builder(wire: Wire) -> TestBotBuilder {
        TestBotBuilder {
            wire,
            models_keys: String::new(),
            extra: String::new(),
            env: Vec::new(),
            dir: None,
        }
    }

    /// The conversation the helpers below talk in.
    pub fn key() -> ConversationKey {
        ConversationKey::telegram(1001, None)
    }

    /// Sends a user message (or a command, if it starts with `/`).
    pub async fn say(&mut self, text: &str) {
        self.next_message += 1;
        let author = Author {
            id: "42".into(),
            name: "Ada".into(),
        };
        let origin = Origin::Telegram(self.next_message);
        let event = match parse_command(text, None) {
            Some(command) => ChannelEvent::Command {
                key: Self::key(),
                author,
                origin,
                command,
            },
            None => ChannelEvent::Message(Inbound {
                key: Self::key(),
                author,
                text: text.to_owned(),
                origin,
                attachments: Vec::new(),
                chat_title: None,
            }),
        };
        self.registry
            .dispatch(event)
            .await
            .expect("the engine takes the event");
    }

    /// Lets every actor finish its queue, then stops them.
    pub async fn drain(&self) {
        self.registry.drain().await;
    }

    /// Stops the engine, its MCP servers and the store, keeping the
    /// database folder.
    pub async fn stop(self) -> Arc<tempfile::TempDir> {
        self.registry.shutdown().await;
        self.services.mcp.shutdown().await;
        self.services.store.close().await;
        self.dir
    }
}

/// Builds a [`TestBot`].
pub struct TestBotBuilder {
    wire: Wire,
    models_keys: String,
    extra: String,
    env: Vec<(String, String)>,
    dir: Option<Arc<tempfile::TempDir>>,
}

impl TestBotBuilder {
    /// Appends TOML to the config.
    pub fn config(mut self, extra: &str) -> Self {
        self.extra.push_str(extra);
        self.extra.push('\n');
        self
    }

    /// Adds keys to the `[models]` table (TOML lines).
    pub fn models(mut self, keys: &str) -> Self {
        self.models_keys.push_str(keys);
        self.models_keys.push('\n');
        self
    }

    /// Adds a variable to the list the config is read with (a
    /// `BATON__SECTION__KEY` override, or a variable a key is read from).
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Reuses the database of an earlier bot (a restart).
    pub fn database(mut self, dir: Arc<tempfile::TempDir>) -> Self {
        self.dir = Some(dir);
        self
    }

    /// Starts the fake model and the engine.
    pub async fn start(
        self,
        script: impl Fn(&SeenRequest) -> FakeReply + Send + Sync + 'static,
    ) -> TestBot {
        let llm = FakeLlm::start(self.wire, script).await;
        let dir = self
            .dir
            .unwrap_or_else(|| Arc::new(tempfile::tempdir().unwrap()));
        let db: PathBuf = dir.path().join("baton.db");
        let config = test_config_with_env(
            &llm,
            self.wire,
            &db,
            &self.models_keys,
            &self.extra,
            &self.env,
        );
        let services = baton::app::services(config)
            .await
            .expect("the engine starts");
        let channel = RecordingChannel::default();
        let registry = Registry::new(services.clone())
            .with_channel(Platform::Telegram, Arc::new(channel.clone()));
        TestBot {
            llm,
            channel,
            registry,
            services,
            dir,
            next_message: 0,
        }
    }
}
