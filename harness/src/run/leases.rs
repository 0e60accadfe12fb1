//! Leases: every agent's renewed on a thread of its own, so that a slow
//! apply or a long wait never lets one lapse; a renewal that failed is the
//! drill's error.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use corodrill_protocol::{Op, Outcome};

use crate::cluster::agent::{AgentError, AgentHandle};

use super::{Drill, RunError};

impl<'a> Drill<'a> {
    /// The renewer's handles follow the drill's agents.
    pub(super) fn sync_renewals(&mut self) {
        self.renewer
            .set(self.agents.iter().map(|a| (a.node.clone(), a.handle())));
    }

    /// What the renewer heard since last asked: a refusal or a silent
    /// agent ends the drill (a node the fencing foresight named is taken as
    /// reset instead).
    pub(super) fn check_renewals(&mut self) -> Result<(), RunError> {
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
}

/// Renews every agent's lease every quarter lease, each node on a thread
/// of its own: a slow or lost node never delays another's renewal, and
/// nothing the drill does (an apply, a power switch) delays any.
pub(super) struct Renewer {
    handles: Arc<std::sync::Mutex<BTreeMap<String, AgentHandle>>>,
    /// (connection, node, what its renewal got).
    results: Receiver<(u64, String, Result<Outcome, AgentError>)>,
    stop: Arc<AtomicBool>,
}

impl Renewer {
    pub(super) fn start(lease: Duration) -> Renewer {
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

    pub(super) fn set(&self, agents: impl Iterator<Item = (String, AgentHandle)>) {
        *self.handles.lock().unwrap_or_else(|p| p.into_inner()) = agents.collect();
    }
}

impl Drop for Renewer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
