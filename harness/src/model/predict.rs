//! The oracle applied to a drill (pure): which faults are active at each
//! moment of the plan, what partition of the cluster they make, and what
//! the quorum model (`oracle.rs`) says each node should then see, and by
//! when. It fills in expectations that say `"predicted"` and, for `run
//! --oracle`, writes one expectation per node for every change of faults
//! long enough for the cluster to settle.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::experiment::{Anchor, Experiment, FaultKind, FaultSpec};
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
