//! The controller's end of an agent: starts the inventory's `connect`
//! command, reads the hello, sends requests and hands out replies and events.
//! This module knows the protocol, not experiments.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use corodrill_protocol::{
    parse_message, to_line, Event, Hello, Message, Op, Outcome, ProtocolError, Reply, Request,
};

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
    stdin: Option<ChildStdin>,
    replies: Receiver<Reply>,
    events: Receiver<Event>,
    stderr: Arc<Mutex<String>>,
    next_id: u64,
}

impl AgentConn {
    /// Runs `connect` with `sh -c` and waits for the agent's hello.
    pub fn connect(node: &str, connect: &str, timeout: Duration) -> Result<AgentConn, AgentError> {
        let mut child = Command::new("sh")
            .args(["-c", connect])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| AgentError::Spawn {
                node: node.to_owned(),
                command: connect.to_owned(),
                source,
            })?;
        let (hello_tx, hello_rx) = mpsc::channel();
        let (reply_tx, replies) = mpsc::channel();
        let (event_tx, events) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || read_messages(stdout, hello_tx, reply_tx, event_tx));
        }
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(mut err) = child.stderr.take() {
            let stderr = stderr.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = err.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut s) = stderr.lock() {
                        s.push_str(&String::from_utf8_lossy(&buf[..n]));
                    }
                }
            });
        }
        let stdin = child.stdin.take();
        let hello = match hello_rx.recv_timeout(timeout) {
            Ok(Ok(hello)) => hello,
            Ok(Err(source)) => {
                return Err(AgentError::Protocol {
                    node: node.to_owned(),
                    source,
                })
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                // Let the stderr reader catch the agent's last words.
                std::thread::sleep(Duration::from_millis(50));
                return Err(AgentError::NoHello {
                    node: node.to_owned(),
                    timeout,
                    stderr: stderr_suffix(&stderr),
                });
            }
        };
        hello
            .check_version()
            .map_err(|source| AgentError::Protocol {
                node: node.to_owned(),
                source,
            })?;
        let now_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64);
        Ok(AgentConn {
            node: node.to_owned(),
            clock_offset_us: hello.utc_us - now_us,
            hello,
            child,
            stdin,
            replies,
            events,
            stderr,
            next_id: 0,
        })
    }

    /// Sends one request and waits for its reply.
    pub fn request(&mut self, op: Op, timeout: Duration) -> Result<Outcome, AgentError> {
        self.next_id += 1;
        let id = self.next_id;
        let name = op_name(&op);
        let line = to_line(&Request { id, op });
        let gone = |conn: &AgentConn| AgentError::Gone {
            node: conn.node.clone(),
            stderr: stderr_suffix(&conn.stderr),
        };
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(gone(self));
        };
        if writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .is_err()
        {
            return Err(gone(self));
        }
        tracing::debug!(node = %self.node, request = %line, "request");
        let sent = Instant::now();
        let deadline = sent + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.replies.recv_timeout(left) {
                Ok(reply) if reply.id == id => {
                    tracing::debug!(node = %self.node, id, took_ms = sent.elapsed().as_secs_f64() * 1e3, outcome = ?reply.outcome, "reply");
                    return Ok(reply.outcome);
                }
                Ok(_) => continue,
                Err(RecvTimeoutError::Timeout) => {
                    return Err(AgentError::Timeout {
                        node: self.node.clone(),
                        op: name.to_owned(),
                        timeout,
                    })
                }
                Err(RecvTimeoutError::Disconnected) => return Err(gone(self)),
            }
        }
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
        self.stdin = None;
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

impl Drop for AgentConn {
    fn drop(&mut self) {
        // EOF on stdin is the agent's signal to roll back and exit.
        self.stdin = None;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_messages(
    stdout: impl Read,
    hello: Sender<Result<Hello, ProtocolError>>,
    replies: Sender<Reply>,
    events: Sender<Event>,
) {
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        match parse_message(&line) {
            Ok(Message::Hello(h)) => {
                let _ = hello.send(Ok(h));
            }
            Ok(Message::Reply(r)) => {
                let _ = replies.send(r);
            }
            Ok(Message::Event(e)) => {
                let _ = events.send(e);
            }
            Err(e) => {
                let _ = hello.send(Err(e));
            }
        }
    }
}

fn stderr_suffix(stderr: &Mutex<String>) -> String {
    let text = stderr
        .lock()
        .map(|s| s.trim().to_owned())
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
        Op::WatchResources { .. } => "watch_resources",
        Op::Shutdown => "shutdown",
        Op::Preflight { .. } => "preflight",
    }
}
