//! The agent's conversation with the controller over stdin/stdout, the
//! leases, and the journal-first discipline: a fault is journaled before it
//! takes effect and leaves the journal only once it is rolled back.

use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use corodrill_protocol::{
    parse_request, to_line, Event, EventBody, Fault, Hello, Message, Op, Outcome, Reply,
    RollbackReport, PROTOCOL_VERSION,
};

use crate::faults::{self, clock, cut, Ctx, Undo};
use crate::journal::{Entry, Journal};

/// The agent's stdout: one whole JSON line at a time, from any thread.
pub struct Out(Mutex<std::io::Stdout>);

impl Out {
    pub fn new() -> Out {
        Out(Mutex::new(std::io::stdout()))
    }

    pub fn send(&self, msg: &Message) {
        let line = to_line(msg);
        let mut out = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // A controller that is gone shows up as EOF on stdin; the write error
        // itself needs no handling here.
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    }

    pub fn event(&self, body: EventBody) {
        self.event_at(mono_ns(), utc_us(), body);
    }

    /// An event stamped with when it was seen, not when it was sent.
    pub fn event_at(&self, mono_ns: u64, utc_us: i64, body: EventBody) {
        self.send(&Message::Event(Event {
            mono_ns,
            utc_us,
            body,
        }));
    }
}

pub fn mono_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

pub fn utc_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

struct Active {
    fault_id: String,
    kind: String,
    undo: Undo,
    expires: Instant,
}

pub struct Agent {
    ctx: Ctx,
    journal: Journal,
    active: Vec<Active>,
}

/// The kernel-side expiry of cut elements: past the lease, so that only a
/// hung agent ever reaches it.
fn deadman(lease: Duration) -> Duration {
    lease + Duration::from_secs(2)
}

impl Agent {
    pub fn new(ctx: Ctx, journal: Journal) -> Agent {
        Agent {
            ctx,
            journal,
            active: Vec::new(),
        }
    }

    /// Rolls back what a previous agent journaled (it died or was killed).
    pub fn recover(&mut self) -> Vec<RollbackReport> {
        let entries = self.journal.entries.clone();
        let this_boot = crate::journal::boot_id();
        entries
            .into_iter()
            .map(|e| {
                // At boot (the rollback unit runs before corosync) a fault
                // of an earlier boot is mostly gone already: acting on it
                // (starting corosync, say) would only wait on the boot.
                let rebooted = this_boot.is_some() && e.boot_id.is_some() && e.boot_id != this_boot;
                if let Some(result) = rebooted.then(|| faults::after_reboot(&e.undo)).flatten() {
                    let _ = self.journal.remove(&e.fault_id);
                    return report(&e.fault_id, &e.kind, result);
                }
                let report = report(
                    &e.fault_id,
                    &e.kind,
                    faults::rollback(&mut self.ctx, &e.undo),
                );
                if report.clean {
                    let _ = self.journal.remove(&e.fault_id);
                }
                report
            })
            .collect()
    }

    fn apply(
        &mut self,
        fault_id: &str,
        fault: &Fault,
        lease: Duration,
        allow_management_cut: bool,
    ) -> Outcome {
        if self.active.iter().any(|a| a.fault_id == fault_id) {
            return error(format!("fault {fault_id:?} is already applied"));
        }
        self.ctx.deadman = deadman(lease);
        let kind = fault.kind().to_owned();
        let journal = &mut self.journal;
        let mut record = |undo: &Undo| {
            journal.record(Entry {
                fault_id: fault_id.to_owned(),
                kind: kind.clone(),
                undo: undo.clone(),
                boot_id: crate::journal::boot_id(),
            })
        };
        match faults::apply(&mut self.ctx, fault, allow_management_cut, &mut record) {
            Ok(undo) => {
                let at = mono_ns();
                // The undo may have learnt more while applying (a strobe's start).
                if let Err(e) = self.journal.update(fault_id, &undo) {
                    return error(e);
                }
                self.active.push(Active {
                    fault_id: fault_id.to_owned(),
                    kind,
                    undo,
                    expires: Instant::now() + lease,
                });
                Outcome::Ok { mono_ns: at }
            }
            Err(e) => {
                // Nothing stayed applied: the entry journaled for it goes.
                let _ = self.journal.remove(fault_id);
                error(format!("{} {fault_id:?} not applied: {e}", fault.kind()))
            }
        }
    }

    fn renew(&mut self, lease: Duration) -> Outcome {
        self.ctx.deadman = deadman(lease);
        let mut problems = Vec::new();
        for a in &mut self.active {
            a.expires = Instant::now() + lease;
            let objects = match &a.undo {
                Undo::Nft(o) => Some(o.clone()),
                Undo::Degrade(d) => d.nft.clone(),
                _ => None,
            };
            if let Some(objects) = objects {
                if let Err(e) = cut::renew(&mut self.ctx, &objects) {
                    problems.push(format!("{}: {e}", a.fault_id));
                }
            }
        }
        if problems.is_empty() {
            Outcome::Ok { mono_ns: mono_ns() }
        } else {
            error(problems.join("; "))
        }
    }

    fn heal(&mut self, fault_id: Option<&str>) -> Outcome {
        let mut reports = Vec::new();
        // Newest first: a later fault may stand on an earlier one.
        while let Some(i) = self
            .active
            .iter()
            .rposition(|a| fault_id.is_none_or(|id| a.fault_id == id))
        {
            let a = self.active.remove(i);
            reports.push(self.roll_back(&a));
        }
        Outcome::Healed {
            mono_ns: mono_ns(),
            reports,
        }
    }

    fn roll_back(&mut self, a: &Active) -> RollbackReport {
        let report = report(
            &a.fault_id,
            &a.kind,
            faults::rollback(&mut self.ctx, &a.undo),
        );
        if report.clean {
            let _ = self.journal.remove(&a.fault_id);
        }
        report
    }

    /// Rolls back faults whose lease ran out, and flips clock strobes.
    fn tick(&mut self, out: &Out) {
        let now = Instant::now();
        let mut expired = Vec::new();
        while let Some(i) = self.active.iter().position(|a| a.expires <= now) {
            let a = self.active.remove(i);
            expired.push(self.roll_back(&a));
        }
        if !expired.is_empty() {
            out.event(EventBody::LeaseExpired { reports: expired });
        }
        for i in 0..self.active.len() {
            if let Undo::Clock(c) = &self.active[i].undo {
                if let Ok(Some(next)) = clock::strobe(c) {
                    let undo = Undo::Clock(next);
                    let _ = self.journal.update(&self.active[i].fault_id, &undo);
                    self.active[i].undo = undo;
                }
            }
        }
    }

    pub fn heal_all(&mut self) -> Vec<RollbackReport> {
        match self.heal(None) {
            Outcome::Healed { reports, .. } => reports,
            _ => Vec::new(),
        }
    }
}

fn report(fault_id: &str, kind: &str, result: Result<String, String>) -> RollbackReport {
    let (clean, detail) = match result {
        Ok(d) => (true, d),
        Err(d) => (false, d),
    };
    RollbackReport {
        fault_id: fault_id.to_owned(),
        kind: kind.to_owned(),
        clean,
        detail,
    }
}

fn error(message: String) -> Outcome {
    Outcome::Error { message }
}

/// The signals that stop the agent: one thread takes them with sigwait,
/// every other thread has them blocked.
pub fn stop_signals() -> nix::sys::signal::SigSet {
    let mut set = nix::sys::signal::SigSet::empty();
    for s in [
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGHUP,
    ] {
        set.add(s);
    }
    set
}

fn lock(agent: &Mutex<Agent>) -> MutexGuard<'_, Agent> {
    agent.lock().unwrap_or_else(|p| p.into_inner())
}

/// Serves the controller until stdin closes or it says shutdown; every fault
/// is rolled back before this returns.
pub fn serve(mut agent: Agent, hello_node: String, node_id: Option<u32>) -> i32 {
    let out = Arc::new(Out::new());
    let recovered = agent.recover();
    let capabilities = agent.ctx.node.capabilities();
    let mut hello = Hello {
        protocol_version: PROTOCOL_VERSION,
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        node: hello_node,
        node_id,
        capabilities,
        utc_us: 0,
        quorum_config: crate::quorum::quorum_config(),
        recovered,
        ha_services: crate::pve_ha::configured_services(
            &agent.ctx.node.pve_file(crate::pve_ha::RESOURCES_CFG),
        ),
    };
    // Read the clock last: the controller compares it with its own on arrival.
    hello.utc_us = utc_us();
    out.send(&Message::Hello(hello));
    let agent = Arc::new(Mutex::new(agent));

    // Leases and strobes.
    {
        let agent = agent.clone();
        let out = out.clone();
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(10));
            lock(&agent).tick(&out);
        });
    }
    // SIGTERM, SIGINT, SIGHUP: roll back, then exit.
    {
        let agent = agent.clone();
        std::thread::spawn(move || {
            if let Ok(sig) = stop_signals().wait() {
                crate::resources::stop_probes();
                let reports = lock(&agent).heal_all();
                eprintln!(
                    "corodrill-agent: {sig}: rolled back {} fault(s)",
                    reports.len()
                );
                std::process::exit(128 + sig as i32);
            }
        });
    }

    let mut watching = false;
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        let request = match parse_request(&line) {
            Ok(r) => r,
            Err(e) => {
                out.send(&Message::Reply(Reply {
                    id: 0,
                    outcome: error(format!("{e}: {line}")),
                }));
                continue;
            }
        };
        let outcome = match &request.op {
            Op::Apply {
                fault_id,
                fault,
                lease_ms,
                allow_management_cut,
            } => lock(&agent).apply(
                fault_id,
                fault,
                Duration::from_millis(*lease_ms),
                *allow_management_cut,
            ),
            Op::Renew { lease_ms } => lock(&agent).renew(Duration::from_millis(*lease_ms)),
            Op::Heal { fault_id } => lock(&agent).heal(Some(fault_id)),
            Op::HealAll => lock(&agent).heal(None),
            Op::Watch => {
                if !watching {
                    watching = true;
                    let out = out.clone();
                    std::thread::spawn(move || crate::quorum::watch(&out));
                }
                Outcome::Ok { mono_ns: mono_ns() }
            }
            Op::WatchResources { node, watches } => {
                crate::resources::watch_all(&out, node, watches.clone());
                Outcome::Ok { mono_ns: mono_ns() }
            }
            Op::Preflight { peers } => Outcome::Checks {
                checks: crate::preflight::run(peers),
            },
            Op::Shutdown => {
                crate::resources::stop_probes();
                let outcome = lock(&agent).heal(None);
                out.send(&Message::Reply(Reply {
                    id: request.id,
                    outcome,
                }));
                return 0;
            }
        };
        out.send(&Message::Reply(Reply {
            id: request.id,
            outcome,
        }));
    }
    // stdin closed: the controller is gone. Roll everything back now rather
    // than wait for the leases.
    crate::resources::stop_probes();
    lock(&agent).heal_all();
    0
}
