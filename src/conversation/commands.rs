//! What the settings commands change and say; the `/status` text.

use baton_channel::Command;

use crate::budget::Spend;
use crate::llm::Usage;
use crate::llm::models::Models;
use crate::store::{ConversationSettings, Mode};

/// Applies a settings command; returns the new settings and the answer.
/// Commands the actor handles itself (`/stop`, `/status`, `/reset`) leave
/// the settings as they are.
pub fn apply(settings: ConversationSettings, command: &Command) -> (ConversationSettings, String) {
    let mut next = settings;
    let text = match command {
        Command::Orchestrator(None) => format!(
            "Orchestrator mode is {}.",
            on_off(settings.mode == Mode::Orchestrator)
        ),
        Command::Orchestrator(Some(on)) => {
            next.mode = if *on {
                Mode::Orchestrator
            } else {
                Mode::Single
            };
            if *on {
                "Orchestrator mode on: I may split requests across parallel workers.".to_owned()
            } else {
                "Orchestrator mode off: I answer by myself.".to_owned()
            }
        }
        Command::Verbose(None) => format!("Verbose is {}.", on_off(settings.verbose)),
        Command::Verbose(Some(on)) => {
            next.verbose = *on;
            if *on {
                "Verbose on: worker output appears under your message.".to_owned()
            } else {
                "Verbose off.".to_owned()
            }
        }
        Command::Effort(None) => format!("Effort is {}.", settings.effort),
        Command::Effort(Some(effort)) => {
            next.effort = *effort;
            format!("Effort set to {effort}.")
        }
        Command::Help => Command::help_text(),
        Command::Status | Command::Stop | Command::Reset => String::new(),
    };
    (next, text)
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

/// What `/status` shows.
pub struct StatusView<'a> {
    /// The conversation's settings.
    pub settings: ConversationSettings,
    /// The configured models.
    pub models: &'a Models,
    /// `(worker id, label)` of running workers, when a turn is running.
    pub running: Option<Vec<(&'a str, &'a str)>>,
    /// What this conversation used today.
    pub today: Spend,
    /// The last turn's orchestrator usage and its cost in dollars.
    pub last_turn: Option<(Usage, f64)>,
}

/// The `/status` answer.
pub fn status_text(view: StatusView<'_>) -> String {
    let settings = view.settings;
    let orchestrator = &view.models.orchestrator;
    let worker = &view.models.worker;
    let mut lines = vec![
        format!("Mode: {}", settings.mode.as_str()),
        format!("Verbose: {}", on_off(settings.verbose)),
        format!(
            "Effort: {} (orchestrator runs at {})",
            settings.effort,
            orchestrator.clamp_effort(settings.effort)
        ),
        format!(
            "Models: orchestrator {}, workers {}",
            orchestrator.model, worker.model
        ),
    ];
    match &view.running {
        None => lines.push("Running: nothing".to_owned()),
        Some(workers) if workers.is_empty() => {
            lines.push("Running: a reply, no workers".to_owned())
        }
        Some(workers) => {
            let list: Vec<String> = workers
                .iter()
                .map(|(id, label)| format!("{id} ({label})"))
                .collect();
            lines.push(format!(
                "Running: {} worker(s): {}",
                workers.len(),
                list.join(", ")
            ));
        }
    }
    if let Some((usage, cost)) = view.last_turn {
        lines.push(format!(
            "Last reply: {} in / {} out tokens, ${cost:.4}",
            usage.input_tokens, usage.output_tokens
        ));
    }
    lines.push(format!(
        "Today: {} in / {} out tokens, ${:.4}",
        view.today.usage.input_tokens, view.today.usage.output_tokens, view.today.usd
    ));
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_channel::Effort;

    fn settings() -> ConversationSettings {
        ConversationSettings {
            mode: Mode::Single,
            verbose: false,
            effort: Effort::On,
        }
    }

    #[test]
    fn settings_commands_change_only_their_setting() {
        let (next, text) = apply(settings(), &Command::Orchestrator(Some(true)));
        assert_eq!(
            next,
            ConversationSettings {
                mode: Mode::Orchestrator,
                ..settings()
            }
        );
        assert!(text.contains("on"));
        let (next, _) = apply(settings(), &Command::Verbose(Some(true)));
        assert_eq!(
            next,
            ConversationSettings {
                verbose: true,
                ..settings()
            }
        );
        let (next, text) = apply(settings(), &Command::Effort(Some(Effort::Max)));
        assert_eq!(next.effort, Effort::Max);
        assert_eq!(text, "Effort set to max.");
        let (next, text) = apply(settings(), &Command::Verbose(None));
        assert_eq!(next, settings());
        assert_eq!(text, "Verbose is off.");
    }
}
