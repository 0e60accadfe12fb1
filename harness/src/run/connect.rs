//! Reaching every node before a drill: each agent connected and asked
//! for its quorum and resource streams (their offsets map each agent's
//! clock onto the controller's), faults a node still holds named, and the
//! experiment's `requires` checked against what the agents report.

use std::collections::BTreeMap;
use std::sync::mpsc::{self};
use std::time::{Instant, SystemTime};

use crate::cluster::agent::AgentConn;
use crate::experiment::Experiment;
use crate::inventory::Inventory;
use crate::plan::Plan;

use super::leases::Renewer;
use super::power::power_drivers;
use super::streams::{forward_events, watch, watch_resources};
use super::{mono_ns, Drill, RunError, RunOptions};

impl<'a> Drill<'a> {
    pub(super) fn connect(
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
            touched: Vec::new(),
            owners: inventory
                .nodes
                .iter()
                .flat_map(|n| {
                    n.links
                        .values()
                        .filter_map(|a| Some((a.parse().ok()?, n.name.clone())))
                })
                .collect(),
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
