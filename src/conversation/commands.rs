//! What the settings commands change and say; the `/status` text.

use baton_channel::{Command, ModelChoice};

use crate::agent::LimiterLoad;
use crate::budget::{Spend, token_summary};
use crate::domain::{ConversationSettings, Mode, ModelRef};
use crate::llm::models::Models;

/// Applies a settings command; returns the new settings and the answer.
/// Commands the actor handles itself (`/stop`, `/status`, `/reset`,
/// `/project`) leave the settings as they are.
pub fn apply(
    settings: &ConversationSettings,
    command: &Command,
    models: &Models,
) -> (ConversationSettings, String) {
    let mut next = settings.clone();
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
        Command::Model(None) => model_list(settings, models),
        Command::Model(Some(ModelChoice::Default)) => {
            next.model = None;
            format!(
                "Back to the configured models: orchestrator {}, workers {}.",
                models.orchestrator.model, models.worker.model
            )
        }
        Command::Model(Some(ModelChoice::Named(name))) => {
            let known = name
                .parse::<ModelRef>()
                .ok()
                .filter(|model| models.selectable().contains(model));
            match known {
                Some(model) => {
                    let text = format!(
                        "This conversation now runs on {model}, workers included (/model default goes back)."
                    );
                    next.model = Some(model.to_string());
                    text
                }
                None => format!(
                    "Unknown model {:?}; /model lists the ones you can pick.",
                    short(name)
                ),
            }
        }
        Command::Greedy(None) => format!("Greedy is {}.", on_off(settings.greedy)),
        Command::Greedy(Some(on)) => {
            next.greedy = *on;
            if *on {
                "Greedy on: I keep going, retry and try several approaches before settling."
                    .to_owned()
            } else {
                "Greedy off.".to_owned()
            }
        }
        Command::Autonomy(None) => format!("Autonomy is {}.", on_off(settings.autonomy)),
        Command::Autonomy(Some(on)) => {
            next.autonomy = *on;
            if *on {
                "Autonomy on: I make reasonable decisions myself instead of asking you.".to_owned()
            } else {
                "Autonomy off: I ask when something important is unclear.".to_owned()
            }
        }
        Command::Help => Command::help_text(),
        Command::Status | Command::Stop | Command::Reset | Command::Project(_) => String::new(),
    };
    (next, text)
}

/// At most the first 60 characters of what a user typed, for echoing it
/// back (a 5 KB model name is not repeated in full).
fn short(text: &str) -> String {
    const ECHO_LIMIT: usize = 60;
    match text.char_indices().nth(ECHO_LIMIT) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// The `/model` answer: the current choice and what can be picked.
fn model_list(settings: &ConversationSettings, models: &Models) -> String {
    let mut lines = vec![match &settings.model {
        Some(model) => format!("This conversation runs on {model} (chosen with /model)."),
        None => format!(
            "This conversation uses the configured models: orchestrator {}, workers {}.",
            models.orchestrator.model, models.worker.model
        ),
    }];
    lines.push("Models you can pick:".to_owned());
    for model in models.selectable() {
        let spec = models.config().spec(&model);
        let efforts: Vec<&str> = spec.efforts.iter().map(|e| e.as_str()).collect();
        lines.push(format!(
            "- {model}: effort {}; ${:.2} / ${:.2} per million tokens in / out{}",
            efforts.join("|"),
            spec.input_price,
            spec.output_price,
            if spec.vision { "; sees images" } else { "" }
        ));
    }
    lines.push("/model provider:model picks one; /model default goes back.".to_owned());
    lines.join("\n")
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

/// What a turn used, for `/status`.
#[derive(Debug, Clone, Copy)]
pub struct TurnSpend {
    /// Whether the turn is still running (its totals still grow).
    pub running: bool,
    /// Its orchestrator's and workers' tokens and cost.
    pub spend: Spend,
}

/// What `/status` shows.
pub struct StatusView<'a> {
    /// The conversation's settings.
    pub settings: &'a ConversationSettings,
    /// The configured models.
    pub models: &'a Models,
    /// `(worker id, label)` of running workers, when a turn is running.
    pub running: Option<Vec<(&'a str, &'a str)>>,
    /// What this conversation used today (`None`: the store could not say).
    pub today: Option<Spend>,
    /// The running turn's totals, or else the last turn's.
    pub turn: Option<TurnSpend>,
    /// Model calls across the service: each provider's limit and load.
    pub model_calls: LimiterLoad,
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
        match &settings.model {
            Some(model) => format!("Model: {model} for everything (chosen with /model)"),
            None => format!(
                "Models: orchestrator {}, workers {}",
                orchestrator.model, worker.model
            ),
        },
        format!(
            "Greedy: {}, autonomy: {}",
            on_off(settings.greedy),
            on_off(settings.autonomy)
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
    if let Some(turn) = view.turn {
        let usage = turn.spend.usage;
        lines.push(format!(
            "{}: {}, ${:.4}",
            if turn.running {
                "This turn so far"
            } else {
                "Last turn"
            },
            token_summary(usage),
            turn.spend.usd
        ));
    }
    lines.push(match view.today {
        Some(today) => format!("Today: {}, ${:.4}", token_summary(today.usage), today.usd),
        None => "Today: unknown (the store could not be read)".to_owned(),
    });
    lines.extend(model_call_lines(&view.model_calls));
    lines.join("\n")
}

/// Model calls across the service, then one line per provider: its
/// current limit (of its `max_concurrency`), calls in flight and waiting,
/// and a pause it asked for.
fn model_call_lines(load: &LimiterLoad) -> Vec<String> {
    let mut lines = vec![format!(
        "Model calls (all conversations): {} in flight, at most {}",
        load.in_flight, load.ceiling
    )];
    for provider in &load.providers {
        let mut line = format!(
            "- {}: limit {} of {}, {} in flight, {} waiting",
            provider.provider,
            provider.limit,
            provider.max_concurrency,
            provider.in_flight,
            provider.waiting
        );
        if let Some((wait, why)) = provider.paused {
            line.push_str(&format!(
                "; paused {} s more ({why})",
                wait.as_secs_f64().ceil()
            ));
        }
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use baton_channel::Effort;

    fn settings() -> ConversationSettings {
        ConversationSettings {
            mode: Mode::Single,
            verbose: false,
            effort: Effort::On,
            model: None,
            greedy: false,
            autonomy: false,
        }
    }

    fn models() -> Models {
        let config = Config::from_toml(
            r#"
[providers.p]
kind = "openai"
base_url = "http://127.0.0.1:9"

[models]
orchestrator = "p:big"
worker = "p:small"

[models.catalog."p:big"]
efforts = ["off", "on"]
input_price = 2.0
output_price = 8.0
vision = true

[models.catalog."elsewhere:model"]
"#,
            Vec::new(),
        )
        .unwrap();
        Models::from_config(&config).unwrap()
    }

    fn apply_to(
        settings: ConversationSettings,
        command: Command,
    ) -> (ConversationSettings, String) {
        apply(&settings, &command, &models())
    }

    #[test]
    fn settings_commands_change_only_their_setting() {
        let (next, text) = apply_to(settings(), Command::Orchestrator(Some(true)));
        assert_eq!(
            next,
            ConversationSettings {
                mode: Mode::Orchestrator,
                ..settings()
            }
        );
        assert!(text.contains("on"));
        let (next, _) = apply_to(settings(), Command::Verbose(Some(true)));
        assert_eq!(
            next,
            ConversationSettings {
                verbose: true,
                ..settings()
            }
        );
        let (next, text) = apply_to(settings(), Command::Effort(Some(Effort::Max)));
        assert_eq!(next.effort, Effort::Max);
        assert_eq!(text, "Effort set to max.");
        let (next, text) = apply_to(settings(), Command::Verbose(None));
        assert_eq!(next, settings());
        assert_eq!(text, "Verbose is off.");
        let (next, _) = apply_to(settings(), Command::Greedy(Some(true)));
        assert_eq!(
            next,
            ConversationSettings {
                greedy: true,
                ..settings()
            }
        );
        let (next, text) = apply_to(settings(), Command::Autonomy(Some(true)));
        assert!(next.autonomy && !next.greedy, "{text}");
    }

    #[test]
    fn status_shows_each_providers_limit_and_load() {
        use crate::agent::ProviderLoad;
        let load = LimiterLoad {
            ceiling: 512,
            in_flight: 21,
            providers: vec![
                ProviderLoad {
                    provider: "local".into(),
                    limit: 4,
                    max_concurrency: 4,
                    in_flight: 1,
                    waiting: 2,
                    paused: Some((std::time::Duration::from_millis(2500), "Retry-After")),
                },
                ProviderLoad {
                    provider: "openai".into(),
                    limit: 20,
                    max_concurrency: 256,
                    in_flight: 20,
                    waiting: 7,
                    paused: None,
                },
            ],
        };
        assert_eq!(
            model_call_lines(&load),
            [
                "Model calls (all conversations): 21 in flight, at most 512",
                "- local: limit 4 of 4, 1 in flight, 2 waiting; paused 3 s more (Retry-After)",
                "- openai: limit 20 of 256, 20 in flight, 7 waiting",
            ]
        );
    }

    #[test]
    fn model_lists_picks_and_refuses_unknown_models() {
        let (next, list) = apply_to(settings(), Command::Model(None));
        assert_eq!(next, settings());
        assert!(
            list.contains("orchestrator p:big, workers p:small"),
            "{list}"
        );
        assert!(
            list.contains(
                "- p:big: effort off|on; $2.00 / $8.00 per million tokens in / out; sees images"
            ),
            "{list}"
        );
        assert!(list.contains("- p:small:"), "{list}");
        assert!(
            !list
                .lines()
                .any(|l| l.starts_with("- p:small") && l.contains("images")),
            "{list}"
        );
        assert!(
            !list.contains("elsewhere:model"),
            "a model without a configured provider cannot be picked: {list}"
        );

        let (next, text) = apply_to(
            settings(),
            Command::Model(Some(ModelChoice::Named("p:small".into()))),
        );
        assert_eq!(next.model.as_deref(), Some("p:small"), "{text}");
        let (back, _) = apply_to(next, Command::Model(Some(ModelChoice::Default)));
        assert_eq!(back.model, None);

        for unknown in ["p:nope", "elsewhere:model", "garbage"] {
            let (next, text) = apply_to(
                settings(),
                Command::Model(Some(ModelChoice::Named(unknown.into()))),
            );
            assert_eq!(next, settings(), "{unknown}");
            assert!(text.starts_with("Unknown model"), "{text}");
        }
        // A huge name is refused without being echoed in full.
        let huge = "x".repeat(5_000);
        let (_, text) = apply_to(settings(), Command::Model(Some(ModelChoice::Named(huge))));
        assert!(
            text.starts_with("Unknown model") && text.len() < 200,
            "{text}"
        );
    }
}
