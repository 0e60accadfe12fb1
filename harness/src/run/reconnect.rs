//! Nodes that went away and came back: an agent that fell silent (lost,
//! or reset by its watchdog as the fencing foresight said), reached again
//! and rejoined to the drill after a power-on or at the heal.

use std::time::{Duration, Instant};

use crate::cluster::agent::AgentConn;
use crate::log::{LogBody, NodeState};

use super::streams::{forward_events, watch, watch_resources};
use super::{Drill, RunError};

impl<'a> Drill<'a> {
    /// A node the fencing foresight named went silent: its watchdog reset
    /// it. It is down until it boots; its faults went with it (its agent
    /// rolls back its journal at boot) and it is reconnected at the heal.
    pub(super) fn node_reset(&mut self, node: &str, why: &str) {
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
    pub(super) fn node_down(&mut self, node: &str, t: f64, reason: String) {
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
                    source: None,
                },
            );
        }
    }

    /// Agents that died mid-drill (killed, ssh dropped) are connected
    /// again, with retries until `connect_timeout` twice over: the new
    /// agent (or the node's guard before it) rolls the journal back, and
    /// its views are live again for the check that the cluster is whole.
    pub(super) fn reconnect_lost(&mut self) {
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

    /// An agent back after its node went down: watched as before.
    pub(super) fn rejoin(&mut self, mut agent: AgentConn) -> Result<(), RunError> {
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
    pub(super) fn reconnect_reset(&mut self) -> Result<(), RunError> {
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
}

/// Connects to a node's agent again after a power-on: the node may take a
/// while to boot, so failures are retried until `boot_timeout`.
pub(super) fn reconnect(
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
