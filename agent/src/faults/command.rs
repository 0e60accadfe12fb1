//! `command`: an operator's command (for example `corosync-quorumtool -e 1`)
//! and the command that undoes it, both run on the node with `sh -c`, each
//! in a process group of its own that is killed at its timeout: a command
//! that hangs must not hold the agent (and so every rollback) with it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Undo;

/// How long a command (or its undo) may run when the fault names no timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandUndo {
    pub undo: Option<String>,
    /// The undo's own limit; journals written before it existed get the default.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// What undoes a command fault: known before it runs, so it is journaled
/// first.
pub fn undo_for(undo: Option<&str>, timeout_ms: Option<u64>) -> Undo {
    Undo::Command(CommandUndo {
        undo: undo.map(str::to_owned),
        timeout_ms,
    })
}

pub fn apply(
    run: &str,
    undo: Option<&str>,
    timeout_ms: Option<u64>,
    journal: &mut dyn FnMut(&Undo) -> Result<(), String>,
) -> Result<Undo, String> {
    let u = undo_for(undo, timeout_ms);
    journal(&u)?;
    run_command(run, timeout_ms)?;
    Ok(u)
}

/// Runs the fault's command (once its undo is journaled).
pub fn run_command(run: &str, timeout_ms: Option<u64>) -> Result<(), String> {
    if run.trim().is_empty() {
        return Err("a command fault needs a command to run".into());
    }
    run_with_timeout(run, timeout(timeout_ms))
}

pub fn rollback(undo: &CommandUndo) -> Result<String, String> {
    match &undo.undo {
        Some(cmd) => {
            run_with_timeout(cmd, timeout(undo.timeout_ms)).map(|()| format!("ran {cmd:?}"))
        }
        None => Ok("no undo command".into()),
    }
}

fn timeout(ms: Option<u64>) -> Duration {
    ms.map_or(DEFAULT_TIMEOUT, Duration::from_millis)
}

/// `sh -c COMMAND` in its own process group, killed with it at `limit`.
fn run_with_timeout(command: &str, limit: Duration) -> Result<(), String> {
    let f = crate::node::run_within(crate::node::command("sh").args(["-c", command]), limit)
        .map_err(|e| format!("{command:?}: {e}"))?;
    if f.status.success() {
        Ok(())
    } else {
        Err(format!("{command:?}: {} {}", f.status, f.stderr.trim()))
    }
}
