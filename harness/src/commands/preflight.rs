//! `corodrill preflight`: read-only checks of every node and of the
//! cluster as a whole before a drill, as text or JUnit.

use std::path::Path;
use std::time::Duration;

use corodrill_protocol::{Op, Outcome};

use crate::cluster::connect::connect_all;

use super::inventory_or_report;

/// `corodrill preflight`: each node's own read-only checks (names, clock,
/// links, round trips, firewall), and the cluster's (links, QDevice,
/// quorum). Exit 1 on a failed check.
pub fn preflight(inventory_path: &Path, junit: Option<&Path>) -> u8 {
    use corodrill_protocol::{Check, CheckStatus, Peer};

    let inventory = match inventory_or_report(inventory_path) {
        Ok(i) => i,
        Err(code) => return code,
    };
    // Each node's link addresses by link number (ring0 first).
    let addresses = |n: &crate::inventory::InventoryNode| -> Vec<std::net::IpAddr> {
        n.link_addresses().into_values().collect()
    };
    let (mut agents, failures) = connect_all(&inventory, Duration::from_secs(20));
    let mut results: Vec<(String, Check)> = failures
        .iter()
        .map(|f| {
            (
                "-".to_string(),
                Check {
                    name: "agent reachable".into(),
                    status: CheckStatus::Fail,
                    detail: f.clone(),
                    fix: Some("check the inventory's connect command and that corodrill-agent is installed".into()),
                },
            )
        })
        .collect();
    for a in &mut agents {
        let peers: Vec<Peer> = inventory
            .nodes
            .iter()
            .filter(|n| n.name != a.node)
            .map(|n| Peer {
                name: n.name.clone(),
                addresses: addresses(n),
            })
            .collect();
        match a.request(Op::Preflight { peers }, Duration::from_secs(120)) {
            Ok(Outcome::Checks { checks }) => {
                results.extend(checks.into_iter().map(|c| (a.node.clone(), c)))
            }
            Ok(other) => results.push((
                a.node.clone(),
                cluster_check(
                    "agent",
                    CheckStatus::Fail,
                    format!("preflight answered {other:?}"),
                    None,
                ),
            )),
            Err(e) => results.push((
                a.node.clone(),
                cluster_check("agent", CheckStatus::Fail, e.to_string(), None),
            )),
        }
    }
    // Clocks against the controller's.
    for a in &agents {
        let offset_ms = a.clock_offset_us as f64 / 1000.0;
        let (status, fix) = if offset_ms.abs() <= 500.0 {
            (CheckStatus::Pass, None)
        } else {
            (
                CheckStatus::Warn,
                Some("synchronise the clocks (chrony) on every node and on this machine"),
            )
        };
        results.push((
            a.node.clone(),
            cluster_check(
                "clock offset against the controller",
                status,
                format!("{offset_ms:+.1} ms"),
                fix,
            ),
        ));
    }
    // The cluster's shape.
    let nodes = inventory.nodes.len();
    let links = inventory.links();
    let qdevice = agents
        .iter()
        .any(|a| a.hello.quorum_config.contains_key("device.model"));
    results.push((
        "cluster".into(),
        if links > 1 {
            cluster_check(
                "more than one corosync link",
                CheckStatus::Pass,
                format!("{links} links"),
                None,
            )
        } else {
            cluster_check(
                "more than one corosync link",
                CheckStatus::Warn,
                "one link: a single switch or NIC failure splits the cluster".into(),
                Some("add a second link on a separate network (ring1_addr)"),
            )
        },
    ));
    if nodes == 2 && !qdevice {
        results.push((
            "cluster".into(),
            cluster_check(
                "two nodes without QDevice",
                CheckStatus::Warn,
                "two nodes, one vote each: on a cut between them both lose quorum".into(),
                Some("add a QDevice on a third machine (pvecm qdevice setup ADDRESS)"),
            ),
        ));
    }
    let votes = nodes + usize::from(qdevice);
    let quorum = votes / 2 + 1;
    results.push((
        "cluster".into(),
        cluster_check(
            "quorum plan",
            CheckStatus::Pass,
            format!(
                "{nodes} nodes{}: {votes} votes, quorum {quorum}; the cluster survives losing {} node(s)",
                if qdevice { " + QDevice" } else { "" },
                votes.saturating_sub(quorum).min(nodes.saturating_sub(1))
            ),
            None,
        ),
    ));

    for (node, c) in &results {
        let mark = match c.status {
            CheckStatus::Pass => "pass",
            CheckStatus::Warn => "warn",
            CheckStatus::Fail => "FAIL",
        };
        println!("{mark}  {:<8} {:<32} {}", node, c.name, c.detail);
        if let (Some(fix), false) = (&c.fix, c.status == CheckStatus::Pass) {
            println!("      {:<8} {:<32} fix: {fix}", "", "");
        }
    }
    if let Some(path) = junit {
        let mut suite = quick_junit::TestSuite::new("preflight");
        for (node, c) in &results {
            let status = match c.status {
                CheckStatus::Fail => {
                    let mut s = quick_junit::TestCaseStatus::non_success(
                        quick_junit::NonSuccessKind::Failure,
                    );
                    s.set_message(format!(
                        "{}{}",
                        c.detail,
                        c.fix
                            .as_ref()
                            .map(|f| format!("; fix: {f}"))
                            .unwrap_or_default()
                    ));
                    s
                }
                _ => quick_junit::TestCaseStatus::success(),
            };
            let mut case = quick_junit::TestCase::new(format!("{node}: {}", c.name), status);
            case.set_classname("preflight");
            case.set_system_out(c.detail.clone());
            if c.status == CheckStatus::Warn {
                case.add_property(quick_junit::Property::new(
                    "warning",
                    c.fix.clone().unwrap_or_default(),
                ));
            }
            suite.add_test_case(case);
        }
        let mut report = quick_junit::Report::new("corodrill preflight");
        report.add_test_suite(suite);
        let xml = report.to_string().unwrap_or_default();
        if let Err(e) = std::fs::write(path, xml) {
            eprintln!("cannot write {}: {e}", path.display());
            return 3;
        }
    }
    if results.iter().any(|(_, c)| c.status == CheckStatus::Fail) {
        1
    } else {
        0
    }
}

pub(super) fn cluster_check(
    name: &str,
    status: corodrill_protocol::CheckStatus,
    detail: String,
    fix: Option<&str>,
) -> corodrill_protocol::Check {
    corodrill_protocol::Check {
        name: name.into(),
        status,
        detail,
        fix: fix.map(str::to_owned),
    }
}
