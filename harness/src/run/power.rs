//! Powering nodes off and on during a drill, through their power
//! drivers, the waits on a worker thread; each driver asked for its state
//! before the drill, so that a missing credential or a silent driver stops
//! it before anything is touched.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::cluster::agent::AgentConn;
use crate::cluster::power::{self, PowerDriver, PowerError, PowerState};
use crate::inventory::Inventory;
use crate::log::LogBody;
use crate::plan::{Plan, PlannedFault};

use super::reconnect::reconnect;
use super::{mono_ns, Drill, RunError, RunOptions};

impl<'a> Drill<'a> {
    /// Powers the fault's nodes off through their drivers. Their agents die
    /// with them: they leave the lease renewals first.
    pub(super) fn power_off(&mut self, f: &PlannedFault) -> Result<(), RunError> {
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

    /// Powers nodes on, waits until each one's agent answers again and
    /// watches it as before.
    pub(super) fn power_on(&mut self, nodes: &[String]) -> Result<(), RunError> {
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
}

/// The power drivers of every node the plan powers off, each asked for its
/// state: a missing credential (exit 2) or a driver that does not answer
/// (exit 3) stops the drill before anything is touched.
pub(super) fn power_drivers(
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
