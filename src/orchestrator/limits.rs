//! The limits one turn's agents run under: `[orchestrator]`'s round limit
//! and worker timeout, multiplied by `greedy_factor` with `/greedy on`.
//! Budgets are not limits of this kind: they apply either way.

use std::time::Duration;

use crate::config::OrchestratorConfig;

/// Round and time limits for one turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Rounds of tool calls the orchestrator gets before it must answer.
    pub orchestrator_rounds: usize,
    /// Rounds of tool calls a worker run gets before it must answer.
    pub worker_rounds: usize,
    /// How long one worker run may take.
    pub worker_timeout: Duration,
}

impl Limits {
    /// The limits for a conversation that is `greedy` or not.
    pub fn new(config: &OrchestratorConfig, greedy: bool) -> Self {
        let factor = if greedy {
            config.greedy_factor.max(1)
        } else {
            1
        };
        let rounds = config
            .max_tool_rounds
            .saturating_mul(usize::try_from(factor).unwrap_or(usize::MAX));
        Limits {
            orchestrator_rounds: rounds,
            worker_rounds: rounds,
            worker_timeout: config.worker_timeout().saturating_mul(factor),
        }
    }
}

impl Limits {
    /// The limits of a project's boss (`[projects] max_boss_rounds`) and
    /// workers (`[projects] worker_timeout_secs`, the turn's worker
    /// rounds), raised by `greedy` like a turn's.
    pub fn for_project(config: &crate::config::Config, greedy: bool) -> Self {
        let turn = Limits::new(&config.orchestrator, greedy);
        let factor = if greedy {
            config.orchestrator.greedy_factor.max(1)
        } else {
            1
        };
        let projects = &config.projects;
        Limits {
            orchestrator_rounds: projects
                .max_boss_rounds
                .saturating_mul(usize::try_from(factor).unwrap_or(usize::MAX)),
            worker_rounds: turn.worker_rounds,
            worker_timeout: projects.worker_timeout().saturating_mul(factor),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn greedy_multiplies_the_rounds_and_the_worker_timeout() {
        let config = OrchestratorConfig {
            max_tool_rounds: 4,
            worker_timeout_secs: 10,
            greedy_factor: 3,
            ..OrchestratorConfig::default()
        };
        assert_eq!(
            Limits::new(&config, false),
            Limits {
                orchestrator_rounds: 4,
                worker_rounds: 4,
                worker_timeout: Duration::from_secs(10),
            }
        );
        assert_eq!(
            Limits::new(&config, true),
            Limits {
                orchestrator_rounds: 12,
                worker_rounds: 12,
                worker_timeout: Duration::from_secs(30),
            }
        );
    }

    #[test]
    fn the_factor_defaults_to_3_and_must_be_at_least_1() {
        let config = Config::from_toml("", Vec::new()).unwrap();
        assert_eq!(config.orchestrator.greedy_factor, 3);
        let err = Config::from_toml("[orchestrator]\ngreedy_factor = 0\n", Vec::new()).unwrap_err();
        assert!(err.to_string().contains("greedy_factor"), "{err}");
    }
}
