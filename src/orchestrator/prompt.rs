//! The system prompts of the orchestrator (both modes, with `/greedy` and
//! `/autonomy`) and of workers (with their specialty and profile), and the
//! note that holds back an answer written while workers still run.

use baton_channel::WorkerId;

use crate::config::routing::Specialty;
use crate::domain::{ConversationSettings, Mode};

/// The orchestrator's instructions in single mode: it answers alone.
pub const SINGLE: &str = "You are Baton, a helpful assistant in a chat. \
Answer the latest message directly and concisely, in the language it was written in. \
Use Markdown sparingly: short paragraphs, lists and code blocks where they help. \
Messages from people are prefixed with their name.";

/// The orchestrator's instructions in orchestrator mode.
pub const ORCHESTRATOR: &str = "You are Baton, a helpful assistant in a chat, and an orchestrator: \
you can hand parts of a request to parallel workers, review what they return, and write one answer.

When to delegate:
- Only when the request splits into parts that are independent of each other and each worth real work \
(research several topics, draft several sections, check several options). Answer simple questions, \
small tasks and anything sequential yourself, without workers.
- Start all independent workers in the same round (several spawn_worker calls at once) so they run in parallel.

How to brief a worker (spawn_worker's prompt):
- A worker sees only its brief: not the chat, not you, not the other workers. Write a complete, \
self-contained brief: the goal, the context it needs, the exact scope of its part, what to leave out, \
and the form of the result you want back.
- Give each worker a short label that says what it does.

Reviewing:
- Call await_workers: it waits for the next worker to finish, then returns every finished result \
not yet reported, in the order they finished (several at once is normal). Review each of them, \
and call it again until none are still running. A result marked cut_short is what that worker \
had when it hit its step limit.
- Check each result against the goal. If it is weak, wrong or incomplete, send it back with \
send_to_worker saying exactly what to fix; the worker keeps its earlier context. If a worker failed, \
decide whether to re-run it, re-scope the work, or do it yourself.
- close_worker a worker you are finished with; cancel_worker one whose work is no longer needed.
- Do not answer while workers are still running: await, close or cancel them first.

Answering:
- Write one reply in your own voice that answers the user's request. Combine and edit the workers' \
findings; never paste raw worker output, and do not mention workers unless the user asks how you worked.
- Messages from people are prefixed with their name. Answer in the language of the latest message.";

/// A worker's instructions, before its brief.
pub const WORKER: &str = "You are a worker: an assistant given one self-contained task by an orchestrator. \
Do exactly the task in the brief, thoroughly, and return the result in the form it asks for. \
You cannot ask questions: where something is unclear, make a reasonable assumption and state it. \
Your answer goes back to the orchestrator, not to a person.";

/// Added with `/greedy on`.
const GREEDY: &str = "Be greedy about quality: keep going until the request is fully done. \
When something fails, retry it or try another way; for anything non-trivial, try several \
approaches and keep the best before settling.";

/// Added with `/autonomy on`.
const AUTONOMY: &str = "Act autonomously: do not ask the user questions or for confirmation. \
Where something is unclear, make the most reasonable decision yourself, go ahead, and say \
briefly what you assumed.";

/// The note that holds back an answer written while `running` workers (id,
/// label) still run; the orchestrator gets it once.
pub fn workers_still_running(running: &[(WorkerId, String)]) -> String {
    let names: Vec<String> = running
        .iter()
        .map(|(id, label)| format!("{id} ({label})"))
        .collect();
    format!(
        "Your answer was not sent: these workers are still running: {}. \
Before you answer, call await_workers to collect their results, or close_worker / cancel_worker \
the ones you no longer need. If you answer again while any of them still runs, it is cancelled \
and its work is lost.",
        names.join(", ")
    )
}

/// The orchestrator's instructions for a conversation's settings: the
/// mode's prompt, plus the `/greedy` and `/autonomy` paragraphs when on.
pub fn orchestrator_system(settings: &ConversationSettings) -> String {
    let mut system = match settings.mode {
        Mode::Single => SINGLE.to_owned(),
        Mode::Orchestrator => ORCHESTRATOR.to_owned(),
    };
    for (on, paragraph) in [(settings.greedy, GREEDY), (settings.autonomy, AUTONOMY)] {
        if on {
            system.push_str("\n\n");
            system.push_str(paragraph);
        }
    }
    system
}

/// A worker's system prompt: its specialty's preamble, a profile's
/// instructions, then the worker rules.
pub fn worker_system(specialty: Option<Specialty>, instructions: Option<&str>) -> String {
    let mut system = String::new();
    if let Some(specialty) = specialty {
        system.push_str(specialty.preamble());
        system.push('\n');
    }
    if let Some(instructions) = instructions.map(str::trim).filter(|s| !s.is_empty()) {
        system.push_str(instructions);
        system.push('\n');
    }
    system.push_str(WORKER);
    system
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_channel::Effort;

    fn settings(mode: Mode, greedy: bool, autonomy: bool) -> ConversationSettings {
        ConversationSettings {
            mode,
            verbose: false,
            effort: Effort::On,
            model: None,
            greedy,
            autonomy,
        }
    }

    #[test]
    fn greedy_and_autonomy_add_their_paragraphs() {
        let plain = orchestrator_system(&settings(Mode::Orchestrator, false, false));
        assert_eq!(plain, ORCHESTRATOR);
        let both = orchestrator_system(&settings(Mode::Orchestrator, true, true));
        assert!(both.starts_with(ORCHESTRATOR) && both.contains(GREEDY) && both.contains(AUTONOMY));
        let single = orchestrator_system(&settings(Mode::Single, false, true));
        assert!(
            single.starts_with(SINGLE) && single.contains(AUTONOMY) && !single.contains(GREEDY)
        );
    }

    #[test]
    fn the_running_workers_note_names_each_worker() {
        let note = workers_still_running(&[
            (WorkerId("w1".into()), "alpha".into()),
            (WorkerId("w2".into()), "beta".into()),
        ]);
        assert!(note.contains("w1 (alpha), w2 (beta)"), "{note}");
        assert!(note.contains("await_workers"), "{note}");
    }

    #[test]
    fn a_specialty_puts_its_preamble_first() {
        let system = worker_system(Some(Specialty::Coder), Some("Use Rust."));
        assert!(system.starts_with(Specialty::Coder.preamble()));
        assert!(system.contains("Use Rust.") && system.ends_with(WORKER));
        assert_eq!(worker_system(None, None), WORKER);
    }
}
