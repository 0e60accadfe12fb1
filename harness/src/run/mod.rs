//! Running a plan: connect every agent, check the cluster is whole, apply
//! and heal faults on one monotonic timeline while renewing leases, collect
//! every observation into the event log, heal everything, wait for the
//! cluster to be whole again. Every exit path heals first.
//!
//! Here the drill's course from start to end; each of its jobs in a file
//! of its own: `connect`, `events` (the clock and the log), `leases`,
//! `schedule` (what is due when, pure), `faults` (apply and heal),
//! `power`, `reconnect` (nodes lost, reset or powered back on), `streams`
//! (an agent's watches and events), `whole`.

mod alert;
pub mod clock;
mod connect;
mod events;
mod faults;
mod leases;
mod power;
mod reconnect;
mod schedule;
mod streams;
mod token;
mod whole;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use corodrill_protocol::Event;

use crate::cluster::agent::{AgentConn, AgentError};
use crate::cluster::connect::ClusterFacts;
use crate::cluster::power::{PowerDriver, PowerError};
use crate::errors::ErrorCode;
use crate::experiment::{Experiment, WatchSpec};
use crate::inventory::Inventory;
use crate::log::{LogBody, LogEvent, NodeState};
use crate::plan::Plan;
use leases::Renewer;
use schedule::Step;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The cluster does not fit the drill's `[requires]`: exit 2.
    #[error("{0} {hint}", hint = ErrorCode::RequiresUnmet.hint())]
    Requires(String),
    #[error("{0} {hint}", hint = ErrorCode::AgentUnreachable.hint())]
    Agent(#[from] AgentError),
    #[error("{0} {hint}", hint = ErrorCode::AgentUnreachable.hint())]
    Unreachable(String),
    #[error("the cluster is not whole before the drill: {0} {hint}", hint = ErrorCode::NotWhole.hint())]
    NotWhole(String),
    #[error("fault {fault:?} could not be applied on {node}: {message} {}", ErrorCode::ApplyFailed.hint())]
    Apply {
        fault: String,
        node: String,
        message: String,
    },
    #[error("{0} {hint}", hint = ErrorCode::PowerFailed.hint())]
    Power(#[from] PowerError),
    #[error("interrupted; every fault was healed")]
    Cancelled,
    /// Another agent holds a node's faults: a drill is running there now.
    #[error("{0} {hint}", hint = ErrorCode::NodeBusy.hint())]
    Busy(String),
    /// A node's agent was lost mid-drill (killed, its ssh connection
    /// dropped): its faults were rolled back on the node, the drill is void.
    #[error("{node}: its agent was lost mid-drill ({why}); its faults were rolled back on the node and the drill was stopped {}", ErrorCode::AgentLost.hint())]
    AgentLost { node: String, why: String },
    /// Nodes run Proxmox VE HA services and the drill would get some reset
    /// by their watchdog: exit 2 unless `--allow-fencing`.
    #[error("{0} {hint}", hint = ErrorCode::WouldFence.hint())]
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
    /// Install corodrill's Pacemaker alert on the first node for the
    /// drill (`alert.rs`), when the drill watches a Pacemaker resource.
    pub pacemaker_alert: bool,
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
            pacemaker_alert: false,
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
    /// What the cluster runs, if its agents were reached.
    pub cluster: Option<Box<ClusterFacts>>,
}

/// A drill carried out: the experiment as judged (predictions filled in,
/// the oracle's own expectations added) and the event log.
pub struct Ran {
    pub experiment: Experiment,
    pub log: Vec<LogEvent>,
    /// What the cluster runs, as its agents said hello.
    pub cluster: ClusterFacts,
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
    /// Every node a fault touched, with when and whether it is held
    /// silent: what late tokens are judged against (`token.rs`).
    touched: Vec<token::Touch>,
    /// Which node each corosync address is on (the inventory's links).
    owners: BTreeMap<std::net::IpAddr, String>,
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

pub fn run(
    experiment: &Experiment,
    plan: &Plan,
    inventory: &Inventory,
    opts: &RunOptions,
) -> Result<Ran, Aborted> {
    let mut drill = Drill::connect(experiment, plan, inventory, opts).map_err(|error| Aborted {
        error,
        log: Vec::new(),
        cluster: None,
    })?;
    let facts = crate::cluster::connect::cluster_facts(&drill.agents);
    let aborted = |error| Aborted {
        error,
        log: Vec::new(),
        cluster: Some(Box::new(facts.clone())),
    };
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
    let experiment = crate::model::expectations::resolve(experiment, plan, &model, oracle)
        .map_err(|errors| {
            aborted(RunError::Requires(format!(
                "{}: {}",
                experiment.file.display(),
                errors.join("; ")
            )))
        })?;
    if opts.pacemaker_alert {
        if let Err(error) = drill.install_pacemaker_alert(&experiment) {
            (opts.progress)(&format!("{error}: healing every fault"));
            drill.heal_all();
            return Err(Aborted {
                error,
                log: drill.log,
                cluster: Some(Box::new(facts)),
            });
        }
    }
    match drill.run(&experiment, plan) {
        Ok(()) => Ok(Ran {
            experiment,
            log: drill.log,
            cluster: facts,
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
                cluster: Some(Box::new(facts)),
            })
        }
    }
}

impl<'a> Drill<'a> {
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
                source: None,
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
                    source: None,
                },
            );
        }

        // How far the drill runs behind its plan (schedule::slip_after).
        let mut slip = 0.0;
        for (at, step) in schedule::steps(plan) {
            let due = at + Duration::from_secs_f64(slip);
            let next = step.describe(due);
            while let Some(until) = schedule::wait_until(self.now(), due) {
                self.pump_until(until)?;
                self.say_waiting(experiment, &next);
            }
            match step {
                Step::Apply(f) => self.apply(f)?,
                Step::Heal(f) => self.heal(Some(f))?,
            }
            let now = self.now();
            let slipped = schedule::slip_after(slip, at, now);
            if slipped > slip {
                (self.opts.progress)(&format!(
                    "t={now:.1}s {} took {:.1}s longer than planned: the rest of the drill moves {slipped:.1}s later",
                    step.describe(due),
                    slipped - slip
                ));
                slip = slipped;
            }
        }
        self.pump_until_decided(experiment, plan.end.as_secs_f64() + slip)?;
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
}
