//! The chat commands, parsed once here and shared by every adapter.
//!
//! The same words work on every platform and in `baton chat`:
//! `/orchestrator on|off`, `/verbose on|off`, `/effort off|on|high|max`,
//! `/model [name|default]`, `/greedy on|off`, `/autonomy on|off`, `/status`,
//! `/stop`, `/reset`, `/help`, and `/project <goal>` with
//! `/project status|pause [N]|resume [N] [text]|cancel [N]`. [`Command::SPECS`] describes them for the
//! platforms' command menus (Telegram's `setMyCommands`, Discord's slash
//! commands), so no adapter keeps a list of its own.

use std::str::FromStr;

/// How hard a model should think, clamped to what each model supports.
#[derive(strum::IntoStaticStr, strum::Display)]
#[strum(serialize_all = "snake_case")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Effort {
    /// No extended reasoning.
    Off,
    /// The provider's normal reasoning.
    #[default]
    On,
    /// More reasoning.
    High,
    /// The most reasoning the model offers.
    Max,
}

impl Effort {
    /// Every level, lowest first.
    pub const ALL: [Effort; 4] = [Effort::Off, Effort::On, Effort::High, Effort::Max];

    /// The word used in commands, config and tool arguments.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A word that is not an effort level.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown effort {0:?}: use off, on, high or max")]
pub struct ParseEffortError(pub String);

impl FromStr for Effort {
    type Err = ParseEffortError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let word = s.trim();
        Effort::ALL
            .into_iter()
            .find(|effort| effort.as_str().eq_ignore_ascii_case(word))
            .ok_or_else(|| ParseEffortError(s.to_owned()))
    }
}

impl serde::Serialize for Effort {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Effort {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let word = String::deserialize(deserializer)?;
        word.parse().map_err(serde::de::Error::custom)
    }
}

/// A parsed chat command. `None` in a switch means "show the current value".
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Command {
    /// `/orchestrator on|off`: delegate to workers, or answer alone.
    Orchestrator(Option<bool>),
    /// `/verbose on|off`: show worker output under the message.
    Verbose(Option<bool>),
    /// `/effort off|on|high|max`: the conversation's default effort.
    Effort(Option<Effort>),
    /// `/model [name|default]`: list the models, or pick this
    /// conversation's model.
    Model(Option<ModelChoice>),
    /// `/greedy on|off`: keep going and try several approaches.
    Greedy(Option<bool>),
    /// `/autonomy on|off`: decide rather than ask the user.
    Autonomy(Option<bool>),
    /// `/status`: mode, verbose, models, running workers, usage.
    Status,
    /// `/stop`: cancel the running turn and all its workers.
    Stop,
    /// `/reset`: start a new context.
    Reset,
    /// `/help`: list the commands.
    Help,
    /// `/project ...`: start or steer a long-running project.
    Project(ProjectCommand),
}

/// What `/project` asks for. `None` for a project number means the
/// conversation's latest one that the action applies to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ProjectCommand {
    /// `/project <goal>`: start a project.
    Start(String),
    /// `/project` or `/project status`: this conversation's projects.
    Status,
    /// `/project pause [N]`: stop after the running calls finish.
    Pause(Option<u64>),
    /// `/project resume [N] [text]`: go on, with an answer to its question.
    Resume {
        project: Option<u64>,
        answer: Option<String>,
    },
    /// `/project cancel [N]`: stop now; no worker is left running.
    Cancel(Option<u64>),
}

/// What `/model NAME` asks for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ModelChoice {
    /// A configured model, as the user typed it (`provider:model`).
    Named(String),
    /// Back to the configured routing (`/model default`).
    Default,
}

/// The argument a command takes, for platforms' command menus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandArg {
    /// No argument.
    None,
    /// Optional `on` or `off`.
    Switch,
    /// Optional, one of these words.
    Choice(&'static [&'static str]),
    /// Optional free text.
    Text {
        /// The argument's name (a Discord option name).
        name: &'static str,
        /// What to type.
        about: &'static str,
    },
}

impl CommandArg {
    /// How `/help` shows the argument (empty for none).
    pub fn usage(&self) -> String {
        match self {
            CommandArg::None => String::new(),
            CommandArg::Switch => "on|off".into(),
            CommandArg::Choice(words) => words.join("|"),
            CommandArg::Text { name, .. } => format!("[{name}]"),
        }
    }
}

/// One command as platforms list it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandSpec {
    /// The word after `/`.
    pub name: &'static str,
    /// One line saying what it does.
    pub about: &'static str,
    /// Its argument.
    pub arg: CommandArg,
}

impl Command {
    /// Every command, in the order `/help` lists them.
    pub const SPECS: &'static [CommandSpec] = &[
        CommandSpec {
            name: "orchestrator",
            about: "Let the bot split work across parallel workers",
            arg: CommandArg::Switch,
        },
        CommandSpec {
            name: "verbose",
            about: "Show what the workers do, under your message",
            arg: CommandArg::Switch,
        },
        CommandSpec {
            name: "effort",
            about: "How hard the models think",
            arg: CommandArg::Choice(&["off", "on", "high", "max"]),
        },
        CommandSpec {
            name: "model",
            about: "List the models, or pick this conversation's",
            arg: CommandArg::Text {
                name: "name",
                about: "provider:model from the list, or default",
            },
        },
        CommandSpec {
            name: "greedy",
            about: "Keep going and try several approaches before settling",
            arg: CommandArg::Switch,
        },
        CommandSpec {
            name: "autonomy",
            about: "Decide instead of asking you",
            arg: CommandArg::Switch,
        },
        CommandSpec {
            name: "status",
            about: "Mode, models, running workers, usage and cost",
            arg: CommandArg::None,
        },
        CommandSpec {
            name: "stop",
            about: "Cancel the running answer and its workers",
            arg: CommandArg::None,
        },
        CommandSpec {
            name: "reset",
            about: "Forget this conversation's context",
            arg: CommandArg::None,
        },
        CommandSpec {
            name: "help",
            about: "List the commands",
            arg: CommandArg::None,
        },
        CommandSpec {
            name: "project",
            about: "Start a long-running project, or see, pause, resume or cancel one",
            arg: CommandArg::Text {
                name: "request",
                about: "a goal; or status, pause N, resume N [answer], cancel N",
            },
        },
    ];

    /// The `/help` text.
    pub fn help_text() -> String {
        let mut text = String::from("Commands:\n");
        for spec in Self::SPECS {
            let usage = spec.arg.usage();
            let usage = if usage.is_empty() {
                format!("/{}", spec.name)
            } else {
                format!("/{} {usage}", spec.name)
            };
            text.push_str(&format!("{usage} — {}\n", spec.about));
        }
        text
    }

    /// Whether the command changes settings (and so needs permission in groups).
    pub fn changes_settings(&self) -> bool {
        match self {
            Command::Orchestrator(v)
            | Command::Verbose(v)
            | Command::Greedy(v)
            | Command::Autonomy(v) => v.is_some(),
            Command::Effort(v) => v.is_some(),
            Command::Model(v) => v.is_some(),
            Command::Reset => true,
            Command::Project(project) => *project != ProjectCommand::Status,
            Command::Status | Command::Stop | Command::Help => false,
        }
    }
}

/// A message that is a command, but not a valid one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// A command word nobody knows.
    #[error("unknown command /{0}; /help lists the commands")]
    Unknown(String),
    /// A known command with a bad argument.
    #[error("usage: /{command} {usage}")]
    Usage {
        command: &'static str,
        usage: &'static str,
    },
}

/// Parses `text` as a command.
///
/// Returns `None` when the text is not a command at all, or is a command
/// addressed to another bot (`/status@otherbot`). `bot_name` is this bot's
/// username, without `@`, where the platform has one.
pub fn parse_command(text: &str, bot_name: Option<&str>) -> Option<Result<Command, CommandError>> {
    let rest = text.trim_start().strip_prefix('/')?;
    let mut words = rest.split_whitespace();
    let head = words.next()?;
    let (name, addressee) = match head.split_once('@') {
        Some((name, addressee)) => (name, Some(addressee)),
        None => (head, None),
    };
    if let (Some(addressee), Some(bot)) = (addressee, bot_name)
        && !addressee.eq_ignore_ascii_case(bot)
    {
        return None;
    }
    let name = name.to_ascii_lowercase();
    if name == "project" {
        let rest = rest.trim_start()[head.len()..].trim();
        return Some(parse_project(rest).map(Command::Project));
    }
    let arg = words.next();
    Some(parse_named(&name, arg))
}

/// `/project`'s argument: a goal, or an action on a project.
fn parse_project(rest: &str) -> Result<ProjectCommand, CommandError> {
    let usage = || CommandError::Usage {
        command: "project",
        usage: "<goal> | status | pause [N] | resume [N] [answer] | cancel [N]",
    };
    let (word, after) = match rest.split_once(char::is_whitespace) {
        Some((word, after)) => (word, after.trim()),
        None => (rest, ""),
    };
    let number = |text: &str| -> Result<Option<u64>, CommandError> {
        match text {
            "" => Ok(None),
            text => text.parse().map(Some).map_err(|_| usage()),
        }
    };
    match word.to_ascii_lowercase().as_str() {
        "" | "status" if after.is_empty() => Ok(ProjectCommand::Status),
        "pause" => number(after).map(ProjectCommand::Pause),
        "cancel" => number(after).map(ProjectCommand::Cancel),
        "resume" => {
            let (first, answer) = match after.split_once(char::is_whitespace) {
                Some((first, answer)) => (first, answer.trim()),
                None => (after, ""),
            };
            let (project, answer) = match first.parse::<u64>() {
                Ok(project) => (Some(project), answer.to_owned()),
                Err(_) => (None, after.to_owned()),
            };
            Ok(ProjectCommand::Resume {
                project,
                answer: Some(answer).filter(|answer| !answer.is_empty()),
            })
        }
        _ => Ok(ProjectCommand::Start(rest.to_owned())),
    }
}

fn parse_named(name: &str, arg: Option<&str>) -> Result<Command, CommandError> {
    match name {
        "orchestrator" => parse_switch(arg, "orchestrator").map(Command::Orchestrator),
        "verbose" => parse_switch(arg, "verbose").map(Command::Verbose),
        "effort" => {
            match arg {
                None => Ok(Command::Effort(None)),
                Some(word) => word.parse().map(|e| Command::Effort(Some(e))).map_err(|_| {
                    CommandError::Usage {
                        command: "effort",
                        usage: "off|on|high|max",
                    }
                }),
            }
        }
        "model" => Ok(Command::Model(arg.map(|name| {
            if name.eq_ignore_ascii_case("default") {
                ModelChoice::Default
            } else {
                ModelChoice::Named(name.to_owned())
            }
        }))),
        "greedy" => parse_switch(arg, "greedy").map(Command::Greedy),
        "autonomy" => parse_switch(arg, "autonomy").map(Command::Autonomy),
        "status" => Ok(Command::Status),
        "stop" => Ok(Command::Stop),
        "reset" => Ok(Command::Reset),
        "help" | "start" => Ok(Command::Help),
        other => Err(CommandError::Unknown(other.to_owned())),
    }
}

fn parse_switch(arg: Option<&str>, command: &'static str) -> Result<Option<bool>, CommandError> {
    match arg.map(str::to_ascii_lowercase).as_deref() {
        None => Ok(None),
        Some("on" | "true" | "yes" | "1") => Ok(Some(true)),
        Some("off" | "false" | "no" | "0") => Ok(Some(false)),
        Some(_) => Err(CommandError::Usage {
            command,
            usage: "on|off",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Option<Result<Command, CommandError>> {
        parse_command(text, Some("baton_bot"))
    }

    #[test]
    fn parses_every_command() {
        assert_eq!(
            parse("/orchestrator on"),
            Some(Ok(Command::Orchestrator(Some(true))))
        );
        assert_eq!(
            parse("/orchestrator OFF"),
            Some(Ok(Command::Orchestrator(Some(false))))
        );
        assert_eq!(
            parse("/orchestrator"),
            Some(Ok(Command::Orchestrator(None)))
        );
        assert_eq!(parse("/verbose on"), Some(Ok(Command::Verbose(Some(true)))));
        assert_eq!(
            parse("/effort max"),
            Some(Ok(Command::Effort(Some(Effort::Max))))
        );
        assert_eq!(parse("/model"), Some(Ok(Command::Model(None))));
        assert_eq!(
            parse("/model anthropic:claude-x"),
            Some(Ok(Command::Model(Some(ModelChoice::Named(
                "anthropic:claude-x".into()
            )))))
        );
        assert_eq!(
            parse("/model Default"),
            Some(Ok(Command::Model(Some(ModelChoice::Default))))
        );
        assert_eq!(parse("/greedy on"), Some(Ok(Command::Greedy(Some(true)))));
        assert_eq!(
            parse("/autonomy off"),
            Some(Ok(Command::Autonomy(Some(false))))
        );
        assert_eq!(parse("/status"), Some(Ok(Command::Status)));
        assert_eq!(parse("  /stop"), Some(Ok(Command::Stop)));
        assert_eq!(parse("/reset"), Some(Ok(Command::Reset)));
        assert_eq!(parse("/help"), Some(Ok(Command::Help)));
        assert_eq!(parse("/start"), Some(Ok(Command::Help)));
    }

    #[test]
    fn parses_project_actions_and_goals() {
        let project = |text: &str| match parse(text) {
            Some(Ok(Command::Project(project))) => Ok(project),
            Some(Err(error)) => Err(error),
            other => panic!("{text}: {other:?}"),
        };
        assert_eq!(project("/project"), Ok(ProjectCommand::Status));
        assert_eq!(project("/project status"), Ok(ProjectCommand::Status));
        assert_eq!(project("/project pause"), Ok(ProjectCommand::Pause(None)));
        assert_eq!(
            project("/project pause 3"),
            Ok(ProjectCommand::Pause(Some(3)))
        );
        assert_eq!(
            project("/project CANCEL 12"),
            Ok(ProjectCommand::Cancel(Some(12)))
        );
        assert_eq!(
            project("/project resume 2 use the 2024 numbers"),
            Ok(ProjectCommand::Resume {
                project: Some(2),
                answer: Some("use the 2024 numbers".into())
            })
        );
        assert_eq!(
            project("/project resume yes, go on"),
            Ok(ProjectCommand::Resume {
                project: None,
                answer: Some("yes, go on".into())
            })
        );
        assert_eq!(
            project("/project resume"),
            Ok(ProjectCommand::Resume {
                project: None,
                answer: None
            })
        );
        assert_eq!(
            project("/project@baton_bot research  tidal power\nin depth"),
            Ok(ProjectCommand::Start(
                "research  tidal power\nin depth".into()
            ))
        );
        assert_eq!(
            project("/project status of the moon landing"),
            Ok(ProjectCommand::Start("status of the moon landing".into()))
        );
        assert!(project("/project pause soon").is_err());
        assert!(Command::Project(ProjectCommand::Pause(None)).changes_settings());
        assert!(!Command::Project(ProjectCommand::Status).changes_settings());
    }

    #[test]
    fn honours_the_bot_name_suffix() {
        assert_eq!(parse("/status@baton_bot"), Some(Ok(Command::Status)));
        assert_eq!(parse("/status@Baton_Bot"), Some(Ok(Command::Status)));
        assert_eq!(parse("/status@other_bot"), None);
        assert_eq!(
            parse_command("/status@anyone", None),
            Some(Ok(Command::Status))
        );
    }

    #[test]
    fn plain_text_is_not_a_command() {
        assert_eq!(parse("hello /status"), None);
        assert_eq!(parse("/"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn bad_input_gets_a_usage_error() {
        assert_eq!(
            parse("/verbose maybe"),
            Some(Err(CommandError::Usage {
                command: "verbose",
                usage: "on|off"
            }))
        );
        assert_eq!(
            parse("/effort extreme").unwrap().unwrap_err().to_string(),
            "usage: /effort off|on|high|max"
        );
        assert_eq!(
            parse("/frobnicate"),
            Some(Err(CommandError::Unknown("frobnicate".into())))
        );
    }

    #[test]
    fn help_lists_every_command() {
        let help = Command::help_text();
        for spec in Command::SPECS {
            let name = spec.name;
            assert!(
                help.contains(&format!("/{name}")),
                "{name} missing from help"
            );
            // Every listed command parses (with its argument, if any).
            let text = match spec.arg {
                CommandArg::None => format!("/{name}"),
                CommandArg::Switch => format!("/{name} on"),
                CommandArg::Choice(words) => format!("/{name} {}", words[0]),
                CommandArg::Text { .. } => format!("/{name} default"),
            };
            assert!(matches!(parse(&text), Some(Ok(_))), "{text} does not parse");
        }
        assert!(help.contains("/effort off|on|high|max"), "{help}");
    }
}
