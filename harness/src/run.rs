//! Running a plan: connect every agent, check the cluster is whole, apply
//! and heal faults on one monotonic timeline while renewing leases, collect
//! every observation into the event log, heal everything, wait for the
//! cluster to be whole again. Every exit path heals first.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime};

use corodrill_protocol::{Event, EventBody, Op, Outcome, RollbackReport};

use crate::agent::{AgentConn, AgentError};
use crate::experiment::Experiment;
use crate::inventory::Inventory;
use crate::log::{LogBody, LogEvent, NodeState};
use crate::plan::Plan;

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
    #[error("interrupted; every fault was healed")]
    Cancelled,
}

impl RunError {
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Requires(_) => 2,
            RunError::Cancelled => 130,
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
    pub progress: &'a dyn Fn(&str),
    /// Set by Ctrl-C: heal and stop.
    pub cancel: &'a AtomicBool,
}

/// The log so far, with the error that ended the drill early.
pub struct Aborted {
    pub error: RunError,
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
    last_renew: Instant,
    nodes: Vec<String>,
}

pub fn run(
    experiment: &Experiment,
    plan: &Plan,
    inventory: &Inventory,
    opts: &RunOptions,
) -> Result<Vec<LogEvent>, Aborted> {
    let mut drill = match Drill::connect(experiment, plan, inventory, opts) {
        Ok(d) => d,
        Err(error) => {
            return Err(Aborted {
                error,
                log: Vec::new(),
            })
        }
    };
    match drill.run(experiment, plan) {
        Ok(()) => Ok(drill.log),
        Err(error) => {
            (opts.progress)(&format!("{error}: healing every fault"));
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
        (opts.progress)(&format!("connecting to {} agents", inventory.nodes.len()));
        let (mut agents, failures) = crate::ops::connect_all(inventory, opts.connect_timeout);
        if !failures.is_empty() {
            return Err(RunError::Unreachable(format!(
                "agents unreachable: {}",
                failures.join("; ")
            )));
        }
        check_requires(experiment, &agents)?;
        let names = agents
            .iter()
            .filter_map(|a| Some((a.hello.node_id?, a.node.clone())))
            .collect();
        let (tx, events) = mpsc::channel();
        for a in &mut agents {
            let rx = a.take_events();
            let tx = tx.clone();
            let node = a.node.clone();
            std::thread::spawn(move || {
                for ev in rx {
                    if tx.send((node.clone(), ev)).is_err() {
                        break;
                    }
                }
            });
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
            last_renew: Instant::now(),
            nodes: plan.nodes.clone(),
        };
        // Watching starts the quorum stream; the reply's agent time, against
        // the round trip's midpoint here, maps agent clocks onto ours.
        for a in &mut drill.agents {
            let before = mono_ns();
            let outcome = a.request(Op::Watch, opts.connect_timeout)?;
            let after = mono_ns();
            if let Outcome::Ok { mono_ns } = outcome {
                drill
                    .offsets
                    .insert(a.node.clone(), (before + after) / 2 - mono_ns as i64);
            }
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
        let at = if t >= 0.0 {
            self.t0_utc + Duration::from_secs_f64(t)
        } else {
            self.t0_utc - Duration::from_secs_f64(-t)
        };
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
            EventBody::CorosyncDown { reason } => {
                self.states.insert(node.clone(), NodeState::down());
                self.record(t, Some(&node), LogBody::CorosyncDown { reason });
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
            if self.last_renew.elapsed() >= self.opts.lease / 4 {
                self.renew()?;
            }
            let left = deadline - self.now();
            if left <= 0.0 {
                return Ok(());
            }
            let wait = Duration::from_secs_f64(left.min(0.1));
            match self.events.recv_timeout(wait) {
                Ok((node, ev)) => self.absorb(node, ev),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(RunError::Unreachable(
                        "every agent's event stream closed".into(),
                    ))
                }
            }
        }
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
            let now = self.now();
            if crate::judge::expectations_met(experiment, &self.nodes, &self.log, now - SETTLE) {
                return self.pump_until((now + SETTLE).min(deadline));
            }
        }
        Ok(())
    }

    fn renew(&mut self) -> Result<(), RunError> {
        self.last_renew = Instant::now();
        let lease_ms = self.opts.lease.as_millis() as u64;
        for a in &mut self.agents {
            if let Outcome::Error { message } =
                a.request(Op::Renew { lease_ms }, Duration::from_secs(5))?
            {
                return Err(RunError::Unreachable(format!(
                    "{}: lease renewal failed: {message}",
                    a.node
                )));
            }
        }
        Ok(())
    }

    /// Whether every node sees every node, quorate; or what is missing.
    fn whole(&self) -> Result<(), String> {
        let wrong: Vec<String> = self
            .nodes
            .iter()
            .filter_map(|n| match self.states.get(n) {
                Some(s) if s.sees_whole(&self.nodes) => None,
                Some(s) => Some(format!("{n}: {}", s.describe())),
                None => Some(format!("{n}: no quorum report yet")),
            })
            .collect();
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(wrong.join("; "))
        }
    }

    fn wait_whole(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = self.now() + timeout.as_secs_f64();
        let mut last_progress = Instant::now();
        loop {
            if self.whole().is_ok() {
                return Ok(());
            }
            if self.now() >= deadline {
                return self.whole();
            }
            if last_progress.elapsed() >= Duration::from_secs(2) {
                last_progress = Instant::now();
                (self.opts.progress)(&format!(
                    "waiting for the cluster to be whole: {}",
                    self.whole().err().unwrap_or_default()
                ));
            }
            let until = (self.now() + 0.1).min(deadline);
            // Cancellation is honoured by the caller's own path; here only events matter.
            match self.pump_until(until) {
                Ok(()) | Err(RunError::Cancelled) => {}
                Err(e) => return Err(e.to_string()),
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
            self.pump_until(at.as_secs_f64())?;
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
    fn apply(&mut self, f: &crate::plan::PlannedFault) -> Result<(), RunError> {
        (self.opts.progress)(&format!("t={:.1}s apply {} ({})", self.now(), f.id, f.kind));
        let lease_ms = self.opts.lease.as_millis() as u64;
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
                    };
                    Some(s.spawn(move || (a.node.clone(), a.request(op, Duration::from_secs(60)))))
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        let mut first_error = None;
        for (node, result) in results {
            match result {
                Ok(Outcome::Ok { mono_ns }) => {
                    let t = self.agent_t(&node, mono_ns);
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

    /// Heals one fault (or, with None, every fault) on every node.
    fn heal(&mut self, f: Option<&crate::plan::PlannedFault>) -> Result<(), RunError> {
        if let Some(f) = f {
            (self.opts.progress)(&format!("t={:.1}s heal {}", self.now(), f.id));
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
        let _ = self.heal(None);
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
