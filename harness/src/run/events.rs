//! The drill's one clock and its event log: agents' events mapped onto
//! the controller's monotonic time and recorded, taken in while the drill
//! waits (for a time, for its expectations to be decided, or for a job
//! on a worker thread).

use std::sync::atomic::Ordering;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use corodrill_protocol::{Event, EventBody};

use crate::experiment::Experiment;
use crate::log::{LogBody, LogEvent, NodeState};

use super::{mono_ns, Drill, RunError};

impl<'a> Drill<'a> {
    pub(super) fn t(&self, controller_ns: i64) -> f64 {
        (controller_ns - self.t0) as f64 / 1e9
    }

    pub(super) fn agent_t(&self, node: &str, agent_ns: u64) -> f64 {
        self.t(agent_ns as i64 + self.offsets.get(node).copied().unwrap_or(0))
    }

    pub(super) fn now(&self) -> f64 {
        self.t(mono_ns())
    }

    /// Logs an event that happened at drill time `t`; its UTC stamp is
    /// derived from `t`, so both say when it happened, not when it arrived.
    pub(super) fn record(&mut self, t: f64, node: Option<&str>, body: LogBody) {
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
    pub(super) fn absorb(&mut self, node: String, ev: Event) {
        let t = self.agent_t(&node, ev.mono_ns);
        match ev.body {
            EventBody::Quorum {
                quorate,
                members,
                ring_id,
                expected_votes,
                total_votes,
                quorum,
                source,
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
                    source: Some(
                        source
                            .unwrap_or(corodrill_protocol::TimeSource::Notification)
                            .as_str()
                            .to_owned(),
                    ),
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
                source,
            } => {
                self.resource_views
                    .insert((node.clone(), resource.clone()), active_on.clone());
                // An agent that predates `source` timed it by its poll.
                let source = source.unwrap_or(corodrill_protocol::ResourceTimeSource::Poll);
                self.record(
                    t,
                    Some(&node),
                    LogBody::Resource {
                        resource,
                        active_on,
                        source: Some(source.as_str().to_owned()),
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
            EventBody::TokenLate {
                late_ms,
                ring,
                detail,
            } => {
                // A node id with no name could be a touched node: the
                // ring is then not known.
                let ring: Vec<String> = ring
                    .iter()
                    .map(|id| self.names.get(id).cloned())
                    .collect::<Option<_>>()
                    .unwrap_or_default();
                if super::token::unexplained(&node, &ring, t, &self.touched) {
                    let ring = ring.join(", ");
                    (self.opts.progress)(&format!(
                        "t={t:.1}s {node}: corosync lost the token among nodes no fault touched ({ring}): {detail}"
                    ));
                    self.record(
                        t,
                        Some(&node),
                        LogBody::Stall {
                            source: "token".into(),
                            late_ms,
                            detail: format!("{detail} (ring: {ring})"),
                        },
                    );
                }
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
    pub(super) fn pump_until(&mut self, deadline: f64) -> Result<(), RunError> {
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
    pub(super) fn take_in(&mut self, wait: f64) {
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

    /// Like `pump_until`, but stops early once every expectation has passed:
    /// the rest of the window would only wait for a verdict already known.
    pub(super) fn pump_until_decided(
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
    pub(super) fn say_waiting(&mut self, experiment: &Experiment, next: &str) {
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

    /// Runs `job` on its own thread while this one keeps taking in events
    /// and renewing leases; says how long it has taken on long waits.
    pub(super) fn in_background<T: Send + 'static>(
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
}
