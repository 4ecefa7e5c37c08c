//! Orchestrator mode: the delegation tools, the pool of workers a turn
//! starts, and the prompts that teach the orchestrator to use them.
//!
//! Two levels only: workers get worker-safe tools, never delegation tools
//! and never a channel (see [`worker`]).

mod limits;
mod pool;
pub mod prompt;
mod tools;
mod worker;

pub use limits::Limits;
pub use pool::{SpawnRequest, WorkerPool};
pub use tools::{DELEGATION_TOOLS, DelegationTools, delegation_specs};
