//! `command`: an operator's command (for example `corosync-quorumtool -e 1`)
//! and the command that undoes it, both run on the node with `sh -c`, each
//! in a process group of its own that is killed at its timeout: a command
//! that hangs must not hold the agent (and so every rollback) with it.

use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
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

pub fn apply(
    run: &str,
    undo: Option<&str>,
    timeout_ms: Option<u64>,
    journal: &mut dyn FnMut(&Undo) -> Result<(), String>,
) -> Result<Undo, String> {
    if run.trim().is_empty() {
        return Err("a command fault needs a command to run".into());
    }
    let u = Undo::Command(CommandUndo {
        undo: undo.map(str::to_owned),
        timeout_ms,
    });
    journal(&u)?;
    run_with_timeout(run, timeout(timeout_ms))?;
    Ok(u)
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

/// `sh -c COMMAND` in its own process group; the whole group is killed
/// when it outlives `limit` (a shell's children too).
fn run_with_timeout(command: &str, limit: Duration) -> Result<(), String> {
    let mut child = crate::node::command("sh")
        .args(["-c", command])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run sh: {e}"))?;
    let stderr = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut e) = stderr {
            let _ = std::io::Read::read_to_string(&mut e, &mut text);
        }
        text
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
                let _ = child.wait();
                return Err(format!(
                    "{command:?} did not finish within {limit:?}: killed (its process group)"
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("waiting for {command:?}: {e}")),
        }
    };
    // The group's other members may still hold stderr open: do not wait on them.
    let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
    let err = reader.join().unwrap_or_default();
    if status.success() {
        Ok(())
    } else {
        Err(format!("{command:?}: {status} {}", err.trim()))
    }
}
