//! corodrill's one nftables table on this node, held by a long-lived `nft -i`
//! child.
//!
//! The table is created with `flags owner`: it belongs to the netlink socket
//! of the `nft` process that made it, no other process can change or delete
//! it, and the kernel deletes it the instant that process dies. That process
//! dies with the agent (its stdin is the agent's pipe, and PR_SET_PDEATHSIG),
//! so no crash of the agent can leave a cut behind. (A one-shot `nft -f` per
//! change, as the `nftables` crate runs, would own the table for the
//! lifetime of that one command only.)

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

pub const TABLE: &str = "corodrill";

#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("cannot start nft (Debian package nftables): {0}")]
    Spawn(std::io::Error),
    #[error("nft: {0}")]
    Rejected(String),
    #[error("nft stopped answering: {0}")]
    Gone(String),
}

pub struct NftSession {
    child: Child,
    stdin: ChildStdin,
    /// nft's output lines, each with the monotonic time it was read.
    lines: Receiver<(String, u64)>,
    next_marker: u64,
    /// Whether this session's table exists now.
    table: bool,
}

impl NftSession {
    /// Starts `nft -i`; the owned table comes with the first fault
    /// (`create_table`), and faults add chains of their own.
    pub fn start() -> Result<NftSession, NftError> {
        let (read_end, write_end) = std::io::pipe().map_err(NftError::Spawn)?;
        let write_err = write_end.try_clone().map_err(NftError::Spawn)?;
        let mut cmd = crate::node::command("nft");
        // `-e`: nft echoes each change after its commit (and a line naming
        // the new generation), flushed at once: the time a change took
        // effect, without waiting for the marker.
        cmd.args(["-e", "-i"])
            .stdin(Stdio::piped())
            // One stream for output and errors: nft handles commands in
            // order, so an error always comes before the next marker.
            .stdout(write_end)
            .stderr(write_err);
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to
        // SIGKILL this child when the agent's thread that spawned it dies.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(NftError::Spawn)?;
        drop(cmd);
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| NftError::Gone("no stdin".into()))?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(read_end).lines() {
                let Ok(line) = line else { break };
                if tx.send((line, crate::wire::mono_ns())).is_err() {
                    break;
                }
            }
        });
        Ok(NftSession {
            child,
            stdin,
            lines,
            next_marker: 0,
            table: false,
        })
    }

    /// Creates the owned table if this session has none.
    pub fn create_table(&mut self) -> Result<(), NftError> {
        if !self.table {
            self.run(&format!("add table inet {TABLE} {{ flags owner; }}"))?;
            self.table = true;
        }
        Ok(())
    }

    /// Deletes the whole table, every fault's chains and sets at once. The
    /// session stays for the next fault: killing it would do the same, but
    /// waiting for the kernel to release a dying netlink socket costs tens
    /// of milliseconds.
    pub fn delete_table(&mut self) -> Result<(), NftError> {
        if self.table {
            self.run(&format!("delete table inet {TABLE}"))?;
            self.table = false;
        }
        Ok(())
    }

    /// Runs one nft command line (several commands separated by `;` form
    /// one atomic transaction) and waits for nft's verdict.
    pub fn run(&mut self, commands: &str) -> Result<(), NftError> {
        self.run_committed(commands).map(drop)
    }

    /// `run`, saying when nft reported the transaction committed (the
    /// monotonic time its echo was read; None if it changed nothing): the
    /// change was in effect by then, a little earlier than nft's verdict.
    pub fn run_committed(&mut self, commands: &str) -> Result<Option<u64>, NftError> {
        self.next_marker += 1;
        // A marker nft is sure to reject, echoing our unique name back: when
        // it appears, every line before it belongs to `commands`.
        let marker = format!("corodrill_marker_{}", self.next_marker);
        let script = format!("{commands}\nlist set inet {TABLE} {marker}\n");
        self.stdin
            .write_all(script.as_bytes())
            .and_then(|()| self.stdin.flush())
            .map_err(|e| NftError::Gone(e.to_string()))?;
        let mut output: Vec<String> = Vec::new();
        let mut committed = None;
        loop {
            let line = match self.lines.recv_timeout(Duration::from_secs(10)) {
                Ok((line, read_at)) => {
                    if committed.is_none() && line.starts_with("# new generation") {
                        committed = Some(read_at);
                    }
                    line
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(NftError::Gone("no answer in 10 s".into()))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(NftError::Gone("nft exited".into()))
                }
            };
            if line.contains(&marker) {
                break;
            }
            output.push(line);
        }
        // The marker's own "Error: ..." line is the last one before it.
        output.pop();
        // nft follows each "Error: ..." with the command line and a caret
        // line under the culprit: the first two lines say it all.
        let mut errors: Vec<&str> = output
            .iter()
            .map(String::as_str)
            .filter(|l| l.starts_with("Error"))
            .collect();
        errors.dedup();
        if !errors.is_empty() {
            return Err(NftError::Rejected(errors.join(" | ")));
        }
        Ok(committed)
    }

    /// The table's text as `nft list table` shows it, read by a separate
    /// process: what any operator would see.
    pub fn list() -> Option<String> {
        let out = crate::node::command("nft")
            .args(["list", "table", "inet", TABLE])
            .stderr(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for NftSession {
    fn drop(&mut self) {
        // Killing the owner is the rollback: the kernel deletes the table.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
