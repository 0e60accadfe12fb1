//! `command`: an operator's command (for example `corosync-quorumtool -e 1`)
//! and the command that undoes it, both run on the node with `sh -c`.

use serde::{Deserialize, Serialize};

use super::Undo;
use crate::node::run_ok;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandUndo {
    pub undo: Option<String>,
}

pub fn apply(
    run: &str,
    undo: Option<&str>,
    journal: &mut dyn FnMut(&Undo) -> Result<(), String>,
) -> Result<Undo, String> {
    if run.trim().is_empty() {
        return Err("a command fault needs a command to run".into());
    }
    let u = Undo::Command(CommandUndo {
        undo: undo.map(str::to_owned),
    });
    journal(&u)?;
    run_ok(crate::node::command("sh").args(["-c", run]))?;
    Ok(u)
}

pub fn rollback(undo: &CommandUndo) -> Result<String, String> {
    match &undo.undo {
        Some(cmd) => {
            run_ok(crate::node::command("sh").args(["-c", cmd])).map(|()| format!("ran {cmd:?}"))
        }
        None => Ok("no undo command".into()),
    }
}
