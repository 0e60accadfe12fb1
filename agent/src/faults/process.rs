//! `kill`, `stop`, `pause`: what happens to the corosync process itself.
//! Kill and stop are healed by starting corosync as the node starts it (the
//! lab's own start, or systemd on a real node), pause by SIGCONT.

use std::time::Duration;

use corodrill_protocol::Fault;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::{Ctx, Undo};
use crate::node::{wait_until, NodeKind};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "then", rename_all = "snake_case")]
pub enum ProcessUndo {
    /// Start corosync again (and corosync-qdevice if it ran before).
    Start { qdevice: bool },
    /// Continue this stopped process, if it is still the same one.
    Continue { pid: i32, start_time: u64 },
}

pub fn apply(
    ctx: &mut Ctx,
    fault: &Fault,
    journal: &mut dyn FnMut(&Undo) -> Result<(), String>,
) -> Result<Undo, String> {
    let pid = ctx
        .node
        .corosync_pid()
        .ok_or("corosync is not running on this node")?;
    let qdevice = ctx.node.qdevice_running();
    match fault {
        Fault::Kill | Fault::Stop => {
            let undo = Undo::Process(ProcessUndo::Start { qdevice });
            journal(&undo)?;
            if matches!(fault, Fault::Stop) && matches!(ctx.node.kind, NodeKind::Real) {
                crate::node::run_ok(crate::node::command("systemctl").args(["stop", "corosync"]))?;
            } else {
                let signal = if matches!(fault, Fault::Kill) {
                    Signal::SIGKILL
                } else {
                    Signal::SIGTERM
                };
                kill(Pid::from_raw(pid), signal)
                    .map_err(|e| format!("cannot signal corosync ({pid}): {e}"))?;
            }
            // A clean stop leaves the membership first; give it corosync's own time.
            wait_until(Duration::from_secs(20), || !alive(pid))
                .map_err(|()| format!("corosync ({pid}) still runs 20 s after {}", fault.kind()))?;
            if matches!(ctx.node.kind, NodeKind::Lab { .. }) {
                // A SIGKILLed corosync leaves its 8 MiB blackbox and IPC
                // files in /dev/shm, the host's memory; a lab drill must
                // not. (A real node's are left for the operator's forensics.)
                crate::node::remove_shm_of(pid);
            }
            Ok(undo)
        }
        Fault::Pause => {
            let start_time = start_time(pid).ok_or("corosync exited just now")?;
            let undo = Undo::Process(ProcessUndo::Continue { pid, start_time });
            journal(&undo)?;
            kill(Pid::from_raw(pid), Signal::SIGSTOP)
                .map_err(|e| format!("cannot stop corosync ({pid}): {e}"))?;
            wait_until(Duration::from_secs(2), || state(pid) == Some('T'))
                .map_err(|()| format!("corosync ({pid}) did not stop"))?;
            Ok(undo)
        }
        other => Err(format!("{} is not a process fault", other.kind())),
    }
}

pub fn rollback(ctx: &mut Ctx, undo: &ProcessUndo) -> Result<String, String> {
    match undo {
        ProcessUndo::Start { qdevice } => {
            // Returns once corosync has answered. Asking it again here
            // failed a rollback on a stalled VM (its 2 s deadline ran out
            // while the guest was frozen) and said "not running" of a
            // corosync that ran and had answered.
            ctx.node.start_corosync(*qdevice)?;
            match ctx.node.corosync_pid() {
                Some(pid) => Ok(format!("corosync running (pid {pid}) and answering")),
                None => Err("corosync answered, then exited".into()),
            }
        }
        ProcessUndo::Continue {
            pid,
            start_time: started,
        } => {
            if start_time(*pid) == Some(*started) {
                kill(Pid::from_raw(*pid), Signal::SIGCONT)
                    .map_err(|e| format!("cannot continue corosync ({pid}): {e}"))?;
                wait_until(Duration::from_secs(2), || {
                    !matches!(state(*pid), Some('T' | 't'))
                })
                .map_err(|()| format!("corosync ({pid}) is still stopped"))?;
                Ok(format!("corosync (pid {pid}) running, not stopped"))
            } else {
                Ok(format!(
                    "the paused corosync (pid {pid}) is gone; nothing to continue"
                ))
            }
        }
    }
}

fn alive(pid: i32) -> bool {
    !crate::node::is_zombie(pid)
}

/// The process state letter (R, S, T, Z...) from /proc/PID/stat.
fn state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].chars().next()
}

/// Start time (clock ticks since boot) from /proc/PID/stat: with the pid, it
/// tells a process apart from a later one that reused its pid.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..]
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}
