//! Which model answers: the resolution chain, first match wins.
//!
//! 1. the conversation's own model (`/model`);
//! 2. the `model` of the named worker profile `spawn_worker` asked for;
//! 3. the model of the worker's specialty (`[models.specialties]`);
//! 4. for the orchestrator in single mode with `auto_tier` on, a simple
//!    message goes to `cheap_model`;
//! 5. the role's default (`orchestrator`, or `worker`);
//! 6. `fallback` (and, for workers, the orchestrator's model after it).
//!
//! Specialties also carry a preamble for the worker's instructions.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use baton_channel::Effort;
use serde::Deserialize;

use crate::config::{ConfigError, ModelsConfig};
use crate::domain::ModelRef;

/// What kind of work a worker does: picks its model (when configured) and
/// a preamble for its instructions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Specialty {
    /// Writes, reviews and debugs code.
    Coder,
    /// Finds and checks facts and sources.
    Researcher,
    /// Drafts and edits prose.
    Writer,
    /// Works through data, numbers and trade-offs.
    Analyst,
    /// Designs systems, interfaces and structures.
    Designer,
    /// Writes messages for people: tone, clarity, audience.
    Communicator,
    /// Looks for risks, vulnerabilities and abuse.
    Security,
    /// Anything else.
    General,
}

impl Specialty {
    /// Every specialty, in the order tools list them.
    pub const ALL: [Specialty; 8] = [
        Specialty::Coder,
        Specialty::Researcher,
        Specialty::Writer,
        Specialty::Analyst,
        Specialty::Designer,
        Specialty::Communicator,
        Specialty::Security,
        Specialty::General,
    ];

    /// The word in config and tool arguments.
    pub fn as_str(self) -> &'static str {
        match self {
            Specialty::Coder => "coder",
            Specialty::Researcher => "researcher",
            Specialty::Writer => "writer",
            Specialty::Analyst => "analyst",
            Specialty::Designer => "designer",
            Specialty::Communicator => "communicator",
            Specialty::Security => "security",
            Specialty::General => "general",
        }
    }

    /// The lines put before a worker's instructions.
    pub fn preamble(self) -> &'static str {
        match self {
            Specialty::Coder => {
                "You are an expert software engineer. Write correct, idiomatic, tested code; \
                 state the language and versions you assume; point out edge cases and bugs."
            }
            Specialty::Researcher => {
                "You are a careful researcher. Separate facts from assumptions, name your \
                 sources where you have them, and say plainly what you could not verify."
            }
            Specialty::Writer => {
                "You are a skilled writer and editor. Write clear, well-structured prose in \
                 the tone and length the brief asks for."
            }
            Specialty::Analyst => {
                "You are a rigorous analyst. Work step by step through data, numbers and \
                 trade-offs; show the reasoning that supports each conclusion."
            }
            Specialty::Designer => {
                "You are a thoughtful designer of systems and interfaces. Propose structures \
                 with their trade-offs, and prefer the simplest design that meets the goal."
            }
            Specialty::Communicator => {
                "You write for people: messages, announcements and replies that are clear, \
                 friendly and fit their audience."
            }
            Specialty::Security => {
                "You are a security reviewer. Look for vulnerabilities, abuse and risky \
                 assumptions; rate each finding's severity and say how to fix it."
            }
            Specialty::General => "You are a capable generalist.",
        }
    }
}

impl fmt::Display for Specialty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Specialty {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let word = s.trim().to_ascii_lowercase();
        Specialty::ALL
            .into_iter()
            .find(|specialty| specialty.as_str() == word)
            .ok_or_else(|| {
                let names: Vec<&str> = Specialty::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown specialty {s:?}: use one of {}", names.join(", "))
            })
    }
}

/// `[models.profiles.NAME]`: a named kind of worker the orchestrator can ask
/// for with `spawn_worker`'s `profile`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerProfile {
    /// Its model, `provider:model` (the specialty's or the worker default
    /// when unset).
    pub model: Option<String>,
    /// Its specialty (model and preamble), unless `spawn_worker` names one.
    pub specialty: Option<Specialty>,
    /// Its effort, unless `spawn_worker` names one.
    pub effort: Option<Effort>,
    /// Extra instructions put before the worker's brief.
    pub instructions: Option<String>,
}

/// Who the model is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentRole {
    /// The conversation's orchestrator (in either mode).
    Orchestrator,
    /// A worker.
    Worker,
}

/// What routing knows about one model choice.
#[derive(Debug, Clone, Copy, Default)]
pub struct RouteRequest<'a> {
    /// The conversation's `/model` choice.
    pub conversation: Option<&'a str>,
    /// The worker's profile.
    pub profile: Option<&'a WorkerProfile>,
    /// The worker's specialty (from `spawn_worker`, else its profile's).
    pub specialty: Option<Specialty>,
    /// An orchestrator in single mode answering a simple message (see
    /// [`is_simple`]): `cheap_model` when `auto_tier` is on.
    pub simple: bool,
}

/// The level of the chain that chose the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteLevel {
    /// The conversation's `/model`.
    Conversation,
    /// The worker profile's model.
    Profile,
    /// The specialty's model.
    Specialty,
    /// `cheap_model`, for a simple message.
    CheapTier,
    /// The role's default.
    Role,
    /// `fallback` (or, for a worker, the orchestrator's model).
    Fallback,
}

impl ModelsConfig {
    /// The model for `role`, by the chain in the module docs.
    pub fn route(
        &self,
        role: AgentRole,
        request: RouteRequest<'_>,
    ) -> Result<(ModelRef, RouteLevel), ConfigError> {
        let specialty = request
            .specialty
            .or(request.profile.and_then(|p| p.specialty));
        let worker = role == AgentRole::Worker;
        let chain: [(Option<&str>, RouteLevel); 7] = [
            (request.conversation, RouteLevel::Conversation),
            (
                request
                    .profile
                    .filter(|_| worker)
                    .and_then(|p| p.model.as_deref()),
                RouteLevel::Profile,
            ),
            (
                specialty
                    .filter(|_| worker)
                    .and_then(|s| self.specialties.get(&s))
                    .map(String::as_str),
                RouteLevel::Specialty,
            ),
            (
                self.cheap_model
                    .as_deref()
                    .filter(|_| !worker && self.auto_tier && request.simple),
                RouteLevel::CheapTier,
            ),
            (
                if worker {
                    self.worker.as_deref()
                } else {
                    self.orchestrator.as_deref()
                },
                RouteLevel::Role,
            ),
            (self.fallback.as_deref(), RouteLevel::Fallback),
            (
                self.orchestrator.as_deref().filter(|_| worker),
                RouteLevel::Fallback,
            ),
        ];
        let (model, level) = chain
            .into_iter()
            .find_map(|(model, level)| model.map(|m| (m, level)))
            .ok_or_else(|| {
                ConfigError::Invalid(
                    "no model configured: set [models] orchestrator (or fallback)".into(),
                )
            })?;
        Ok((model.parse()?, level))
    }

    /// Every model the routing can pick (roles, fallback, cheap tier,
    /// specialties, profiles), each once, sorted.
    pub fn routed(&self) -> Result<Vec<ModelRef>, ConfigError> {
        let named = [
            &self.orchestrator,
            &self.worker,
            &self.fallback,
            &self.cheap_model,
        ];
        let mut models: Vec<&str> = named.into_iter().flatten().map(String::as_str).collect();
        models.extend(self.specialties.values().map(String::as_str));
        models.extend(self.profiles.values().filter_map(|p| p.model.as_deref()));
        parse_sorted(models)
    }

    /// What `/model` offers: the routed models and the catalog's.
    pub fn configured(&self) -> Result<Vec<ModelRef>, ConfigError> {
        let mut models = self.routed()?;
        models.extend(parse_sorted(
            self.catalog.keys().map(String::as_str).collect(),
        )?);
        models.sort();
        models.dedup();
        Ok(models)
    }
}

fn parse_sorted(models: Vec<&str>) -> Result<Vec<ModelRef>, ConfigError> {
    let mut parsed = models
        .into_iter()
        .map(ModelRef::from_str)
        .collect::<Result<Vec<_>, _>>()?;
    parsed.sort();
    parsed.dedup();
    Ok(parsed)
}

/// A profile lookup that says which names exist when it fails.
pub fn profile<'a>(
    profiles: &'a BTreeMap<String, WorkerProfile>,
    name: &str,
) -> Result<&'a WorkerProfile, String> {
    profiles.get(name).ok_or_else(|| {
        let names: Vec<&str> = profiles.keys().map(String::as_str).collect();
        if names.is_empty() {
            format!("unknown profile {name:?}: no worker profiles are configured")
        } else {
            format!("unknown profile {name:?}: use one of {}", names.join(", "))
        }
    })
}

/// Words that suggest a request needs more than a quick answer.
const DEMANDING: [&str; 24] = [
    "analy",
    "compare",
    "explain why",
    "step by step",
    "step-by-step",
    "plan",
    "design",
    "implement",
    "debug",
    "refactor",
    "prove",
    "derive",
    "evaluate",
    "research",
    "strategy",
    "architecture",
    "trade-off",
    "tradeoff",
    "pros and cons",
    "in detail",
    "write a",
    "write an",
    "review",
    "optimi",
];

/// Whether a message looks simple enough for the cheap tier: short, one
/// question at most, no code, and none of the words that signal analysis or
/// several steps.
pub fn is_simple(text: &str) -> bool {
    const MAX_CHARS: usize = 280;
    if text.chars().count() > MAX_CHARS {
        return false;
    }
    let lower = text.to_lowercase();
    let code = ["```", "fn ", "def ", "class ", "=>", "{", "};", "#include"];
    if code.iter().any(|marker| lower.contains(marker)) {
        return false;
    }
    if DEMANDING.iter().any(|word| lower.contains(word)) {
        return false;
    }
    let questions = lower.matches('?').count();
    let numbered_steps = lower
        .lines()
        .filter(|line| {
            let line = line.trim_start();
            line.starts_with("1.") || line.starts_with("2.") || line.starts_with("- ")
        })
        .count();
    let sequence = ["first", "then", "after that", "finally"]
        .iter()
        .filter(|word| lower.contains(*word))
        .count();
    questions <= 1 && numbered_steps < 2 && sequence < 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn models(extra: &str) -> ModelsConfig {
        let text = format!(
            r#"
orchestrator = "big:orchestrator"
worker = "small:worker"
fallback = "any:fallback"
cheap_model = "small:cheap"
auto_tier = true

[specialties]
coder = "code:coder"

[profiles.reviewer]
model = "big:reviewer"
specialty = "security"

[profiles.scribe]
specialty = "coder"
{extra}
"#
        );
        toml::from_str(&text).unwrap()
    }

    fn route(
        models: &ModelsConfig,
        role: AgentRole,
        request: RouteRequest<'_>,
    ) -> (String, RouteLevel) {
        let (model, level) = models.route(role, request).unwrap();
        (model.to_string(), level)
    }

    #[test]
    fn every_level_of_the_chain_wins_over_the_ones_below() {
        let m = models("");
        let reviewer = &m.profiles["reviewer"];
        let scribe = &m.profiles["scribe"];
        use RouteLevel::{CheapTier, Conversation, Profile, Role};
        let cases: Vec<(AgentRole, RouteRequest<'_>, &str, RouteLevel)> = vec![
            // The conversation's model beats everything, for both roles.
            (
                AgentRole::Worker,
                RouteRequest {
                    conversation: Some("pick:me"),
                    profile: Some(reviewer),
                    specialty: Some(Specialty::Coder),
                    simple: false,
                },
                "pick:me",
                Conversation,
            ),
            (
                AgentRole::Orchestrator,
                RouteRequest {
                    conversation: Some("pick:me"),
                    simple: true,
                    ..Default::default()
                },
                "pick:me",
                Conversation,
            ),
            // A profile's model beats the specialty's.
            (
                AgentRole::Worker,
                RouteRequest {
                    profile: Some(reviewer),
                    specialty: Some(Specialty::Coder),
                    ..Default::default()
                },
                "big:reviewer",
                Profile,
            ),
            // A profile without a model: its specialty's model.
            (
                AgentRole::Worker,
                RouteRequest {
                    profile: Some(scribe),
                    ..Default::default()
                },
                "code:coder",
                RouteLevel::Specialty,
            ),
            (
                AgentRole::Worker,
                RouteRequest {
                    specialty: Some(Specialty::Coder),
                    ..Default::default()
                },
                "code:coder",
                RouteLevel::Specialty,
            ),
            // A specialty without a model of its own: the role default.
            (
                AgentRole::Worker,
                RouteRequest {
                    specialty: Some(Specialty::Writer),
                    ..Default::default()
                },
                "small:worker",
                Role,
            ),
            // Specialties and profiles never route the orchestrator.
            (
                AgentRole::Orchestrator,
                RouteRequest {
                    profile: Some(reviewer),
                    specialty: Some(Specialty::Coder),
                    ..Default::default()
                },
                "big:orchestrator",
                Role,
            ),
            // The cheap tier: orchestrator only, simple messages only.
            (
                AgentRole::Orchestrator,
                RouteRequest {
                    simple: true,
                    ..Default::default()
                },
                "small:cheap",
                CheapTier,
            ),
            (
                AgentRole::Worker,
                RouteRequest {
                    simple: true,
                    ..Default::default()
                },
                "small:worker",
                Role,
            ),
        ];
        for (role, request, model, level) in cases {
            assert_eq!(
                route(&m, role, request),
                (model.to_owned(), level),
                "{role:?} {request:?}"
            );
        }
    }

    #[test]
    fn the_fallback_catches_unset_roles() {
        let m: ModelsConfig = toml::from_str("fallback = \"any:fallback\"").unwrap();
        for role in [AgentRole::Orchestrator, AgentRole::Worker] {
            assert_eq!(
                route(&m, role, RouteRequest::default()),
                ("any:fallback".to_owned(), RouteLevel::Fallback)
            );
        }
        // Without a fallback a worker runs on the orchestrator's model.
        let m: ModelsConfig = toml::from_str("orchestrator = \"big:o\"").unwrap();
        assert_eq!(
            route(&m, AgentRole::Worker, RouteRequest::default()),
            ("big:o".to_owned(), RouteLevel::Fallback)
        );
        // auto_tier off: no cheap tier.
        let m: ModelsConfig =
            toml::from_str("orchestrator = \"big:o\"\ncheap_model = \"s:c\"").unwrap();
        let simple = RouteRequest {
            simple: true,
            ..Default::default()
        };
        assert_eq!(route(&m, AgentRole::Orchestrator, simple).0, "big:o");
        // Nothing at all is a clear error.
        let m: ModelsConfig = toml::from_str("").unwrap();
        let error = m
            .route(AgentRole::Orchestrator, RouteRequest::default())
            .unwrap_err();
        assert!(
            error.to_string().contains("[models] orchestrator"),
            "{error}"
        );
    }

    #[test]
    fn configured_lists_every_named_model_once() {
        let m = models("[catalog.\"big:orchestrator\"]\ninput_price = 1.0\n");
        let names: Vec<String> = m
            .configured()
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            names,
            [
                "any:fallback",
                "big:orchestrator",
                "big:reviewer",
                "code:coder",
                "small:cheap",
                "small:worker"
            ]
        );
    }

    #[test]
    fn simple_messages_are_short_single_questions_without_code_or_analysis() {
        for text in [
            "hi!",
            "What's the capital of Peru?",
            "thanks, that helped",
            "translate 'good morning' to French",
        ] {
            assert!(is_simple(text), "{text:?} should be simple");
        }
        for text in [
            "Compare Rust and Go for a web backend",
            "Why does this fail? ```let x = 1;```",
            "Write a haiku about autumn",
            "First fetch the data, then summarise it, finally email it",
            "What is X? And what is Y?",
            "Please debug my script",
            &"a very long message ".repeat(20),
            "1. do this\n2. do that",
        ] {
            assert!(!is_simple(text), "{text:?} should not be simple");
        }
    }

    #[test]
    fn specialties_parse_from_their_words() {
        assert_eq!("Coder".parse::<Specialty>(), Ok(Specialty::Coder));
        let error = "wizard".parse::<Specialty>().unwrap_err();
        assert!(error.contains("coder, researcher"), "{error}");
        for specialty in Specialty::ALL {
            assert_eq!(specialty.as_str().parse::<Specialty>(), Ok(specialty));
            assert!(!specialty.preamble().is_empty());
        }
    }
}
