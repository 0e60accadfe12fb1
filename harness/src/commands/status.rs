//! `corodrill status`: each node's view, live, read from its agent as an
//! observer beside any drill.

use std::path::Path;
use std::time::{Duration, Instant};

use corodrill_protocol::{EventBody, Op, Outcome};

use crate::cluster::agent::AgentConn;
use crate::cluster::connect::connect_all;

use super::inventory_or_report;

/// `corodrill status`: each node's own view, read from its agent's quorum
/// stream, its knet links as corosync-cfgtool reports them, and its clock
/// against ours.
pub fn status(inventory_path: &Path) -> u8 {
    let inventory = match inventory_or_report(inventory_path) {
        Ok(i) => i,
        Err(code) => return code,
    };
    let (mut agents, failures) = connect_all(&inventory, Duration::from_secs(20));
    for f in &failures {
        eprintln!("{f}");
    }
    println!(
        "{:<8} {:<9} {:<8} {:<8} {:<24} {:>6} {:>9}  links",
        "node", "corosync", "quorate", "ring id", "members", "votes", "clock"
    );
    // Each node on its own thread: one whose corosync does not answer
    // (paused, say) costs its own timeouts, not everyone's.
    let lines: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = agents
            .iter_mut()
            .map(|a| s.spawn(move || status_line(a)))
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    for line in lines {
        println!("{line}");
    }
    if failures.is_empty() {
        0
    } else {
        3
    }
}

/// One node's line of `corodrill status`.
pub(super) fn status_line(a: &mut AgentConn) -> String {
    let version = a
        .hello
        .capabilities
        .corosync_version
        .clone()
        .unwrap_or_else(|| "-".into());
    let clock = format!("{:+.1}ms", a.clock_offset_us as f64 / 1000.0);
    let links = match a.request(Op::Preflight { peers: Vec::new() }, Duration::from_secs(10)) {
        Ok(Outcome::Checks { checks }) => checks
            .into_iter()
            .find(|c| c.name == "corosync links")
            .map_or_else(|| "-".into(), |c| c.detail),
        _ => "-".into(),
    };
    let watching = matches!(
        a.request(Op::Watch, Duration::from_secs(5)),
        Ok(Outcome::Ok { .. })
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut line = format!(
        "{:<8} {:<9} no answer from the quorum stream",
        a.node, version
    );
    while watching && Instant::now() < deadline {
        let Ok(ev) = a
            .events()
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        else {
            break;
        };
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
                let votes = format!(
                    "{}/{}",
                    total_votes.map_or("?".into(), |v| v.to_string()),
                    expected_votes.map_or("?".into(), |v| v.to_string())
                );
                line = format!(
                    "{:<8} {:<9} {:<8} {:<8} {:<24} {:>6} {:>9}  {links}",
                    a.node,
                    version,
                    if quorate { "yes" } else { "no" },
                    ring_id,
                    names.join(","),
                    votes,
                    clock
                );
                break;
            }
            EventBody::CorosyncDown { reason } => {
                line = format!("{:<8} {:<9} corosync down: {reason}", a.node, version);
                break;
            }
            EventBody::LeaseExpired { .. }
            | EventBody::Links { .. }
            | EventBody::Resource { .. }
            | EventBody::EtcPve { .. }
            | EventBody::Stall { .. }
            | EventBody::TokenLate { .. } => {}
        }
    }
    line
}
