//! Running a plan: connect every agent, check the cluster is whole, apply
//! and heal faults on one monotonic timeline while renewing leases, collect
//! every observation into the event log, heal everything, wait for the
//! cluster to be whole again. Every exit path heals first.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use corodrill_protocol::{
    Event, EventBody, Op, Outcome, ResourceSource, ResourceWatch, RollbackReport,
};

use crate::cluster::agent::{AgentConn, AgentError, AgentHandle};
use crate::cluster::inventory::Inventory;
use crate::cluster::power::{self, PowerDriver, PowerError, PowerState};
use crate::experiment::{Experiment, WatchKind, WatchSpec};
use crate::log::{LogBody, LogEvent, NodeState};
use crate::plan::{Plan, PlannedFault};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The cluster does not fit the drill's `[requires]`: exit 2.
    #[error("{0}")]
    Requires(String),
    #[error("{0}")]
    Agent(#[from] AgentError),
    #[error("{0}")]
    Unreachable(String),
    #[error("the cluster is not whole before the drill: {0}")]
    NotWhole(String),
    #[error("fault {fault:?} could not be applied on {node}: {message}")]
    Apply {
        fault: String,
        node: String,
        message: String,
    },
    #[error("{0}")]
    Power(#[from] PowerError),
    #[error("interrupted; every fault was healed")]
    Cancelled,
    /// Another agent holds a node's faults: a drill is running there now.
    #[error("{0}")]
    Busy(String),
    /// A node's agent was lost mid-drill (killed, its ssh connection
    /// dropped): its faults were rolled back on the node, the drill is void.
    #[error("{node}: its agent was lost mid-drill ({why}); its faults were rolled back on the node and the drill was stopped")]
    AgentLost { node: String, why: String },
    /// Nodes run Proxmox VE HA services and the drill would get some reset
    /// by their watchdog: exit 2 unless `--allow-fencing`.
    #[error("{0}")]
    WouldFence(String),
}

impl RunError {
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Requires(_) | RunError::WouldFence(_) => 2,
            RunError::Cancelled => 130,
            RunError::Power(e) => e.exit_code(),
            _ => 3,
        }
    }
}

pub struct RunOptions<'a> {
    /// How long a fault outlives a silent controller.
    pub lease: Duration,
    pub connect_timeout: Duration,
    /// How long to wait for the cluster to be whole, before and after.
    pub whole_timeout: Duration,
    /// How long a power driver may take to switch a node off or on.
    pub power_timeout: Duration,
    /// How long a node powered on may take to boot until its agent answers.
    pub boot_timeout: Duration,
    /// Check every node after every change of faults against the oracle.
    pub oracle: bool,
    /// corosync settings (cmap keys, `expected_votes`, `two_node`...) the
    /// oracle assumes instead of the cluster's: "what if", and how the
    /// oracle's own tests plant a wrong model.
    pub model_override: BTreeMap<String, String>,
    /// Run a drill that will get Proxmox VE HA nodes reset by their
    /// watchdog (the fencing foresight); refused otherwise.
    pub allow_fencing: bool,
    pub progress: &'a dyn Fn(&str),
    /// Set by Ctrl-C: heal and stop.
    pub cancel: &'a AtomicBool,
}

impl<'a> RunOptions<'a> {
    /// The defaults `run` uses: a 10 s lease, 20 s to connect, a minute to
    /// be whole, two minutes to switch power, ten to boot.
    pub fn new(progress: &'a dyn Fn(&str), cancel: &'a AtomicBool) -> RunOptions<'a> {
        RunOptions {
            lease: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(20),
            whole_timeout: Duration::from_secs(60),
            power_timeout: Duration::from_secs(120),
            boot_timeout: Duration::from_secs(600),
            oracle: false,
            model_override: BTreeMap::new(),
            allow_fencing: false,
            progress,
            cancel,
        }
    }
}

/// Set by SIGINT/SIGTERM once `cancel_on_signals` has run: a drill in
/// progress heals everything and stops (exit 130).
pub static CANCEL: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: i32) {
    if CANCEL.swap(true, Ordering::Relaxed) {
        // The second Ctrl-C: out at once. The agents' stdin closes with
        // this process, which is their signal to roll back everything
        // (and each node's guard covers an agent that cannot).
        // SAFETY: _exit is async-signal-safe.
        unsafe { nix::libc::_exit(130) };
    }
}

/// From now on SIGINT and SIGTERM set [`CANCEL`] instead of killing the
/// process, so that faults are healed (and a bench's lab removed); a
/// second one exits at once.
pub fn cancel_on_signals() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for s in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        let _ = unsafe { sigaction(s, &action) };
    }
}

/// The log so far, with the error that ended the drill early.
pub struct Aborted {
    pub error: RunError,
    pub log: Vec<LogEvent>,
}

/// A drill carried out: the experiment as judged (predictions filled in,
/// the oracle's own expectations added) and the event log.
pub struct Ran {
    pub experiment: Experiment,
    pub log: Vec<LogEvent>,
}

fn mono_ns() -> i64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() * 1_000_000_000 + t.tv_nsec())
        .unwrap_or(0)
}

/// A drill in progress: the agents, the clock, the log.
struct Drill<'a> {
    agents: Vec<AgentConn>,
    /// controller monotonic ns = agent monotonic ns + offset.
    offsets: BTreeMap<String, i64>,
    /// node id -> node name, from the hellos.
    names: BTreeMap<u32, String>,
    events: Receiver<(String, Event)>,
    t0: i64,
    /// The real-time clock at `t0`.
    t0_utc: SystemTime,
    log: Vec<LogEvent>,
    states: BTreeMap<String, NodeState>,
    opts: &'a RunOptions<'a>,
    /// Renews every agent's lease on threads of its own.
    renewer: Renewer,
    /// The drill's name, journaled with each fault on the nodes.
    drill_name: String,
    /// How long corosync may take to show a change (the model's window,
    /// seconds): a view older than a heal proves nothing until then.
    settle: f64,
    /// When each node's view last changed (drill time).
    changed_at: BTreeMap<String, f64>,
    /// When faults were last healed (drill time).
    healed_at: Option<f64>,
    /// Nodes whose corosync the drill paused: (node, from, until) in drill
    /// time. corosync's "not scheduled" warning then is the fault itself.
    paused: Vec<(String, f64, Option<f64>)>,
    nodes: Vec<String>,
    /// Where new agents' events go (agents reconnected after a power-on).
    event_tx: Sender<(String, Event)>,
    /// Each node's connect command, to reach it again after a power-on.
    connects: BTreeMap<String, String>,
    /// The drivers of the nodes this drill powers off.
    power: BTreeMap<String, Arc<dyn PowerDriver>>,
    /// Nodes powered off now, with the fault that did it.
    powered_off: BTreeMap<String, String>,
    /// Nodes the fencing foresight says their watchdog may reset (only
    /// with --allow-fencing): their agent falling silent is that reset,
    /// not a failure of the drill.
    may_reset: Vec<String>,
    /// Nodes whose agent fell silent as foreseen: reset, expected back.
    reset: Vec<String>,
    /// The experiment's watched resources and how each node reads them.
    watches: Vec<WatchSpec>,
    /// When the last progress line was said (long waits speak every 10 s).
    last_said: Instant,
    /// Each node's latest view of each watched resource.
    resource_views: BTreeMap<(String, String), Option<Vec<String>>>,
}

/// Hands an agent's events to the drill's collector.
fn forward_events(agent: &mut AgentConn, tx: &Sender<(String, Event)>) {
    let rx = agent.take_events();
    let tx = tx.clone();
    let node = agent.node.clone();
    std::thread::spawn(move || {
        for ev in rx {
            if tx.send((node.clone(), ev)).is_err() {
                break;
            }
        }
    });
}

/// The power drivers of every node the plan powers off, each asked for its
/// state: a missing credential (exit 2) or a driver that does not answer
/// (exit 3) stops the drill before anything is touched.
fn power_drivers(
    plan: &Plan,
    inventory: &Inventory,
    opts: &RunOptions,
) -> Result<BTreeMap<String, Arc<dyn PowerDriver>>, RunError> {
    let mut drivers: BTreeMap<String, Arc<dyn PowerDriver>> = BTreeMap::new();
    let tools = power::Tools {
        timeout: opts.power_timeout,
        ..power::Tools::default()
    };
    for name in plan.faults.iter().flat_map(|f| f.power_off.iter()) {
        let Some(node) = inventory.nodes.iter().find(|n| &n.name == name) else {
            continue;
        };
        if drivers.contains_key(name) {
            continue;
        }
        let driver: Arc<dyn PowerDriver> =
            Arc::from(power::driver_for(node, &tools, &power::from_environment)?);
        drivers.insert(name.clone(), driver);
    }
    for (name, driver) in &drivers {
        let failed = |message: String| {
            RunError::Power(PowerError::Failed {
                node: name.clone(),
                driver: driver.driver(),
                message,
            })
        };
        match driver.status() {
            Ok(PowerState::On) => {}
            Ok(PowerState::Off) => return Err(failed("the node is powered off already".into())),
            Err(e) => return Err(failed(format!("power status: {e}"))),
        }
    }
    Ok(drivers)
}

pub fn run(
    experiment: &Experiment,
    plan: &Plan,
    inventory: &Inventory,
    opts: &RunOptions,
) -> Result<Ran, Aborted> {
    let aborted = |error| Aborted {
        error,
        log: Vec::new(),
    };
    let mut drill = Drill::connect(experiment, plan, inventory, opts).map_err(aborted)?;
    let model =
        crate::cluster::connect::cluster_model(&drill.agents, inventory, &opts.model_override);
    drill.settle = model.window().as_secs_f64();
    // Fencing foresight: on a cluster with HA services, a drill that keeps
    // nodes out of quorum long enough gets them reset. Refused before any
    // fault unless the operator says so.
    // Every node reads the same resources.cfg (pmxcfs): list each once.
    let ha_services: Vec<&str> = drill
        .agents
        .iter()
        .flat_map(|a| a.hello.ha_services.iter().map(String::as_str))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if !ha_services.is_empty() {
        let resets = crate::model::fencing::foresee(experiment, plan, &model);
        if !resets.is_empty() {
            let listed: Vec<String> = resets.iter().map(|r| format!("  {r}")).collect();
            if !opts.allow_fencing {
                return Err(aborted(RunError::WouldFence(format!(
                    "{}: refused: the cluster has Proxmox VE HA services ({}) and this drill would get node(s) reset by their watchdog:\n{}\nshorten the faults below the 60 s watchdog client timeout, or pass --allow-fencing to drill fencing itself",
                    experiment.file.display(),
                    ha_services.join(", "),
                    listed.join("\n")
                ))));
            }
            (opts.progress)(&format!(
                "--allow-fencing: expect these resets:\n{}",
                listed.join("\n")
            ));
            drill.may_reset = resets.into_iter().map(|r| r.node).collect();
        }
    }
    let oracle = opts.oracle || experiment.invariants.oracle;
    let experiment =
        crate::model::predict::resolve(experiment, plan, &model, oracle).map_err(|errors| {
            aborted(RunError::Requires(format!(
                "{}: {}",
                experiment.file.display(),
                errors.join("; ")
            )))
        })?;
    match drill.run(&experiment, plan) {
        Ok(()) => Ok(Ran {
            experiment,
            log: drill.log,
        }),
        Err(error) => {
            (opts.progress)(&format!("{error}: healing every fault"));
            drill.reconnect_lost();
            drill.heal_all();
            let whole = drill.wait_whole(opts.whole_timeout);
            if let Err(why) = whole {
                (opts.progress)(&format!("after healing, the cluster is not whole: {why}"));
            }
            Err(Aborted {
                error,
                log: drill.log,
            })
        }
    }
}

impl<'a> Drill<'a> {
    fn connect(
        experiment: &Experiment,
        plan: &Plan,
        inventory: &Inventory,
        opts: &'a RunOptions<'a>,
    ) -> Result<Drill<'a>, RunError> {
        let power = power_drivers(plan, inventory, opts)?;
        (opts.progress)(&format!("connecting to {} agents", inventory.nodes.len()));
        let (mut agents, failures) =
            crate::cluster::connect::connect_all(inventory, opts.connect_timeout);
        if !failures.is_empty() {
            return Err(RunError::Unreachable(format!(
                "agents unreachable: {}",
                failures.join("; ")
            )));
        }
        let busy: Vec<String> = agents
            .iter()
            .filter_map(|a| match &a.hello.role {
                corodrill_protocol::Role::Owner => None,
                corodrill_protocol::Role::Observer { owner_pid, held } => Some(format!(
                    "{} is held by another corodrill agent (pid {}){}",
                    a.node,
                    owner_pid.map_or("unknown".into(), |p| p.to_string()),
                    held_summary(held)
                )),
            })
            .collect();
        if !busy.is_empty() {
            return Err(RunError::Busy(format!(
                "{}: wait for that drill to end, or end it with `corodrill heal`",
                busy.join("; ")
            )));
        }
        check_requires(experiment, &agents)?;
        let names = agents
            .iter()
            .filter_map(|a| Some((a.hello.node_id?, a.node.clone())))
            .collect();
        let (event_tx, events) = mpsc::channel();
        for a in &mut agents {
            forward_events(a, &event_tx);
        }
        let mut drill = Drill {
            agents,
            offsets: BTreeMap::new(),
            names,
            events,
            t0: mono_ns(),
            t0_utc: SystemTime::now(),
            log: Vec::new(),
            states: BTreeMap::new(),
            opts,
            renewer: Renewer::start(opts.lease),
            drill_name: experiment.name.clone(),
            settle: 5.0,
            changed_at: BTreeMap::new(),
            healed_at: None,
            paused: Vec::new(),
            last_said: Instant::now(),
            nodes: plan.nodes.clone(),
            event_tx,
            connects: inventory
                .nodes
                .iter()
                .map(|n| (n.name.clone(), n.connect.clone()))
                .collect(),
            power,
            powered_off: BTreeMap::new(),
            may_reset: Vec::new(),
            reset: Vec::new(),
            resource_views: BTreeMap::new(),
            watches: experiment.watches.clone(),
        };
        drill.sync_renewals();
        // Watching starts the quorum stream; the reply's agent time, against
        // the round trip's midpoint here, maps agent clocks onto ours.
        for a in &mut drill.agents {
            let offset = watch(a, opts.connect_timeout)?;
            drill.offsets.insert(a.node.clone(), offset);
            watch_resources(a, &drill.watches, opts.connect_timeout)?;
        }
        Ok(drill)
    }

    fn t(&self, controller_ns: i64) -> f64 {
        (controller_ns - self.t0) as f64 / 1e9
    }

    fn agent_t(&self, node: &str, agent_ns: u64) -> f64 {
        self.t(agent_ns as i64 + self.offsets.get(node).copied().unwrap_or(0))
    }

    fn now(&self) -> f64 {
        self.t(mono_ns())
    }

    /// Logs an event that happened at drill time `t`; its UTC stamp is
    /// derived from `t`, so both say when it happened, not when it arrived.
    fn record(&mut self, t: f64, node: Option<&str>, body: LogBody) {
        // Agents' clocks are input: a time that is no time (NaN, out of
        // range) stamps the drill's start rather than panicking.
        let offset = Duration::try_from_secs_f64(t.abs()).unwrap_or_default();
        let at = if t >= 0.0 {
            self.t0_utc.checked_add(offset)
        } else {
            self.t0_utc.checked_sub(offset)
        }
        .unwrap_or(self.t0_utc);
        self.log.push(LogEvent {
            t,
            ts: humantime::format_rfc3339_micros(at).to_string(),
            node: node.map(str::to_owned),
            body,
        });
    }

    /// Turns one agent event into log events and node states.
    fn absorb(&mut self, node: String, ev: Event) {
        let t = self.agent_t(&node, ev.mono_ns);
        match ev.body {
            EventBody::Quorum {
                quorate,
                members,
                ring_id,
                expected_votes,
                total_votes,
                quorum,
                ..
            } => {
                let members: Vec<String> = members
                    .iter()
                    .map(|m| {
                        m.name
                            .clone()
                            .or_else(|| self.names.get(&m.node_id).cloned())
                            .unwrap_or_else(|| format!("node{}", m.node_id))
                    })
                    .collect();
                let body = LogBody::Quorum {
                    quorate,
                    members,
                    ring_id,
                    total_votes,
                    expected_votes,
                    quorum,
                };
                if let Some(s) = NodeState::from_event(&body) {
                    self.states.insert(node.clone(), s);
                    self.changed_at.insert(node.clone(), t);
                }
                self.record(t, Some(&node), body);
            }
            EventBody::Links { links } => {
                let links = links
                    .into_iter()
                    .map(|l| {
                        let peer = self
                            .names
                            .get(&l.node_id)
                            .cloned()
                            .unwrap_or_else(|| format!("node{}", l.node_id));
                        (peer, l.link, l.connected)
                    })
                    .collect();
                self.record(t, Some(&node), LogBody::Links { links });
            }
            EventBody::Resource {
                resource,
                active_on,
            } => {
                self.resource_views
                    .insert((node.clone(), resource.clone()), active_on.clone());
                self.record(
                    t,
                    Some(&node),
                    LogBody::Resource {
                        resource,
                        active_on,
                    },
                )
            }
            EventBody::CorosyncDown { reason } => {
                self.states.insert(node.clone(), NodeState::down());
                self.changed_at.insert(node.clone(), t);
                self.record(t, Some(&node), LogBody::CorosyncDown { reason });
            }
            EventBody::Stall {
                source,
                late_ms,
                detail,
            } => {
                let began = t - late_ms as f64 / 1000.0;
                // A corosync the drill paused was not scheduled because of
                // the drill: logged as such, never a disturbance.
                let by_the_drill = matches!(source, corodrill_protocol::StallSource::Corosync)
                    && self.paused.iter().any(|(n, from, until)| {
                        *n == node && began < until.unwrap_or(f64::MAX) + 0.5 && t > *from
                    });
                let source = match source {
                    _ if by_the_drill => "pause",
                    corodrill_protocol::StallSource::Corosync => "corosync",
                    corodrill_protocol::StallSource::Agent => "agent",
                };
                if !by_the_drill {
                    (self.opts.progress)(&format!(
                        "t={t:.1}s {node}: the machine stalled for {late_ms} ms ({source}): {detail}"
                    ));
                }
                self.record(
                    began,
                    Some(&node),
                    LogBody::Stall {
                        source: source.into(),
                        late_ms,
                        detail,
                    },
                );
            }
            EventBody::EtcPve { writable } => {
                self.record(t, Some(&node), LogBody::EtcPve { writable });
            }
            EventBody::LeaseExpired { reports } => {
                for r in reports {
                    self.record(
                        t,
                        Some(&node),
                        LogBody::LeaseExpired {
                            fault: r.fault_id,
                            clean: r.clean,
                            detail: r.detail,
                        },
                    );
                }
            }
        }
    }

    /// Takes in events until `deadline` (controller t), renewing leases.
    fn pump_until(&mut self, deadline: f64) -> Result<(), RunError> {
        loop {
            if self.opts.cancel.load(Ordering::Relaxed) {
                return Err(RunError::Cancelled);
            }
            self.check_renewals()?;
            let left = deadline - self.now();
            if left <= 0.0 {
                return Ok(());
            }
            self.take_in(left.min(0.1));
        }
    }

    /// Takes in the agents' events for up to `wait` seconds. Also after a
    /// Ctrl-C: the views that say the cluster is whole again are live ones.
    fn take_in(&mut self, wait: f64) {
        match self
            .events
            .recv_timeout(Duration::try_from_secs_f64(wait).unwrap_or_default())
        {
            Ok((node, ev)) => self.absorb(node, ev),
            Err(RecvTimeoutError::Timeout) => {}
            // The drill holds a sender itself: this cannot happen.
            Err(RecvTimeoutError::Disconnected) => {}
        }
    }

    /// The renewer's handles follow the drill's agents.
    fn sync_renewals(&mut self) {
        self.renewer
            .set(self.agents.iter().map(|a| (a.node.clone(), a.handle())));
    }

    /// Like `pump_until`, but stops early once every expectation has passed:
    /// the rest of the window would only wait for a verdict already known.
    fn pump_until_decided(
        &mut self,
        experiment: &Experiment,
        deadline: f64,
    ) -> Result<(), RunError> {
        // Agents' events arrive a little after they happen: keep listening
        // this long after the verdicts are in before calling them final.
        const SETTLE: f64 = 0.3;
        while self.now() < deadline {
            let step = (self.now() + 0.2).min(deadline);
            self.pump_until(step)?;
            self.say_waiting(experiment, &format!("deadline t={deadline:.1}s"));
            let now = self.now();
            if crate::judge::expectations_met(experiment, &self.nodes, &self.log, now - SETTLE) {
                return self.pump_until((now + SETTLE).min(deadline));
            }
        }
        Ok(())
    }

    /// On a long wait (Proxmox VE HA recovers in minutes), a progress line
    /// every 10 s: what is still awaited and what comes next.
    fn say_waiting(&mut self, experiment: &Experiment, next: &str) {
        if self.last_said.elapsed() < Duration::from_secs(10) {
            return;
        }
        self.last_said = Instant::now();
        let now = self.now();
        let open = crate::judge::open_expectations(experiment, &self.nodes, &self.log, now);
        (self.opts.progress)(&format!(
            "t={now:.1}s waiting ({next}){}",
            if open.is_empty() {
                String::new()
            } else {
                format!("; not yet: {}", open.join("; "))
            }
        ));
    }

    /// What the renewer heard since last asked: a refusal or a silent
    /// agent ends the drill (a node the fencing foresight named is taken as
    /// reset instead).
    fn check_renewals(&mut self) -> Result<(), RunError> {
        while let Ok((connection, node, result)) = self.renewer.results.try_recv() {
            if !self
                .agents
                .iter()
                .any(|a| a.handle().connection() == connection)
            {
                continue; // powered off, reset or reconnected meanwhile
            }
            match result {
                Ok(Outcome::Error { message }) => {
                    return Err(RunError::Unreachable(format!(
                        "{node}: lease renewal failed: {message}"
                    )))
                }
                Ok(_) => {}
                Err(e) if self.may_reset.contains(&node) => self.node_reset(&node, &e.to_string()),
                Err(e) => {
                    return Err(RunError::AgentLost {
                        node,
                        why: e.to_string(),
                    })
                }
            }
        }
        Ok(())
    }

    /// A node the fencing foresight named went silent: its watchdog reset
    /// it. It is down until it boots; its faults went with it (its agent
    /// rolls back its journal at boot) and it is reconnected at the heal.
    fn node_reset(&mut self, node: &str, why: &str) {
        let t = self.now();
        (self.opts.progress)(&format!(
            "t={t:.1}s {node} went silent, as the fencing foresight expected: taken as reset by its watchdog ({why})"
        ));
        let (gone, live): (Vec<AgentConn>, Vec<AgentConn>) = std::mem::take(&mut self.agents)
            .into_iter()
            .partition(|a| a.node == node);
        self.agents = live;
        self.sync_renewals();
        // Its transport may take long to notice the node is gone.
        std::thread::spawn(move || drop(gone));
        self.reset.push(node.to_owned());
        self.node_down(
            node,
            t,
            format!("reset by its watchdog, as foreseen (its agent went silent: {why})"),
        );
    }

    /// A node went down with everything on it (power-off, reset): corosync
    /// down, and the views of resources it sent no longer speak for it.
    fn node_down(&mut self, node: &str, t: f64, reason: String) {
        self.states.insert(node.to_owned(), NodeState::down());
        self.changed_at.insert(node.to_owned(), t);
        self.record(t, Some(node), LogBody::CorosyncDown { reason });
        let watched: Vec<String> = self
            .resource_views
            .keys()
            .filter(|(n, _)| n == node)
            .map(|(_, r)| r.clone())
            .collect();
        for resource in watched {
            self.resource_views
                .insert((node.to_owned(), resource.clone()), None);
            self.record(
                t,
                Some(node),
                LogBody::Resource {
                    resource,
                    active_on: None,
                },
            );
        }
    }

    /// Whether every node sees every node, quorate; or what is missing.
    fn whole(&self) -> Result<(), String> {
        let wrong = crate::log::not_whole(&self.states, &self.nodes);
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(wrong.join("; "))
        }
    }

    /// Whole, and known to be so after the last heal: every node's view
    /// came after it (one ring), or corosync has had its time to show a
    /// change since. Views from before a heal may predate the fault's
    /// effect (a cut corosync had not noticed yet when it was healed).
    fn whole_now(&self) -> Result<(), String> {
        self.whole()?;
        let Some(healed) = self.healed_at else {
            return Ok(());
        };
        let fresh = self
            .nodes
            .iter()
            .all(|n| self.changed_at.get(n).is_some_and(|&t| t > healed));
        let rings: std::collections::BTreeSet<&str> = self
            .nodes
            .iter()
            .filter_map(|n| self.states.get(n).map(|s| s.ring_id.as_str()))
            .collect();
        let settled = self.now() >= healed + self.settle;
        if (fresh && rings.len() == 1) || settled {
            Ok(())
        } else {
            Err(format!(
                "every node looks whole, but not every view is newer than the heal at t={healed:.1}s: \
                 waiting until t={:.1}s for corosync to show any change",
                healed + self.settle
            ))
        }
    }

    fn wait_whole(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = self.now() + timeout.as_secs_f64();
        let mut last_progress = Instant::now();
        loop {
            if self.whole_now().is_ok() {
                return Ok(());
            }
            if self.now() >= deadline {
                return self.whole_now();
            }
            if last_progress.elapsed() >= Duration::from_secs(2) {
                last_progress = Instant::now();
                (self.opts.progress)(&format!(
                    "waiting for the cluster to be whole: {}",
                    self.whole_now().err().unwrap_or_default()
                ));
            }
            // Live views even after a Ctrl-C (the caller honours it):
            // "whole" must be what the nodes say now.
            self.take_in((deadline - self.now()).min(0.1));
            match self.check_renewals() {
                Ok(()) => {}
                // An agent lost now (`corodrill heal` took its node over,
                // say): reach the node again to read its view.
                Err(RunError::AgentLost { node, why }) => {
                    (self.opts.progress)(&format!("{node}: its agent was lost ({why})"));
                    self.reconnect_lost();
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// Agents that died mid-drill (killed, ssh dropped) are connected
    /// again, with retries until `connect_timeout` twice over: the new
    /// agent (or the node's guard before it) rolls the journal back, and
    /// its views are live again for the check that the cluster is whole.
    fn reconnect_lost(&mut self) {
        let mut lost: Vec<String> = Vec::new();
        self.agents.retain_mut(|a| {
            let alive = a.is_alive();
            if !alive {
                lost.push(a.node.clone());
            }
            alive
        });
        for node in &self.nodes {
            let here = self.agents.iter().any(|a| &a.node == node);
            let away = self.powered_off.contains_key(node) || self.reset.contains(node);
            if !here && !away && !lost.contains(node) {
                lost.push(node.clone());
            }
        }
        self.sync_renewals();
        for node in lost {
            let Some(connect) = self.connects.get(&node).cloned() else {
                continue;
            };
            (self.opts.progress)(&format!("{node}: its agent is gone: reconnecting"));
            let deadline = self.opts.connect_timeout * 2;
            let agent = reconnect_owner(&node, &connect, self.opts.connect_timeout, deadline);
            let t = self.now();
            match agent.and_then(|a| {
                let recovered = a.hello.recovered.clone();
                self.rejoin(a).map(|()| recovered)
            }) {
                Ok(recovered) => {
                    // Its faults went with the old agent (its guard) or
                    // the new one: views from before prove nothing.
                    self.healed_at = Some(self.healed_at.map_or(t, |h| h.max(t)));
                    for r in recovered {
                        self.record(
                            t,
                            Some(&node),
                            LogBody::FaultHealed {
                                fault: r.fault_id,
                                clean: r.clean,
                                detail: format!(
                                    "rolled back by the new agent after the old one was lost: {}",
                                    r.detail
                                ),
                            },
                        );
                    }
                    self.record(
                        t,
                        Some(&node),
                        LogBody::NodeBack {
                            detail: "its agent answers again after it was lost".into(),
                        },
                    );
                }
                Err(e) => (self.opts.progress)(&format!("{node}: cannot reconnect: {e}")),
            }
        }
    }

    fn run(&mut self, experiment: &Experiment, plan: &Plan) -> Result<(), RunError> {
        let timeout = self.opts.whole_timeout;
        (self.opts.progress)("waiting until every node is quorate with every node as member");
        self.wait_whole(timeout).map_err(RunError::NotWhole)?;

        // The drill's clock starts now; every node's current view opens the
        // log (what was seen while waiting is not part of the drill).
        self.t0 = mono_ns();
        self.t0_utc = SystemTime::now();
        self.log.clear();
        self.record(
            0.0,
            None,
            LogBody::DrillStart {
                experiment: experiment.name.clone(),
            },
        );
        let opening: Vec<(String, NodeState)> = self
            .states
            .iter()
            .map(|(n, s)| (n.clone(), s.clone()))
            .collect();
        for (node, s) in opening {
            let body = LogBody::Quorum {
                quorate: s.quorate,
                members: s.members,
                ring_id: s.ring_id,
                total_votes: s.total_votes,
                expected_votes: None,
                quorum: None,
            };
            self.record(0.0, Some(&node), body);
        }
        // Views only change on a change: the ones seen while waiting open
        // the log too.
        for ((node, resource), active_on) in self.resource_views.clone() {
            self.record(
                0.0,
                Some(&node),
                LogBody::Resource {
                    resource,
                    active_on,
                },
            );
        }

        enum Step<'p> {
            Apply(&'p crate::plan::PlannedFault),
            Heal(&'p crate::plan::PlannedFault),
        }
        let mut steps: Vec<(Duration, Step)> = Vec::new();
        for f in &plan.faults {
            steps.push((f.at, Step::Apply(f)));
            if let Some(h) = f.heal_at {
                steps.push((h, Step::Heal(f)));
            }
        }
        // Stable: at equal times, applies and heals keep the file's order.
        steps.sort_by_key(|(t, _)| *t);
        for (at, step) in steps {
            let next = match &step {
                Step::Apply(f) => format!("apply {} at t={:.1}s", f.id, at.as_secs_f64()),
                Step::Heal(f) => format!("heal {} at t={:.1}s", f.id, at.as_secs_f64()),
            };
            while self.now() < at.as_secs_f64() {
                self.pump_until((self.now() + 1.0).min(at.as_secs_f64()))?;
                self.say_waiting(experiment, &next);
            }
            match step {
                Step::Apply(f) => self.apply(f)?,
                Step::Heal(f) => self.heal(Some(f))?,
            }
        }
        self.pump_until_decided(experiment, plan.end.as_secs_f64())?;
        (self.opts.progress)(&format!("t={:.1}s healing every fault", self.now()));
        self.heal(None)?;
        let watch_until = self.now() + plan.after_end.as_secs_f64();
        self.pump_until_decided(experiment, watch_until)?;
        match self.wait_whole(timeout) {
            Ok(()) => {
                let t = self.now();
                self.record(t, None, LogBody::ClusterWhole {});
            }
            Err(why) => {
                let t = self.now();
                self.record(t, None, LogBody::ClusterNotWhole { why });
            }
        }
        let t = self.now();
        self.record(t, None, LogBody::DrillEnd {});
        Ok(())
    }

    /// Applies one fault on all its nodes at once.
    fn apply(&mut self, f: &PlannedFault) -> Result<(), RunError> {
        (self.opts.progress)(&format!("t={:.1}s apply {} ({})", self.now(), f.id, f.kind));
        self.apply_agents(f)?;
        if f.power_off.is_empty() {
            Ok(())
        } else {
            self.power_off(f)
        }
    }

    fn apply_agents(&mut self, f: &PlannedFault) -> Result<(), RunError> {
        let lease_ms = self.opts.lease.as_millis() as u64;
        let drill_name = &self.drill_name;
        let results: Vec<(String, Result<Outcome, AgentError>)> = std::thread::scope(|s| {
            let handles: Vec<_> = self
                .agents
                .iter_mut()
                .filter_map(|a| {
                    let fault = f.actions.iter().find(|(n, _)| *n == a.node)?.1.clone();
                    let op = Op::Apply {
                        fault_id: f.id.clone(),
                        fault,
                        lease_ms,
                        allow_management_cut: f.allow_management_cut,
                        drill: Some(drill_name.clone()),
                    };
                    // A command fault may take its own timeout, and the node
                    // kills it then: wait for that answer.
                    let patience = match &op {
                        Op::Apply {
                            fault:
                                corodrill_protocol::Fault::Command {
                                    timeout_ms: Some(ms),
                                    ..
                                },
                            ..
                        } => Duration::from_millis(*ms) + Duration::from_secs(10),
                        _ => Duration::from_secs(60),
                    }
                    .max(Duration::from_secs(60));
                    Some(s.spawn(move || (a.node.clone(), a.request(op, patience))))
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        let mut first_error = None;
        for (node, result) in results {
            match result {
                Ok(Outcome::Ok { mono_ns }) => {
                    let t = self.agent_t(&node, mono_ns);
                    if f.kind == "pause" {
                        self.paused.push((node.clone(), t, None));
                    }
                    self.record(
                        t,
                        Some(&node),
                        LogBody::FaultApplied {
                            fault: f.id.clone(),
                            fault_kind: f.kind.into(),
                        },
                    );
                }
                Ok(other) => {
                    let message = match other {
                        Outcome::Error { message } => message,
                        other => format!("unexpected reply {other:?}"),
                    };
                    let t = self.now();
                    self.record(
                        t,
                        Some(&node),
                        LogBody::FaultFailed {
                            fault: f.id.clone(),
                            error: message.clone(),
                        },
                    );
                    first_error.get_or_insert(RunError::Apply {
                        fault: f.id.clone(),
                        node,
                        message,
                    });
                }
                Err(e) => {
                    first_error.get_or_insert(RunError::Agent(e));
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Runs `job` on its own thread while this one keeps taking in events
    /// and renewing leases; says how long it has taken on long waits.
    fn in_background<T: Send + 'static>(
        &mut self,
        what: &str,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, RunError> {
        let handle = std::thread::spawn(job);
        let started = Instant::now();
        let mut told = Instant::now();
        while !handle.is_finished() {
            let until = self.now() + 0.05;
            self.pump_until(until)?;
            if told.elapsed() >= Duration::from_secs(5) {
                told = Instant::now();
                (self.opts.progress)(&format!(
                    "{what}: {:.0}s so far",
                    started.elapsed().as_secs_f64()
                ));
            }
        }
        handle
            .join()
            .map_err(|_| RunError::Unreachable(format!("{what}: the worker thread panicked")))
    }

    /// Powers the fault's nodes off through their drivers. Their agents die
    /// with them: they leave the lease renewals first.
    fn power_off(&mut self, f: &PlannedFault) -> Result<(), RunError> {
        let mut jobs = Vec::new();
        for node in &f.power_off {
            let driver = self.power.get(node).cloned().ok_or_else(|| {
                RunError::Unreachable(format!("{node}: no power driver was prepared"))
            })?;
            self.powered_off.insert(node.clone(), f.id.clone());
            jobs.push((node.clone(), driver));
        }
        let (dying, live): (Vec<AgentConn>, Vec<AgentConn>) = std::mem::take(&mut self.agents)
            .into_iter()
            .partition(|a| f.power_off.contains(&a.node));
        self.agents = live;
        self.sync_renewals();
        let timeout = self.opts.power_timeout;
        let results = self.in_background(
            &format!("powering off {}", f.power_off.join(", ")),
            move || switch_all(jobs, PowerState::Off, timeout),
        )?;
        // A dead node's connection may take its transport's timeout to
        // close (ssh to a machine without power): let it, elsewhere.
        std::thread::spawn(move || drop(dying));
        let mut first_error = None;
        for (node, driver, result) in results {
            match result {
                Ok(at_ns) => {
                    let t = self.t(at_ns);
                    self.record(
                        t,
                        Some(&node),
                        LogBody::FaultApplied {
                            fault: f.id.clone(),
                            fault_kind: f.kind.into(),
                        },
                    );
                    self.node_down(&node, t, format!("powered off (power driver {driver})"));
                }
                Err(e) => {
                    let t = self.now();
                    self.record(
                        t,
                        Some(&node),
                        LogBody::FaultFailed {
                            fault: f.id.clone(),
                            error: e.to_string(),
                        },
                    );
                    first_error.get_or_insert(RunError::Power(e));
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// An agent back after its node went down: watched as before.
    fn rejoin(&mut self, mut agent: AgentConn) -> Result<(), RunError> {
        if !agent.hello.recovered.is_empty() {
            (self.opts.progress)(&format!(
                "{}: its agent rolled back {} fault(s) journaled before the node went down",
                agent.node,
                agent.hello.recovered.len()
            ));
        }
        let offset = watch(&mut agent, self.opts.connect_timeout)?;
        watch_resources(&mut agent, &self.watches, self.opts.connect_timeout)?;
        self.offsets.insert(agent.node.clone(), offset);
        forward_events(&mut agent, &self.event_tx);
        self.agents.push(agent);
        self.sync_renewals();
        Ok(())
    }

    /// Reconnects to nodes reset by their watchdog once they have booted.
    fn reconnect_reset(&mut self) -> Result<(), RunError> {
        let nodes = std::mem::take(&mut self.reset);
        if nodes.is_empty() {
            return Ok(());
        }
        let jobs: Vec<(String, String)> = nodes
            .iter()
            .filter_map(|n| Some((n.clone(), self.connects.get(n)?.clone())))
            .collect();
        let (connect_timeout, boot_timeout) = (self.opts.connect_timeout, self.opts.boot_timeout);
        let results = self.in_background(
            &format!("waiting for {} to boot after its reset", nodes.join(", ")),
            move || {
                // In parallel: each node may take its whole boot to answer.
                std::thread::scope(|s| {
                    let handles: Vec<_> = jobs
                        .iter()
                        .map(|(node, connect)| {
                            s.spawn(move || reconnect(node, connect, connect_timeout, boot_timeout))
                        })
                        .collect();
                    jobs.iter()
                        .zip(handles)
                        .map(|((node, _), h)| {
                            let agent = h.join().unwrap_or_else(|_| {
                                Err(RunError::Unreachable(format!(
                                    "{node}: reconnecting panicked"
                                )))
                            });
                            (node.clone(), agent)
                        })
                        .collect::<Vec<_>>()
                })
            },
        )?;
        let mut first_error = None;
        for (node, agent) in results {
            let t = self.now();
            match agent.and_then(|a| self.rejoin(a)) {
                Ok(()) => self.record(
                    t,
                    Some(&node),
                    LogBody::NodeBack {
                        detail: "its agent answers again after the reset".into(),
                    },
                ),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Powers nodes on, waits until each one's agent answers again and
    /// watches it as before.
    fn power_on(&mut self, nodes: &[String]) -> Result<(), RunError> {
        let mut jobs = Vec::new();
        for node in nodes {
            let (Some(driver), Some(connect)) = (self.power.get(node), self.connects.get(node))
            else {
                continue;
            };
            jobs.push((node.clone(), driver.clone(), connect.clone()));
        }
        if jobs.is_empty() {
            return Ok(());
        }
        let (power_timeout, boot_timeout, connect_timeout) = (
            self.opts.power_timeout,
            self.opts.boot_timeout,
            self.opts.connect_timeout,
        );
        let results = self.in_background(
            &format!("powering on {} and waiting for its agent", nodes.join(", ")),
            move || {
                std::thread::scope(|s| {
                    let handles: Vec<_> = jobs
                        .iter()
                        .map(|(node, driver, connect)| {
                            s.spawn(move || {
                                let on = power::switch(
                                    node,
                                    driver.as_ref(),
                                    PowerState::On,
                                    power_timeout,
                                    &|_| {},
                                )
                                .map(|()| mono_ns())
                                .map_err(RunError::Power)?;
                                let agent =
                                    reconnect(node, connect, connect_timeout, boot_timeout)?;
                                Ok::<_, RunError>((on, driver.driver(), agent))
                            })
                        })
                        .collect();
                    jobs.iter()
                        .map(|(n, _, _)| n.clone())
                        .zip(handles)
                        .map(|(n, h)| {
                            let r = h.join().unwrap_or_else(|_| {
                                Err(RunError::Unreachable(format!("{n}: power-on panicked")))
                            });
                            (n, r)
                        })
                        .collect::<Vec<_>>()
                })
            },
        )?;
        let mut first_error = None;
        for (node, result) in results {
            match result {
                Ok((on_ns, driver, agent)) => {
                    let fault = self.powered_off.remove(&node).unwrap_or_default();
                    let t = self.t(on_ns);
                    self.healed_at = Some(self.healed_at.map_or(t, |h| h.max(t)));
                    self.record(
                        t,
                        Some(&node),
                        LogBody::FaultHealed {
                            fault,
                            clean: true,
                            detail: format!("powered on (power driver {driver})"),
                        },
                    );
                    if let Err(e) = self.rejoin(agent) {
                        first_error.get_or_insert(e);
                    }
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Heals one fault (or, with None, every fault) on every node.
    fn heal(&mut self, f: Option<&PlannedFault>) -> Result<(), RunError> {
        if let Some(f) = f {
            (self.opts.progress)(&format!("t={:.1}s heal {}", self.now(), f.id));
        }
        let now = self.now();
        let healing: Vec<&str> = match f {
            Some(f) if f.kind == "pause" => f.targets().collect(),
            Some(_) => Vec::new(),
            None => self.nodes.iter().map(String::as_str).collect(),
        };
        for (node, _, until) in &mut self.paused {
            if until.is_none() && healing.contains(&node.as_str()) {
                *until = Some(now);
            }
        }
        let agents_result = self.heal_agents(f);
        let to_power_on: Vec<String> = self
            .powered_off
            .iter()
            .filter(|(_, fault)| f.is_none_or(|f| &f.id == *fault))
            .map(|(node, _)| node.clone())
            .collect();
        let power_result = self.power_on(&to_power_on);
        let reset_result = self.reconnect_reset();
        agents_result.and(power_result).and(reset_result)
    }

    fn heal_agents(&mut self, f: Option<&PlannedFault>) -> Result<(), RunError> {
        // A node powered off took its agent's faults with it; its agent
        // rolls back what its journal holds when it starts again.
        if let Some(f) = f {
            let gone: Vec<String> = f
                .actions
                .iter()
                .map(|(n, _)| n.clone())
                .filter(|n| self.powered_off.contains_key(n) || self.reset.contains(n))
                .collect();
            let t = self.now();
            for node in gone {
                self.record(
                    t,
                    Some(&node),
                    LogBody::FaultHealed {
                        fault: f.id.clone(),
                        clean: true,
                        detail: "the node went down (powered off or reset); its agent rolls the fault back from its journal when it starts".into(),
                    },
                );
            }
        }
        let results: Vec<(String, Result<Outcome, AgentError>)> = std::thread::scope(|s| {
            let handles: Vec<_> = self
                .agents
                .iter_mut()
                .filter(|a| f.is_none_or(|f| f.actions.iter().any(|(n, _)| *n == a.node)))
                .map(|a| {
                    let op = match f {
                        Some(f) => Op::Heal {
                            fault_id: f.id.clone(),
                        },
                        None => Op::HealAll,
                    };
                    s.spawn(move || (a.node.clone(), a.request(op, Duration::from_secs(60))))
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        let mut first_error = None;
        for (node, result) in results {
            match result {
                Ok(Outcome::Healed { mono_ns, reports }) => {
                    let t = self.agent_t(&node, mono_ns);
                    // Something was rolled back: views from before it may
                    // not show yet what it did.
                    if !reports.is_empty() {
                        self.healed_at = Some(self.healed_at.map_or(t, |h| h.max(t)));
                    }
                    for RollbackReport {
                        fault_id,
                        clean,
                        detail,
                        ..
                    } in reports
                    {
                        self.record(
                            t,
                            Some(&node),
                            LogBody::FaultHealed {
                                fault: fault_id,
                                clean,
                                detail,
                            },
                        );
                    }
                }
                Ok(other) => {
                    first_error.get_or_insert(RunError::Unreachable(format!(
                        "{node}: heal answered {other:?}"
                    )));
                }
                Err(e) => {
                    first_error.get_or_insert(RunError::Agent(e));
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn heal_all(&mut self) {
        if let Err(e) = self.heal(None) {
            (self.opts.progress)(&format!("healing: {e}"));
        }
    }
}

/// Starts the agent's quorum stream; returns the offset that maps the
/// agent's monotonic clock onto ours (the reply's agent time against the
/// round trip's midpoint here).
fn watch(agent: &mut AgentConn, timeout: Duration) -> Result<i64, RunError> {
    let before = mono_ns();
    let outcome = agent.request(Op::Watch, timeout)?;
    let after = mono_ns();
    match outcome {
        Outcome::Ok { mono_ns } => Ok((before + after) / 2 - mono_ns as i64),
        other => Err(RunError::Unreachable(format!(
            "{}: watch answered {other:?}",
            agent.node
        ))),
    }
}

/// Starts the agent's resource stream, if the experiment watches any.
fn watch_resources(
    agent: &mut AgentConn,
    watches: &[WatchSpec],
    timeout: Duration,
) -> Result<(), RunError> {
    let Some(op) = watch_op(watches, &agent.node) else {
        return Ok(());
    };
    match agent.request(op, timeout)? {
        Outcome::Ok { .. } => Ok(()),
        other => Err(RunError::Unreachable(format!(
            "{}: watching resources answered {other:?}",
            agent.node
        ))),
    }
}

/// What `node`'s agent watches of the experiment's resources, if anything.
fn watch_op(watches: &[WatchSpec], node: &str) -> Option<Op> {
    let watches: Vec<ResourceWatch> = watches
        .iter()
        .filter(|w| w.watched_on(node))
        .map(|w| ResourceWatch {
            resource: w.resource.clone(),
            interval_ms: w.interval.as_millis() as u64,
            source: match w.kind {
                WatchKind::Pacemaker => ResourceSource::Pacemaker,
                WatchKind::PveHa => ResourceSource::PveHa,
                WatchKind::Probe => ResourceSource::Probe {
                    command: w.command.clone().unwrap_or_default(),
                    timeout_ms: w.timeout.as_millis() as u64,
                },
            },
        })
        .collect();
    (!watches.is_empty()).then(|| Op::WatchResources {
        node: node.to_owned(),
        watches,
    })
}

/// Switches nodes' power in parallel; each result carries when the driver
/// confirmed the state (controller monotonic ns).
fn switch_all(
    jobs: Vec<(String, Arc<dyn PowerDriver>)>,
    wanted: PowerState,
    timeout: Duration,
) -> Vec<(String, &'static str, Result<i64, PowerError>)> {
    std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|(node, driver)| {
                s.spawn(move || {
                    power::switch(node, driver.as_ref(), wanted, timeout, &|_| {})
                        .map(|()| mono_ns())
                })
            })
            .collect();
        jobs.iter()
            .zip(handles)
            .map(|((node, driver), h)| {
                let r = h.join().unwrap_or_else(|_| {
                    Err(PowerError::Failed {
                        node: node.clone(),
                        driver: driver.driver(),
                        message: "the power thread panicked".into(),
                    })
                });
                (node.clone(), driver.driver(), r)
            })
            .collect()
    })
}

/// Connects to a node's agent again after a power-on: the node may take a
/// while to boot, so failures are retried until `boot_timeout`.
fn reconnect(
    node: &str,
    connect: &str,
    connect_timeout: Duration,
    boot_timeout: Duration,
) -> Result<AgentConn, RunError> {
    let deadline = Instant::now() + boot_timeout;
    loop {
        match AgentConn::connect(node, connect, connect_timeout) {
            Ok(agent) => return Ok(agent),
            Err(e) if Instant::now() >= deadline => {
                return Err(RunError::Unreachable(format!(
                    "{node} did not come back within {boot_timeout:?} of its power-on: {e}"
                )))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// Connects to a node's agent again after it was lost, until it owns the
/// node: for a moment the old agent's guard may hold it, rolling back.
fn reconnect_owner(
    node: &str,
    connect: &str,
    connect_timeout: Duration,
    within: Duration,
) -> Result<AgentConn, RunError> {
    let deadline = Instant::now() + within;
    let mut delay = Duration::from_millis(100);
    loop {
        let why = match AgentConn::connect(node, connect, connect_timeout) {
            Ok(agent) if agent.owns() => return Ok(agent),
            Ok(_) => "another agent still holds the node".to_string(),
            Err(e) => e.to_string(),
        };
        if Instant::now() + delay >= deadline {
            return Err(RunError::Unreachable(format!(
                "{node}: its agent could not be reached again within {within:?}: {why}"
            )));
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// "for drill X: cut (cut), skew (clock-skew)", from an observer's hello.
fn held_summary(held: &[corodrill_protocol::HeldFault]) -> String {
    if held.is_empty() {
        return String::new();
    }
    let drills: std::collections::BTreeSet<&str> =
        held.iter().filter_map(|h| h.drill.as_deref()).collect();
    format!(
        " for drill {}: {}",
        drills.into_iter().collect::<Vec<_>>().join(", "),
        held.iter()
            .map(|h| format!("{} ({})", h.fault_id, h.kind))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Renews every agent's lease every quarter lease, each node on a thread
/// of its own: a slow or lost node never delays another's renewal, and
/// nothing the drill does (an apply, a power switch) delays any.
struct Renewer {
    handles: Arc<std::sync::Mutex<BTreeMap<String, AgentHandle>>>,
    /// (connection, node, what its renewal got).
    results: Receiver<(u64, String, Result<Outcome, AgentError>)>,
    stop: Arc<AtomicBool>,
}

impl Renewer {
    fn start(lease: Duration) -> Renewer {
        let handles: Arc<std::sync::Mutex<BTreeMap<String, AgentHandle>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, results) = mpsc::channel();
        {
            let (handles, stop) = (handles.clone(), stop.clone());
            std::thread::spawn(move || {
                let in_flight: Arc<std::sync::Mutex<std::collections::BTreeSet<u64>>> =
                    Arc::default();
                let lease_ms = lease.as_millis() as u64;
                // Long enough for a loaded node, short of the lease.
                let patience = (lease / 2).max(Duration::from_millis(500));
                while !stop.load(Ordering::Relaxed) {
                    let now: Vec<(String, AgentHandle)> = handles
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .iter()
                        .map(|(n, h)| (n.clone(), h.clone()))
                        .collect();
                    for (node, handle) in now {
                        if !in_flight
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(handle.connection())
                        {
                            continue; // the last renewal has not come back yet
                        }
                        let (tx, in_flight) = (tx.clone(), in_flight.clone());
                        std::thread::spawn(move || {
                            let r = handle.request(Op::Renew { lease_ms }, patience);
                            in_flight
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .remove(&handle.connection());
                            let _ = tx.send((handle.connection(), node, r));
                        });
                    }
                    let round = Instant::now();
                    while round.elapsed() < lease / 4 && !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            });
        }
        Renewer {
            handles,
            results,
            stop,
        }
    }

    fn set(&self, agents: impl Iterator<Item = (String, AgentHandle)>) {
        *self.handles.lock().unwrap_or_else(|p| p.into_inner()) = agents.collect();
    }
}

impl Drop for Renewer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The drill's `[requires]` against what the agents report of the cluster.
fn check_requires(experiment: &Experiment, agents: &[AgentConn]) -> Result<(), RunError> {
    let r = &experiment.requires;
    let Some(first) = agents.first() else {
        return Err(RunError::Unreachable("the inventory has no node".into()));
    };
    let config = &first.hello.quorum_config;
    let mut problems = Vec::new();
    if let Some(want) = r.qdevice {
        let has = config.get("device.model").is_some();
        if has != want {
            problems.push(format!(
                "[requires] qdevice = {want}, but the cluster {} a QDevice",
                if has { "has" } else { "has no" }
            ));
        }
    }
    for (key, want) in &r.quorum {
        let want = match want {
            toml::Value::Boolean(b) => u8::from(*b).to_string(),
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let have = config.get(key).cloned().unwrap_or_else(|| "0".into());
        if have != want {
            problems.push(format!(
                "[requires] quorum.{key} = {want}, but the cluster has {have}"
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(RunError::Requires(format!(
            "{}: {}",
            experiment.file.display(),
            problems.join("; ")
        )))
    }
}
