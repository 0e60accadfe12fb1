//! Expectations resolved with the model: `"predicted"` fields filled in
//! (each node its own prediction where they differ), `--oracle`'s own
//! written, and every expectation given the cluster's reaction time, so
//! that the judge sees only concrete expectations.

use std::time::Duration;

use super::predict::{active_at, views_under, Model};
use crate::experiment::{Anchor, Expect, Experiment, NodeSet, NodeWant, Reaction, WatchKind};
use crate::plan::Plan;

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
