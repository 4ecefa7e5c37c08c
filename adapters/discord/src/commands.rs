//! Slash commands: their definitions, built from the shared command list in
//! `baton-channel` (never a second list), and the way back from an
//! interaction's options to command text for [`baton_channel::parse_command`],
//! so that parsing lives in one place.

use serde_json::{Value, json};
use serenity::all::{CommandDataOption, CommandDataOptionValue};

/// Discord's option type for a string.
const STRING_OPTION: u8 = 3;
/// Discord's command type for a slash command.
const CHAT_INPUT: u8 = 1;
/// Longest command description Discord accepts.
const DESCRIPTION_LIMIT: usize = 100;

/// A command's argument, as the slash command offers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Argument {
    /// No argument.
    None,
    /// One of these words (an optional option with choices).
    Choice(Vec<&'static str>),
}

/// One command as Discord shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    /// The command word (`orchestrator`).
    pub name: &'static str,
    /// What it does.
    pub about: &'static str,
    /// Its argument.
    pub argument: Argument,
}

/// The shared command list, as [`CommandSpec`]s. The one place that reads
/// `baton-channel`'s list, so that a change of its shape changes only this.
pub fn specs() -> Vec<CommandSpec> {
    baton_channel::Command::DESCRIPTIONS
        .iter()
        .map(|(name, args, about)| CommandSpec {
            name,
            about,
            argument: if args.is_empty() {
                Argument::None
            } else {
                Argument::Choice(args.split('|').collect())
            },
        })
        .collect()
}

/// The option name of a command with choices: `mode` for switches
/// (`/orchestrator mode:on`), `level` for effort, `value` otherwise.
fn option_name(spec: &CommandSpec) -> &'static str {
    match &spec.argument {
        Argument::Choice(words) if words.len() == 2 && words.contains(&"on") => "mode",
        Argument::Choice(_) if spec.name == "effort" => "level",
        _ => "value",
    }
}

/// The body of a bulk overwrite of application commands: every command,
/// with its option choices.
pub fn definitions() -> Value {
    let commands: Vec<Value> = specs()
        .iter()
        .map(|spec| {
            let about: String = spec.about.chars().take(DESCRIPTION_LIMIT).collect();
            let options: Vec<Value> = match &spec.argument {
                Argument::None => Vec::new(),
                Argument::Choice(words) => vec![json!({
                    "type": STRING_OPTION,
                    "name": option_name(spec),
                    "description": format!("{} (leave out to see the current value)", words.join(", ")),
                    "required": false,
                    "choices": words
                        .iter()
                        .map(|word| json!({"name": word, "value": word}))
                        .collect::<Vec<_>>(),
                })],
            };
            json!({
                "type": CHAT_INPUT,
                "name": spec.name,
                "description": about,
                "options": options,
            })
        })
        .collect();
    Value::Array(commands)
}

/// The command text an interaction stands for: `/orchestrator on` for
/// `/orchestrator` with `mode:on`.
pub fn command_text(name: &str, options: &[CommandDataOption]) -> String {
    let mut text = format!("/{name}");
    for option in options {
        if let CommandDataOptionValue::String(value) = &option.value {
            text.push(' ');
            text.push_str(value.trim());
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_channel::{Command, parse_command};

    #[test]
    fn every_shared_command_is_a_slash_command_with_its_choices() {
        let definitions = definitions();
        let names: Vec<&str> = definitions
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        let shared: Vec<&str> = Command::DESCRIPTIONS.iter().map(|(n, _, _)| *n).collect();
        assert_eq!(names, shared);
        let orchestrator = &definitions[0];
        assert_eq!(orchestrator["options"][0]["name"], "mode");
        assert_eq!(orchestrator["options"][0]["choices"][1]["value"], "off");
        let effort = definitions
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "effort")
            .unwrap();
        assert_eq!(effort["options"][0]["choices"].as_array().unwrap().len(), 4);
    }

    #[test]
    fn options_map_back_to_text_the_shared_parser_reads() {
        let option: CommandDataOption = serde_json::from_value(json!({
            "name": "mode", "type": 3, "value": "on"
        }))
        .unwrap();
        let text = command_text("orchestrator", &[option]);
        assert_eq!(text, "/orchestrator on");
        assert_eq!(
            parse_command(&text, None),
            Some(Ok(Command::Orchestrator(Some(true))))
        );
        assert_eq!(command_text("status", &[]), "/status");
    }
}
