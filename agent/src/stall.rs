//! Stalls of the machine, not the cluster: corosync's own warning that its
//! main process "was not scheduled for N ms" (read from its log as it is
//! written), and the agent's own timer waking late. A drill that fails while
//! the machine stalled is told apart from one whose cluster failed. The
//! same log's late tokens go to the controller with the ring they were
//! lost in: only it knows whether a fault explains them.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
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

/// The node ids of corosync's "[QUORUM] Sync members[2]: 1 3": the ring
/// it began to synchronise, logged at every membership change. None for a
/// list corosync split over several lines (each but the last ending in
/// `\`) or one whose count does not match: no partial ring.
pub fn sync_members(line: &str) -> Option<Vec<u32>> {
    let (_, rest) = line.split_once("Sync members[")?;
    let (count, ids) = rest.split_once("]:")?;
    let ids: Vec<u32> = ids
        .split_whitespace()
        .map(|id| id.parse().ok())
        .collect::<Option<_>>()?;
    (count.trim().parse() == Ok(ids.len())).then_some(ids)
}

/// The milliseconds of totem's "Token has not been received in 750 ms":
/// how long since the last token, logged first when a share of the token
/// timeout (token_warning) has passed and again while none comes.
pub fn token_late_ms(line: &str) -> Option<u64> {
    let (_, rest) = line.split_once("Token has not been received in ")?;
    let (ms, _) = rest.split_once(" ms")?;
    ms.trim().parse().ok()
}

/// What the log has said so far that later lines are read against.
#[derive(Default)]
struct LogState {
    /// The last "Sync members" ring: the nodes this node last formed a
    /// membership with.
    ring: Vec<u32>,
}

impl LogState {
    fn line(&mut self, out: &Out, line: &str) {
        if let Some(ms) = not_scheduled_ms(line) {
            out.event(EventBody::Stall {
                source: StallSource::Corosync,
                late_ms: ms.round() as u64,
                detail: line.trim().to_owned(),
            });
        } else if let Some(ring) = sync_members(line) {
            self.ring = ring;
        } else if let Some(late_ms) = token_late_ms(line) {
            out.event(EventBody::TokenLate {
                late_ms,
                ring: self.ring.clone(),
                detail: line.trim().to_owned(),
            });
        }
    }

    /// The last ring in a log's tail (lines written before the agent
    /// started following it): a stable cluster logged it long ago. Only
    /// whole lines: the last may still be being written.
    fn ring_from_tail(&mut self, text: &str) {
        let whole = text.rfind('\n').map_or("", |end| &text[..end]);
        if let Some(ring) = whole.lines().rev().find_map(sync_members) {
            self.ring = ring;
        }
    }
}

/// How much of the log's end is read for the ring at the start.
const TAIL_BYTES: u64 = 256 * 1024;

fn follow_file(out: &Out, path: &Path) {
    let mut pos = std::fs::metadata(path).map_or(0, |m| m.len());
    let mut state = LogState::default();
    if let Ok(mut f) = std::fs::File::open(path) {
        let from = pos.saturating_sub(TAIL_BYTES);
        let mut tail = Vec::new();
        if f.seek(SeekFrom::Start(from)).is_ok()
            && (&mut f).take(pos - from).read_to_end(&mut tail).is_ok()
        {
            state.ring_from_tail(&String::from_utf8_lossy(&tail));
        }
    }
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
            state.line(out, &line);
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
    // The ring from the journal's recent lines, read once the follower
    // runs: a line logged in between comes through the follower after.
    let mut state = LogState::default();
    if let Ok(recent) = crate::node::command("journalctl")
        .args(["-u", "corosync", "-n", "2000", "-o", "cat", "--no-pager"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
    {
        state.ring_from_tail(&String::from_utf8_lossy(&recent.stdout));
    }
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            state.line(out, &line);
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

    #[test]
    fn reads_the_ring_and_the_late_token() {
        let sync = "Dec 03 02:10:11.420 [812] pve1 corosync notice  [QUORUM] Sync members[2]: 1 3";
        assert_eq!(sync_members(sync), Some(vec![1, 3]));
        assert_eq!(sync_members("[QUORUM] Sync members[1]: 2"), Some(vec![2]));
        assert_eq!(sync_members("[QUORUM] Sync left[1]: 2"), None);
        // A list split over lines, or cut short: no ring.
        assert_eq!(sync_members("[QUORUM] Sync members[40]: 1 2 3 4 \\"), None);
        assert_eq!(sync_members("[QUORUM] Sync members[3]: 1 2"), None);
        assert_eq!(sync_members("[QUORUM] Members[3]: 1 2 3"), None);
        let token = "Dec 03 02:10:13.102 [812] pve1 corosync notice  [TOTEM ] Token has not been \
                     received in 1238 ms ";
        assert_eq!(token_late_ms(token), Some(1238));
        assert_eq!(token_late_ms(sync), None);
        let mut state = LogState::default();
        state.ring_from_tail(&format!(
            "[QUORUM] Sync members[3]: 1 2 3\n{token}\n{sync}\n[QUORUM] Members[2]: 1 3\n"
        ));
        assert_eq!(state.ring, vec![1, 3]);
        // A last line still being written is not read.
        let mut state = LogState::default();
        state.ring_from_tail("[QUORUM] Sync members[3]: 1 2 3\n[QUORUM] Sync members[2]: 1");
        assert_eq!(state.ring, vec![1, 2, 3]);
    }
}
