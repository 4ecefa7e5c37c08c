//! Slash commands: their definitions, built from the shared command list in
//! `baton-channel` (`Command::SPECS`, never a second list), and the way back from an
//! interaction's options to command text for [`baton_channel::parse_command`],
//! so that parsing lives in one place.

use baton_channel::{Command, CommandArg};
use serde_json::{Value, json};
use serenity::all::{CommandDataOption, CommandDataOptionValue};

/// Discord's option type for a string.
const STRING_OPTION: u8 = 3;
/// Discord's command type for a slash command.
const CHAT_INPUT: u8 = 1;
/// Longest command description Discord accepts.
const DESCRIPTION_LIMIT: usize = 100;

/// The options of a slash command taking `arg`: one optional string
/// option (leaving it out shows the current value).
fn options(arg: &CommandArg) -> Vec<Value> {
    let (name, about, words): (&str, String, &[&str]) = match arg {
        CommandArg::None => return Vec::new(),
        CommandArg::Switch => ("mode", "on or off".into(), &["on", "off"]),
        CommandArg::Choice(words) => ("value", words.join(", "), words),
        CommandArg::Text { name, about } => (name, (*about).to_owned(), &[]),
    };
    let mut option = json!({
        "type": STRING_OPTION,
        "name": name,
        "description": truncate(&format!("{about} (leave out to see the current value)")),
        "required": false,
    });
    if !words.is_empty() {
        option["choices"] = words
            .iter()
            .map(|word| json!({"name": word, "value": word}))
            .collect();
    }
    vec![option]
}

/// The body of a bulk overwrite of application commands: every command of
/// the shared list, with its option and choices.
pub fn definitions() -> Value {
    Command::SPECS
        .iter()
        .map(|spec| {
            json!({
                "type": CHAT_INPUT,
                "name": spec.name,
                "description": truncate(spec.about),
                "options": options(&spec.arg),
            })
        })
        .collect()
}

/// `text` cut to what Discord accepts in a description.
fn truncate(text: &str) -> String {
    text.chars().take(DESCRIPTION_LIMIT).collect()
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
    use baton_channel::parse_command;

    #[test]
    fn every_shared_command_is_a_slash_command_with_its_choices() {
        let definitions = definitions();
        let names: Vec<&str> = definitions
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        let shared: Vec<&str> = Command::SPECS.iter().map(|spec| spec.name).collect();
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
        let model = definitions
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "model")
            .unwrap();
        assert_eq!(model["options"][0]["name"], "name");
        assert!(model["options"][0].get("choices").is_none(), "free text");
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
