//! The five delegation tools, offered only to the orchestrator in
//! orchestrator mode: `spawn_worker`, `send_to_worker`, `await_workers`,
//! `close_worker`, `cancel_worker` (names, arguments and results as in
//! DESIGN.md). Worker-safe tools are offered alongside them.
//!
//! The toolbox also keeps the orchestrator from answering over running
//! workers: it holds the first such answer back with a note listing them,
//! and cancels (and records) those still running at the final answer.

use baton_channel::{Effort, WorkerId};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::pool::{SpawnRequest, WorkerPool};
use super::prompt;
use crate::config::routing::Specialty;
use crate::domain::ToolSpec;
use crate::media::Shelf;
use crate::tools::{ToolError, ToolRegistry, Toolbox};

/// The exact names of the delegation tools.
pub const DELEGATION_TOOLS: [&str; 5] = [
    "spawn_worker",
    "send_to_worker",
    "await_workers",
    "close_worker",
    "cancel_worker",
];

/// The orchestrator's toolbox: delegation tools over a pool, plus the
/// worker-safe tools.
pub struct DelegationTools<'a> {
    /// The turn's workers.
    pub pool: &'a WorkerPool,
    /// Worker-safe tools the orchestrator may use itself.
    pub tools: &'a ToolRegistry,
    /// The context's attachments `spawn_worker` can hand over (none for
    /// project bosses).
    pub shelf: Option<&'a Shelf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpawnArgs {
    prompt: String,
    label: Option<String>,
    effort: Option<String>,
    specialty: Option<String>,
    profile: Option<String>,
    attachments: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendArgs {
    worker_id: String,
    prompt: String,
    effort: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AwaitArgs {
    worker_ids: Option<Vec<String>>,
    max_results: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkerArg {
    worker_id: String,
}

fn parse<T: DeserializeOwned>(arguments: Value) -> Result<T, ToolError> {
    serde_json::from_value(arguments).map_err(|e| ToolError::BadArguments(e.to_string()))
}

fn parse_effort(word: Option<String>) -> Result<Option<Effort>, ToolError> {
    word.map(|w| {
        w.parse()
            .map_err(|e: baton_channel::ParseEffortError| ToolError::BadArguments(e.to_string()))
    })
    .transpose()
}

#[async_trait::async_trait]
impl Toolbox for DelegationTools<'_> {
    fn specs(&self) -> Vec<ToolSpec> {
        let profiles: Vec<&str> = self.pool.profiles().keys().map(String::as_str).collect();
        let mut specs = delegation_specs(&profiles, &self.pool.worker_efforts());
        specs.extend(self.tools.specs());
        specs
    }

    async fn call(&self, name: &str, arguments: Value) -> Result<String, ToolError> {
        let result = match name {
            "spawn_worker" => {
                let args: SpawnArgs = parse(arguments)?;
                let ids = args.attachments.unwrap_or_default();
                let attachments = match (ids.is_empty(), self.shelf) {
                    (true, _) => Vec::new(),
                    (false, Some(shelf)) => {
                        shelf.take(&ids).await.map_err(ToolError::BadArguments)?
                    }
                    (false, None) => {
                        return Err(ToolError::BadArguments(
                            "there are no attachments to give here".into(),
                        ));
                    }
                };
                self.pool
                    .spawn(SpawnRequest {
                        prompt: args.prompt,
                        label: args.label,
                        effort: parse_effort(args.effort)?,
                        specialty: args
                            .specialty
                            .map(|word| word.parse().map_err(ToolError::BadArguments))
                            .transpose()?,
                        profile: args.profile,
                        attachments,
                    })
                    .await?
            }
            "send_to_worker" => {
                let args: SendArgs = parse(arguments)?;
                let effort = parse_effort(args.effort)?;
                self.pool
                    .send(&WorkerId(args.worker_id), args.prompt, effort)
                    .await?
            }
            "await_workers" => {
                let args: AwaitArgs = parse(arguments)?;
                let ids = args
                    .worker_ids
                    .filter(|ids| !ids.is_empty())
                    .map(|ids| ids.into_iter().map(WorkerId).collect());
                self.pool.await_next(ids, args.max_results).await?
            }
            "close_worker" => {
                let args: WorkerArg = parse(arguments)?;
                self.pool.close(&WorkerId(args.worker_id)).await?
            }
            "cancel_worker" => {
                let args: WorkerArg = parse(arguments)?;
                self.pool.cancel(&WorkerId(args.worker_id)).await?
            }
            other => return self.tools.call(other, arguments).await,
        };
        Ok(result.to_string())
    }

    async fn before_answer(&self) -> Option<String> {
        let running = self.pool.running();
        (!running.is_empty()).then(|| prompt::workers_still_running(&running))
    }

    async fn after_answer(&self) {
        self.pool.cancel_running().await;
    }
}

/// The delegation tools' specs, exactly as DESIGN.md names them.
/// `profiles` are the configured worker profiles (`spawn_worker` offers a
/// `profile` argument only when there are some); `efforts` the levels the
/// worker models support, offered as `effort`.
pub fn delegation_specs(profiles: &[&str], efforts: &[Effort]) -> Vec<ToolSpec> {
    let effort = json!({
        "type": "string",
        "enum": efforts.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
        "description": "How hard the worker's model thinks: one of the levels the worker models support (a model that lacks it gets the nearest level it has). Defaults to the conversation's effort."
    });
    let worker_id =
        json!({"type": "string", "description": "The id spawn_worker returned (w1, w2, ...)."});
    let mut specs = vec![
        ToolSpec {
            name: "spawn_worker".into(),
            description: "Start a worker on one independent part of the request. It runs in the background on a cheaper model and sees ONLY this prompt, so make it a complete, self-contained brief. Returns at once with its worker_id; collect its result with await_workers.".into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "prompt": {"type": "string", "description": "The complete brief: goal, context, scope, and the form of the result."},
                    "label": {"type": "string", "description": "A short name for what this worker does, shown to users."},
                    "effort": effort,
                    "specialty": {
                        "type": "string",
                        "enum": Specialty::ALL.map(Specialty::as_str),
                        "description": "What kind of work it is: picks a model suited to it (where configured) and adds matching instructions."
                    },
                    "attachments": {
                        "type": "array",
                        "items": {"type": "string"},
                        "maxItems": crate::media::MAX_PER_WORKER,
                        "description": "Ids of files from the conversation to give the worker (shown as [image: name, id 57.1] or [file: name, id 57.2]): it sees the images (if its model can) and the files' text."
                    }
                },
                "required": ["prompt"]
            }),
        },
        ToolSpec {
            name: "send_to_worker".into(),
            description: "Give a finished worker a follow-up (for example, what to fix in its result). It keeps its whole earlier context. Returns at once; collect the new result with await_workers.".into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "worker_id": worker_id,
                    "prompt": {"type": "string", "description": "The follow-up instructions."},
                    "effort": effort
                },
                "required": ["worker_id", "prompt"]
            }),
        },
        ToolSpec {
            name: "await_workers".into(),
            description: "Wait for the NEXT worker to finish (not all of them), then return EVERY finished worker not reported yet, in the order they finished: {\"finished\": [{worker_id, label, status, result or error, usage}, ...], \"still_running\": [ids]}. Workers finishing together come back in one call: review every result in it before deciding what to do next. A result with \"cut_short\": true is what the worker had when it hit its step limit. Call it again while workers are still running.".into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "worker_ids": {"type": "array", "items": {"type": "string"}, "description": "Only wait for these workers (default: any)."},
                    "max_results": {"type": "integer", "minimum": 1, "description": "Return at most this many results; the rest wait for the next call (default: all)."}
                }
            }),
        },
        ToolSpec {
            name: "close_worker".into(),
            description: "Close a worker you no longer need and free its slot.".into(),
            parameters: json!({
                "type": "object",
                "properties": {"worker_id": worker_id},
                "required": ["worker_id"]
            }),
        },
        ToolSpec {
            name: "cancel_worker".into(),
            description: "Stop a running worker now, aborting its model and tool calls. It stays open for send_to_worker.".into(),
            parameters: json!({
                "type": "object",
                "properties": {"worker_id": worker_id},
                "required": ["worker_id"]
            }),
        },
    ];
    if !profiles.is_empty() {
        specs[0].parameters["properties"]["profile"] = json!({
            "type": "string",
            "enum": profiles,
            "description": "A configured kind of worker (its own model, specialty and instructions)."
        });
    }
    specs
}
