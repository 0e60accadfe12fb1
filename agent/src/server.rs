//! The agent's conversation with the controller over stdin/stdout, the
//! leases, and the journal-first discipline: a fault is journaled before it
//! takes effect and leaves the journal only once it is rolled back.

use std::io::BufRead;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use corodrill_protocol::{
    parse_request, EventBody, Fault, Hello, Message, Op, Outcome, Reply, Request, Role,
    RollbackReport, PROTOCOL_VERSION,
};

use crate::faults::{self, clock, cut, Ctx, Undo};
use crate::journal::{Entry, Journal};
use crate::owner::OwnerLock;
use crate::wire::{mono_ns, sleep_until_mono, utc_us, Out};

/// How often a fault whose lease ran out and whose rollback failed is
/// rolled back again.
const ROLLBACK_RETRY: Duration = Duration::from_secs(5);

struct Active {
    fault_id: String,
    kind: String,
    undo: Undo,
    applied: Instant,
    expires: Instant,
}

/// The controller's renewals, kept apart from the agent's lock: a renewal
/// is answered at once, even while an apply runs (a fault's command, a
/// corosync start), so that a lease never lapses behind one.
#[derive(Default)]
pub struct Lease {
    /// (when the last renewal came, until when it holds).
    renewed: Mutex<Option<(Instant, Instant)>>,
    /// Set by a renewal: the nftables dead-man elements want refreshing.
    refresh: AtomicBool,
    /// What went wrong refreshing them, told in the next renewal's answer.
    problem: Mutex<Option<String>>,
}

impl Lease {
    fn renew(&self, lease: Duration) -> Outcome {
        let now = Instant::now();
        *self.renewed.lock().unwrap_or_else(|p| p.into_inner()) = Some((now, now + lease));
        self.refresh.store(true, Ordering::Relaxed);
        match self
            .problem
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            Some(message) => error(message),
            None => Outcome::Ok { mono_ns: mono_ns() },
        }
    }

    /// When a fault applied at `applied` with its own `expires` runs out: a
    /// renewal covers the faults applied before it.
    fn expiry(&self, applied: Instant, expires: Instant) -> Instant {
        match *self.renewed.lock().unwrap_or_else(|p| p.into_inner()) {
            Some((at, until)) if applied <= at => expires.max(until),
            _ => expires,
        }
    }
}

pub struct Agent {
    ctx: Ctx,
    journal: Journal,
    active: Vec<Active>,
    lease: Arc<Lease>,
    /// Held while this agent owns the node's faults; None: observing.
    owner: Option<OwnerLock>,
    /// The lab node directory, for the guard's command line.
    lab_node: Option<PathBuf>,
}

/// The kernel-side expiry of cut elements: past the lease, so that only a
/// hung agent ever reaches it.
fn deadman(lease: Duration) -> Duration {
    lease + Duration::from_secs(2)
}

impl Agent {
    pub fn new(
        ctx: Ctx,
        journal: Journal,
        owner: Option<OwnerLock>,
        lab_node: Option<PathBuf>,
    ) -> Agent {
        Agent {
            ctx,
            journal,
            active: Vec::new(),
            lease: Arc::new(Lease::default()),
            owner,
            lab_node,
        }
    }

    pub fn owns(&self) -> bool {
        self.owner.is_some()
    }

    /// The observer's refusal, naming who holds the node.
    fn observing(&self, what: &str) -> Outcome {
        let state_dir = &self.ctx.node.state_dir;
        let held = crate::owner::held_faults(state_dir);
        let drills: std::collections::BTreeSet<&str> =
            held.iter().filter_map(|h| h.drill.as_deref()).collect();
        error(format!(
            "refused to {what}: another corodrill agent (pid {}) holds this node{}; this one only observes. \
             Wait for that drill to end, or end it with `corodrill heal`",
            crate::owner::owner_pid(state_dir).map_or("unknown".into(), |p| p.to_string()),
            if drills.is_empty() {
                String::new()
            } else {
                format!(" for drill {}", drills.into_iter().collect::<Vec<_>>().join(", "))
            }
        ))
    }

    /// This agent's role, as its hello says it.
    pub fn role(&self) -> Role {
        if self.owns() {
            Role::Owner
        } else {
            let state_dir = &self.ctx.node.state_dir;
            Role::Observer {
                owner_pid: crate::owner::owner_pid(state_dir),
                held: crate::owner::held_faults(state_dir),
            }
        }
    }

    /// Becomes the owner: starts the guard that rolls back if this agent
    /// dies, then rolls back what a previous owner left.
    pub fn start_owning(&mut self, lock: OwnerLock) -> Vec<RollbackReport> {
        self.owner = Some(lock);
        if let Err(e) = crate::owner::start_guard(&self.ctx.node, self.lab_node.as_deref()) {
            eprintln!("corodrill-agent: {e}: faults will not be rolled back if this agent dies");
        }
        // The journal on disk is the previous owner's, whatever it left.
        match Journal::open(&self.ctx.node.state_dir) {
            Ok(j) => self.journal = j,
            Err(e) => eprintln!("corodrill-agent: {e}"),
        }
        let recovered = self.recover();
        self.ctx.prepare_nft();
        recovered
    }

    /// The red button: ends the owning agent's faults and takes its place.
    fn take_over(&mut self, grace: Duration) -> Outcome {
        if self.owns() {
            let reports = self.heal_all();
            return Outcome::Healed {
                mono_ns: mono_ns(),
                reports,
            };
        }
        let state_dir = self.ctx.node.state_dir.clone();
        let held = crate::owner::held_faults(&state_dir);
        let lock = match crate::owner::take_over(&self.ctx.node, grace) {
            Ok(lock) => lock,
            Err(e) => return error(e),
        };
        let left = self.start_owning(lock);
        // What the owner held and rolled back itself, then what was left
        // to roll back here (nothing, when the owner or its guard could).
        let mut reports: Vec<RollbackReport> = held
            .iter()
            .filter(|h| !left.iter().any(|r| r.fault_id == h.fault_id))
            .map(|h| RollbackReport {
                fault_id: h.fault_id.clone(),
                kind: h.kind.clone(),
                clean: true,
                detail: format!(
                    "ended{}: rolled back by the agent that held it",
                    h.drill
                        .as_deref()
                        .map_or(String::new(), |d| format!(" (drill {d})"))
                ),
            })
            .collect();
        reports.extend(left);
        Outcome::Healed {
            mono_ns: mono_ns(),
            reports,
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
        drill: Option<&str>,
        at_mono_ns: Option<u64>,
    ) -> Outcome {
        if !self.owns() {
            return self.observing("apply a fault");
        }
        if self.active.iter().any(|a| a.fault_id == fault_id) {
            return error(format!("fault {fault_id:?} is already applied"));
        }
        if let Err(e) = check_lead(at_mono_ns) {
            return error(e);
        }
        self.ctx.deadman = deadman(lease);
        let kind = fault.kind().to_owned();
        let journal = &mut self.journal;
        // Journaled first, then the wait for the agreed instant: the
        // journal's fsync is not part of the skew between nodes.
        let mut record = |undo: &Undo| {
            journal.record(Entry {
                fault_id: fault_id.to_owned(),
                kind: kind.clone(),
                undo: undo.clone(),
                boot_id: crate::journal::boot_id(),
                drill: drill.map(str::to_owned),
            })?;
            if let Some(at) = at_mono_ns {
                sleep_until_mono(at);
            }
            Ok(())
        };
        self.ctx.took_effect_ns = None;
        match faults::apply(&mut self.ctx, fault, allow_management_cut, &mut record) {
            Ok(undo) => {
                let at = self.ctx.took_effect_ns.take().unwrap_or_else(mono_ns);
                // The undo may have learnt more while applying (a strobe's start).
                if let Err(e) = self.journal.update(fault_id, &undo) {
                    return error(e);
                }
                let now = Instant::now();
                self.active.push(Active {
                    fault_id: fault_id.to_owned(),
                    kind,
                    undo,
                    applied: now,
                    expires: now + lease,
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

    /// The first half of a fault applied without the agent's lock held
    /// through it (a command): refused or journaled.
    fn begin(
        &mut self,
        fault_id: &str,
        kind: &str,
        undo: &Undo,
        drill: Option<&str>,
        at_mono_ns: Option<u64>,
    ) -> Result<(), Outcome> {
        if !self.owns() {
            return Err(self.observing("apply a fault"));
        }
        if self.active.iter().any(|a| a.fault_id == fault_id) {
            return Err(error(format!("fault {fault_id:?} is already applied")));
        }
        check_lead(at_mono_ns).map_err(error)?;
        self.journal
            .record(Entry {
                fault_id: fault_id.to_owned(),
                kind: kind.to_owned(),
                undo: undo.clone(),
                boot_id: crate::journal::boot_id(),
                drill: drill.map(str::to_owned),
            })
            .map_err(error)
    }

    /// The second half: the fault took effect (leased from now), or nothing
    /// stayed applied and its journal entry goes.
    fn finish(
        &mut self,
        fault_id: &str,
        kind: &str,
        undo: Undo,
        lease: Duration,
        applied: Result<(), String>,
    ) -> Outcome {
        match applied {
            Ok(()) => {
                let now = Instant::now();
                self.active.push(Active {
                    fault_id: fault_id.to_owned(),
                    kind: kind.to_owned(),
                    undo,
                    applied: now,
                    expires: now + lease,
                });
                Outcome::Ok { mono_ns: mono_ns() }
            }
            Err(e) => {
                let _ = self.journal.remove(fault_id);
                error(format!("{kind} {fault_id:?} not applied: {e}"))
            }
        }
    }

    /// Refreshes the nftables dead-man elements after a renewal (they
    /// expire in the kernel a little past the lease).
    fn refresh(&mut self, lease_ms: u64) {
        self.ctx.deadman = deadman(Duration::from_millis(lease_ms));
        let mut problems = Vec::new();
        for a in &self.active {
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
        if !problems.is_empty() {
            *self.lease.problem.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(problems.join("; "));
        }
    }

    fn heal(&mut self, fault_id: Option<&str>) -> Outcome {
        if !self.owns() {
            // An observer holds nothing; the owner's faults are not its to end.
            return Outcome::Healed {
                mono_ns: mono_ns(),
                reports: Vec::new(),
            };
        }
        let reports = self.roll_back_where(|a| fault_id.is_none_or(|id| a.fault_id == id), None);
        Outcome::Healed {
            mono_ns: mono_ns(),
            reports,
        }
    }

    /// Rolls back the active faults `ends` picks, newest first (a later
    /// fault may stand on an earlier one). A fault whose rollback failed is
    /// still on the node: it stays active (its lease running out at `retry`,
    /// when given), so the next heal tries again.
    fn roll_back_where(
        &mut self,
        ends: impl Fn(&Active) -> bool,
        retry: Option<Instant>,
    ) -> Vec<RollbackReport> {
        let (ending, mut kept): (Vec<Active>, Vec<Active>) =
            std::mem::take(&mut self.active).into_iter().partition(ends);
        let mut reports = Vec::new();
        for mut a in ending.into_iter().rev() {
            let report = self.roll_back(&a);
            if !report.clean {
                if let Some(at) = retry {
                    a.expires = at;
                }
                kept.push(a);
            }
            reports.push(report);
        }
        kept.sort_by_key(|a| a.applied);
        self.active = kept;
        reports
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
    fn tick(&mut self, out: &Out, lease_ms: &std::sync::atomic::AtomicU64) {
        if self.lease.refresh.swap(false, Ordering::Relaxed) {
            self.refresh(lease_ms.load(Ordering::Relaxed));
        }
        let now = Instant::now();
        let lease = self.lease.clone();
        // No controller to heal a fault whose rollback failed here: try
        // again a little later, for as long as the agent runs.
        let expired = self.roll_back_where(
            |a| lease.expiry(a.applied, a.expires) <= now,
            Some(now + ROLLBACK_RETRY),
        );
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

/// A command fault runs without the agent's lock: a command that takes its
/// time (up to its timeout) must hold back neither the leases, the strobes
/// nor a SIGTERM's rollback. Journaled first; if the agent dies meanwhile,
/// its guard runs the undo (and the command's process group is killed on
/// every way out).
fn apply_command(
    agent: &Mutex<Agent>,
    fault_id: &str,
    fault: &Fault,
    lease: Duration,
    drill: Option<&str>,
    at_mono_ns: Option<u64>,
) -> Outcome {
    let Fault::Command {
        run,
        undo,
        timeout_ms,
    } = fault
    else {
        return error(format!("{} is not a command", fault.kind()));
    };
    let u = faults::command::undo_for(undo.as_deref(), *timeout_ms);
    if let Err(refused) = lock(agent).begin(fault_id, fault.kind(), &u, drill, at_mono_ns) {
        return refused;
    }
    if let Some(at) = at_mono_ns {
        sleep_until_mono(at);
    }
    let ran = faults::command::run_command(run, *timeout_ms);
    lock(agent).finish(fault_id, fault.kind(), u, lease, ran)
}

/// Runs `f` on a thread of its own and waits at most `limit` for it: a
/// corosync that is paused never answers its IPC, and nothing on the
/// agent's request path may wait on it. A call that does not return is
/// left behind (the process exit ends it).
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}

/// A timed apply no further ahead than the protocol allows.
fn check_lead(at_mono_ns: Option<u64>) -> Result<(), String> {
    let max = corodrill_protocol::MAX_APPLY_LEAD_MS;
    let ahead_ms = at_mono_ns.map_or(0, |at| at.saturating_sub(mono_ns()) / 1_000_000);
    if ahead_ms > max {
        return Err(format!(
            "timed {ahead_ms} ms ahead; at most {max} ms (is the controller's clock mapping wrong?)"
        ));
    }
    Ok(())
}

/// How long the hello waits on corosync for the node id and settings.
const COROSYNC_DEADLINE: Duration = Duration::from_secs(2);

/// Serves the controller until stdin closes or it says shutdown; every fault
/// is rolled back before this returns. An owning agent rolls back what a
/// previous agent journaled before anything else, corosync's IPC included.
pub fn serve(mut agent: Agent, hello_node: String, owner: Option<OwnerLock>) -> i32 {
    let out = Arc::new(Out::new());
    let recovered = match owner {
        Some(lock) => agent.start_owning(lock),
        None => Vec::new(),
    };
    let capabilities = agent.ctx.node.capabilities();
    // One deadline for both: a corosync that does not answer the first
    // will not answer the second.
    let (node_id, quorum_config) = within(COROSYNC_DEADLINE, || {
        (crate::quorum::own_node_id(), crate::quorum::quorum_config())
    })
    .unwrap_or_default();
    let mut hello = Hello {
        protocol_version: PROTOCOL_VERSION,
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        node: hello_node,
        node_id,
        capabilities,
        utc_us: 0,
        quorum_config,
        corosync_conf_sha256: agent.ctx.node.corosync_conf_sha256(),
        recovered,
        ha_services: crate::pve_ha::configured_services(
            &agent.ctx.node.pve_file(crate::pve_ha::RESOURCES_CFG),
        ),
        role: agent.role(),
    };
    // Read the clock last: the controller compares it with its own on arrival.
    hello.utc_us = utc_us();
    out.send(&Message::Hello(hello));
    let lease = agent.lease.clone();
    let node = agent.ctx.node.clone();
    let lease_ms = Arc::new(std::sync::atomic::AtomicU64::new(10_000));
    let agent = Arc::new(Mutex::new(agent));

    // Leases and strobes.
    {
        let agent = agent.clone();
        let out = out.clone();
        let lease_ms = lease_ms.clone();
        std::thread::spawn(move || loop {
            let asleep = Instant::now();
            std::thread::sleep(Duration::from_millis(10));
            // This thread asked for 10 ms: much more is the machine stalling.
            let late = asleep.elapsed().saturating_sub(Duration::from_millis(10));
            if late >= crate::stall::AGENT_LATE {
                out.event(EventBody::Stall {
                    source: corodrill_protocol::StallSource::Agent,
                    late_ms: late.as_millis() as u64,
                    detail: format!("the agent's 10 ms timer woke {} ms late", late.as_millis()),
                });
            }
            lock(&agent).tick(&out, &lease_ms);
        });
    }
    // SIGTERM, SIGINT, SIGHUP: roll back, then exit.
    {
        let agent = agent.clone();
        std::thread::spawn(move || {
            if let Ok(sig) = stop_signals().wait() {
                crate::resources::stop_probes();
                crate::node::kill_running();
                let mut agent = lock(&agent);
                if let Some(owner) = agent.owner.as_mut() {
                    owner.closing();
                }
                let reports = agent.heal_all();
                eprintln!(
                    "corodrill-agent: {sig}: rolled back {} fault(s)",
                    reports.len()
                );
                std::process::exit(128 + sig as i32);
            }
        });
    }

    // Requests that change or read the node run one at a time, in order, on
    // a worker; renewals and watches are answered here at once.
    let closing = Arc::new(AtomicBool::new(false));
    let (work_tx, work_rx) = mpsc::channel::<Request>();
    let worker = {
        let agent = agent.clone();
        let out = out.clone();
        let closing = closing.clone();
        std::thread::spawn(move || {
            for request in work_rx {
                let outcome = match &request.op {
                    // The controller is gone: apply nothing more.
                    Op::Apply { .. } if closing.load(Ordering::Relaxed) => {
                        error("the controller is gone".into())
                    }
                    Op::Apply {
                        fault_id,
                        fault: fault @ Fault::Command { .. },
                        lease_ms,
                        drill,
                        at_mono_ns,
                        ..
                    } => apply_command(
                        &agent,
                        fault_id,
                        fault,
                        Duration::from_millis(*lease_ms),
                        drill.as_deref(),
                        *at_mono_ns,
                    ),
                    Op::Apply {
                        fault_id,
                        fault,
                        lease_ms,
                        allow_management_cut,
                        drill,
                        at_mono_ns,
                    } => lock(&agent).apply(
                        fault_id,
                        fault,
                        Duration::from_millis(*lease_ms),
                        *allow_management_cut,
                        drill.as_deref(),
                        *at_mono_ns,
                    ),
                    Op::Heal { fault_id } => lock(&agent).heal(Some(fault_id)),
                    Op::HealAll => lock(&agent).heal(None),
                    Op::TakeOver { grace_ms } => {
                        lock(&agent).take_over(Duration::from_millis(*grace_ms))
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
                        crate::node::kill_running();
                        let outcome = lock(&agent).heal(None);
                        out.send(&Message::Reply(Reply {
                            id: request.id,
                            outcome,
                        }));
                        std::process::exit(0);
                    }
                    Op::Renew { .. } | Op::Watch | Op::Clock => continue,
                };
                out.send(&Message::Reply(Reply {
                    id: request.id,
                    outcome,
                }));
            }
        })
    };

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
            Op::Renew { lease_ms: ms } => {
                lease_ms.store(*ms, Ordering::Relaxed);
                lease.renew(Duration::from_millis(*ms))
            }
            Op::Watch => {
                if !watching {
                    watching = true;
                    let quorum_out = out.clone();
                    let quorum_node = node.clone();
                    std::thread::spawn(move || crate::quorum::watch(&quorum_out, &quorum_node));
                    crate::stall::watch_corosync(out.clone(), &node);
                }
                Outcome::Ok { mono_ns: mono_ns() }
            }
            // Read here, not behind the worker's queue: its round trip maps
            // this clock onto the controller's.
            Op::Clock => Outcome::Ok { mono_ns: mono_ns() },
            _ => {
                let _ = work_tx.send(request);
                continue;
            }
        };
        out.send(&Message::Reply(Reply {
            id: request.id,
            outcome,
        }));
    }
    // stdin closed: the controller is gone. Roll everything back now rather
    // than wait for the leases (after the request in progress, if any).
    closing.store(true, Ordering::Relaxed);
    drop(work_tx);
    crate::resources::stop_probes();
    crate::node::kill_running();
    let mut agent = lock(&agent);
    if let Some(owner) = agent.owner.as_mut() {
        owner.closing();
    }
    agent.heal_all();
    drop(worker);
    0
}
