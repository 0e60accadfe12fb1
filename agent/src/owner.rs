//! One owner per node. The agent that applies and rolls back a node's
//! faults holds an exclusive `flock` on `owner.lock` in its state
//! directory, for as long as it lives (the kernel drops the lock when the
//! process dies, however it dies). Any other agent started meanwhile
//! (`corodrill status` beside a running drill, say) observes: it must not
//! roll back a journal that belongs to a live agent.
//!
//! The owner also starts a guard: a small process of its own session that
//! waits for the owner to die (pidfd) and then, unless a new agent has
//! taken the lock, rolls the journal back. That covers what the kernel does
//! not undo by itself when an agent is SIGKILLed, OOM-killed or loses its
//! ssh connection: qdiscs, NFQUEUE rules, link state, stopped corosync,
//! clock offsets, commands' undo.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use corodrill_protocol::HeldFault;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::journal::Journal;
use crate::node::Node;

/// The lock that makes this process the node's owner; dropped with it.
pub struct OwnerLock {
    lock: Flock<File>,
}

/// What an owner on its way out writes after its pid: its controller is
/// gone and it is rolling back, so the agent of the next drill waits for it
/// instead of observing.
const CLOSING: &str = "closing";

impl OwnerLock {
    /// Says, for agents started from now on, that this owner is rolling
    /// back to exit (best effort: at worst they observe, as before).
    pub fn closing(&mut self) {
        let pid = std::process::id();
        let f: &mut File = &mut self.lock;
        let _ = f
            .set_len(0)
            .and_then(|()| f.rewind())
            .and_then(|()| writeln!(f, "{pid} {CLOSING}"))
            .and_then(|()| f.flush());
    }
}

fn lock_path(state_dir: &Path) -> PathBuf {
    state_dir.join("owner.lock")
}

/// Takes the node's ownership if no live agent holds it, writing this
/// process's pid into the lock file for observers to read.
pub fn try_own(state_dir: &Path) -> Result<Option<OwnerLock>, String> {
    std::fs::create_dir_all(state_dir)
        .map_err(|e| format!("cannot create {}: {e}", state_dir.display()))?;
    let path = lock_path(state_dir);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut lock) => {
            let pid = std::process::id();
            let write = |f: &mut File| -> std::io::Result<()> {
                f.set_len(0)?;
                f.rewind()?;
                writeln!(f, "{pid}")?;
                f.flush()
            };
            write(&mut lock).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok(Some(OwnerLock { lock }))
        }
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(format!("cannot lock {}: {e}", path.display())),
    }
}

/// Takes the node's ownership, waiting out an owner on its way out: a
/// guard (it holds the lock only after its agent died, for as long as it
/// rolls back) or an agent whose controller is gone and that rolls back to
/// exit (the previous drill's, when drills follow each other). The agent
/// started now is the owner that comes next. A live agent holding it:
/// None, observe.
pub fn own_after_guard(node: &Node, patience: Duration) -> Result<Option<OwnerLock>, String> {
    let deadline = Instant::now() + patience;
    loop {
        if let Some(lock) = try_own(&node.state_dir)? {
            return Ok(Some(lock));
        }
        let text = lock_text(&node.state_dir).unwrap_or_default();
        let mut words = text.split_whitespace();
        let pid = words.next().and_then(|p| p.parse::<i32>().ok());
        let closing = words.next() == Some(CLOSING);
        let leaving = match pid {
            Some(pid) if is_agent_of(node, pid) => {
                closing
                    || std::fs::read(format!("/proc/{pid}/cmdline"))
                        .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == b"--guard"))
            }
            // Held, but the file names no live agent: its holder took the
            // lock a moment ago and has not written its pid yet (a guard
            // waking after its agent exited does that after every drill).
            _ => true,
        };
        if !leaving || Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn lock_text(state_dir: &Path) -> Option<String> {
    let mut text = String::new();
    File::open(lock_path(state_dir))
        .ok()?
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

/// The pid the owner wrote into the lock file.
pub fn owner_pid(state_dir: &Path) -> Option<i32> {
    lock_text(state_dir)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The faults the journal holds, read without taking it over.
pub fn held_faults(state_dir: &Path) -> Vec<HeldFault> {
    Journal::open(state_dir)
        .map(|j| {
            j.entries
                .iter()
                .map(|e| HeldFault {
                    fault_id: e.fault_id.clone(),
                    kind: e.kind.clone(),
                    drill: e.drill.clone(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `pid` is a corodrill agent (or its guard) on this node: same
/// network namespace, same program. Never signal a pid on its word alone.
fn is_agent_of(node: &Node, pid: i32) -> bool {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    comm.trim_end() == "corodrill-agent" && node.processes().contains(&pid)
}

/// The red button: ends the owner's faults and takes its place. The owner
/// is asked with SIGTERM (it rolls back and exits); one that has not let go
/// after `grace` is SIGKILLed, and its guard or this process rolls back.
/// Returns the lock once this process holds it; the caller rolls back
/// what the journal still holds.
pub fn take_over(node: &Node, grace: Duration) -> Result<OwnerLock, String> {
    let state_dir = &node.state_dir;
    let started = Instant::now();
    // The guard may need its own while after a SIGKILL: a rollback that
    // starts corosync waits for corosync.
    let deadline = started + grace + Duration::from_secs(40);
    let mut termed: Option<i32> = None;
    let mut killed = false;
    loop {
        if let Some(lock) = try_own(state_dir)? {
            return Ok(lock);
        }
        let holder = owner_pid(state_dir).filter(|&p| is_agent_of(node, p));
        if let Some(pid) = holder {
            if termed != Some(pid) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
                termed = Some(pid);
            } else if !killed && started.elapsed() >= grace {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                killed = true;
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the agent holding this node ({}) did not let go within {:?}",
                holder.map_or("pid unknown".into(), |p| format!("pid {p}")),
                deadline - started
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts the guard of this (owning) agent: `corodrill-agent --guard PID`
/// in a session of its own, so that the signals and hang-ups that end the
/// agent do not end it.
pub fn start_guard(node: &Node, lab_node: Option<&Path>) -> Result<(), String> {
    let exe = std::fs::read_link("/proc/self/exe")
        .map_err(|e| format!("cannot find the agent's own binary: {e}"))?;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(node.state_dir.join("guard.log"))
        .map_err(|e| format!("cannot open guard.log: {e}"))?;
    let mut cmd = crate::node::command(exe);
    cmd.arg("--guard")
        .arg(std::process::id().to_string())
        .arg("--state-dir")
        .arg(&node.state_dir);
    if let Some(dir) = lab_node {
        cmd.arg("--lab-node").arg(dir);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
    crate::node::spawn_detached(&mut cmd, "the guard")
}

/// The guard's wait: returns once `pid` has exited (at once if it has).
pub fn wait_for_exit(pid: i32) {
    // SAFETY: a plain syscall; the descriptor it returns is owned below.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        // ESRCH: gone already. Any other error (an old kernel): poll /proc.
        while Path::new(&format!("/proc/{pid}")).exists() && !crate::node::is_zombie(pid) {
            std::thread::sleep(Duration::from_millis(100));
        }
        return;
    }
    // SAFETY: pidfd_open returned a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    loop {
        let mut fds = [nix::poll::PollFd::new(
            fd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE) {
            Ok(_) => return,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
        }
    }
}
