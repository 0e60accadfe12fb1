//! Operator commands on an inventory outside a drill: `status` (each node's
//! view, live) and `heal` (roll back whatever corodrill left anywhere).

use std::path::Path;
use std::time::{Duration, Instant};

use corodrill_protocol::{EventBody, Op, Outcome};

use crate::agent::{AgentConn, AgentError};
use crate::drills::load_inventory;
use crate::inventory::Inventory;

/// Every agent of the inventory, connected in parallel; failures by node.
pub fn connect_all(inventory: &Inventory, timeout: Duration) -> (Vec<AgentConn>, Vec<String>) {
    let results: Vec<Result<AgentConn, AgentError>> = std::thread::scope(|s| {
        let handles: Vec<_> = inventory
            .nodes
            .iter()
            .map(|n| s.spawn(move || AgentConn::connect(&n.name, &n.connect, timeout)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(AgentError::Gone {
                        node: "?".into(),
                        stderr: String::new(),
                    })
                })
            })
            .collect()
    });
    let mut agents = Vec::new();
    let mut failures = Vec::new();
    for r in results {
        match r {
            Ok(a) => agents.push(a),
            Err(e) => failures.push(e.to_string()),
        }
    }
    (agents, failures)
}

/// `corodrill heal`: every node's agent starts, rolls back what its
/// journal holds (a previous agent's faults), and reports it. Safe at any
/// time; it also ends the faults of a drill still running.
pub fn heal(inventory_path: &Path) -> u8 {
    let inventory = match load_inventory(inventory_path) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let (mut agents, failures) = connect_all(&inventory, Duration::from_secs(20));
    let mut code = 0;
    for f in &failures {
        eprintln!("{f}");
        code = 3;
    }
    for a in &mut agents {
        let mut lines: Vec<String> = a
            .hello
            .recovered
            .iter()
            .map(|r| {
                if !r.clean {
                    code = 3;
                }
                format!(
                    "{} {} ({}): {}",
                    if r.clean {
                        "rolled back"
                    } else {
                        "NOT rolled back"
                    },
                    r.fault_id,
                    r.kind,
                    r.detail
                )
            })
            .collect();
        match a.request(Op::HealAll, Duration::from_secs(60)) {
            Ok(Outcome::Healed { reports, .. }) => lines.extend(
                reports
                    .iter()
                    .map(|r| format!("rolled back {} ({}): {}", r.fault_id, r.kind, r.detail)),
            ),
            Ok(other) => lines.push(format!("heal answered {other:?}")),
            Err(e) => {
                lines.push(e.to_string());
                code = 3;
            }
        }
        if lines.is_empty() {
            println!("{}: nothing to roll back", a.node);
        }
        for l in lines {
            println!("{}: {l}", a.node);
        }
    }
    code
}

/// `corodrill status`: each node's own view, read from its agent's quorum
/// stream.
pub fn status(inventory_path: &Path) -> u8 {
    let inventory = match load_inventory(inventory_path) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let (mut agents, failures) = connect_all(&inventory, Duration::from_secs(20));
    for f in &failures {
        eprintln!("{f}");
    }
    println!(
        "{:<8} {:<10} {:<8} {:<8} {:<28} {:>6}  {:>9}",
        "node", "corosync", "quorate", "ring id", "members", "votes", "clock"
    );
    for a in &mut agents {
        let version = a
            .hello
            .capabilities
            .corosync_version
            .clone()
            .unwrap_or_else(|| "-".into());
        let watching = a.request(Op::Watch, Duration::from_secs(5));
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut line = format!(
            "{:<8} {:<10} no answer from the quorum stream",
            a.node, version
        );
        while let (true, Ok(Outcome::Ok { .. })) = (Instant::now() < deadline, &watching) {
            let Ok(ev) = a
                .events()
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            else {
                break;
            };
            // The agent's real-time clock against ours, at the moment the event arrived.
            let ours = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as i64);
            let offset = format!("{:+.1}ms", (ev.utc_us - ours) as f64 / 1000.0);
            match ev.body {
                EventBody::Quorum {
                    quorate,
                    ring_id,
                    members,
                    total_votes,
                    expected_votes,
                    ..
                } => {
                    let names: Vec<String> = members
                        .iter()
                        .map(|m| {
                            m.name
                                .clone()
                                .unwrap_or_else(|| format!("node{}", m.node_id))
                        })
                        .collect();
                    line = format!(
                        "{:<8} {:<10} {:<8} {:<8} {:<28} {:>6}  {:>9}",
                        a.node,
                        version,
                        if quorate { "yes" } else { "no" },
                        ring_id,
                        names.join(","),
                        format!(
                            "{}/{}",
                            total_votes.map_or("?".into(), |v| v.to_string()),
                            expected_votes.map_or("?".into(), |v| v.to_string())
                        ),
                        offset
                    );
                    break;
                }
                EventBody::CorosyncDown { reason } => {
                    line = format!("{:<8} {:<10} corosync down: {reason}", a.node, version);
                    break;
                }
                EventBody::LeaseExpired { .. } => {}
            }
        }
        println!("{line}");
    }
    if failures.is_empty() {
        0
    } else {
        3
    }
}
