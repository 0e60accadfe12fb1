//! The controller's end of an agent: starts the inventory's `connect`
//! command, reads the hello, sends requests and hands out replies and events.
//! This module knows the protocol, not experiments.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use corodrill_protocol::{
    parse_message, to_line, Event, Hello, Message, Op, Outcome, ProtocolError, Reply, Request, Role,
};

/// The agent's binary name, as installed and as `--version` prints it.
pub const AGENT: &str = "corodrill-agent";

/// The agent binary this controller came with: beside it (an install, or
/// cargo's target dir), or one level up (cargo's test binaries live in
/// target/*/deps).
pub fn bundled_agent() -> Option<PathBuf> {
    std::env::current_exe().ok().and_then(|exe| {
        exe.ancestors()
            .skip(1)
            .take(2)
            .map(|dir| dir.join(AGENT))
            .find(|p| p.is_file())
    })
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{node}: cannot run the connect command {command:?}: {source}")]
    Spawn {
        node: String,
        command: String,
        source: std::io::Error,
    },
    #[error("{node}: the agent did not say hello within {timeout:?}{stderr}")]
    NoHello {
        node: String,
        timeout: Duration,
        stderr: String,
    },
    #[error("{node}: {source}")]
    Protocol { node: String, source: ProtocolError },
    #[error("{node}: no reply to {op} within {timeout:?}")]
    Timeout {
        node: String,
        op: String,
        timeout: Duration,
    },
    #[error("{node}: the agent is gone{stderr}")]
    Gone { node: String, stderr: String },
}

pub struct AgentConn {
    pub node: String,
    pub hello: Hello,
    /// The node's wall clock minus ours when the hello arrived (its transit
    /// time, well under a millisecond in a lab, counts against the node).
    pub clock_offset_us: i64,
    child: Child,
    link: AgentHandle,
    events: Receiver<Event>,
}

/// The request side of an agent connection, shareable between threads:
/// replies are matched to requests by id, so a lease renewal from one
/// thread never waits behind a slow apply from another.
#[derive(Clone)]
pub struct AgentHandle(Arc<Link>);

struct Link {
    node: String,
    /// Tells this connection apart from a later one to the same node.
    id: u64,
    stdin: Mutex<Option<ChildStdin>>,
    /// Requests awaiting their reply, by id; emptied when the agent's
    /// stdout closes (every waiter then hears the agent is gone).
    pending: Mutex<Option<HashMap<u64, Sender<Reply>>>>,
    next_id: AtomicU64,
    stderr: Arc<Mutex<Vec<u8>>>,
}

/// How much of an agent's stderr is kept: its last words, for errors. An
/// agent (or an ssh in front of it) that writes without end must not grow
/// the controller without end.
const STDERR_KEPT: usize = 64 * 1024;

/// Appends `chunk` to `kept`, keeping only the last `STDERR_KEPT` bytes.
fn keep_tail(kept: &mut Vec<u8>, chunk: &[u8]) {
    kept.extend_from_slice(chunk);
    if kept.len() > STDERR_KEPT {
        kept.drain(..kept.len() - STDERR_KEPT);
    }
}

impl AgentConn {
    /// Runs `connect` with `sh -c` and waits for the agent's hello. The
    /// command runs in a process group of its own: a Ctrl-C at the
    /// terminal is the controller's to handle (it heals, then closes the
    /// agents), and an agent that never says hello is killed with its group.
    pub fn connect(node: &str, connect: &str, timeout: Duration) -> Result<AgentConn, AgentError> {
        let mut child = Command::new("sh")
            .args(["-c", connect])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|source| AgentError::Spawn {
                node: node.to_owned(),
                command: connect.to_owned(),
                source,
            })?;
        let (hello_tx, hello_rx) = mpsc::channel();
        let (event_tx, events) = mpsc::channel();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        static CONNECTIONS: AtomicU64 = AtomicU64::new(0);
        let link = Arc::new(Link {
            node: node.to_owned(),
            id: CONNECTIONS.fetch_add(1, Ordering::Relaxed),
            stdin: Mutex::new(child.stdin.take()),
            pending: Mutex::new(Some(HashMap::new())),
            next_id: AtomicU64::new(0),
            stderr: stderr.clone(),
        });
        if let Some(stdout) = child.stdout.take() {
            let link = link.clone();
            std::thread::spawn(move || read_messages(stdout, hello_tx, &link, event_tx));
        }
        if let Some(mut err) = child.stderr.take() {
            let stderr = stderr.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = err.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut kept) = stderr.lock() {
                        keep_tail(&mut kept, &buf[..n]);
                    }
                }
            });
        }
        let hello = match hello_rx.recv_timeout(timeout) {
            Ok(Ok(hello)) => hello,
            Ok(Err(source)) => {
                kill_group(&mut child);
                return Err(AgentError::Protocol {
                    node: node.to_owned(),
                    source,
                });
            }
            Err(_) => {
                kill_group(&mut child);
                // Let the stderr reader catch the agent's last words.
                std::thread::sleep(Duration::from_millis(50));
                return Err(AgentError::NoHello {
                    node: node.to_owned(),
                    timeout,
                    stderr: stderr_suffix(&stderr),
                });
            }
        };
        if let Err(source) = hello.check_version() {
            kill_group(&mut child);
            return Err(AgentError::Protocol {
                node: node.to_owned(),
                source,
            });
        }
        let now_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64);
        Ok(AgentConn {
            node: node.to_owned(),
            clock_offset_us: hello.utc_us - now_us,
            hello,
            child,
            link: AgentHandle(link),
            events,
        })
    }

    /// Sends one request and waits for its reply.
    pub fn request(&self, op: Op, timeout: Duration) -> Result<Outcome, AgentError> {
        self.link.request(op, timeout)
    }

    /// A handle that sends requests from another thread.
    pub fn handle(&self) -> AgentHandle {
        self.link.clone()
    }

    /// Whether this agent holds its node's faults (or only observes them,
    /// because another agent does).
    pub fn owns(&self) -> bool {
        matches!(self.hello.role, Role::Owner)
    }

    /// Whether the agent's process (its connect command) still runs.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The agent's events, in the order it sent them.
    pub fn events(&self) -> &Receiver<Event> {
        &self.events
    }

    /// Hands the event stream to another owner (the drill's collector);
    /// `events()` then yields nothing.
    pub fn take_events(&mut self) -> Receiver<Event> {
        let (_, empty) = mpsc::channel();
        std::mem::replace(&mut self.events, empty)
    }

    /// The agent's process (for tests that kill it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Closes the agent's stdin (it rolls everything back and exits) and
    /// waits for it to go.
    pub fn close(mut self, timeout: Duration) -> bool {
        self.link.0.close_stdin();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }
}

impl AgentHandle {
    pub fn node(&self) -> &str {
        &self.0.node
    }

    /// This connection's number, unique in this process.
    pub fn connection(&self) -> u64 {
        self.0.id
    }

    /// Sends one request and waits for its reply; other threads may send
    /// theirs meanwhile.
    pub fn request(&self, op: Op, timeout: Duration) -> Result<Outcome, AgentError> {
        let link = &self.0;
        let id = link.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let name = op_name(&op);
        let line = to_line(&Request { id, op });
        let gone = || AgentError::Gone {
            node: link.node.clone(),
            stderr: stderr_suffix(&link.stderr),
        };
        let (tx, rx) = mpsc::channel();
        match link
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            Some(pending) => pending.insert(id, tx),
            None => return Err(gone()),
        };
        let forget = || {
            if let Some(p) = link
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_mut()
            {
                p.remove(&id);
            }
        };
        let written = {
            let mut stdin = link.stdin.lock().unwrap_or_else(|p| p.into_inner());
            match stdin.as_mut() {
                Some(stdin) => writeln!(stdin, "{line}")
                    .and_then(|()| stdin.flush())
                    .is_ok(),
                None => false,
            }
        };
        if !written {
            forget();
            return Err(gone());
        }
        tracing::debug!(node = %link.node, request = %line, "request");
        let sent = Instant::now();
        match rx.recv_timeout(timeout) {
            Ok(reply) => {
                tracing::debug!(node = %link.node, id, took_ms = sent.elapsed().as_secs_f64() * 1e3, outcome = ?reply.outcome, "reply");
                Ok(reply.outcome)
            }
            Err(RecvTimeoutError::Timeout) => {
                forget();
                Err(AgentError::Timeout {
                    node: link.node.clone(),
                    op: name.to_owned(),
                    timeout,
                })
            }
            Err(RecvTimeoutError::Disconnected) => Err(gone()),
        }
    }
}

impl Link {
    /// EOF on the agent's stdin: its signal to roll back and exit.
    fn close_stdin(&self) {
        *self.stdin.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// Kills a connect command and whatever it started (its process group).
fn kill_group(child: &mut Child) {
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for AgentConn {
    fn drop(&mut self) {
        // EOF on stdin is the agent's signal to roll back and exit.
        self.link.0.close_stdin();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        kill_group(&mut self.child);
    }
}

fn read_messages(
    stdout: impl Read,
    hello: Sender<Result<Hello, ProtocolError>>,
    link: &Link,
    events: Sender<Event>,
) {
    let mut reader = BufReader::new(stdout);
    loop {
        let line = match next_line(&mut reader, MAX_LINE) {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(e) => {
                let _ = hello.send(Err(e));
                continue;
            }
        };
        match parse_message(&line) {
            Ok(Message::Hello(h)) => {
                let _ = hello.send(Ok(h));
            }
            Ok(Message::Reply(r)) => {
                let waiter = link
                    .pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .as_mut()
                    .and_then(|p| p.remove(&r.id));
                if let Some(w) = waiter {
                    let _ = w.send(r);
                }
            }
            Ok(Message::Event(e)) => {
                let _ = events.send(e);
            }
            Err(e) => {
                let _ = hello.send(Err(e));
            }
        }
    }
    // The agent is gone: every waiter hears it now, not at its timeout.
    *link.pending.lock().unwrap_or_else(|p| p.into_inner()) = None;
}

/// The longest line an agent sends: a hello or an event is a few KiB; a
/// status with many held faults stays far below this. Anything longer is
/// not the agent speaking, and is skipped rather than kept in memory.
const MAX_LINE: usize = 1 << 20;

/// The next line (without its newline), None at the end of the stream. A
/// line longer than `max` is read through to its end without keeping it,
/// and is an error; a stream that fails to read ends like one that closed.
fn next_line(reader: &mut impl BufRead, max: usize) -> Result<Option<String>, ProtocolError> {
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let (done, used) = match reader.fill_buf() {
            Ok([]) => {
                return Ok((!line.is_empty() && !too_long)
                    .then(|| String::from_utf8_lossy(&line).into_owned()));
            }
            Ok(buf) => match buf.iter().position(|b| *b == b'\n') {
                Some(i) => {
                    if !too_long {
                        line.extend_from_slice(&buf[..i]);
                    }
                    (true, i + 1)
                }
                None => {
                    if !too_long {
                        line.extend_from_slice(buf);
                    }
                    (false, buf.len())
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return Ok(None),
        };
        reader.consume(used);
        if line.len() > max {
            too_long = true;
            line = Vec::new();
        }
        if done {
            return if too_long {
                Err(ProtocolError::TooLong { max })
            } else {
                Ok(Some(String::from_utf8_lossy(&line).into_owned()))
            };
        }
    }
}

fn stderr_suffix(stderr: &Mutex<Vec<u8>>) -> String {
    // Decoded only now: a read may have ended inside a character.
    let text = stderr
        .lock()
        .map(|kept| String::from_utf8_lossy(&kept).trim().to_owned())
        .unwrap_or_default();
    if text.is_empty() {
        String::new()
    } else {
        format!(
            ": {}",
            text.lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join(" / ")
        )
    }
}

fn op_name(op: &Op) -> &'static str {
    match op {
        Op::Apply { .. } => "apply",
        Op::Renew { .. } => "renew",
        Op::Heal { .. } => "heal",
        Op::HealAll => "heal_all",
        Op::Watch => "watch",
        Op::Clock => "clock",
        Op::WatchResources { .. } => "watch_resources",
        Op::Shutdown => "shutdown",
        Op::Preflight { .. } => "preflight",
        Op::TakeOver { .. } => "take_over",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines come out whole, a line past the limit is skipped with an
    /// error (without being kept), and the lines after it still come.
    #[test]
    fn lines_are_bounded() {
        let long = "x".repeat(100);
        let input = format!("first\n{long}\nlast without newline");
        // A small buffer, so that lines cross reads.
        let mut reader = BufReader::with_capacity(7, input.as_bytes());
        assert_eq!(
            next_line(&mut reader, 50).unwrap().as_deref(),
            Some("first")
        );
        assert!(matches!(
            next_line(&mut reader, 50),
            Err(ProtocolError::TooLong { max: 50 })
        ));
        assert_eq!(
            next_line(&mut reader, 50).unwrap().as_deref(),
            Some("last without newline")
        );
        assert_eq!(next_line(&mut reader, 50).unwrap(), None);
    }

    /// An agent that writes to stderr without end: the controller keeps
    /// its last 64 KiB, and its last lines still make the error.
    #[test]
    fn stderr_is_kept_to_its_tail() {
        let mut kept = Vec::new();
        let line = b"ssh: noise noise noise\n";
        for _ in 0..100_000 {
            keep_tail(&mut kept, line);
        }
        keep_tail(&mut kept, "last words \u{e9}\n".as_bytes());
        assert_eq!(kept.len(), STDERR_KEPT);
        let suffix = stderr_suffix(&Mutex::new(kept));
        assert!(suffix.ends_with(" / last words \u{e9}"), "{suffix}");
        assert_eq!(suffix.matches(" / ").count(), 4, "{suffix}");
    }
}
