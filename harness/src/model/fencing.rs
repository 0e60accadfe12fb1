//! Fencing foresight for Proxmox VE HA (pure): which nodes a drill will get
//! reset by their watchdog, and when, if they run active HA services.
//!
//! Proxmox VE fences by self-fencing (pve-ha-manager; admin guide, "High
//! Availability", "How Proxmox VE Fences"): a node's pve-ha-lrm, while it
//! has active HA services, holds its agent lock in pmxcfs and a watchdog
//! client of watchdog-mux, and feeds that watchdog only when it can renew
//! the lock, which needs quorum. Out of the quorate partition for
//! [`CLIENT_WATCHDOG_TIMEOUT`], watchdog-mux stops feeding the hardware (or
//! softdog) watchdog, which resets the node [`WATCHDOG_TIMEOUT`] later. The
//! HA manager on the quorate side treats the node as fenced once it can
//! take the node's lock ([`LOCK_LIFETIME`] after the node last renewed it)
//! and recovers its services elsewhere: "about 2 minutes" after the
//! failure, as Proxmox documents.
//!
//! [`foresee`] assumes every node runs active HA services, the case in
//! which fencing matters. A node without any is not reset: its LRM holds no
//! watchdog, and the CRM master closes its own when it loses its lock
//! (CRM.pm, `give_up_watchdog_protection`; the guide: "if a node has an
//! active CRM but the LRM is idle, a quorum loss will not trigger a
//! self-fence reset").

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::predict::{self, Model, Situation};
use super::pve_ha::{
    CLIENT_WATCHDOG_TIMEOUT, LOCK_LIFETIME, NEAR_CLIENT_TIMEOUT, WATCHDOG_TIMEOUT,
};
use crate::experiment::{Experiment, FaultKind, FaultSpec};
use crate::plan::Plan;

/// A node the drill is predicted to get reset by its watchdog, if it runs
/// active HA services. Times are from the drill's start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reset {
    pub node: String,
    /// When the node stops being able to renew its lock: it loses quorum.
    pub out_of_quorum_at: Duration,
    /// About when its watchdog resets it (client timeout + watchdog).
    pub reset_at: Duration,
    pub why: String,
}

impl fmt::Display for Reset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: out of the quorate partition from t={:.1}s; with active HA services \
             its watchdog resets it at about t={:.1}s ({} s client timeout + {} s): {}",
            self.node,
            self.out_of_quorum_at.as_secs_f64(),
            self.reset_at.as_secs_f64(),
            CLIENT_WATCHDOG_TIMEOUT.as_secs(),
            WATCHDOG_TIMEOUT.as_secs(),
            self.why
        )
    }
}

/// What one node is predicted to see between two changes of faults.
#[derive(Debug, Clone, PartialEq)]
enum View {
    Quorate(Vec<String>),
    /// In a side without quorum, with these members.
    Cut(Vec<String>),
    /// Its own corosync killed or stopped (by this fault): pmxcfs loses
    /// quorum at once, without waiting for a token.
    CorosyncDown(String),
    /// Down anyway: nothing to reset.
    PoweredOff,
    /// The model cannot say (degraded or one-way links, a paused node, an
    /// operator command): not assumed at risk.
    Unknown(String),
}

impl View {
    fn without_quorum(&self) -> bool {
        matches!(self, View::Cut(_) | View::CorosyncDown(_))
    }

    fn members(&self) -> Option<&Vec<String>> {
        match self {
            View::Quorate(m) | View::Cut(m) => Some(m),
            _ => None,
        }
    }
}

/// The faults stay the same from `from` until `until` (None: to the end of
/// time, every fault healed).
struct Interval<'e> {
    from: Duration,
    until: Option<Duration>,
    faults: Vec<&'e FaultSpec>,
    /// One per node, in plan order.
    views: Vec<View>,
}

fn view_of(
    situation: &Situation,
    faults: &[&FaultSpec],
    node: &str,
    prediction: Option<predict::Prediction>,
) -> View {
    let names = |who: &[String]| who.iter().any(|n| n == node);
    if faults
        .iter()
        .any(|f| matches!(&f.kind, FaultKind::PowerOff { nodes } if names(nodes)))
    {
        return View::PoweredOff;
    }
    if situation.down.iter().any(|n| n == node) {
        let by = faults
            .iter()
            .find(|f| {
                matches!(&f.kind, FaultKind::Kill { nodes } | FaultKind::Stop { nodes } if names(nodes))
            })
            .map_or_else(String::new, |f| f.id.clone());
        return View::CorosyncDown(by);
    }
    match prediction {
        None => View::Unknown(format!(
            "{node} is paused: what its HA stack sees is not modelled"
        )),
        Some(p) if p.quorate => View::Quorate(p.members),
        Some(p) => View::Cut(p.members),
    }
}

/// The drill cut at every apply and heal, with each node's view in each
/// stretch. Starts at 0 and ends with every fault healed.
fn timeline<'e>(experiment: &'e Experiment, plan: &Plan, model: &Model) -> Vec<Interval<'e>> {
    let mut changes: Vec<Duration> = std::iter::once(Duration::ZERO)
        .chain(
            plan.faults
                .iter()
                .flat_map(|f| [f.at, f.heal_at.unwrap_or(plan.end)]),
        )
        .collect();
    changes.sort();
    changes.dedup();
    changes
        .iter()
        .enumerate()
        .map(|(i, &from)| {
            let faults = predict::active_at(experiment, plan, from);
            let views = views(experiment, plan, model, &faults, from);
            Interval {
                from,
                until: changes.get(i + 1).copied(),
                faults,
                views,
            }
        })
        .collect()
}

/// Each node's view under these faults, at `t` (for last_man_standing's
/// expected votes).
fn views(
    experiment: &Experiment,
    plan: &Plan,
    model: &Model,
    faults: &[&FaultSpec],
    t: Duration,
) -> Vec<View> {
    match predict::views_under(experiment, plan, model, faults, t) {
        Err(why) => vec![View::Unknown(why); plan.nodes.len()],
        Ok((s, predictions)) => plan
            .nodes
            .iter()
            .zip(predictions)
            .map(|(n, p)| view_of(&s, faults, n, p))
            .collect(),
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn at(d: Duration) -> String {
    format!("t={:.1}s", d.as_secs_f64())
}

/// Fault ids as a list for a sentence: `"a", "b"`.
fn quoted<'a>(ids: impl IntoIterator<Item = &'a str>) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for id in ids {
        if !seen.contains(&id) {
            seen.push(id);
        }
    }
    seen.iter()
        .map(|id| format!("{id:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every node the drill is predicted to get reset by its watchdog, if it
/// runs active HA services, in order of time. Three rules:
/// - a node predicted out of the quorate partition (in a side without
///   quorum, or its own corosync killed or stopped) from the fault plus
///   detection (at once for its own corosync) until the heal plus the time
///   to merge again (`model.window()`), for at least the client timeout;
/// - when no partition is quorate (a switch outage), that is every node:
///   `why` says "all nodes";
/// - with detection of [`NEAR_CLIENT_TIMEOUT`] or more, every node whose
///   membership a change re-forms, however short the fault.
///
/// Powered-off nodes are down anyway; nodes the model cannot predict for
/// are not assumed at risk ([`unforeseen`] lists them).
pub fn foresee(experiment: &Experiment, plan: &Plan, model: &Model) -> Vec<Reset> {
    let intervals = timeline(experiment, plan, model);
    let detection = model.timing.detection();
    let mut candidates: Vec<(usize, Reset)> = Vec::new();
    for (i, node) in plan.nodes.iter().enumerate() {
        for r in out_of_quorum(&intervals, i, node, model) {
            candidates.push((i, r));
        }
    }
    if detection >= NEAR_CLIENT_TIMEOUT {
        candidates.extend(re_formations(&intervals, experiment, plan, model));
    }
    candidates.sort_by_key(|(i, r)| (r.out_of_quorum_at, *i));
    // A node already counting down is reset once: a later stretch that
    // starts before that reset adds nothing.
    let mut last_reset: BTreeMap<usize, Duration> = BTreeMap::new();
    let mut resets = Vec::new();
    for (i, r) in candidates {
        if last_reset.get(&i).is_some_and(|t| r.out_of_quorum_at < *t) {
            continue;
        }
        last_reset.insert(i, r.reset_at);
        resets.push(r);
    }
    resets
}

/// The first two rules for one node: its stretches without quorum that
/// reach the client timeout.
fn out_of_quorum(intervals: &[Interval], i: usize, node: &str, model: &Model) -> Vec<Reset> {
    let detection = model.timing.detection();
    let mut resets = Vec::new();
    let mut k = 0;
    while k < intervals.len() {
        if !intervals[k].views[i].without_quorum() {
            k += 1;
            continue;
        }
        let first = k;
        while k < intervals.len() && intervals[k].views[i].without_quorum() {
            k += 1;
        }
        let stretch = &intervals[first..k];
        let own_corosync = match &stretch[0].views[i] {
            View::CorosyncDown(id) => Some(id.clone()),
            _ => None,
        };
        // pmxcfs learns of a cut only when corosync forms the new
        // membership; of its own corosync's death at once.
        let start = stretch[0].from
            + if own_corosync.is_some() {
                Duration::ZERO
            } else {
                detection
            };
        // Back in a quorate partition once merged; a power-off, or a change
        // the model cannot follow, ends the stretch where it is.
        let next = intervals.get(k);
        let back = next.map(|n| match n.views[i] {
            View::Quorate(_) => n.from + model.window(),
            _ => n.from,
        });
        if back.is_some_and(|b| b.saturating_sub(start) < CLIENT_WATCHDOG_TIMEOUT) {
            continue;
        }
        // The faults that put it there, not those that come later.
        let faults = quoted(
            stretch[0]
                .faults
                .iter()
                .filter(|f| !matches!(f.kind, FaultKind::ClockSkew { .. }))
                .map(|f| f.id.as_str()),
        );
        let nobody_quorate = stretch[0].views.len() > 1
            && stretch.iter().any(|s| {
                s.views
                    .iter()
                    .all(|v| v.without_quorum() || *v == View::PoweredOff)
            });
        let all = if nobody_quorate {
            format!("all nodes out of quorum: no partition is quorate under {faults}")
        } else {
            format!("in a side without quorum under {faults}")
        };
        let cause = match (&own_corosync, &stretch[0].views[i]) {
            (Some(id), _) if nobody_quorate => {
                format!("{all}; its corosync is down ({id:?}): pve-ha-lrm loses quorum at once")
            }
            (Some(id), _) => {
                format!("its corosync is down ({id:?}): pve-ha-lrm loses quorum at once")
            }
            (None, View::Cut(members)) if members.len() == 1 => format!(
                "{all} ({node} alone): loses quorum after detection ({})",
                secs(detection)
            ),
            (None, View::Cut(members)) => format!(
                "{all} (with {}): loses quorum after detection ({})",
                members.join(","),
                secs(detection)
            ),
            _ => all,
        };
        let until = match (next, back) {
            (Some(n), Some(b)) => match n.views[i] {
                View::Quorate(_) => format!(
                    "until about {} (the heal at {} + {} to merge again): {} without quorum",
                    at(b),
                    at(n.from),
                    secs(b - n.from),
                    secs(b.saturating_sub(start))
                ),
                View::PoweredOff => format!(
                    "until it is powered off at {}: {} without quorum",
                    at(b),
                    secs(b.saturating_sub(start))
                ),
                _ => format!(
                    "until at least {} (then the model cannot say): {} without quorum",
                    at(b),
                    secs(b.saturating_sub(start))
                ),
            },
            _ => "and never back within the drill".to_owned(),
        };
        let why = format!("{cause}, {until}");
        resets.push(Reset {
            node: node.to_owned(),
            out_of_quorum_at: start,
            reset_at: start + CLIENT_WATCHDOG_TIMEOUT + WATCHDOG_TIMEOUT,
            why,
        });
    }
    resets
}

/// The third rule: with detection near the client timeout, every change
/// that re-forms a node's membership may stall pmxcfs that long.
fn re_formations(
    intervals: &[Interval],
    experiment: &Experiment,
    plan: &Plan,
    model: &Model,
) -> Vec<(usize, Reset)> {
    let detection = model.timing.detection();
    // Before the drill: the cluster whole, as no fault leaves it.
    let whole = views(experiment, plan, model, &[], Duration::ZERO);
    let mut resets = Vec::new();
    for (k, after) in intervals.iter().enumerate() {
        let before = match k.checked_sub(1) {
            Some(b) => &intervals[b].views,
            None => &whole,
        };
        let t = after.from;
        let mut what: Vec<String> = Vec::new();
        for f in &plan.faults {
            if f.at == t {
                what.push(format!("{:?}", f.id));
            }
            if f.heal_at.unwrap_or(plan.end) == t {
                what.push(format!("the heal of {:?}", f.id));
            }
        }
        let change = what.join(", ");
        for (i, node) in plan.nodes.iter().enumerate() {
            let (Some(was), Some(is)) = (before[i].members(), after.views[i].members()) else {
                continue;
            };
            if was == is {
                continue;
            }
            resets.push((
                i,
                Reset {
                    node: node.clone(),
                    out_of_quorum_at: t,
                    reset_at: t + CLIENT_WATCHDOG_TIMEOUT + WATCHDOG_TIMEOUT,
                    why: format!(
                        "{change} at {} re-forms its membership ({} -> {}), which takes \
                         about {} (token {} ms + consensus {} ms), near the {} s client \
                         timeout: pmxcfs cannot renew the HA locks meanwhile, however \
                         short the fault",
                        at(t),
                        was.join(","),
                        is.join(","),
                        secs(detection),
                        model.timing.token_ms,
                        model.timing.consensus_ms,
                        CLIENT_WATCHDOG_TIMEOUT.as_secs()
                    ),
                },
            ));
        }
    }
    resets
}

/// The stretches of the drill in which the model cannot say what some
/// nodes see, and so does not assume them at risk: one sentence each.
pub fn unforeseen(experiment: &Experiment, plan: &Plan, model: &Model) -> Vec<String> {
    let mut notes: Vec<String> = Vec::new();
    for interval in timeline(experiment, plan, model) {
        let mut by_reason: Vec<(&str, Vec<&str>)> = Vec::new();
        for (node, view) in plan.nodes.iter().zip(&interval.views) {
            let View::Unknown(why) = view else { continue };
            match by_reason.iter_mut().find(|(w, _)| w == why) {
                Some((_, nodes)) => nodes.push(node),
                None => by_reason.push((why, vec![node])),
            }
        }
        let until = interval
            .until
            .map_or_else(String::new, |u| format!(" to {}", at(u)));
        for (why, nodes) in by_reason {
            notes.push(format!(
                "from {}{until}: {} not assumed at risk of a watchdog reset ({why})",
                at(interval.from),
                nodes.join(", ")
            ));
        }
    }
    notes
}

/// The foresight as `run --dry-run` and `plan` print it: the model it
/// used, each reset, what the model could not follow.
pub fn foresight_text(experiment: &Experiment, plan: &Plan, model: &Model, note: &str) -> String {
    let resets = foresee(experiment, plan, model);
    let mut lines = vec![format!(
        "  fencing foresight ({note}; detection {:.1}s from token {} ms + consensus {} ms):",
        model.timing.detection().as_secs_f64(),
        model.timing.token_ms,
        model.timing.consensus_ms,
    )];
    if resets.is_empty() {
        lines.push("    no node stays out of quorum long enough to be reset".to_owned());
    } else {
        lines.extend(resets.iter().map(|r| format!("    {r}")));
        lines.push(
            "    run refuses this drill on a cluster with HA services unless --allow-fencing is given"
                .to_owned(),
        );
    }
    lines.extend(
        unforeseen(experiment, plan, model)
            .into_iter()
            .map(|u| format!("    {u}")),
    );
    lines.join("\n")
}

/// The fencing facts for this cluster, for `corodrill plan`: one short
/// sentence each, with its figures.
pub fn cluster_notes(model: &Model) -> Vec<String> {
    let detection = model.timing.detection();
    let timeouts = CLIENT_WATCHDOG_TIMEOUT + WATCHDOG_TIMEOUT;
    let client = CLIENT_WATCHDOG_TIMEOUT.as_secs();
    let watchdog = WATCHDOG_TIMEOUT.as_secs();
    let near = detection >= NEAR_CLIENT_TIMEOUT;
    // Back in quorum (merged again) before the client timeout: no reset.
    let longest_cut = (CLIENT_WATCHDOG_TIMEOUT + detection).saturating_sub(model.window());
    let longest_kill = CLIENT_WATCHDOG_TIMEOUT.saturating_sub(model.window());
    let mut notes = vec![
        format!(
            "Proxmox VE HA: a node with active HA services cut from the quorate partition \
             loses quorum after detection ({}: token {} ms + consensus {} ms), and is reset \
             about {} after the cut (detection + {client} s client timeout + {watchdog} s \
             watchdog).",
            secs(detection),
            model.timing.token_ms,
            model.timing.consensus_ms,
            secs(detection + timeouts)
        ),
        format!(
            "Its HA services restart on another node once the HA manager can take its lock, \
             {} s after the node last renewed it: about {} after the cut (Proxmox documents \
             about 2 minutes).",
            LOCK_LIFETIME.as_secs(),
            secs(detection + LOCK_LIFETIME)
        ),
        format!(
            "A node whose corosync is killed or stopped for more than about {} ({client} s \
             less {} to merge again) is reset {} after the kill; a powered-off node is just \
             down.",
            secs(longest_kill),
            secs(model.window()),
            secs(timeouts)
        ),
        "If no partition keeps quorum (a switch outage, an even split), every node with \
         active HA services is reset, and their services come back only once the nodes \
         boot and form a quorate partition again."
            .to_owned(),
        "A node with no active HA service is not reset: its LRM holds no watchdog, and \
         the CRM master closes its own when it loses its lock."
            .to_owned(),
    ];
    if !near {
        notes.insert(
            2,
            format!(
                "A cut shorter than about {} lets the node merge back ({} to merge) before \
                 its {client} s run out: no reset.",
                secs(longest_cut),
                secs(model.window())
            ),
        );
    } else {
        notes.push(format!(
            "Warning: detection here is {}, near the {client} s client timeout: any change \
             of membership, even a short cut or one node leaving, may stall the cluster long \
             enough to reset every node with active HA services; lower the totem token.",
            secs(detection)
        ));
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::oracle::Timing;

    // The same small cluster as predict's tests: three nodes, a 1 s token
    // (1650 + 1980 ms, a 5.037 s window).
    use crate::model::tests::{drill, model};

    fn one_fault(kind: &str, body: &str, heal_after: &str) -> String {
        format!("[[fault]]\nid = \"f\"\nkind = \"{kind}\"\n{body}\nheal_after = \"{heal_after}\"\n")
    }

    fn nodes_of(resets: &[Reset]) -> Vec<&str> {
        resets.iter().map(|r| r.node.as_str()).collect()
    }

    #[test]
    fn a_short_cut_resets_nobody() {
        let (e, p) = drill(3, 1, &one_fault("isolate", "nodes = [\"pve3\"]", "30s"));
        assert_eq!(foresee(&e, &p, &model(3, 1, &[])), []);
        // Just under and just over the longest harmless cut: 60 s +
        // detection 3.63 s - window 5.037 s = 58.593 s.
        let (e, p) = drill(3, 1, &one_fault("isolate", "nodes = [\"pve3\"]", "58s"));
        assert_eq!(foresee(&e, &p, &model(3, 1, &[])), []);
        let (e, p) = drill(3, 1, &one_fault("isolate", "nodes = [\"pve3\"]", "59s"));
        assert_eq!(nodes_of(&foresee(&e, &p, &model(3, 1, &[]))), ["pve3"]);
    }

    #[test]
    fn a_long_isolate_resets_the_isolated_node_only() {
        let (e, p) = drill(3, 1, &one_fault("isolate", "nodes = [\"pve3\"]", "90s"));
        let resets = foresee(&e, &p, &model(3, 1, &[]));
        assert_eq!(nodes_of(&resets), ["pve3"]);
        let r = &resets[0];
        assert_eq!(r.out_of_quorum_at, Duration::from_millis(3630));
        assert_eq!(r.reset_at, Duration::from_millis(73_630));
        assert!(!r.why.contains("all nodes"), "{}", r.why);
        assert!(r.why.contains("\"f\""), "{}", r.why);
        assert_eq!(
            r.to_string(),
            format!(
                "pve3: out of the quorate partition from t=3.6s; with active HA services its \
                 watchdog resets it at about t=73.6s (60 s client timeout + 10 s): {}",
                r.why
            )
        );
        assert!(
            r.why
                .contains("until about t=95.0s (the heal at t=90.0s + 5.0 s"),
            "{}",
            r.why
        );
    }

    #[test]
    fn a_switch_outage_resets_all_nodes() {
        let (e, p) = drill(
            3,
            1,
            &one_fault(
                "partition",
                "groups = [[\"pve1\"], [\"pve2\"], [\"pve3\"]]",
                "90s",
            ),
        );
        let resets = foresee(&e, &p, &model(3, 1, &[]));
        assert_eq!(nodes_of(&resets), ["pve1", "pve2", "pve3"]);
        for r in &resets {
            assert!(r.why.contains("all nodes"), "{}", r.why);
        }
    }

    #[test]
    fn a_long_kill_of_corosync_resets_its_node_from_the_kill() {
        let (e, p) = drill(3, 1, &one_fault("kill", "nodes = [\"pve2\"]", "90s"));
        let resets = foresee(&e, &p, &model(3, 1, &[]));
        assert_eq!(nodes_of(&resets), ["pve2"]);
        assert_eq!(resets[0].out_of_quorum_at, Duration::ZERO);
        assert_eq!(resets[0].reset_at, Duration::from_secs(70));
        assert!(
            resets[0].why.contains("corosync is down"),
            "{}",
            resets[0].why
        );
    }

    #[test]
    fn a_powered_off_node_is_down_not_reset() {
        let (e, p) = drill(3, 1, &one_fault("power-off", "nodes = [\"pve2\"]", "90s"));
        assert_eq!(foresee(&e, &p, &model(3, 1, &[])), []);
    }

    #[test]
    fn two_node_keeps_both_halves_quorate() {
        let (e, p) = drill(2, 1, &one_fault("isolate", "nodes = [\"pve2\"]", "90s"));
        assert_eq!(foresee(&e, &p, &model(2, 1, &[("two_node", "1")])), []);
        // Without two_node, both halves lose quorum.
        let resets = foresee(&e, &p, &model(2, 1, &[]));
        assert_eq!(nodes_of(&resets), ["pve1", "pve2"]);
        assert!(resets[0].why.contains("all nodes"), "{}", resets[0].why);
    }

    #[test]
    fn a_fault_the_model_cannot_follow_is_not_assumed_at_risk() {
        let (e, p) = drill(
            3,
            1,
            &one_fault("degrade", "nodes = [\"pve3\"]\nloss = \"30%\"", "90s"),
        );
        let m = model(3, 1, &[]);
        assert_eq!(foresee(&e, &p, &m), []);
        let notes = unforeseen(&e, &p, &m);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].starts_with("from t=0.0s to t=90.0s: pve1, pve2, pve3 not assumed"),
            "{notes:?}"
        );
        assert!(notes[0].contains("degraded link"), "{notes:?}");
    }

    #[test]
    fn detection_near_the_client_timeout_flags_even_a_short_cut() {
        let (e, p) = drill(3, 1, &one_fault("isolate", "nodes = [\"pve3\"]", "10s"));
        let mut m = model(3, 1, &[]);
        m.timing = Timing {
            token_ms: 40_000,
            consensus_ms: 10_000,
        };
        let resets = foresee(&e, &p, &m);
        assert_eq!(nodes_of(&resets), ["pve1", "pve2", "pve3"]);
        for r in &resets {
            assert_eq!(r.out_of_quorum_at, Duration::ZERO);
            assert!(r.why.contains("about 50.0 s"), "{}", r.why);
        }
        // The same cut with the ordinary token: nothing.
        assert_eq!(foresee(&e, &p, &model(3, 1, &[])), []);
    }

    #[test]
    fn cluster_notes_give_this_clusters_figures() {
        let notes = cluster_notes(&model(3, 1, &[])).join("\n");
        for figure in [
            "3.6 s", "73.6 s", "60 s", "10 s", "120 s", "123.6 s", "58.6 s",
        ] {
            assert!(notes.contains(figure), "{figure} missing from\n{notes}");
        }
        assert!(!notes.contains("Warning"), "{notes}");
        let mut slow = model(3, 1, &[]);
        slow.timing = Timing {
            token_ms: 40_000,
            consensus_ms: 10_000,
        };
        let notes = cluster_notes(&slow).join("\n");
        assert!(
            notes.contains("Warning: detection here is 50.0 s"),
            "{notes}"
        );
    }
}
