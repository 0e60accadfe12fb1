//! Applying and healing one planned fault on its nodes' agents at once,
//! and healing every fault on the way out.

use std::collections::BTreeMap;
use std::time::Duration;

use corodrill_protocol::{Direction, Fault, Op, Outcome, RollbackReport};

use crate::cluster::agent::AgentError;
use crate::log::LogBody;
use crate::plan::PlannedFault;

use super::clock::{agreed_instant, clock, ClockMapping, CLOCK_ROUND_TRIPS};
use super::token::Touch;
use super::{mono_ns, Drill, RunError};

impl<'a> Drill<'a> {
    /// Applies one fault on all its nodes at once.
    pub(super) fn apply(&mut self, f: &PlannedFault) -> Result<(), RunError> {
        let t = self.now();
        (self.opts.progress)(&format!("t={t:.1}s apply {} ({})", f.id, f.kind));
        let touched = self.touches(f, t);
        self.touched.extend(touched);
        self.apply_agents(f)?;
        if f.power_off.is_empty() {
            Ok(())
        } else {
            self.power_off(f)
        }
    }

    /// The nodes a fault touches, each with whether the fault holds it
    /// silent (for late tokens: `token.rs`).
    fn touches(&self, f: &PlannedFault, t: f64) -> Vec<Touch> {
        let silences = |node: &str, fault: &Fault| match fault {
            Fault::Kill | Fault::Stop | Fault::Pause => true,
            // Cut off both ways from every address of every other node.
            Fault::Cut {
                peers,
                direction: Direction::Both,
            } => self
                .owners
                .iter()
                .filter(|(_, owner)| owner.as_str() != node)
                .all(|(address, _)| peers.contains(address)),
            _ => false,
        };
        let mut touched: Vec<Touch> = Vec::new();
        let mut touch = |node: &str, silent: bool| {
            match touched.iter_mut().find(|x| x.node == node) {
                // Silent only if everything this fault does to it is.
                Some(x) => x.silences &= silent,
                None => touched.push(Touch {
                    fault: f.id.clone(),
                    node: node.to_owned(),
                    from: t,
                    until: None,
                    silences: silent,
                }),
            }
        };
        for (node, fault) in &f.actions {
            touch(node, silences(node, fault));
            // A one-way cut's far side still sends or hears: it takes part.
            if let Fault::Cut { peers, direction } = fault {
                if *direction != Direction::Both {
                    for owner in peers.iter().filter_map(|ip| self.owners.get(ip)) {
                        touch(owner, false);
                    }
                }
            }
        }
        for node in &f.power_off {
            touch(node, true);
        }
        touched
    }

    /// One fault on several nodes takes effect on all of them at one
    /// instant: each agent's clock is mapped afresh (its drift since the
    /// drill began, and how far each request has to travel now), and each is
    /// told when, on its own clock.
    fn agree_on_instant(&mut self, f: &PlannedFault) -> Result<BTreeMap<String, u64>, RunError> {
        let timeout = self.opts.connect_timeout;
        let mapped: Vec<(String, Result<ClockMapping, RunError>)> = std::thread::scope(|s| {
            let handles: Vec<_> = self
                .agents
                .iter_mut()
                .filter(|a| f.actions.iter().any(|(n, _)| *n == a.node))
                .map(|a| s.spawn(move || (a.node.clone(), clock(a, CLOCK_ROUND_TRIPS, timeout))))
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        let mut mappings = BTreeMap::new();
        for (node, mapping) in mapped {
            let mapping = mapping?;
            self.offsets.insert(node.clone(), mapping.offset_ns);
            mappings.insert(node, mapping);
        }
        Ok(agreed_instant(mono_ns(), &mappings))
    }

    pub(super) fn apply_agents(&mut self, f: &PlannedFault) -> Result<(), RunError> {
        let lease_ms = self.opts.lease.as_millis() as u64;
        let at = if f.actions.len() > 1 {
            self.agree_on_instant(f)?
        } else {
            BTreeMap::new()
        };
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
                        at_mono_ns: at.get(&a.node).copied(),
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

    /// Heals one fault (or, with None, every fault) on every node.
    pub(super) fn heal(&mut self, f: Option<&PlannedFault>) -> Result<(), RunError> {
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
        for touch in &mut self.touched {
            if touch.until.is_none() && f.is_none_or(|f| f.id == touch.fault) {
                touch.until = Some(now);
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

    pub(super) fn heal_agents(&mut self, f: Option<&PlannedFault>) -> Result<(), RunError> {
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

    pub(super) fn heal_all(&mut self) {
        if let Err(e) = self.heal(None) {
            (self.opts.progress)(&format!("healing: {e}"));
        }
    }
}
