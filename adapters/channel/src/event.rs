//! What a worker did, as shown in verbose mode (display only, never execution).

use std::fmt;

/// A worker's id within one conversation turn (`w1`, `w2`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkerId(pub String);

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a worker's run ended (or that it is still running).
#[derive(strum::IntoStaticStr, strum::Display)]
#[strum(serialize_all = "snake_case")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerStatus {
    /// The worker is working on its brief.
    Running,
    /// It finished with a result.
    Done,
    /// Its model or tools failed; the error goes back to the orchestrator.
    Error,
    /// The orchestrator, `/stop` or the end of the turn cancelled it.
    Cancelled,
    /// It ran past the worker timeout.
    TimedOut,
    /// The orchestrator closed it and freed its slot.
    Closed,
}

impl WorkerStatus {
    /// The word used in tool results and the store.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Whether the worker has stopped running.
    pub fn is_finished(self) -> bool {
        !matches!(self, WorkerStatus::Running)
    }
}

/// One thing a worker did, tagged with its label for the verbose thread.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerEvent {
    /// Which worker.
    pub worker_id: WorkerId,
    /// The label the orchestrator gave it (shown as the tag).
    pub label: String,
    /// What happened.
    pub kind: WorkerEventKind,
}

/// The kinds of worker events shown in verbose mode.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerEventKind {
    /// The worker started (or restarted) on a brief.
    Started { brief: String },
    /// Text the worker's model wrote.
    Text(String),
    /// The worker called a tool.
    ToolCall { name: String, arguments: String },
    /// The worker stopped running.
    Finished { status: WorkerStatus },
}

impl WorkerEvent {
    /// One display line for the event, without the label tag.
    pub fn describe(&self) -> String {
        match &self.kind {
            WorkerEventKind::Started { brief } => format!("started: {brief}"),
            WorkerEventKind::Text(text) => text.clone(),
            WorkerEventKind::ToolCall { name, arguments } => format!("→ {name}({arguments})"),
            WorkerEventKind::Finished { status } => format!("finished: {status}"),
        }
    }
}
