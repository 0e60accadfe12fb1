//! Delay and jitter where the kernel has no sch_netem: a delay
//! line in user space. An iptables-legacy rule (this kernel has xt NFQUEUE
//! but not nft's `queue`) hands the node's outgoing packets to its peers to
//! a netfilter queue; a thread of the agent holds each packet for the delay
//! (plus jitter), then accepts it.
//!
//! It fails safe: the rule says `--queue-bypass`, so the moment the agent
//! dies packets flow again, undelayed. The rule itself is journaled and
//! removed by rollback, the lease, a restarted agent or `--rollback`.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::Ctx;
use crate::node::{command, run_ok, run_output};

/// What rolls a delay line back: its rule chain in iptables' mangle table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DelayUndo {
    pub chain: String,
    pub queue: u16,
}

/// The thread holding packets; stopping it releases every packet it holds.
pub struct DelayLine {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for DelayLine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn plan(ctx: &mut Ctx) -> DelayUndo {
    // Queue numbers of this agent: distinct per fault, away from 0 (the
    // default queue other tools use).
    let n = ctx
        .object_name("")
        .rsplit('_')
        .next()
        .and_then(|n| n.parse::<u16>().ok())
        .unwrap_or(1);
    let queue = 4000 + n % 1000;
    DelayUndo {
        chain: format!("CORODRILL_D{queue}"),
        queue,
    }
}

pub fn apply(
    ctx: &mut Ctx,
    undo: &DelayUndo,
    peers: &[IpAddr],
    delay_ms: u32,
    jitter_ms: u32,
) -> Result<(), String> {
    if peers.is_empty() {
        return Err("a delay needs the peers whose traffic to delay".into());
    }
    if peers.iter().any(IpAddr::is_ipv6) {
        return Err("the user-space delay line handles IPv4 peers only (no sch_netem here)".into());
    }
    // Listen first: a rule without a listener would pass packets undelayed.
    let line = start(
        undo.queue,
        Duration::from_millis(u64::from(delay_ms)),
        Duration::from_millis(u64::from(jitter_ms)),
    )?;
    let ipt = |args: &[&str]| {
        run_ok(
            command("iptables-legacy")
                .args(["-w", "-t", "mangle"])
                .args(args),
        )
    };
    let queue = undo.queue.to_string();
    let result = (|| {
        ipt(&["-N", &undo.chain])?;
        for p in peers {
            ipt(&[
                "-A",
                &undo.chain,
                "-d",
                &p.to_string(),
                "-j",
                "NFQUEUE",
                "--queue-num",
                &queue,
                "--queue-bypass",
            ])?;
        }
        ipt(&["-I", "OUTPUT", "-j", &undo.chain])
    })();
    if let Err(e) = result {
        let _ = remove_rules(&undo.chain);
        return Err(format!("iptables-legacy (Debian package iptables): {e}"));
    }
    ctx.delay_lines.push((undo.chain.clone(), line));
    Ok(())
}

pub fn rollback(ctx: &mut Ctx, undo: &DelayUndo) -> Result<String, String> {
    // Rules first, so that no new packet enters the queue; then release
    // what the line holds.
    remove_rules(&undo.chain)?;
    ctx.delay_lines.retain(|(chain, _)| *chain != undo.chain);
    let rules = run_output(command("iptables-legacy").args(["-w", "-t", "mangle", "-S"]))?;
    if rules.contains(&undo.chain) {
        Err(format!("iptables mangle chain {} still there", undo.chain))
    } else {
        Ok(format!(
            "no iptables chain {}, queue {} released",
            undo.chain, undo.queue
        ))
    }
}

/// Idempotent: missing rules or chain are already removed.
fn remove_rules(chain: &str) -> Result<(), String> {
    let ipt = |args: &[&str]| {
        run_ok(
            command("iptables-legacy")
                .args(["-w", "-t", "mangle"])
                .args(args),
        )
    };
    while ipt(&["-D", "OUTPUT", "-j", chain]).is_ok() {}
    let exists = run_output(command("iptables-legacy").args(["-w", "-t", "mangle", "-S"]))
        .map(|rules| rules.lines().any(|l| l == format!("-N {chain}")))
        .unwrap_or(false);
    if exists {
        ipt(&["-F", chain])?;
        ipt(&["-X", chain])?;
    }
    Ok(())
}

fn start(queue_num: u16, delay: Duration, jitter: Duration) -> Result<DelayLine, String> {
    let mut queue =
        nfq::Queue::open().map_err(|e| format!("cannot open a netfilter queue: {e}"))?;
    queue
        .bind(queue_num)
        .map_err(|e| format!("cannot bind netfilter queue {queue_num}: {e}"))?;
    // Only the verdict matters: copy no payload to user space.
    let _ = queue.set_copy_range(queue_num, 0);
    queue.set_nonblocking(true);
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread =
        std::thread::spawn(move || hold_and_release(queue, queue_num, delay, jitter, &flag));
    Ok(DelayLine {
        stop,
        thread: Some(thread),
    })
}

/// Holds each packet until its time, in arrival order (jitter never
/// reorders: a packet leaves no earlier than the one before it).
fn hold_and_release(
    mut queue: nfq::Queue,
    queue_num: u16,
    delay: Duration,
    jitter: Duration,
    stop: &AtomicBool,
) {
    let mut held: VecDeque<(Instant, nfq::Message)> = VecDeque::new();
    let mut rng = Instant::now().elapsed().as_nanos() as u64 | 1;
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        while let Ok(msg) = queue.recv() {
            let spread = if jitter.is_zero() {
                Duration::ZERO
            } else {
                // xorshift: jitter needs spread, not cryptography.
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                Duration::from_nanos(rng % (2 * jitter.as_nanos() as u64 + 1))
            };
            let due = (Instant::now() + delay + spread)
                .checked_sub(jitter)
                .unwrap_or_else(Instant::now);
            let due = held.back().map_or(due, |(last, _)| due.max(*last));
            held.push_back((due, msg));
        }
        let now = Instant::now();
        while held.front().is_some_and(|(due, _)| stopping || *due <= now) {
            if let Some((_, mut msg)) = held.pop_front() {
                msg.set_verdict(nfq::Verdict::Accept);
                let _ = queue.verdict(msg);
            }
        }
        if stopping {
            let _ = queue.unbind(queue_num);
            return;
        }
        let wait = held
            .front()
            .map_or(Duration::from_millis(1), |(due, _)| {
                due.saturating_duration_since(now)
            })
            .min(Duration::from_millis(1));
        std::thread::sleep(wait);
    }
}
