//! The oracle applied to a drill (pure): which faults are active at each
//! moment of the plan, what partition of the cluster they make, and what
//! the quorum model (`oracle.rs`) says each node should then see, and by
//! when. It fills in expectations that say `"predicted"` and, for `run
//! --oracle`, writes one expectation per node for every change of faults
//! long enough for the cluster to settle.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::experiment::{
    Anchor, Expect, Experiment, FaultKind, FaultSpec, NodeSet, NodeWant, Reaction, WatchKind,
};
use crate::model::oracle::{QuorumConfig, Timing};
use crate::plan::Plan;

/// What the oracle knows of the cluster: its quorum configuration (read
/// from the agents), its timing, and how many corosync links it has.
#[derive(Debug, Clone)]
pub struct Model {
    pub config: QuorumConfig,
    pub timing: Timing,
    pub links: usize,
}

/// What one node should see once the cluster has settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prediction {
    pub quorate: bool,
    pub members: Vec<String>,
}

impl Model {
    /// How long a settled state may take to arrive after a change: the
    /// detection time (token + consensus) and a quarter of it, plus half a
    /// second for the notification to travel. The lab measures detection
    /// within 10 % below the model, rejoins faster.
    pub fn window(&self) -> Duration {
        let d = self.timing.detection();
        let w = d + d / 4 + Duration::from_millis(500);
        Duration::from_millis(w.as_millis() as u64)
    }

    /// How long nodes may take to merge again after a heal. Rejoining is
    /// usually quicker than losing a node (1.3 to 3.1 s over 26 three-way
    /// splits healed with a restarted node, 3-node lab, token 1000), but
    /// corosync can keep re-forming one-node rings while the joins of
    /// several nodes collide: 9.8 s once on a loaded CI machine, about 20 s
    /// after a flapping link. Five detection times bound what was seen;
    /// a merge still missing then is a finding.
    pub fn merge_window(&self) -> Duration {
        let d = self.timing.detection() * 5 + Duration::from_millis(500);
        Duration::from_millis(d.as_millis() as u64)
    }

    /// The window for a change at `anchor`: heals bring nodes back, and
    /// merging has its own, looser bound.
    pub fn window_after(&self, anchor: &Anchor) -> Duration {
        if anchor.healed {
            self.merge_window()
        } else {
            self.window()
        }
    }
}

/// The faults in force just after `t` (applies at `t` included, heals at
/// `t` done).
pub fn active_at<'e>(experiment: &'e Experiment, plan: &Plan, t: Duration) -> Vec<&'e FaultSpec> {
    experiment
        .faults
        .iter()
        .filter(|f| {
            let Some(p) = plan.faults.iter().find(|p| p.id == f.id) else {
                return false;
            };
            p.at <= t && p.heal_at.unwrap_or(plan.end) > t
        })
        .collect()
}

/// The cluster under a set of faults: nodes down, nodes frozen (their own
/// view cannot change), and the sides the others are split into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Situation {
    pub sides: Vec<Vec<String>>,
    pub down: Vec<String>,
    pub frozen: Vec<String>,
}

/// The situation the active faults make, or why the model cannot say.
pub fn situation(
    nodes: &[String],
    links: usize,
    active: &[&FaultSpec],
) -> Result<Situation, String> {
    let mut down = BTreeSet::new();
    let mut frozen = BTreeSet::new();
    // Each node's label per cutting fault: nodes that share every label
    // still talk.
    let mut labels: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    let every_link = |l: &Option<Vec<u8>>| {
        l.as_ref()
            .is_none_or(|l| (0..links as u8).all(|i| l.contains(&i)))
    };
    for f in active {
        match &f.kind {
            FaultKind::Partition {
                groups,
                links: l,
                one_way,
            } => {
                if *one_way {
                    return Err(format!(
                        "fault {:?}: a one-way cut's outcome is not modelled",
                        f.id
                    ));
                }
                if every_link(l) {
                    for (i, n) in nodes.iter().enumerate() {
                        let g = groups.iter().position(|g| g.contains(n));
                        labels[i].push(g.map_or(usize::MAX, |g| g));
                    }
                }
            }
            FaultKind::Isolate {
                nodes: who,
                links: l,
            } => {
                if every_link(l) {
                    for (i, n) in nodes.iter().enumerate() {
                        labels[i].push(if who.contains(n) { i + 1 } else { 0 });
                    }
                }
            }
            FaultKind::LinkDown { nodes: who, .. } => {
                // knet carries on over the other links; with one link the
                // node is cut off.
                if links <= 1 {
                    for (i, n) in nodes.iter().enumerate() {
                        labels[i].push(if who.contains(n) { i + 1 } else { 0 });
                    }
                }
            }
            FaultKind::Kill { nodes: who }
            | FaultKind::Stop { nodes: who }
            | FaultKind::PowerOff { nodes: who } => down.extend(who.iter().cloned()),
            FaultKind::Pause { nodes: who } => frozen.extend(who.iter().cloned()),
            FaultKind::ClockSkew { .. } => {}
            FaultKind::Degrade { .. } => {
                return Err(format!(
                    "fault {:?}: a degraded link's outcome is not modelled",
                    f.id
                ))
            }
            FaultKind::Command { .. } => {
                return Err(format!(
                    "fault {:?}: an operator command's effect is not modelled",
                    f.id
                ))
            }
        }
    }
    let mut sides: Vec<(Vec<usize>, Vec<String>)> = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        if down.contains(n) || frozen.contains(n) {
            continue;
        }
        match sides.iter_mut().find(|(l, _)| *l == labels[i]) {
            Some((_, side)) => side.push(n.clone()),
            None => sides.push((labels[i].clone(), vec![n.clone()])),
        }
    }
    Ok(Situation {
        sides: sides.into_iter().map(|(_, s)| s).collect(),
        down: down.into_iter().collect(),
        frozen: frozen.into_iter().collect(),
    })
}

/// Each node's expected votes at `t` under `last_man_standing` (None when
/// it is off): votequorum lowers a quorate partition's expected votes to
/// the votes it has once the window has passed after a change, never
/// below two without auto_tie_breaker (votequorum(5)); nodes that come
/// together raise it again to the votes present. Walks the plan's changes
/// before `t`.
pub fn lms_expected(
    experiment: &Experiment,
    plan: &Plan,
    model: &Model,
    t: Duration,
) -> Option<BTreeMap<String, u32>> {
    let window = Duration::from_millis(u64::from(model.config.last_man_standing?));
    let full = model.config.expected();
    let mut expected: BTreeMap<String, u32> =
        plan.nodes.iter().map(|n| (n.clone(), full)).collect();
    let mut changes: Vec<Duration> = plan
        .faults
        .iter()
        .flat_map(|f| [f.at, f.heal_at.unwrap_or(plan.end)])
        .filter(|c| *c < t)
        .collect();
    changes.sort();
    changes.dedup();
    let floor = if model.config.auto_tie_breaker.is_some() {
        1
    } else {
        2
    };
    for (i, c) in changes.iter().enumerate() {
        let until = changes.get(i + 1).copied().unwrap_or(t).min(t);
        let Ok(s) = situation(&plan.nodes, model.links, &active_at(experiment, plan, *c)) else {
            continue;
        };
        for side in &s.sides {
            let (e, quorate) = lms_side(model, &expected, side);
            let settled = until - *c >= model.timing.detection() + window;
            let e = if settled && quorate {
                model.config.votes_of_names(side).max(floor).min(e)
            } else {
                e
            };
            for n in side {
                expected.insert(n.clone(), e);
            }
        }
    }
    Some(expected)
}

/// A side's expected votes under last_man_standing (the highest any of
/// its nodes holds, at least its own votes), and whether it is quorate so.
fn lms_side(model: &Model, expected: &BTreeMap<String, u32>, side: &[String]) -> (u32, bool) {
    let e = side
        .iter()
        .filter_map(|n| expected.get(n).copied())
        .max()
        .unwrap_or_else(|| model.config.expected())
        .max(model.config.votes_of_names(side));
    let quorate = model
        .config
        .with_expected(e)
        .outcome(&[model.config.ids_of(side)], &[true])[0];
    (e, quorate)
}

/// What each node sees in a situation; None for a frozen node.
/// `expected`: per-node expected votes under last_man_standing.
pub fn predict(
    model: &Model,
    situation: &Situation,
    node: &str,
    expected: Option<&BTreeMap<String, u32>>,
) -> Option<Prediction> {
    if situation.frozen.iter().any(|n| n == node) {
        return None;
    }
    if situation.down.iter().any(|n| n == node) {
        return Some(Prediction {
            quorate: false,
            members: Vec::new(),
        });
    }
    let i = situation
        .sides
        .iter()
        .position(|s| s.iter().any(|n| n == node))?;
    let quorate = match expected {
        Some(expected) => lms_side(model, expected, &situation.sides[i]).1,
        None => {
            let ids: Vec<Vec<u32>> = situation
                .sides
                .iter()
                .map(|s| model.config.ids_of(s))
                .collect();
            // Cuts drop traffic between nodes only: every side reaches qnetd.
            model
                .config
                .outcome(&ids, &vec![true; situation.sides.len()])[i]
        }
    };
    Some(Prediction {
        quorate,
        members: situation.sides[i].clone(),
    })
}

/// The situation `faults` make at `t` and each node's predicted view in it
/// (in plan order; `None` where the model cannot say for that node), with
/// last_man_standing's expected votes as they stand at `t`; Err where the
/// faults are not modelled. The faults are usually `active_at(t)`.
pub fn views_under(
    experiment: &Experiment,
    plan: &Plan,
    model: &Model,
    faults: &[&FaultSpec],
    t: Duration,
) -> Result<(Situation, Vec<Option<Prediction>>), String> {
    let s = situation(&plan.nodes, model.links, faults)?;
    let lms = lms_expected(experiment, plan, model, t);
    let views = plan
        .nodes
        .iter()
        .map(|n| predict(model, &s, n, lms.as_ref()))
        .collect();
    Ok((s, views))
}

/// What the model predicts each node sees, settled, after each change of
/// faults in the plan (time, what changed, and per node its prediction,
/// `None` where the model cannot say); or why the model cannot say at all
/// for that moment (a degraded link, a one-way cut, a command).
#[allow(clippy::type_complexity)]
pub fn over_time(
    experiment: &Experiment,
    plan: &Plan,
    model: &Model,
) -> Vec<(
    Duration,
    String,
    Result<Vec<(String, Option<Prediction>)>, String>,
)> {
    let mut changes: Vec<(Duration, String)> = plan
        .faults
        .iter()
        .flat_map(|f| {
            [
                (f.at, format!("apply {}", f.id)),
                (f.heal_at.unwrap_or(plan.end), format!("heal {}", f.id)),
            ]
        })
        .collect();
    changes.sort_by_key(|(t, _)| *t);
    let mut merged: Vec<(Duration, String)> = Vec::new();
    for (t, what) in changes {
        match merged.last_mut() {
            Some((u, w)) if *u == t => *w = format!("{w}, {what}"),
            _ => merged.push((t, what)),
        }
    }
    merged
        .into_iter()
        .map(|(t, what)| {
            let views = views_under(experiment, plan, model, &active_at(experiment, plan, t), t)
                .map(|(_, views)| plan.nodes.iter().cloned().zip(views).collect());
            (t, what, views)
        })
        .collect()
}

/// The experiment with every `"predicted"` field filled in from the model,
/// with `oracle` one expectation per node for every change of faults
/// that lasts long enough to settle, and every expectation's reaction
/// time (see `reaction`). Nodes of one expectation that are predicted to
/// see different things (`nodes = "all"` across a split) are each judged
/// against their own prediction. Errors name the expectation.
pub fn resolve(
    experiment: &Experiment,
    plan: &Plan,
    model: &Model,
    oracle: bool,
) -> Result<Experiment, Vec<String>> {
    let mut errors = Vec::new();
    let mut resolved = experiment.clone();
    for e in &mut resolved.expects {
        if !e.predicted.any() {
            continue;
        }
        let Some(t) = plan.anchor_time(&e.after) else {
            continue;
        };
        if e.predicted.within {
            e.within = model.window_after(&e.after);
        }
        if !(e.predicted.quorate || e.predicted.members) {
            continue;
        }
        let (_, views) =
            match views_under(experiment, plan, model, &active_at(experiment, plan, t), t) {
                Ok(v) => v,
                Err(why) => {
                    errors.push(format!("expectation {:?}: cannot predict: {why}", e.name));
                    continue;
                }
            };
        let targets: Vec<&String> = match &e.nodes {
            NodeSet::All => plan.nodes.iter().collect(),
            NodeSet::Some(n) => n.iter().collect(),
        };
        // Each node's want, only the fields the file left to the model.
        let mut wants: Vec<(&String, NodeWant)> = Vec::new();
        for n in targets {
            let view = plan
                .nodes
                .iter()
                .position(|m| m == n)
                .and_then(|i| views[i].clone());
            let Some(p) = view else {
                errors.push(format!(
                    "expectation {:?}: cannot predict the view of {n} (a paused node, or not in the cluster)",
                    e.name
                ));
                continue;
            };
            wants.push((
                n,
                NodeWant {
                    quorate: e.predicted.quorate.then_some(p.quorate),
                    members: e.predicted.members.then_some(NodeSet::Some(p.members)),
                },
            ));
        }
        let Some((_, first)) = wants.first().cloned() else {
            continue;
        };
        if wants.iter().all(|(_, w)| *w == first) {
            if first.quorate.is_some() {
                e.quorate = first.quorate;
            }
            if first.members.is_some() {
                e.members = first.members;
            }
        } else {
            // "Every node does what the model says": each against its own.
            e.per_node = wants.into_iter().map(|(n, w)| (n.clone(), w)).collect();
        }
    }
    if oracle {
        resolved
            .expects
            .extend(oracle_expectations(experiment, plan, model));
    }
    for e in &mut resolved.expects {
        e.reaction = Some(reaction(model, experiment, e));
    }
    if errors.is_empty() {
        Ok(resolved)
    } else {
        Err(errors)
    }
}

/// How long Pacemaker may take, once corosync has reported a change, to
/// act on it and for `crm_mon` to show it: the controller electing a new
/// DC if the old one was lost, a scheduler run, and the resource's start or
/// stop (no-quorum-policy=stop stops everything on a side that lost
/// quorum). Seconds on the lab; a resource whose start or stop takes
/// longer than this is the operator's to allow for in `hold`.
pub const PACEMAKER_ALLOWANCE: Duration = Duration::from_secs(5);

/// How long Proxmox VE's HA manager may take to act on a change: a lost
/// node's services move only once its lock has expired
/// (`pve_ha::LOCK_LIFETIME`), and it takes a round of the CRM to put
/// them in recovery and another to start them elsewhere
/// (`pve_ha::HA_ROUND`): "about 2 minutes", as Proxmox documents.
pub const PVE_HA_ALLOWANCE: Duration = Duration::from_secs(
    super::pve_ha::LOCK_LIFETIME.as_secs() + 2 * super::pve_ha::HA_ROUND.as_secs(),
);

/// How long after `e`'s anchor this cluster may take to react to it, so
/// that a state already there at the anchor counts only once it has held
/// this long (and `hold` more). Quorum views: the predicted window, the
/// detection time (token + consensus) and a quarter, plus half a second
/// for the notification; the lab measures detection within 10 % below
/// the model, so a view still unchanged after the window is one corosync
/// will not change. The same after a heal: whatever a merge changes comes
/// as fast as a loss (the merge window bounds how long a merge may take
/// to *complete*, which a state already there does not wait for). A
/// watched resource: that window, then one watch interval for the
/// node to read its view, then its manager's own reaction
/// (`PACEMAKER_ALLOWANCE`, `PVE_HA_ALLOWANCE`, or a probe's timeout,
/// which is as long as one reading may take).
pub fn reaction(model: &Model, experiment: &Experiment, e: &Expect) -> Reaction {
    let quorum = model.window();
    let basis = format!(
        "detection {:.3}s (token {} ms + consensus {} ms), a quarter more and 0.5s for the notification",
        model.timing.detection().as_secs_f64(),
        model.timing.token_ms,
        model.timing.consensus_ms
    );
    let Some(r) = &e.resource else {
        return Reaction {
            time: quorum,
            basis,
        };
    };
    // Parsing refuses an expectation on an unwatched resource; without its
    // watch, quorum's reaction is all that is known.
    let Some(w) = experiment.watches.iter().find(|w| w.resource == r.resource) else {
        return Reaction {
            time: quorum,
            basis,
        };
    };
    let (allowance, whose) = match w.kind {
        WatchKind::Pacemaker => (PACEMAKER_ALLOWANCE, "Pacemaker's"),
        WatchKind::PveHa => (PVE_HA_ALLOWANCE, "the HA manager's"),
        WatchKind::Probe => (w.timeout, "the probe's timeout"),
    };
    Reaction {
        time: quorum + w.interval + allowance,
        basis: format!(
            "quorum's {:.3}s ({basis}), the {} watch interval and {whose} {}",
            quorum.as_secs_f64(),
            humantime::format_duration(w.interval),
            humantime::format_duration(allowance)
        ),
    }
}

/// For `run --oracle`: after every apply and heal, each node's predicted
/// state, where the model can say, the faults stay as they are for at
/// least the prediction's window, and the cluster had that long to settle
/// before (after a flapping link corosync may take many tokens to merge
/// again: the model predicts from a settled cluster only).
pub fn oracle_expectations(experiment: &Experiment, plan: &Plan, model: &Model) -> Vec<Expect> {
    let window = model.window();
    let mut anchors: Vec<(Duration, Anchor)> = Vec::new();
    for f in &plan.faults {
        anchors.push((
            f.at,
            Anchor {
                fault: f.id.clone(),
                healed: false,
            },
        ));
        anchors.push((
            f.heal_at.unwrap_or(plan.end),
            Anchor {
                fault: f.id.clone(),
                healed: true,
            },
        ));
    }
    anchors.sort_by_key(|(t, _)| *t);
    let changes: Vec<Duration> = anchors.iter().map(|(t, _)| *t).collect();
    let mut expects = Vec::new();
    for (t, anchor) in &anchors {
        // Several changes at one moment: judge from the last of them.
        let last_here = anchors
            .iter()
            .rev()
            .find(|(u, _)| u == t)
            .is_some_and(|(_, a)| a == anchor);
        let next = changes.iter().find(|u| *u > t).copied();
        let settled = changes
            .iter()
            .rev()
            .find(|u| *u < t)
            .is_none_or(|before| *t - *before >= window);
        // After the last change the run watches until the cluster is whole
        // again, so the last heal has its whole merge window.
        let lasts = next.map_or(plan.after_end.max(model.merge_window()), |n| n - *t);
        if !last_here || lasts < window || !settled {
            continue;
        }
        let Ok((_, views)) = views_under(
            experiment,
            plan,
            model,
            &active_at(experiment, plan, *t),
            *t,
        ) else {
            continue;
        };
        // Judged before the next change comes, but never tighter than a
        // loss's window.
        let within = model.window_after(anchor).min(lasts).max(window);
        for (node, p) in plan.nodes.iter().zip(views) {
            let Some(p) = p else {
                continue;
            };
            expects.push(Expect {
                name: format!(
                    "oracle: {node} after {anchor}: {} {}",
                    if p.quorate { "quorate" } else { "not quorate" },
                    if p.members.is_empty() {
                        "(down)".to_owned()
                    } else {
                        format!("with {}", p.members.join(","))
                    }
                ),
                after: anchor.clone(),
                nodes: NodeSet::Some(vec![node.clone()]),
                quorate: Some(p.quorate),
                members: Some(NodeSet::Some(p.members)),
                total_votes: None,
                within,
                hold: Duration::ZERO,
                predicted: Default::default(),
                resource: None,
                per_node: Default::default(),
                // `resolve` sets every expectation's reaction.
                reaction: None,
            });
        }
    }
    expects
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::cluster::inventory::{Inventory, InventoryNode, Power};
    use std::collections::BTreeMap;

    pub(crate) fn inventory(nodes: usize, links: usize) -> Inventory {
        Inventory {
            name: "t".into(),
            nodes: (1..=nodes)
                .map(|i| InventoryNode {
                    name: format!("pve{i}"),
                    connect: "false".into(),
                    links: (0..links)
                        .map(|l| (format!("ring{l}"), format!("198.18.{l}.{i}")))
                        .collect(),
                    power: Power::Lab { lab: "t".into() },
                })
                .collect(),
        }
    }

    pub(crate) fn model(nodes: usize, links: usize, cmap: &[(&str, &str)]) -> Model {
        let cmap: BTreeMap<String, String> = cmap
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Model {
            config: QuorumConfig::from_cmap(
                (1..=nodes as u32).map(|i| (i, format!("pve{i}"))).collect(),
                &cmap,
            ),
            // Three nodes with a 1 s token: 1650 + 1980 ms.
            timing: Timing {
                token_ms: 1650,
                consensus_ms: 1980,
            },
            links,
        }
    }

    pub(crate) fn drill(nodes: usize, links: usize, text: &str) -> (Experiment, Plan) {
        let text = format!("name = \"t\"\nnodes = {nodes}\n{text}");
        let e = crate::experiment::parse(std::path::Path::new("t.toml"), &text)
            .unwrap_or_else(|e| panic!("{e:?}"));
        let p = crate::plan::plan(&e, &inventory(nodes, links)).unwrap();
        (e, p)
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn faults_make_sides() {
        let nodes = names(&["pve1", "pve2", "pve3", "pve4", "pve5"]);
        let (e, _) = drill(
            5,
            2,
            r#"
[[fault]]
id = "split"
kind = "partition"
groups = [["pve1", "pve2", "pve3"], ["pve4", "pve5"]]
[[fault]]
id = "alone"
kind = "isolate"
nodes = ["pve1"]
[[fault]]
id = "kill"
kind = "kill"
nodes = ["pve5"]
[[fault]]
id = "pause"
kind = "pause"
nodes = ["pve2"]
[[fault]]
id = "ring1"
kind = "link-down"
nodes = ["pve3"]
link = 1
[[fault]]
id = "one-link-only"
kind = "partition"
groups = [["pve1"], ["pve2", "pve3", "pve4", "pve5"]]
links = [1]
[[expect]]
after = "split"
nodes = "all"
quorate = true
within = "5s"
"#,
        );
        let all: Vec<&FaultSpec> = e.faults.iter().collect();
        let s = situation(&nodes, 2, &all).unwrap();
        assert_eq!(
            s,
            Situation {
                sides: vec![names(&["pve1"]), names(&["pve3"]), names(&["pve4"])],
                down: names(&["pve5"]),
                frozen: names(&["pve2"]),
            }
        );
        // One link: a link down cuts the node off.
        let s = situation(&nodes, 1, &[&e.faults[4]]).unwrap();
        assert_eq!(s.sides.len(), 2, "{s:?}");
    }

    #[test]
    fn unmodelled_faults_are_named() {
        let (e, _) = drill(
            3,
            1,
            r#"
[[fault]]
id = "lossy"
kind = "degrade"
nodes = ["pve1"]
loss = "30%"
[[expect]]
after = "lossy"
nodes = "all"
quorate = true
within = "5s"
"#,
        );
        let err = situation(&names(&["pve1", "pve2", "pve3"]), 1, &[&e.faults[0]]).unwrap_err();
        assert!(err.contains("\"lossy\": a degraded link"), "{err}");
    }

    #[test]
    fn predicted_fields_are_filled_in_from_the_model() {
        let (e, p) = drill(
            3,
            1,
            r#"
[[fault]]
id = "cut"
kind = "isolate"
nodes = ["pve3"]
heal_after = "10s"
[[expect]]
name = "majority"
after = "cut"
nodes = ["pve1", "pve2"]
quorate = "predicted"
members = "predicted"
within = "predicted"
[[expect]]
name = "minority"
after = "cut"
nodes = ["pve3"]
quorate = "predicted"
within = "8s"
[[expect]]
name = "whole"
after = "cut.healed"
nodes = "all"
quorate = "predicted"
members = "predicted"
within = "predicted"
"#,
        );
        let m = model(3, 1, &[]);
        let r = resolve(&e, &p, &m, false).unwrap();
        let window = Duration::from_millis(5037);
        assert_eq!(r.expects[0].quorate, Some(true));
        assert_eq!(
            r.expects[0].members,
            Some(NodeSet::Some(names(&["pve1", "pve2"])))
        );
        assert_eq!(r.expects[0].within, window);
        assert_eq!(r.expects[1].quorate, Some(false));
        assert_eq!(r.expects[1].within, Duration::from_secs(8));
        assert_eq!(r.expects[2].quorate, Some(true));
        assert_eq!(
            r.expects[2].members,
            Some(NodeSet::Some(names(&["pve1", "pve2", "pve3"])))
        );
        // With a forced expected_votes of 2 (corosync-quorumtool -e 2), pve3
        // alone is still not quorate, and the majority keeps quorum.
        let r = resolve(&e, &p, &model(3, 1, &[("expected_votes", "2")]), false).unwrap();
        assert_eq!(r.expects[1].quorate, Some(false));
        // Two nodes, two_node: each half keeps quorum; the expectation
        // names both sides, which the model says see different things:
        // each node is judged against its own prediction.
        let (e, p) = drill(
            2,
            1,
            r#"
[[fault]]
id = "cut"
kind = "isolate"
nodes = ["pve2"]
[[expect]]
after = "cut"
nodes = "all"
quorate = "predicted"
members = "predicted"
within = "predicted"
"#,
        );
        let r = resolve(&e, &p, &model(2, 1, &[("two_node", "1")]), false).unwrap();
        let x = &r.expects[0];
        assert_eq!((x.quorate, &x.members), (None, &None));
        assert_eq!(
            x.want_of("pve1"),
            (Some(true), Some(&NodeSet::Some(names(&["pve1"]))))
        );
        assert_eq!(
            x.want_of("pve2"),
            (Some(true), Some(&NodeSet::Some(names(&["pve2"]))))
        );
        assert_eq!(
            x.describe(&p.nodes),
            "pve1 quorate, members [pve1]; pve2 quorate, members [pve2]"
        );
    }

    /// A split's sides see different things; only the predicted fields
    /// are per node, and nodes that agree are grouped in words.
    #[test]
    fn nodes_across_a_split_each_get_their_own_prediction() {
        let (e, p) = drill(
            5,
            1,
            r#"
[[fault]]
id = "split"
kind = "partition"
groups = [["pve1", "pve2", "pve3"], ["pve4", "pve5"]]
[[expect]]
name = "every node as the model says"
after = "split"
nodes = "all"
quorate = "predicted"
within = "predicted"
"#,
        );
        let r = resolve(&e, &p, &model(5, 1, &[]), false).unwrap();
        let x = &r.expects[0];
        assert_eq!(x.per_node.len(), 5);
        assert_eq!(x.want_of("pve2"), (Some(true), None));
        assert_eq!(x.want_of("pve5"), (Some(false), None));
        assert_eq!(
            x.describe(&p.nodes),
            "pve1, pve2, pve3 quorate; pve4, pve5 not quorate"
        );
        // A paused node's view cannot be predicted: still refused.
        let (e, p) = drill(
            3,
            1,
            r#"
[[fault]]
id = "pause"
kind = "pause"
nodes = ["pve3"]
[[expect]]
after = "pause"
nodes = "all"
quorate = "predicted"
within = "predicted"
"#,
        );
        let errs = resolve(&e, &p, &model(3, 1, &[]), false).unwrap_err();
        assert!(
            errs[0].contains("cannot predict the view of pve3"),
            "{errs:?}"
        );
    }

    /// Every expectation, predicted or not, gets the cluster's reaction
    /// time: the quorum window, and for a watched resource one interval
    /// and its manager's allowance on top.
    #[test]
    fn every_expectation_gets_its_reaction_time() {
        let (e, p) = drill(
            3,
            1,
            r#"
[[watch]]
resource = "svc"
interval = "500ms"
[[watch]]
resource = "vm:100"
kind = "pve-ha"
interval = "2s"
[[fault]]
id = "cut"
kind = "isolate"
nodes = ["pve1"]
heal_after = "10s"
[[expect]]
after = "cut"
nodes = ["pve1"]
quorate = true
within = "8s"
[[expect]]
after = "cut.healed"
nodes = ["pve2"]
resource = "svc"
running_on = ["pve2"]
within = "8s"
[[expect]]
after = "cut"
nodes = ["pve2"]
resource = "vm:100"
running_on = ["pve1"]
within = "8s"
"#,
        );
        let r = resolve(&e, &p, &model(3, 1, &[]), true).unwrap();
        let times: Vec<Option<Duration>> = r
            .expects
            .iter()
            .map(|x| x.reaction.as_ref().map(|r| r.time))
            .collect();
        assert_eq!(times[0], Some(Duration::from_millis(5037)));
        assert!(r.expects[0]
            .reaction
            .as_ref()
            .unwrap()
            .basis
            .contains("detection 3.630s"));
        assert_eq!(times[1], Some(Duration::from_millis(5037 + 500 + 5000)));
        assert_eq!(times[2], Some(Duration::from_millis(5037 + 2000 + 140_000)));
        // The oracle's own expectations too.
        assert!(r.expects.len() > 3 && times.iter().all(Option::is_some));
    }

    /// Every shipped drill lasts long enough to judge a state kept from
    /// before its anchor, on the lab (1 s token) and with corosync's
    /// default 3 s token: the run watches at least the reaction time and
    /// the hold after each anchor, and a fault the run itself ends (no
    /// heal_after) lasts at least the reaction time.
    #[test]
    fn shipped_drills_last_long_enough_to_judge_kept_states() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments");
        let drills =
            crate::experiment::load(&[root.clone(), root.join("pacemaker"), root.join("pve")])
                .unwrap_or_else(|e| panic!("{e:?}"));
        assert!(drills.len() >= 20, "{}", drills.len());
        for token in ["1000", "3000"] {
            for e in &drills {
                let n = e.requires.nodes.unwrap_or(e.nodes).max(e.nodes);
                let links = e.requires.links.unwrap_or(1);
                let p = crate::plan::plan(e, &inventory(n, links)).unwrap();
                let mut cmap: Vec<(String, String)> = e
                    .requires
                    .quorum
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_string().trim_matches('"').to_owned()))
                    .collect();
                if e.requires.qdevice == Some(true) {
                    cmap.push(("device.model".into(), "net".into()));
                }
                let cmap: Vec<(&str, &str)> =
                    cmap.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                let mut m = model(n, links, &cmap);
                let totem = BTreeMap::from([("token".to_owned(), token.to_owned())]);
                m.timing = Timing::from_totem(&totem, n);
                let r = resolve(e, &p, &m, e.invariants.oracle)
                    .unwrap_or_else(|errs| panic!("{}: {errs:?}", e.name));
                let watched = p.end + p.after_end;
                for x in &r.expects {
                    let what = format!("{} / {:?} (token {token})", e.name, x.name);
                    let a = p.anchor_time(&x.after).unwrap_or(p.end);
                    let reaction = x.reaction.as_ref().map(|r| r.time).unwrap_or_default();
                    assert!(
                        a + reaction + x.hold <= watched,
                        "{what}: watched until {watched:?}, a kept state needs {:?}",
                        a + reaction + x.hold
                    );
                    let unplanned = e
                        .faults
                        .iter()
                        .find(|f| f.id == x.after.fault)
                        .is_some_and(|f| f.heal_after.is_none());
                    if !x.after.healed && unplanned {
                        assert!(
                            p.end >= a + reaction,
                            "{what}: the run ends the fault too soon"
                        );
                    }
                }
            }
        }
    }

    /// votequorum(5): with last_man_standing, after a node leaves and the
    /// window passes, the rest recalculate expected votes, so losing
    /// another node still leaves a quorate pair (down to two nodes; one
    /// alone only with auto_tie_breaker).
    #[test]
    fn last_man_standing_lowers_expected_votes_after_its_window() {
        let (e, p) = drill(
            4,
            1,
            r#"
[[fault]]
id = "k1"
kind = "kill"
nodes = ["pve4"]
[[fault]]
id = "k2"
kind = "kill"
nodes = ["pve3"]
at = "10s"
[[fault]]
id = "k3"
kind = "kill"
nodes = ["pve2"]
at = "20s"
[[expect]]
name = "two left"
after = "k2"
nodes = ["pve1", "pve2"]
quorate = "predicted"
within = "predicted"
[[expect]]
name = "one left"
after = "k3"
nodes = ["pve1"]
quorate = "predicted"
within = "predicted"
"#,
        );
        let plain = resolve(&e, &p, &model(4, 1, &[]), false).unwrap();
        assert_eq!(plain.expects[0].quorate, Some(false));
        let lms = model(
            4,
            1,
            &[
                ("last_man_standing", "1"),
                ("last_man_standing_window", "3000"),
            ],
        );
        let r = resolve(&e, &p, &lms, false).unwrap();
        assert_eq!(r.expects[0].quorate, Some(true), "4 -> 3 -> 2 nodes");
        assert_eq!(r.expects[1].quorate, Some(false), "never down to one");
        let atb = model(
            4,
            1,
            &[
                ("last_man_standing", "1"),
                ("last_man_standing_window", "3000"),
                ("auto_tie_breaker", "1"),
            ],
        );
        let r = resolve(&e, &p, &atb, false).unwrap();
        assert_eq!(
            r.expects[1].quorate,
            Some(true),
            "with auto_tie_breaker, to one"
        );
        // The window not yet passed: the second loss comes too soon.
        let slow = model(
            4,
            1,
            &[
                ("last_man_standing", "1"),
                ("last_man_standing_window", "9000"),
            ],
        );
        let r = resolve(&e, &p, &slow, false).unwrap();
        assert_eq!(r.expects[0].quorate, Some(false));
    }

    #[test]
    fn the_oracle_checks_each_node_after_each_change_that_lasts() {
        let (e, p) = drill(
            3,
            1,
            r#"
[[fault]]
id = "cut"
kind = "isolate"
nodes = ["pve3"]
heal_after = "10s"
[[fault]]
id = "blip"
kind = "isolate"
nodes = ["pve1"]
at = "20s"
heal_after = "1s"
[[expect]]
after = "cut"
nodes = ["pve1"]
quorate = true
within = "5s"
"#,
        );
        let oracle = oracle_expectations(&e, &p, &model(3, 1, &[]));
        let names: Vec<&str> = oracle.iter().map(|x| x.name.as_str()).collect();
        // cut and cut.healed, three nodes each; not the blip (1 s: too
        // short to settle) nor its heal (from an unsettled cluster).
        assert_eq!(names.len(), 6, "{names:#?}");
        assert!(names.contains(&"oracle: pve3 after cut: not quorate with pve3"));
        assert!(names.contains(&"oracle: pve1 after cut: quorate with pve1,pve2"));
        assert!(names.contains(&"oracle: pve2 after cut.healed: quorate with pve1,pve2,pve3"));
        assert!(!names.iter().any(|n| n.contains("after blip")));
        // A loss is judged within the detection window; a merge gets the
        // looser merge window, cut short by the next change (the blip,
        // 10 s after the heal).
        let within = |name: &str| oracle.iter().find(|x| x.name == name).map(|x| x.within);
        assert_eq!(
            within("oracle: pve1 after cut: quorate with pve1,pve2"),
            Some(Duration::from_millis(5037))
        );
        assert_eq!(
            within("oracle: pve2 after cut.healed: quorate with pve1,pve2,pve3"),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            model(3, 1, &[]).merge_window(),
            Duration::from_millis(18650)
        );
        // The last heal: nothing comes after it, the whole merge window.
        let (e, p) = drill(
            3,
            1,
            "[[fault]]\nid = \"split\"\nkind = \"partition\"\ngroups = [[\"pve1\"], [\"pve2\"], [\"pve3\"]]\nheal_after = \"6s\"\n",
        );
        let oracle = oracle_expectations(&e, &p, &model(3, 1, &[]));
        let healed: Vec<Duration> = oracle
            .iter()
            .filter(|x| x.after.healed)
            .map(|x| x.within)
            .collect();
        assert_eq!(healed, vec![Duration::from_millis(18650); 3]);
    }
}
