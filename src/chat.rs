//! `baton chat`: a terminal channel on the same engine. One conversation,
//! the same commands; the orchestrator's replies are printed as they come,
//! and with verbose on each worker's lines appear indented and tagged with
//! its label.

use std::sync::Arc;

use baton_channel::{
    Author, Channel, ChannelError, ChannelEvent, ConversationKey, Inbound, Origin, Platform, Reply,
    WorkerEvent, parse_command,
};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::conversation::{EngineError, Registry};
use crate::services::Services;

/// Lines waiting to be printed.
const OUTPUT_BUFFER: usize = 256;

/// The terminal as a channel: every post becomes printed lines.
struct TerminalChannel {
    lines: mpsc::Sender<String>,
}

impl Channel for TerminalChannel {
    fn reply_to(&self, _key: &ConversationKey) -> Box<dyn Reply> {
        Box::new(TerminalReply {
            lines: self.lines.clone(),
        })
    }
}

struct TerminalReply {
    lines: mpsc::Sender<String>,
}

impl TerminalReply {
    async fn print(&self, text: String) -> Result<(), ChannelError> {
        self.lines
            .send(text)
            .await
            .map_err(|_| ChannelError::Permanent("the terminal is closed".into()))
    }
}

#[async_trait::async_trait]
impl Reply for TerminalReply {
    async fn post(&mut self, _origin: &Origin, text: &str) -> Result<(), ChannelError> {
        self.print(format!("baton> {}\n", text.trim_end())).await
    }

    async fn verbose(&mut self, _origin: &Origin, event: &WorkerEvent) -> Result<(), ChannelError> {
        let mut text = String::new();
        for line in event.describe().lines() {
            text.push_str(&format!("    [{}] {line}\n", event.label));
        }
        self.print(text).await
    }
}

/// Runs a terminal conversation named `conversation`: reads lines from
/// `input` until it ends, prints to `output`, and returns once every
/// message has been answered.
pub async fn chat(
    services: Arc<Services>,
    conversation: &str,
    input: impl AsyncBufRead + Unpin,
    mut output: impl AsyncWrite + Unpin + Send + 'static,
) -> Result<(), EngineError> {
    let (lines_tx, mut lines_rx) = mpsc::channel::<String>(OUTPUT_BUFFER);
    let printer = tokio::spawn(async move {
        while let Some(text) = lines_rx.recv().await {
            if output.write_all(text.as_bytes()).await.is_err() || output.flush().await.is_err() {
                break;
            }
        }
    });
    let channel = Arc::new(TerminalChannel { lines: lines_tx });
    let registry = Registry::new(services).with_channel(Platform::Terminal, channel);
    let key = ConversationKey::terminal(conversation);
    let author = Author {
        id: "terminal".into(),
        name: std::env::var("USER").unwrap_or_else(|_| "you".into()),
    };
    let mut lines = input.lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        if text == "/quit" || text == "/exit" {
            break;
        }
        // A terminal never redelivers a line, so there is nothing to dedupe.
        let origin = Origin::default();
        let event = match parse_command(text, None) {
            Some(command) => ChannelEvent::Command {
                key: key.clone(),
                author: author.clone(),
                origin,
                command,
            },
            None => ChannelEvent::Message(Inbound {
                key: key.clone(),
                author: author.clone(),
                text: text.to_owned(),
                origin,
                attachments: Vec::new(),
                chat_title: None,
            }),
        };
        registry.dispatch(event).await?;
    }
    registry.drain().await;
    drop(registry);
    let _ = printer.await;
    Ok(())
}
