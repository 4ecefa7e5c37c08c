//! `[projects]`: how many projects may run, and the limits their bosses
//! and workers run under. There is no wall-clock limit on a project.

use std::time::Duration;

use serde::Deserialize;

/// `[projects]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectsConfig {
    /// Projects running at once in one conversation.
    pub max_running_per_conversation: usize,
    /// Projects running at once across the service.
    pub max_running: usize,
    /// Rounds of tool calls a boss gets before it must sum up without tools.
    pub max_boss_rounds: usize,
    /// How long one run of a project's worker may take.
    pub worker_timeout_secs: u64,
}

impl Default for ProjectsConfig {
    fn default() -> Self {
        Self {
            max_running_per_conversation: 2,
            max_running: 16,
            max_boss_rounds: 200,
            worker_timeout_secs: 1800,
        }
    }
}

impl ProjectsConfig {
    /// The worker timeout as a duration.
    pub fn worker_timeout(&self) -> Duration {
        Duration::from_secs(self.worker_timeout_secs)
    }

    /// The first key with a value that cannot work, if any.
    pub fn invalid_key(&self) -> Option<&'static str> {
        if self.max_running_per_conversation == 0 {
            Some("projects.max_running_per_conversation")
        } else if self.max_running == 0 {
            Some("projects.max_running")
        } else if self.max_boss_rounds == 0 {
            Some("projects.max_boss_rounds")
        } else if self.worker_timeout_secs == 0 {
            Some("projects.worker_timeout_secs")
        } else {
            None
        }
    }
}
