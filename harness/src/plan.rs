//! From an experiment and an inventory to a plan: which agent fault each
//! node gets and when, and how long the drill runs. Pure: an inventory that
//! does not fit the experiment is an error here, before anything is touched.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use corodrill_protocol::{Direction, Fault};

use crate::errors::ErrorCode;
use crate::experiment::{Anchor, Experiment, FaultKind, NodeSet, WatchKind};
use crate::inventory::Inventory;

#[derive(Debug, Clone, PartialEq)]
pub struct PlannedFault {
    pub id: String,
    pub kind: &'static str,
    pub at: Duration,
    /// None: healed at the end of the drill.
    pub heal_at: Option<Duration>,
    pub allow_management_cut: bool,
    /// What each node's agent applies.
    pub actions: Vec<(String, Fault)>,
    /// Nodes the controller powers off through their power driver (and on
    /// again at the heal).
    pub power_off: Vec<String>,
}

impl PlannedFault {
    /// Every node this fault touches.
    pub fn targets(&self) -> impl Iterator<Item = &str> {
        self.actions
            .iter()
            .map(|(n, _)| n.as_str())
            .chain(self.power_off.iter().map(String::as_str))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Every node of the cluster (the inventory's), in inventory order.
    pub nodes: Vec<String>,
    pub faults: Vec<PlannedFault>,
    /// When the faults still applied are healed.
    pub end: Duration,
    /// How long to keep watching after `end` (expectations timed from the
    /// heal of faults that last until the end).
    pub after_end: Duration,
}

impl Plan {
    /// When an anchor happens in the plan: its fault's start, or its heal
    /// (the end of the drill for a fault that lasts until then).
    pub fn anchor_time(&self, anchor: &Anchor) -> Option<Duration> {
        let f = self.faults.iter().find(|f| f.id == anchor.fault)?;
        Some(if anchor.healed {
            f.heal_at.unwrap_or(self.end)
        } else {
            f.at
        })
    }
}

/// Slack past the last deadline, so that a hold that ends exactly there is
/// observed whole despite the milliseconds faults take to apply.
const MARGIN: Duration = Duration::from_millis(500);

pub fn plan(experiment: &Experiment, inventory: &Inventory) -> Result<Plan, Vec<String>> {
    let mut errors = Vec::new();
    let nodes: Vec<String> = inventory.nodes.iter().map(|n| n.name.clone()).collect();
    if nodes.len() < experiment.nodes {
        errors.push(ErrorCode::TooFewNodes.tag(format!(
            "the experiment needs {} nodes, the inventory {:?} has {}",
            experiment.nodes,
            inventory.name,
            nodes.len()
        )));
    }
    let addresses: BTreeMap<&str, BTreeMap<u8, IpAddr>> = inventory
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), n.link_addresses()))
        .collect();
    let links_in_all = (0..8u8)
        .take_while(|l| addresses.values().all(|a| a.contains_key(l)))
        .count();
    if let Some(want) = experiment.requires.nodes {
        if nodes.len() < want {
            errors.push(ErrorCode::RequiresUnmet.tag(format!(
                "[requires] nodes = {want}, the inventory has {}",
                nodes.len()
            )));
        }
    }
    if let Some(want) = experiment.requires.links {
        if links_in_all < want {
            errors.push(ErrorCode::RequiresUnmet.tag(format!(
                "[requires] links = {want}, the inventory's nodes have {links_in_all}"
            )));
        }
    }
    let known = |n: &str, errors: &mut Vec<String>, what: &str| {
        if !nodes.iter().any(|m| m == n) {
            errors.push(ErrorCode::UnknownNode.tag(format!(
                "{what} names node {n:?}, which the inventory does not have (nodes: {})",
                nodes.join(", ")
            )));
        }
    };
    for w in &experiment.watches {
        for n in w.nodes.iter().flatten() {
            known(n, &mut errors, &format!("[[watch]] of {:?}", w.resource));
        }
    }
    for e in &experiment.expects {
        for set in std::iter::once(&e.nodes).chain(e.members.as_ref()) {
            if let NodeSet::Some(list) = set {
                for n in list {
                    known(n, &mut errors, &format!("expectation {:?}", e.name));
                }
            }
        }
    }

    let mut faults = Vec::new();
    for f in &experiment.faults {
        for n in f.kind.named_nodes() {
            known(n, &mut errors, &format!("fault {:?}", f.id));
        }
        let addr = |node: &str, link: u8, errors: &mut Vec<String>| -> Option<IpAddr> {
            let a = addresses.get(node).and_then(|a| a.get(&link)).copied();
            if a.is_none() && nodes.iter().any(|m| m == node) {
                errors.push(ErrorCode::MissingLinkAddress.tag(format!(
                    "fault {:?}: node {node} has no ring{link} address in the inventory",
                    f.id
                )));
            }
            a
        };
        let links_of = |selected: &Option<Vec<u8>>| -> Vec<u8> {
            selected
                .clone()
                .unwrap_or_else(|| (0..links_in_all as u8).collect())
        };
        // Every address of these nodes on these links.
        let addrs_of = |who: &[&str], links: &[u8], errors: &mut Vec<String>| -> Vec<IpAddr> {
            who.iter()
                .flat_map(|n| links.iter().map(move |l| (*n, *l)))
                .filter_map(|(n, l)| addr(n, l, errors))
                .collect()
        };
        let others = |node: &str| -> Vec<&str> {
            nodes
                .iter()
                .map(String::as_str)
                .filter(|n| *n != node)
                .collect()
        };
        let mut actions: Vec<(String, Fault)> = Vec::new();
        let mut power_off: Vec<String> = Vec::new();
        match &f.kind {
            FaultKind::Partition {
                groups,
                links,
                one_way,
            } => {
                for n in &nodes {
                    if !groups.iter().flatten().any(|m| m == n) {
                        errors.push(ErrorCode::NodeNotInPartition.tag(format!(
                            "fault {:?}: inventory node {n} is in no group of the partition",
                            f.id
                        )));
                    }
                }
                let links = links_of(links);
                for (gi, group) in groups.iter().enumerate() {
                    if *one_way && gi > 0 {
                        continue;
                    }
                    let outside: Vec<&str> = groups
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| *j != gi)
                        .flat_map(|(_, g)| g.iter().map(String::as_str))
                        .collect();
                    let peers = addrs_of(&outside, &links, &mut errors);
                    let direction = if *one_way {
                        Direction::Outbound
                    } else {
                        Direction::Both
                    };
                    for n in group {
                        actions.push((
                            n.clone(),
                            Fault::Cut {
                                peers: peers.clone(),
                                direction,
                            },
                        ));
                    }
                }
            }
            FaultKind::Isolate { nodes: who, links } => {
                let links = links_of(links);
                for n in who {
                    let peers = addrs_of(&others(n), &links, &mut errors);
                    actions.push((
                        n.clone(),
                        Fault::Cut {
                            peers,
                            direction: Direction::Both,
                        },
                    ));
                }
            }
            FaultKind::LinkDown { nodes: who, link } => {
                for n in who {
                    if let Some(address) = addr(n, *link, &mut errors) {
                        actions.push((n.clone(), Fault::LinkDown { address }));
                    }
                }
            }
            FaultKind::Degrade {
                nodes: who,
                links,
                loss_percent,
                delay,
                jitter,
                rate,
            } => {
                let links = links_of(links);
                for n in who {
                    actions.push((
                        n.clone(),
                        Fault::Degrade {
                            peers: addrs_of(&others(n), &links, &mut errors),
                            addresses: addrs_of(&[n.as_str()], &links, &mut errors),
                            loss_percent: *loss_percent,
                            delay_ms: delay.map(|d| d.as_millis() as u32),
                            jitter_ms: jitter.map(|d| d.as_millis() as u32),
                            rate: rate.clone(),
                        },
                    ));
                }
            }
            FaultKind::Kill { nodes: who } => {
                actions.extend(who.iter().map(|n| (n.clone(), Fault::Kill)))
            }
            FaultKind::Stop { nodes: who } => {
                actions.extend(who.iter().map(|n| (n.clone(), Fault::Stop)))
            }
            FaultKind::Pause { nodes: who } => {
                actions.extend(who.iter().map(|n| (n.clone(), Fault::Pause)))
            }
            FaultKind::PowerOff { nodes: who } => power_off.extend(who.iter().cloned()),
            FaultKind::ClockSkew {
                nodes: who,
                offset_ms,
                strobe,
            } => actions.extend(who.iter().map(|n| {
                (
                    n.clone(),
                    Fault::ClockSkew {
                        offset_ms: *offset_ms,
                        strobe_ms: strobe.map(|s| s.as_millis() as u64),
                    },
                )
            })),
            FaultKind::Command {
                nodes: who,
                run,
                undo,
                timeout,
            } => actions.extend(who.iter().map(|n| {
                (
                    n.clone(),
                    Fault::Command {
                        run: run.clone(),
                        undo: undo.clone(),
                        timeout_ms: timeout.map(|t| t.as_millis() as u64),
                    },
                )
            })),
        }
        faults.push(PlannedFault {
            id: f.id.clone(),
            kind: f.kind.name(),
            at: f.at,
            heal_at: f.heal_after.map(|h| f.at.saturating_add(h)),
            allow_management_cut: f.allow_management_cut,
            actions,
            power_off,
        });
    }

    // The drill lasts until every fault has had its turn and every
    // expectation its window.
    let anchor = |a: &Anchor| -> Option<Duration> {
        let f = faults.iter().find(|f| f.id == a.fault)?;
        if a.healed {
            f.heal_at
        } else {
            Some(f.at)
        }
    };
    let mut end = faults
        .iter()
        .map(|f| f.heal_at.unwrap_or(f.at))
        .max()
        .unwrap_or_default();
    let mut after_end = Duration::ZERO;
    for e in &experiment.expects {
        let window = e.within.saturating_add(e.hold);
        match anchor(&e.after) {
            Some(t) => end = end.max(t.saturating_add(window)),
            None => after_end = after_end.max(window),
        }
    }
    if errors.is_empty() {
        Ok(Plan {
            nodes,
            faults,
            end: end + MARGIN,
            after_end: after_end + MARGIN,
        })
    } else {
        errors.dedup();
        Err(errors)
    }
}

/// The plan as a person reads it (`run --dry-run`).
pub fn describe(experiment: &Experiment, plan: &Plan) -> String {
    let mut lines = vec![format!(
        "{}: {} ({} nodes: {})",
        experiment.name,
        experiment.description.trim(),
        plan.nodes.len(),
        plan.nodes.join(", ")
    )];
    let mut timeline: Vec<(Duration, String)> = Vec::new();
    for f in &plan.faults {
        let targets: Vec<&str> = f.targets().collect();
        timeline.push((
            f.at,
            format!("apply {} ({}) on {}", f.id, f.kind, targets.join(", ")),
        ));
        match f.heal_at {
            Some(h) => timeline.push((h, format!("heal {}", f.id))),
            None => timeline.push((plan.end, format!("heal {} (end of drill)", f.id))),
        }
    }
    for w in &experiment.watches {
        lines.push(format!(
            "  watch {} ({}) every {} on {}",
            w.resource,
            match w.kind {
                WatchKind::Pacemaker => "Pacemaker's view".to_owned(),
                WatchKind::PveHa => "the HA manager's view".to_owned(),
                WatchKind::Probe => format!("probe {:?}", w.command.as_deref().unwrap_or("")),
            },
            humantime::format_duration(w.interval),
            w.nodes
                .as_ref()
                .map_or("every node".to_owned(), |n| n.join(", "))
        ));
    }
    // Expectations at their deadlines, so that what should be where (quorum
    // and resources) reads in time order with the faults.
    for e in &experiment.expects {
        let anchor = plan.anchor_time(&e.after);
        // A "predicted" window is known only once the run reads the
        // cluster's timing: listed at its anchor.
        let within = if e.predicted.within {
            "the predicted window".to_owned()
        } else {
            humantime::format_duration(e.within).to_string()
        };
        timeline.push((
            anchor.map_or(Duration::MAX, |a| a.saturating_add(e.within)),
            format!(
                "by then: {} ({:?}, within {within} of {})",
                e.describe(&plan.nodes),
                e.name,
                e.after
            ),
        ));
    }
    timeline.sort_by_key(|(t, _)| *t);
    for (t, what) in timeline {
        if t == Duration::MAX {
            lines.push(format!("          {what}"));
        } else {
            lines.push(format!("  {:>7.1}s {what}", t.as_secs_f64()));
        }
    }
    lines.push(format!(
        "  the drill runs {:.1}s, then watches {:.1}s after the final heal until the cluster is whole",
        plan.end.as_secs_f64(),
        plan.after_end.as_secs_f64()
    ));
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::parse;
    use crate::inventory::{InventoryNode, Power};
    use std::path::Path;

    fn inventory(nodes: u8, links: u8) -> Inventory {
        Inventory {
            name: "lab".into(),
            nodes: (1..=nodes)
                .map(|i| InventoryNode {
                    name: format!("pve{i}"),
                    connect: "true".into(),
                    links: (0..links)
                        .map(|l| (format!("ring{l}"), format!("198.18.{l}.{i}")))
                        .collect(),
                    power: Power::Lab { lab: "lab".into() },
                })
                .collect(),
        }
    }

    fn exp(faults: &str) -> Experiment {
        let text = format!(
            "name = \"x\"\nnodes = 3\n{faults}\n[[expect]]\nafter = \"f.healed\"\nnodes = \"all\"\nquorate = true\nwithin = \"15s\"\n"
        );
        parse(Path::new("x.toml"), &text).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn partition_cuts_each_side_from_the_other_on_every_link() {
        let e = exp("[[fault]]\nid = \"f\"\nkind = \"partition\"\ngroups = [[\"pve1\", \"pve2\"], [\"pve3\"]]\nheal_after = \"20s\"");
        let p = plan(&e, &inventory(3, 2)).unwrap();
        let actions = &p.faults[0].actions;
        assert_eq!(actions.len(), 3);
        assert_eq!(
            actions[0],
            (
                "pve1".into(),
                Fault::Cut {
                    peers: vec![ip("198.18.0.3"), ip("198.18.1.3")],
                    direction: Direction::Both
                }
            )
        );
        assert_eq!(
            actions[2],
            (
                "pve3".into(),
                Fault::Cut {
                    peers: ["198.18.0.1", "198.18.1.1", "198.18.0.2", "198.18.1.2"]
                        .map(ip)
                        .to_vec(),
                    direction: Direction::Both
                }
            )
        );
        // heal at 20 s, expectation 15 s after it, plus the margin.
        assert_eq!(p.end, Duration::from_millis(35_500));
    }

    #[test]
    fn one_way_cuts_only_the_first_group_outbound() {
        let e = exp("[[fault]]\nid = \"f\"\nkind = \"partition\"\ngroups = [[\"pve3\"], [\"pve1\", \"pve2\"]]\ndirection = \"one-way\"\nlinks = [0]");
        let p = plan(&e, &inventory(3, 2)).unwrap();
        assert_eq!(
            p.faults[0].actions,
            vec![(
                "pve3".into(),
                Fault::Cut {
                    peers: vec![ip("198.18.0.1"), ip("198.18.0.2")],
                    direction: Direction::Outbound
                }
            )]
        );
        // Healed at the end: the expectation's window comes after it.
        assert_eq!(p.after_end, Duration::from_millis(15_500));
    }

    #[test]
    fn power_off_goes_through_the_power_driver_not_the_agent() {
        let e = exp("[[fault]]\nid = \"f\"\nkind = \"power-off\"\nnodes = [\"pve3\"]");
        let mut inv = inventory(3, 1);
        inv.nodes[2].power = Power::Ipmi {
            host: "10.0.1.13".into(),
            user: "admin".into(),
            password_env: "IPMI_PASSWORD".into(),
        };
        let p = plan(&e, &inv).unwrap();
        assert_eq!(p.faults[0].power_off, vec!["pve3".to_string()]);
        assert!(p.faults[0].actions.is_empty());
        assert_eq!(p.faults[0].targets().collect::<Vec<_>>(), ["pve3"]);
    }

    #[test]
    fn inventory_that_does_not_fit_is_refused() {
        let e = exp("[[fault]]\nid = \"f\"\nkind = \"link-down\"\nnodes = [\"pve9\"]\nlink = 1");
        let errs = plan(&e, &inventory(2, 1)).unwrap_err();
        assert!(errs.iter().any(|e| e.contains("needs 3 nodes")), "{errs:?}");
        assert!(errs.iter().any(|e| e.contains("\"pve9\"")), "{errs:?}");
        let e = exp("[[fault]]\nid = \"f\"\nkind = \"link-down\"\nnodes = [\"pve1\"]\nlink = 1");
        let errs = plan(&e, &inventory(3, 1)).unwrap_err();
        assert!(errs[0].contains("no ring1 address"), "{errs:?}");
        let e = exp("[[fault]]\nid = \"f\"\nkind = \"partition\"\ngroups = [[\"pve1\", \"pve2\"], [\"pve3\"]]");
        let errs = plan(&e, &inventory(4, 1)).unwrap_err();
        assert!(errs[0].contains("pve4 is in no group"), "{errs:?}");
    }
}
