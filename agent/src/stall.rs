//! Stalls of the machine, not the cluster: corosync's own warning that its
//! main process "was not scheduled for N ms" (read from its log as it is
//! written), and the agent's own timer waking late. A drill that fails while
//! the machine stalled is told apart from one whose cluster failed.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use corodrill_protocol::{EventBody, StallSource};

use crate::node::{Node, NodeKind};
use crate::wire::Out;

/// A timer that wakes this much later than asked says the machine stalled:
/// well above scheduling noise, well below corosync's own threshold (80 %
/// of the token).
pub const AGENT_LATE: Duration = Duration::from_millis(250);

/// The number of milliseconds in corosync's warning: "Corosync main process
/// was not scheduled (@1733150163194) for 1375.7979 ms (threshold is
/// 1320.0000 ms). Consider token timeout increase."
pub fn not_scheduled_ms(line: &str) -> Option<f64> {
    let (_, rest) = line.split_once("main process was not scheduled")?;
    let (_, after_for) = rest.split_once(" for ")?;
    let (ms, _) = after_for.split_once(" ms")?;
    ms.trim().parse().ok()
}

/// Where this node's corosync writes its log: the lab node's file, or
/// Debian's default; None where it logs only to the journal.
pub fn corosync_log(node: &Node) -> Option<PathBuf> {
    match &node.kind {
        NodeKind::Lab { dir } => Some(dir.join("corosync.log")),
        NodeKind::Real => {
            Some(PathBuf::from("/var/log/corosync/corosync.log")).filter(|p| p.is_file())
        }
    }
}

/// Follows corosync's log from its current end on a thread of its own and
/// sends a `Stall` event for each warning; on a node that logs only to the
/// journal, follows `journalctl -u corosync`.
pub fn watch_corosync(out: std::sync::Arc<Out>, node: &Node) {
    let file = corosync_log(node);
    std::thread::spawn(move || match file {
        Some(path) => follow_file(&out, &path),
        None => follow_journal(&out),
    });
}

fn report(out: &Out, line: &str) {
    if let Some(ms) = not_scheduled_ms(line) {
        out.event(EventBody::Stall {
            source: StallSource::Corosync,
            late_ms: ms.round() as u64,
            detail: line.trim().to_owned(),
        });
    }
}

fn follow_file(out: &Out, path: &Path) {
    let mut pos = std::fs::metadata(path).map_or(0, |m| m.len());
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let Ok(mut f) = std::fs::File::open(path) else {
            continue;
        };
        let len = f.metadata().map_or(0, |m| m.len());
        if len < pos {
            pos = 0; // rotated or truncated: a new file from its start
        }
        if len == pos || f.seek(SeekFrom::Start(pos)).is_err() {
            continue;
        }
        let mut reader = BufReader::new(f);
        let mut line = String::new();
        while let Ok(n) = reader.read_line(&mut line) {
            // A line still being written waits for its newline.
            if n == 0 || !line.ends_with('\n') {
                break;
            }
            pos += n as u64;
            report(out, &line);
            line.clear();
        }
    }
}

fn follow_journal(out: &Out) {
    use std::os::unix::process::CommandExt;
    let mut cmd = crate::node::command("journalctl");
    cmd.args(["-u", "corosync", "-f", "-n", "0", "-o", "cat"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    // SAFETY: prctl is async-signal-safe. journalctl must not outlive us.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
            Ok(())
        });
    }
    let Ok(mut child) = cmd.spawn() else {
        return;
    };
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            report(out, &line);
        }
    }
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_corosyncs_warning() {
        let line = "Dec 01 10:00:03.194 [1234] pve1 corosync warning [MAIN  ] Corosync main process \
                    was not scheduled (@1733047203194) for 1375.7979 ms (threshold is 1320.0000 ms). \
                    Consider token timeout increase.";
        assert_eq!(not_scheduled_ms(line), Some(1375.7979));
        assert_eq!(
            not_scheduled_ms("Corosync main process was not scheduled for 2000.5000 ms (threshold is 800.0000 ms)."),
            Some(2000.5)
        );
        assert_eq!(not_scheduled_ms("[QUORUM] Members[3]: 1 2 3"), None);
    }
}
