//! `corodrill heal`: the red button: every node's faults rolled back,
//! whoever holds them, then the cluster checked whole.

use std::path::Path;
use std::time::{Duration, Instant};

use corodrill_protocol::{EventBody, Op, Outcome};

use crate::cluster::agent::AgentConn;
use crate::cluster::connect::{cluster_model, connect_all};

use super::inventory_or_report;

/// `corodrill heal`: the operator's red button. On each node, an agent
/// starts; if no other holds the node it rolls back what its journal holds
/// (a previous agent's faults); if one does (a drill running now), it makes
/// that agent roll back and exit, and takes over. Says which drill's faults
/// it ended. Safe at any time.
pub fn heal(inventory_path: &Path) -> u8 {
    let inventory = match inventory_or_report(inventory_path) {
        Ok(i) => i,
        Err(code) => return code,
    };
    let (mut agents, failures) = connect_all(&inventory, Duration::from_secs(20));
    let mut code = 0;
    for f in &failures {
        eprintln!("{f}");
        code = 3;
    }
    // In parallel: taking over waits for the other agent to let go.
    let results: Vec<(String, Vec<String>, bool)> = std::thread::scope(|s| {
        let handles: Vec<_> = agents
            .iter_mut()
            .map(|a| s.spawn(move || heal_one(a)))
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let mut acted = false;
    for (node, lines, clean) in results {
        if !clean {
            code = 3;
        }
        if lines.is_empty() {
            println!("{node}: nothing to roll back");
        }
        acted |= !lines.is_empty();
        for l in lines {
            println!("{node}: {l}");
        }
    }
    if !failures.is_empty() || agents.is_empty() {
        return code;
    }
    // Healed is not whole: read every node's view, live, until corosync has
    // had its time to show what the faults just removed did.
    let model = cluster_model(&agents, &inventory, &std::collections::BTreeMap::new());
    let settle = if acted {
        model.window()
    } else {
        Duration::ZERO
    };
    let nodes: Vec<String> = inventory.nodes.iter().map(|n| n.name.clone()).collect();
    match verify_whole(
        &agents,
        &nodes,
        settle,
        model.merge_window().max(Duration::from_secs(60)),
    ) {
        Ok(said) => println!("{said}"),
        Err(why) => {
            eprintln!("after healing, the cluster is not whole: {why}");
            code = 3;
        }
    }
    code
}

/// Watches every node's quorum view until each is quorate with every node
/// as member, one ring, and `settle` has passed; or says what is missing
/// at `timeout`.
pub(super) fn verify_whole(
    agents: &[AgentConn],
    nodes: &[String],
    settle: Duration,
    timeout: Duration,
) -> Result<String, String> {
    let started = Instant::now();
    let ids: std::collections::BTreeMap<u32, String> = agents
        .iter()
        .filter_map(|a| Some((a.hello.node_id?, a.node.clone())))
        .collect();
    for a in agents {
        match a.request(Op::Watch, Duration::from_secs(5)) {
            Ok(Outcome::Ok { .. }) => {}
            other => return Err(format!("{}: cannot watch its quorum: {other:?}", a.node)),
        }
    }
    let mut views: std::collections::BTreeMap<String, crate::log::NodeState> =
        std::collections::BTreeMap::new();
    let mut last_said = Instant::now();
    loop {
        for a in agents {
            while let Ok(ev) = a.events().try_recv() {
                let state = match ev.body {
                    EventBody::Quorum {
                        quorate,
                        ring_id,
                        members,
                        total_votes,
                        ..
                    } => crate::log::NodeState {
                        quorate,
                        members: members
                            .iter()
                            .map(|m| {
                                m.name
                                    .clone()
                                    .or_else(|| ids.get(&m.node_id).cloned())
                                    .unwrap_or_else(|| format!("node{}", m.node_id))
                            })
                            .collect(),
                        ring_id,
                        total_votes,
                        corosync_up: true,
                    },
                    EventBody::CorosyncDown { .. } => crate::log::NodeState::down(),
                    _ => continue,
                };
                views.insert(a.node.clone(), state);
            }
        }
        let missing = crate::log::not_whole(&views, nodes);
        let rings: std::collections::BTreeSet<&str> =
            views.values().map(|s| s.ring_id.as_str()).collect();
        let elapsed = started.elapsed();
        if missing.is_empty() && rings.len() == 1 && elapsed >= settle {
            return Ok(format!(
                "cluster whole: every node quorate with all {} nodes, ring {} (live views, {:.1}s after the heal)",
                nodes.len(),
                rings.into_iter().next().unwrap_or_default(),
                elapsed.as_secs_f64()
            ));
        }
        let why = if !missing.is_empty() {
            missing.join("; ")
        } else if rings.len() > 1 {
            format!(
                "nodes on different rings ({})",
                rings.into_iter().collect::<Vec<_>>().join(", ")
            )
        } else {
            format!(
                "every node sees every node; giving corosync {:.1}s to show what the heal changed",
                settle.as_secs_f64()
            )
        };
        if elapsed >= timeout {
            return Err(why);
        }
        if last_said.elapsed() >= Duration::from_secs(5) {
            last_said = Instant::now();
            eprintln!("waiting for the cluster to be whole: {why}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One node's heal: its report lines, and whether it is clean.
pub(super) fn heal_one(a: &mut AgentConn) -> (String, Vec<String>, bool) {
    let mut clean = true;
    let mut lines: Vec<String> = a
        .hello
        .recovered
        .iter()
        .map(|r| {
            clean &= r.clean;
            r.to_string()
        })
        .collect();
    let op = if a.owns() {
        Op::HealAll
    } else {
        if let corodrill_protocol::Role::Observer { owner_pid, held } = &a.hello.role {
            let drills: std::collections::BTreeSet<&str> =
                held.iter().filter_map(|h| h.drill.as_deref()).collect();
            lines.push(format!(
                "a running drill{} holds this node (agent pid {}): ending it",
                if drills.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", drills.into_iter().collect::<Vec<_>>().join(", "))
                },
                owner_pid.map_or("unknown".into(), |p| p.to_string())
            ));
        }
        Op::TakeOver { grace_ms: 10_000 }
    };
    match a.request(op, Duration::from_secs(90)) {
        Ok(Outcome::Healed { reports, .. }) => lines.extend(reports.iter().map(|r| {
            clean &= r.clean;
            r.to_string()
        })),
        Ok(Outcome::Error { message }) => {
            lines.push(message);
            clean = false;
        }
        Ok(other) => {
            lines.push(format!("heal answered {other:?}"));
            clean = false;
        }
        Err(e) => {
            lines.push(e.to_string());
            clean = false;
        }
    }
    (a.node.clone(), lines, clean)
}
