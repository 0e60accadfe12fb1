//! The judge: a pure function from an experiment and its event log to
//! verdicts. It never talks to an agent; unit tests drive it with
//! hand-written logs. An expectation is met by a state reached after its
//! anchor, or by one already there that outlasts the cluster's reaction
//! time (`judge_expect`): never by a state corosync has not yet had the
//! time to change.

use std::collections::BTreeMap;

use crate::experiment::{Expect, Experiment, ResourceExpect, ResourceWant, SplitBrain};
use crate::log::{LogBody, LogEvent, NodeState};

#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub name: String,
    pub invariant: bool,
    pub passed: bool,
    /// The measured time (seconds): how long the expected state took to
    /// arrive. None when nothing arrived: a state kept from before the
    /// anchor (`kept`), or a failure.
    pub measured: Option<f64>,
    /// The expected state was already there at the anchor and still held
    /// once the cluster had had time to react, and for `hold` after that:
    /// kept, not reached, so there is no time to measure.
    pub kept: bool,
    /// For a failure: expected, observed and when. For a pass: what was seen.
    pub message: String,
}

/// Judges every expectation and the always-on invariants.
pub fn judge(experiment: &Experiment, nodes: &[String], log: &[LogEvent]) -> Vec<Verdict> {
    let mut log: Vec<&LogEvent> = log.iter().collect();
    log.sort_by(|a, b| a.t.total_cmp(&b.t));
    let timeline = Timeline::new(&log);
    let mut verdicts: Vec<Verdict> = experiment
        .expects
        .iter()
        .map(|e| judge_expect(experiment, e, nodes, &log, &timeline))
        .collect();
    verdicts.push(split_brain(experiment.invariants.split_brain, &timeline));
    for w in experiment.watches.iter().filter(|w| !w.clone) {
        verdicts.push(double_active(
            &w.resource,
            w.interval.as_secs_f64(),
            experiment.invariants.double_active,
            &timeline,
        ));
    }
    if experiment.invariants.whole_at_end {
        verdicts.push(whole_at_end(experiment, nodes, &log, &timeline));
    }
    verdicts
}

/// Whether every expectation has already passed by `now`: a drill may stop
/// waiting then (a pass cannot be undone by later events). A state kept
/// from before its anchor passes only once it has held through the
/// reaction time and `hold`, so the drill waits that long for it.
pub fn expectations_met(
    experiment: &Experiment,
    nodes: &[String],
    log: &[LogEvent],
    now: f64,
) -> bool {
    let mut log: Vec<&LogEvent> = log.iter().collect();
    log.sort_by(|a, b| a.t.total_cmp(&b.t));
    let mut timeline = Timeline::new(&log);
    timeline.end = timeline.end.max(now);
    // The first open one is enough to keep waiting.
    experiment
        .expects
        .iter()
        .all(|e| judge_expect(experiment, e, nodes, &log, &timeline).passed)
}

/// The expectations not (yet) met by the log up to `now`, by name: what a
/// long wait is waiting for.
pub fn open_expectations<'e>(
    experiment: &'e Experiment,
    nodes: &[String],
    log: &[LogEvent],
    now: f64,
) -> Vec<&'e str> {
    let mut log: Vec<&LogEvent> = log.iter().collect();
    log.sort_by(|a, b| a.t.total_cmp(&b.t));
    let mut timeline = Timeline::new(&log);
    timeline.end = timeline.end.max(now);
    experiment
        .expects
        .iter()
        .filter(|e| !judge_expect(experiment, e, nodes, &log, &timeline).passed)
        .map(|e| e.name.as_str())
        .collect()
}

/// The first moment after `from` at which `e` no longer holds (some node
/// it names sees something else), or None when it holds to the end of
/// the log: how long the state that met an expectation lasted (`mutate`
/// asks for a `hold` past it).
pub fn holds_until(e: &Expect, nodes: &[String], log: &[LogEvent], from: f64) -> Option<f64> {
    let mut log: Vec<&LogEvent> = log.iter().collect();
    log.sort_by(|a, b| a.t.total_cmp(&b.t));
    let timeline = Timeline::new(&log);
    let anchor = anchor_time(e, log.iter().copied())?;
    let end = timeline
        .change_times(from, timeline.end)
        .find(|&t| holds_at(e, nodes, &timeline, t, anchor).is_err());
    end
}

/// Every node's state after each quorum-changing event, in time order.
struct Timeline {
    /// (time, node, state it entered)
    changes: Vec<(f64, String, NodeState)>,
    /// (time, node, resource, where the node's view says it is active)
    resources: Vec<(f64, String, String, Option<Vec<String>>)>,
    end: f64,
}

impl Timeline {
    fn new(log: &[&LogEvent]) -> Timeline {
        let changes = log
            .iter()
            .filter_map(|e| Some((e.t, e.node.clone()?, NodeState::from_event(&e.body)?)))
            .collect();
        let resources = log
            .iter()
            .filter_map(|e| match &e.body {
                LogBody::Resource {
                    resource,
                    active_on,
                } => Some((e.t, e.node.clone()?, resource.clone(), active_on.clone())),
                _ => None,
            })
            .collect();
        Timeline {
            changes,
            resources,
            end: log.last().map_or(0.0, |e| e.t),
        }
    }

    /// Each node's view of `resource` at time `t` (after the events at `t`).
    fn views_at(&self, resource: &str, t: f64) -> BTreeMap<&str, &Option<Vec<String>>> {
        let mut views = BTreeMap::new();
        for (at, node, r, view) in &self.resources {
            if *at > t {
                break;
            }
            if r == resource {
                views.insert(node.as_str(), view);
            }
        }
        views
    }

    /// Every node's state at time `t` (after the events at `t`).
    fn states_at(&self, t: f64) -> BTreeMap<&str, &NodeState> {
        let mut states = BTreeMap::new();
        for (at, node, state) in &self.changes {
            if *at > t {
                break;
            }
            states.insert(node.as_str(), state);
        }
        states
    }

    /// The moments when some node's state or view changed, in (from, to],
    /// in time order.
    fn change_times(&self, from: f64, to: f64) -> impl Iterator<Item = f64> + '_ {
        let mut times: Vec<f64> = self
            .changes
            .iter()
            .map(|c| c.0)
            .chain(self.resources.iter().map(|r| r.0))
            .filter(move |&t| t > from && t <= to)
            .collect();
        times.sort_by(f64::total_cmp);
        times.dedup();
        times.into_iter()
    }
}

/// Each of `targets` (the expectation's nodes): whether its part of the
/// expectation holds at `t` (`anchor`: when its window opened); Err says
/// what it sees instead.
fn check_at(
    e: &Expect,
    targets: &[&str],
    nodes: &[String],
    timeline: &Timeline,
    t: f64,
    anchor: f64,
) -> Vec<Result<(), String>> {
    match &e.resource {
        None => {
            let states = timeline.states_at(t);
            targets
                .iter()
                .map(|node| quorum_holds(e, nodes, node, &states))
                .collect()
        }
        Some(r) => {
            let views = timeline.views_at(&r.resource, t);
            let before = timeline.views_at(&r.resource, anchor);
            targets
                .iter()
                .map(|node| resource_holds(r, node, &views, &before))
                .collect()
        }
    }
}

/// Whether the whole expectation holds at `t`; Err says what does not.
fn holds_at(
    e: &Expect,
    nodes: &[String],
    timeline: &Timeline,
    t: f64,
    anchor: f64,
) -> Result<(), String> {
    let targets = e.nodes.resolve(nodes);
    let wrong: Vec<String> = check_at(e, &targets, nodes, timeline, t, anchor)
        .into_iter()
        .filter_map(Result::err)
        .collect();
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("; "))
    }
}

/// Whether `node`'s view of the resource is what the expectation wants
/// (`before`: the views at the anchor, for `moved`).
fn resource_holds(
    r: &ResourceExpect,
    node: &str,
    views: &BTreeMap<&str, &Option<Vec<String>>>,
    before: &BTreeMap<&str, &Option<Vec<String>>>,
) -> Result<(), String> {
    let view = match views.get(node) {
        None => return Err(format!("{node}: no view of {} yet", r.resource)),
        Some(None) => return Err(format!("{node}: cannot say (no answer from its watcher)")),
        Some(Some(v)) => v,
    };
    let ok = match &r.want {
        ResourceWant::RunningOn(set) => view.len() == 1 && set.contains(&view[0]),
        ResourceWant::Stopped => view.is_empty(),
        ResourceWant::Moved => {
            let was: Vec<&String> = before
                .get(node)
                .and_then(|v| v.as_ref())
                .map(|v| v.iter().collect())
                .unwrap_or_default();
            !view.is_empty() && view.iter().all(|n| !was.contains(&n))
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{node} sees {} {}",
            r.resource,
            if view.is_empty() {
                "stopped".to_owned()
            } else {
                format!("on {}", view.join(", "))
            }
        ))
    }
}

/// Whether `node`'s quorum state is what the expectation wants of it (its
/// own prediction where the nodes differ); Err says what it is.
fn quorum_holds(
    e: &Expect,
    nodes: &[String],
    node: &str,
    states: &BTreeMap<&str, &NodeState>,
) -> Result<(), String> {
    let Some(state) = states.get(node) else {
        return Err(format!("{node}: nothing observed"));
    };
    let (quorate, members) = e.want_of(node);
    let mut ok = quorate.is_none_or(|q| state.quorate == q);
    if let Some(members) = members {
        let mut want: Vec<&str> = members.resolve(nodes);
        let mut have: Vec<&str> = state.members.iter().map(String::as_str).collect();
        want.sort();
        have.sort();
        ok &= want == have;
    }
    ok &= e.total_votes.is_none_or(|v| state.total_votes == Some(v));
    if ok {
        Ok(())
    } else {
        Err(format!("{node}: {}", state.describe()))
    }
}

/// When the anchor happened: the first node's fault taking effect, or the
/// last node's heal.
pub fn anchor_time<'a>(e: &Expect, log: impl IntoIterator<Item = &'a LogEvent>) -> Option<f64> {
    let times = log.into_iter().filter_map(|ev| match &ev.body {
        LogBody::FaultApplied { fault, .. } if !e.after.healed && *fault == e.after.fault => {
            Some(ev.t)
        }
        LogBody::FaultHealed { fault, .. } | LogBody::LeaseExpired { fault, .. }
            if e.after.healed && *fault == e.after.fault =>
        {
            Some(ev.t)
        }
        _ => None,
    });
    if e.after.healed {
        times.reduce(f64::max)
    } else {
        times.reduce(f64::min)
    }
}

/// Apply and heal events are stamped as each agent answers, milliseconds
/// apart: a heal this close to the end of the reaction time is on time.
const STAMP_SLACK: f64 = 0.1;

/// Why a state kept since a fault's start proves nothing in this run: the
/// fault was rolled back (the drill ended it, or its lease ran out) before
/// the cluster had had the time to react to it. None when it lasted, or
/// when the file itself makes the fault shorter than the reaction time:
/// whether the cluster rides out a blip is a question of its own, judged
/// through the reaction time like any other.
fn cut_short(
    experiment: &Experiment,
    e: &Expect,
    log: &[&LogEvent],
    anchor: f64,
    reaction: f64,
) -> Option<String> {
    if e.after.healed {
        return None;
    }
    let planned = experiment
        .faults
        .iter()
        .find(|f| f.id == e.after.fault)
        .and_then(|f| f.heal_after);
    if planned.is_some_and(|p| p.as_secs_f64() < reaction) {
        return None;
    }
    let healed = log
        .iter()
        .filter(|ev| ev.t >= anchor)
        .filter_map(|ev| match &ev.body {
            LogBody::FaultHealed { fault, .. } | LogBody::LeaseExpired { fault, .. }
                if *fault == e.after.fault =>
            {
                Some(ev.t)
            }
            _ => None,
        })
        .reduce(f64::min)?;
    (healed + STAMP_SLACK < anchor + reaction).then(|| {
        format!(
            "{} was rolled back at t={healed:.3}s, {:.3}s after it, before the cluster's reaction time \
             ({reaction:.3}s) had passed: a state kept that long proves nothing (give within, or \
             heal_after, at least the reaction time)",
            e.after,
            healed - anchor
        )
    })
}

/// How long after the anchor the expectation must hold, in words:
/// "the 2s hold", or "the reaction time (5.037s) + the 2s hold".
fn hold_words(e: &Expect, reaction: Option<f64>) -> String {
    let hold = format!("the {} hold", humantime::format_duration(e.hold));
    match reaction {
        Some(r) if e.hold.is_zero() => format!("the reaction time ({r:.3}s)"),
        Some(r) => format!("the reaction time ({r:.3}s) + {hold}"),
        None => hold,
    }
}

/// An expectation after a fault (or a heal) is met by a state the cluster
/// *reaches* within the window and keeps for `hold`, measured from the
/// anchor. A state that was already there at the anchor is *unchanged*,
/// not reached: it is evidence only if it still holds once the cluster
/// has had the time to react (the expectation's reaction time, from the
/// model) and for `hold` after that, however short `within` is. Nodes
/// count one by one: in "pve1, pve2 quorate" where pve2 changed but pve1
/// was quorate all along, pve1's part must hold through the reaction
/// time too. Without a reaction time (no model of the cluster) a kept
/// state never passes.
fn judge_expect(
    experiment: &Experiment,
    e: &Expect,
    nodes: &[String],
    log: &[&LogEvent],
    timeline: &Timeline,
) -> Verdict {
    let fail = |message: String| Verdict {
        name: e.name.clone(),
        invariant: false,
        passed: false,
        measured: None,
        kept: false,
        message,
    };
    let Some(anchor) = anchor_time(e, log.iter().copied()) else {
        return fail(format!("{} never happened in this run", e.after));
    };
    let within = e.within.as_secs_f64();
    let hold = e.hold.as_secs_f64();
    let deadline = anchor + within;
    let reaction = e.reaction.as_ref().map(|r| r.time.as_secs_f64());
    let targets = e.nodes.resolve(nodes);
    // Nothing after this can decide the verdict: the last start is the
    // deadline, and the longest stretch a start needs is the reaction
    // time and the hold. (Drills poll this several times a second with
    // the whole log: the rest is not worth judging.)
    let horizon = deadline.max(anchor + reaction.unwrap_or(0.0)) + hold;
    let points: Vec<f64> = std::iter::once(anchor)
        .chain(timeline.change_times(anchor, horizon))
        .collect();
    let checks: Vec<Vec<Result<(), String>>> = points
        .iter()
        .map(|&t| check_at(e, &targets, nodes, timeline, t, anchor))
        .collect();
    let ok: Vec<bool> = checks.iter().map(|c| c.iter().all(Result::is_ok)).collect();
    // Per node: so at the anchor and unbroken until this moment (infinity:
    // to the end), or None when not so at the anchor.
    let kept_until: Vec<Option<f64>> = (0..targets.len())
        .map(|k| {
            checks[0][k].is_ok().then(|| {
                points
                    .iter()
                    .zip(&checks)
                    .skip(1)
                    .find(|(_, c)| c[k].is_err())
                    .map_or(f64::INFINITY, |(t, _)| *t)
            })
        })
        .collect();
    let mut broken: Vec<String> = Vec::new();
    let mut note = |why: String| {
        if !broken.contains(&why) {
            broken.push(why);
        }
    };
    for i in 0..points.len() {
        let start = points[i];
        if start > deadline {
            break;
        }
        // Only where it becomes true: later moments of the same stretch
        // are not arrivals.
        if !ok[i] || (i > 0 && ok[i - 1]) {
            continue;
        }
        let kept: Vec<&str> = targets
            .iter()
            .zip(&kept_until)
            .filter(|(_, u)| u.is_some_and(|u| u > start))
            .map(|(n, _)| *n)
            .collect();
        let since = if i == 0 {
            format!("already so at {} (t={anchor:.3}s)", e.after)
        } else if kept.is_empty() {
            format!("true from t={start:.3}s")
        } else {
            format!(
                "true from t={start:.3}s, with {} so since {} (t={anchor:.3}s)",
                kept.join(", "),
                e.after
            )
        };
        let until = if kept.is_empty() {
            start + hold
        } else {
            let Some(r) = reaction else {
                note(format!(
                    "{since}: a state already there at the fault counts only once the cluster \
                     has had the time to react, and this run has no model of the cluster to say \
                     how long that is"
                ));
                continue;
            };
            if let Some(why) = cut_short(experiment, e, log, anchor, r) {
                note(format!("{since}, but {why}"));
                continue;
            }
            (anchor + r).max(start) + hold
        };
        let what = hold_words(e, (!kept.is_empty()).then_some(reaction).flatten());
        let breach = (i + 1..points.len())
            .find(|&j| !ok[j])
            .filter(|&j| points[j] <= until);
        match breach {
            None if timeline.end + 1e-9 >= until => {
                let held = if hold > 0.0 {
                    format!(", held {}", humantime::format_duration(e.hold))
                } else {
                    String::new()
                };
                let basis = e.reaction.as_ref().map_or("", |r| r.basis.as_str());
                let (measured, message) = if i == 0 {
                    (
                        None,
                        format!(
                            "{}: kept, not reached: already so at {} (t={anchor:.3}s) and still so \
                             through {what}, to t={until:.3}s (reaction time: {basis})",
                            e.describe(nodes),
                            e.after
                        ),
                    )
                } else if kept.is_empty() {
                    (
                        Some(start - anchor),
                        format!(
                            "{} reached in {:.3}s (within {}){held}",
                            e.describe(nodes),
                            start - anchor,
                            humantime::format_duration(e.within)
                        ),
                    )
                } else {
                    (
                        Some(start - anchor),
                        format!(
                            "{} reached in {:.3}s (within {}){held}; {} already so at {}, kept \
                             through {what}, to t={until:.3}s (reaction time: {basis})",
                            e.describe(nodes),
                            start - anchor,
                            humantime::format_duration(e.within),
                            kept.join(", "),
                            e.after
                        ),
                    )
                };
                return Verdict {
                    name: e.name.clone(),
                    invariant: false,
                    passed: true,
                    measured,
                    kept: i == 0,
                    message,
                };
            }
            None => {
                note(format!(
                    "{since}, but the drill ended at t={:.3}s, before {what} had passed (t={until:.3}s)",
                    timeline.end
                ));
                break;
            }
            Some(j) => {
                let t = points[j];
                let why = checks[j]
                    .iter()
                    .filter_map(|r| r.as_ref().err())
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ");
                note(if i == 0 {
                    format!(
                        "{since}, but at t={t:.3}s ({:.3}s after {}, before {what} had passed) {why}",
                        t - anchor,
                        e.after
                    )
                } else {
                    format!(
                        "{since}, but at t={t:.3}s ({:.3}s later, before {what} had passed) {why}",
                        t - start
                    )
                });
            }
        }
    }
    let at_deadline = holds_at(e, nodes, timeline, deadline, anchor);
    // Too slow is not never: say when it did become true, if it did (not
    // so at the deadline, so the first moment it is so is an arrival).
    let late = at_deadline
        .is_err()
        .then(|| {
            timeline
                .change_times(deadline, timeline.end)
                .find(|&t| holds_at(e, nodes, timeline, t, anchor).is_ok())
        })
        .flatten()
        .map(|t| {
            format!(
                "; it was true from t={t:.3}s, {:.3}s after {}",
                t - anchor,
                e.after
            )
        })
        .unwrap_or_default();
    let observed = at_deadline
        .err()
        .unwrap_or_else(|| "as expected, but see why it does not count".into());
    fail(format!(
        "expected {} within {} of {} (t={anchor:.3}s, deadline t={deadline:.3}s); observed at the deadline: {observed}{}",
        e.describe(nodes),
        humantime::format_duration(e.within),
        e.after,
        broken.iter().map(|b| format!("; {b}")).collect::<String>()
    ) + &late)
}

/// A watched resource active on two nodes at once, as each of those nodes'
/// own view says (a node's view of what it runs itself is its own
/// resource manager's word): every such window, with the nodes.
fn double_active_windows(resource: &str, timeline: &Timeline) -> Vec<(f64, f64, Vec<String>)> {
    let mut claims: BTreeMap<&str, bool> = BTreeMap::new();
    let mut windows = Vec::new();
    let mut open: Option<(f64, Vec<String>)> = None;
    for (t, node, r, view) in &timeline.resources {
        if r != resource {
            continue;
        }
        let runs_it = view.as_ref().is_some_and(|v| v.iter().any(|n| n == node));
        claims.insert(node.as_str(), runs_it);
        let holders: Vec<String> = claims
            .iter()
            .filter(|(_, on)| **on)
            .map(|(n, _)| n.to_string())
            .collect();
        match (&mut open, holders.len() >= 2) {
            (None, true) => open = Some((*t, holders)),
            (Some((_, nodes)), true) => {
                for h in holders {
                    if !nodes.contains(&h) {
                        nodes.push(h);
                    }
                }
            }
            (Some(_), false) => {
                if let Some((from, nodes)) = open.take() {
                    windows.push((from, *t, nodes));
                }
            }
            (None, false) => {}
        }
    }
    if let Some((from, nodes)) = open {
        windows.push((from, timeline.end, nodes));
    }
    windows
}

/// `interval`: how often nodes read their views. Views are read at
/// different moments, so during an orderly move (stop here, then start
/// there) one node's stale "still here" can overlap another's fresh "now
/// here" for up to one interval: windows that short are not evidence.
fn double_active(
    resource: &str,
    interval: f64,
    policy: SplitBrain,
    timeline: &Timeline,
) -> Verdict {
    let windows: Vec<(f64, f64, Vec<String>)> = double_active_windows(resource, timeline)
        .into_iter()
        .filter(|(from, to, _)| to - from > interval)
        .collect();
    let total: f64 = windows.iter().map(|(a, b, _)| b - a).sum();
    let listed = windows
        .iter()
        .map(|(a, b, nodes)| {
            format!(
                "on {} at once from t={a:.3}s to t={b:.3}s ({:.3}s)",
                nodes.join(" and "),
                b - a
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let (name, passed, message) = match policy {
        SplitBrain::Forbid => (
            format!("{resource} never active on two nodes"),
            windows.is_empty(),
            if windows.is_empty() {
                format!("{resource} was never active on two nodes at once")
            } else {
                format!("{resource} was active {listed}")
            },
        ),
        SplitBrain::Report => (
            format!("{resource} on two nodes at once (reported)"),
            true,
            if windows.is_empty() {
                format!("{resource} was never active on two nodes at once")
            } else {
                format!("{resource} was active {listed}: the window fencing exists to close")
            },
        ),
        SplitBrain::Expect => (
            format!("{resource} double-active window caught"),
            !windows.is_empty(),
            if windows.is_empty() {
                format!("the drill expects {resource} active on two nodes at once (no fencing), but it never was")
            } else {
                format!("{resource} was active {listed}: the window fencing exists to close")
            },
        ),
    };
    Verdict {
        name,
        invariant: true,
        passed,
        measured: (!windows.is_empty()).then_some(total),
        kept: false,
        message,
    }
}

/// A split-brain: two quorate nodes, each outside the other's membership.
/// (A node inside the other's membership but with an older view is only
/// late to hear of a new ring: quorum notifications do not reach all nodes
/// at the same instant.)
#[derive(Debug, Clone, PartialEq)]
struct SplitBrainSpan {
    from: f64,
    to: Option<f64>,
    a: Side,
    b: Side,
}

/// One quorate side of a split-brain: a node, its ring id, its members.
#[derive(Debug, Clone, PartialEq)]
struct Side {
    node: String,
    ring: String,
    members: Vec<String>,
}

impl Side {
    fn of(node: &str, s: &NodeState) -> Side {
        Side {
            node: node.to_owned(),
            ring: s.ring_id.clone(),
            members: s.members.clone(),
        }
    }
}

fn split_pairs(states: &BTreeMap<&str, &NodeState>) -> Vec<(Side, Side)> {
    let quorate: Vec<(&str, &NodeState)> = states
        .iter()
        .filter(|(_, s)| s.quorate)
        .map(|(n, s)| (*n, *s))
        .collect();
    let mut pairs = Vec::new();
    for (i, (a, sa)) in quorate.iter().enumerate() {
        for (b, sb) in &quorate[i + 1..] {
            let a_in_b = sb.members.iter().any(|m| m == a);
            let b_in_a = sa.members.iter().any(|m| m == b);
            if !a_in_b && !b_in_a {
                pairs.push((Side::of(a, sa), Side::of(b, sb)));
            }
        }
    }
    pairs
}

fn split_brain_spans(timeline: &Timeline) -> Vec<SplitBrainSpan> {
    let mut spans: Vec<SplitBrainSpan> = Vec::new();
    let mut open: Option<usize> = None;
    let mut times: Vec<f64> = timeline.changes.iter().map(|c| c.0).collect();
    times.dedup();
    for t in times {
        let pairs = split_pairs(&timeline.states_at(t));
        match (pairs.first(), open) {
            (Some((a, b)), None) => {
                spans.push(SplitBrainSpan {
                    from: t,
                    to: None,
                    a: a.clone(),
                    b: b.clone(),
                });
                open = Some(spans.len() - 1);
            }
            (None, Some(i)) => {
                spans[i].to = Some(t);
                open = None;
            }
            _ => {}
        }
    }
    spans
}

fn describe_span(s: &SplitBrainSpan) -> String {
    let side = |x: &Side| {
        format!(
            "{} (ring {}, members [{}])",
            x.node,
            x.ring,
            x.members.join(", ")
        )
    };
    format!(
        "{} and {} both quorate from t={:.3}s {}",
        side(&s.a),
        side(&s.b),
        s.from,
        match s.to {
            Some(to) => format!("to t={to:.3}s ({:.3}s)", to - s.from),
            None => "to the end of the drill".into(),
        }
    )
}

fn split_brain(policy: SplitBrain, timeline: &Timeline) -> Verdict {
    let spans = split_brain_spans(timeline);
    let described: Vec<String> = spans.iter().map(describe_span).collect();
    match policy {
        SplitBrain::Forbid => Verdict {
            name: "no split-brain".into(),
            invariant: true,
            passed: spans.is_empty(),
            measured: None,
            kept: false,
            message: if spans.is_empty() {
                "at no moment were two quorate nodes outside each other's membership".into()
            } else {
                format!("split-brain: {}", described.join("; "))
            },
        },
        SplitBrain::Report => Verdict {
            name: "split-brain (reported)".into(),
            invariant: true,
            passed: true,
            measured: None,
            kept: false,
            message: if spans.is_empty() {
                "no split-brain".into()
            } else {
                format!("split-brain: {}", described.join("; "))
            },
        },
        SplitBrain::Expect => Verdict {
            name: "split-brain caught".into(),
            invariant: true,
            passed: !spans.is_empty(),
            measured: spans.first().map(|s| s.from),
            kept: false,
            message: if spans.is_empty() {
                "the drill expects a split-brain and none was observed".into()
            } else {
                format!("caught: {}", described.join("; "))
            },
        },
    }
}

fn whole_at_end(
    experiment: &Experiment,
    nodes: &[String],
    log: &[&LogEvent],
    timeline: &Timeline,
) -> Verdict {
    let mut problems = Vec::new();
    for f in &experiment.faults {
        let applied: Vec<&str> = log
            .iter()
            .filter(|e| matches!(&e.body, LogBody::FaultApplied { fault, .. } if *fault == f.id))
            .filter_map(|e| e.node.as_deref())
            .collect();
        for node in applied {
            let healed = log.iter().rev().find_map(|e| match &e.body {
                LogBody::FaultHealed {
                    fault,
                    clean,
                    detail,
                }
                | LogBody::LeaseExpired {
                    fault,
                    clean,
                    detail,
                } if *fault == f.id && e.node.as_deref() == Some(node) => {
                    Some((*clean, detail.clone()))
                }
                _ => None,
            });
            match healed {
                None => problems.push(format!("{} on {node} was never rolled back", f.id)),
                Some((false, detail)) => {
                    problems.push(format!("{} on {node} not rolled back: {detail}", f.id))
                }
                Some((true, _)) => {}
            }
        }
    }
    let last = timeline.states_at(f64::INFINITY);
    for node in nodes {
        match last.get(node.as_str()) {
            Some(s) if s.sees_whole(nodes) => {}
            Some(s) => problems.push(format!("{node} ended {}", s.describe())),
            None => problems.push(format!("{node}: nothing observed")),
        }
    }
    if let Some(why) = log.iter().find_map(|e| match &e.body {
        LogBody::ClusterNotWhole { why } => Some(why.clone()),
        _ => None,
    }) {
        problems.push(why);
    }
    Verdict {
        name: "every fault rolled back, cluster whole at the end".into(),
        invariant: true,
        passed: problems.is_empty(),
        measured: None,
        kept: false,
        message: if problems.is_empty() {
            format!(
                "all faults rolled back; {} quorate with every node as member",
                nodes.join(", ")
            )
        } else {
            problems.join("; ")
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::parse;
    use std::path::Path;

    fn nodes() -> Vec<String> {
        ["pve1", "pve2", "pve3"].map(String::from).to_vec()
    }

    fn ev(t: f64, node: Option<&str>, body: LogBody) -> LogEvent {
        LogEvent {
            t,
            ts: String::new(),
            node: node.map(String::from),
            body,
        }
    }

    fn q(t: f64, node: &str, quorate: bool, members: &[&str], ring: &str) -> LogEvent {
        ev(
            t,
            Some(node),
            LogBody::Quorum {
                quorate,
                members: members.iter().map(|s| s.to_string()).collect(),
                ring_id: ring.into(),
                total_votes: Some(members.len() as u32),
                expected_votes: Some(3),
                quorum: Some(2),
            },
        )
    }

    fn applied(t: f64, node: &str, fault: &str) -> LogEvent {
        ev(
            t,
            Some(node),
            LogBody::FaultApplied {
                fault: fault.into(),
                fault_kind: "partition".into(),
            },
        )
    }

    fn healed(t: f64, node: &str, fault: &str, clean: bool) -> LogEvent {
        ev(
            t,
            Some(node),
            LogBody::FaultHealed {
                fault: fault.into(),
                clean,
                detail: "table gone".into(),
            },
        )
    }

    const ISOLATE: &str = r#"
name = "isolate"
nodes = 3
[[fault]]
id = "cut"
kind = "partition"
groups = [["pve1", "pve2"], ["pve3"]]
heal_after = "20s"
[[expect]]
name = "majority keeps quorum"
after = "cut"
nodes = ["pve1", "pve2"]
quorate = true
members = ["pve1", "pve2"]
within = "10s"
hold = "5s"
[[expect]]
name = "pve3 loses quorum"
after = "cut"
nodes = ["pve3"]
quorate = false
within = "10s"
[[expect]]
name = "whole again"
after = "cut.healed"
nodes = "all"
quorate = true
members = "all"
within = "15s"
"#;

    /// What a real isolate of pve3 looks like (token 1000: ~3.5 s to notice,
    /// ~2 s to rejoin), with notifications reaching nodes a few ms apart.
    fn isolate_log() -> Vec<LogEvent> {
        let all = ["pve1", "pve2", "pve3"];
        vec![
            ev(
                0.0,
                None,
                LogBody::DrillStart {
                    experiment: "isolate".into(),
                },
            ),
            q(0.0, "pve1", true, &all, "1.9"),
            q(0.0, "pve2", true, &all, "1.9"),
            q(0.0, "pve3", true, &all, "1.9"),
            applied(0.01, "pve1", "cut"),
            applied(0.012, "pve2", "cut"),
            applied(0.011, "pve3", "cut"),
            q(3.52, "pve1", true, &["pve1", "pve2"], "1.d"),
            q(3.53, "pve2", true, &["pve1", "pve2"], "1.d"),
            q(3.55, "pve3", false, &["pve3"], "3.d"),
            healed(20.0, "pve1", "cut", true),
            healed(20.0, "pve2", "cut", true),
            healed(20.01, "pve3", "cut", true),
            q(21.70, "pve3", true, &all, "1.11"),
            q(21.72, "pve1", true, &all, "1.11"),
            q(21.73, "pve2", true, &all, "1.11"),
            ev(21.8, None, LogBody::ClusterWhole {}),
            ev(22.0, None, LogBody::DrillEnd {}),
        ]
    }

    fn run(toml: &str, log: &[LogEvent]) -> Vec<Verdict> {
        judge(&parse(Path::new("x.toml"), toml).unwrap(), &nodes(), log)
    }

    #[test]
    fn isolate_passes_with_measured_times() {
        let v = run(ISOLATE, &isolate_log());
        assert!(v.iter().all(|v| v.passed), "{v:#?}");
        assert_eq!(v.len(), 5);
        assert!((v[0].measured.unwrap() - 3.52).abs() < 1e-9, "{v:#?}");
        assert!((v[1].measured.unwrap() - 3.54).abs() < 1e-9);
        assert!((v[2].measured.unwrap() - 1.72).abs() < 1e-9);
        // pve3 saw the new ring 20 ms before pve1 and pve2: late, not split.
        assert_eq!(v[3].name, "no split-brain");
    }

    #[test]
    fn too_slow_fails_with_expected_observed_and_when() {
        let toml = ISOLATE.replacen("within = \"10s\"", "within = \"3s\"", 1);
        let v = run(&toml, &isolate_log());
        assert!(!v[0].passed);
        assert!(
            v[0].message.contains("within 3s of cut"),
            "{}",
            v[0].message
        );
        assert!(
            v[0].message.contains("deadline t=3.010s"),
            "{}",
            v[0].message
        );
        assert!(
            v[0].message
                .contains("pve1: quorate, members [pve1, pve2, pve3]"),
            "{}",
            v[0].message
        );
    }

    #[test]
    fn hold_broken_fails() {
        let mut log = isolate_log();
        // pve2 drops out for a moment 2 s after the majority formed.
        log.insert(10, q(5.5, "pve2", false, &["pve2"], "2.e"));
        log.insert(11, q(6.0, "pve2", true, &["pve1", "pve2"], "1.f"));
        let v = run(ISOLATE, &log);
        // It became true again at 6.0 and held 5 s until 11.0 (< deadline + hold).
        assert!(v[0].passed, "{v:#?}");
        assert!((v[0].measured.unwrap() - 5.99).abs() < 1e-9);
        let strict = ISOLATE.replacen("within = \"10s\"", "within = \"5s\"", 1);
        let v = run(&strict, &log);
        assert!(!v[0].passed);
        assert!(
            v[0].message.contains("before the 5s hold"),
            "{}",
            v[0].message
        );
    }

    #[test]
    fn split_brain_is_caught_with_ring_ids_and_span() {
        let mut log = isolate_log();
        // pve3 wrongly keeps quorum on its own (an expected-votes override).
        log.insert(10, q(4.0, "pve3", true, &["pve3"], "3.e"));
        let v = run(ISOLATE, &log);
        let sb = v.iter().find(|v| v.name == "no split-brain").unwrap();
        assert!(!sb.passed);
        assert!(sb.message.contains("ring 1.d"), "{}", sb.message);
        assert!(sb.message.contains("ring 3.e"), "{}", sb.message);
        assert!(
            sb.message.contains("from t=4.000s to t=21.700s"),
            "{}",
            sb.message
        );

        let expecting = format!("{ISOLATE}\n[invariants]\nsplit_brain = \"expect\"\n");
        let v = run(&expecting, &log);
        let sb = v.iter().find(|v| v.name == "split-brain caught").unwrap();
        assert!(sb.passed, "{sb:?}");
        let v = run(&expecting, &isolate_log());
        assert!(
            !v.iter()
                .find(|v| v.name == "split-brain caught")
                .unwrap()
                .passed
        );
    }

    #[test]
    fn unclean_rollback_or_partial_cluster_fails_the_end_invariant() {
        let mut log = isolate_log();
        log[12] = healed(20.01, "pve3", "cut", false);
        let v = run(ISOLATE, &log);
        let end = v.last().unwrap();
        assert!(!end.passed);
        assert!(
            end.message.contains("cut on pve3 not rolled back"),
            "{}",
            end.message
        );

        let mut log = isolate_log();
        log.retain(|e| !(e.t > 21.0 && e.node.as_deref() == Some("pve3")));
        let v = run(ISOLATE, &log);
        assert!(!v.last().unwrap().passed);
        assert!(
            v.last().unwrap().message.contains("pve3 ended inquorate"),
            "{}",
            v.last().unwrap().message
        );
    }

    #[test]
    fn corosync_down_counts_as_not_quorate() {
        let mut log = isolate_log();
        log[9] = ev(
            3.55,
            Some("pve3"),
            LogBody::CorosyncDown {
                reason: "killed".into(),
            },
        );
        let v = run(ISOLATE, &log);
        assert!(v[1].passed, "{v:#?}");
    }

    fn res(t: f64, node: &str, on: Option<&[&str]>) -> LogEvent {
        ev(
            t,
            Some(node),
            LogBody::Resource {
                resource: "svc".into(),
                active_on: on.map(|v| v.iter().map(|s| s.to_string()).collect()),
            },
        )
    }

    const FAILOVER: &str = r#"
name = "failover"
nodes = 3
[[watch]]
resource = "svc"
interval = "100ms"
[[fault]]
id = "cut"
kind = "isolate"
nodes = ["pve1"]
[[expect]]
name = "svc moves"
after = "cut"
nodes = ["pve2", "pve3"]
resource = "svc"
moved = true
within = "10s"
[[expect]]
name = "svc on a survivor"
after = "cut"
nodes = ["pve2", "pve3"]
resource = "svc"
running_on = ["pve2", "pve3"]
within = "10s"
hold = "1s"
[[expect]]
name = "the cut node stops it"
after = "cut"
nodes = ["pve1"]
resource = "svc"
running = false
within = "10s"
"#;

    /// svc runs on pve1; pve1 is cut at t=1; the survivors start it on pve2
    /// at t=4.6 while pve1 still runs its copy until it loses quorum at t=5.
    fn failover_log() -> Vec<LogEvent> {
        let mut log = vec![ev(
            0.0,
            None,
            LogBody::DrillStart {
                experiment: "f".into(),
            },
        )];
        for n in ["pve1", "pve2", "pve3"] {
            log.push(q(0.0, n, true, &["pve1", "pve2", "pve3"], "1.4"));
            log.push(res(0.0, n, Some(&["pve1"])));
        }
        log.push(applied(1.0, "pve1", "cut"));
        log.push(q(4.5, "pve2", true, &["pve2", "pve3"], "2.8"));
        log.push(q(4.5, "pve3", true, &["pve2", "pve3"], "2.8"));
        log.push(res(4.6, "pve2", Some(&["pve2"])));
        log.push(res(4.7, "pve3", Some(&["pve2"])));
        log.push(q(5.0, "pve1", false, &["pve1"], "1.8"));
        log.push(res(5.1, "pve1", Some(&[])));
        log.push(healed(12.0, "pve1", "cut", true));
        log.push(ev(13.0, None, LogBody::DrillEnd {}));
        log
    }

    #[test]
    fn failover_is_timed_from_the_views_of_the_named_nodes() {
        let e = parse(Path::new("f.toml"), FAILOVER).unwrap();
        let v = judge(&e, &nodes(), &failover_log());
        let by_name = |n: &str| v.iter().find(|x| x.name == n).unwrap();
        let moved = by_name("svc moves");
        assert!(moved.passed, "{moved:?}");
        assert!((moved.measured.unwrap() - 3.7).abs() < 1e-9, "{moved:?}");
        assert!(by_name("svc on a survivor").passed);
        let stopped = by_name("the cut node stops it");
        assert!(stopped.passed && (stopped.measured.unwrap() - 4.1).abs() < 1e-9);
        // No fencing: pve1 and pve2 both ran it from 4.6 to 5.1.
        let double = by_name("svc never active on two nodes");
        assert!(!double.passed);
        assert!(
            double
                .message
                .contains("on pve1 and pve2 at once from t=4.600s to t=5.100s (0.500s)"),
            "{}",
            double.message
        );
    }

    #[test]
    fn a_double_active_window_can_be_expected_and_a_slow_failover_fails() {
        let text = FAILOVER.replace(
            "nodes = 3\n",
            "nodes = 3\n[invariants]\ndouble_active = \"expect\"\n",
        );
        let e = parse(Path::new("f.toml"), &text).unwrap();
        let v = judge(&e, &nodes(), &failover_log());
        let double = v
            .iter()
            .find(|x| x.name == "svc double-active window caught")
            .unwrap();
        assert!(double.passed && double.measured == Some(0.5), "{double:?}");
        // Read every 500 ms, a 0.5 s overlap is no evidence: one node's view
        // may be that much older than the other's.
        let coarse = text.replace("interval = \"100ms\"", "interval = \"500ms\"");
        let e = parse(Path::new("f.toml"), &coarse).unwrap();
        let v = judge(&e, &nodes(), &failover_log());
        let double = v
            .iter()
            .find(|x| x.name == "svc double-active window caught")
            .unwrap();
        assert!(!double.passed, "{double:?}");
        let slow = FAILOVER.replacen("within = \"10s\"", "within = \"1s\"", 1);
        let e = parse(Path::new("f.toml"), &slow).unwrap();
        let v = judge(&e, &nodes(), &failover_log());
        let moved = v.iter().find(|x| x.name == "svc moves").unwrap();
        assert!(!moved.passed);
        assert!(
            moved.message.contains("pve2 sees svc on pve1"),
            "{}",
            moved.message
        );
        assert!(
            moved
                .message
                .contains("it was true from t=4.700s, 3.700s after cut"),
            "{}",
            moved.message
        );
    }

    #[test]
    fn resource_expectations_are_checked_when_read() {
        let errs = |text: &str| {
            parse(Path::new("f.toml"), text)
                .err()
                .unwrap_or_default()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        };
        let unwatched =
            FAILOVER.replace("[[watch]]\nresource = \"svc\"\ninterval = \"100ms\"\n", "");
        assert!(
            errs(&unwatched).contains("resource \"svc\" is not watched"),
            "{}",
            errs(&unwatched)
        );
        let both = FAILOVER.replace("moved = true", "moved = true\nrunning = false");
        assert!(errs(&both).contains("exactly one of"), "{}", errs(&both));
        let with = |extra: &str| {
            FAILOVER.replace(
                "interval = \"100ms\"\n[[fault]]",
                &format!("interval = \"100ms\"\n{extra}\n[[fault]]"),
            )
        };
        assert_eq!(errs(&with("kind = \"pve-ha\"")), "");
        assert!(
            errs(&with("kind = \"crm\"")).contains("f.toml:7:1: watch: unknown variant `crm`, expected one of `pacemaker`, `pve-ha`, `probe`")
                && !errs(&with("kind = \"crm\"")).contains("not watched"),
            "{}",
            errs(&with("kind = \"crm\""))
        );
        assert!(
            errs(&with("kind = \"probe\"")).contains("needs command"),
            "{}",
            errs(&with("kind = \"probe\""))
        );
        assert_eq!(
            errs(&with(
                "kind = \"probe\"\ncommand = \"true\"\nnodes = [\"pve1\"]"
            )),
            ""
        );
        assert!(errs(&with("command = \"true\"")).contains("command is for kind = \"probe\" only"));
        assert!(errs(&with("nodes = [\"pve1\"]")).contains("nodes is for kind = \"probe\" only"));
    }

    /// The experiment as `run` hands it to the judge: resolved against the
    /// cluster's model (token 1650 ms + consensus 1980 ms: detection
    /// 3.630 s, reaction time 5.037 s).
    fn resolved(nodes: usize, text: &str, cmap: &[(&str, &str)]) -> Experiment {
        let (e, p) = crate::model::predict::tests::drill(nodes, 1, text);
        let model = crate::model::predict::tests::model(nodes, 1, cmap);
        crate::model::predict::resolve(&e, &p, &model, false).unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn names(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("pve{i}")).collect()
    }

    fn verdict<'v>(v: &'v [Verdict], name: &str) -> &'v Verdict {
        v.iter()
            .find(|v| v.name == name)
            .unwrap_or_else(|| panic!("no verdict {name:?} in {v:#?}"))
    }

    /// Issue 14's example: pve1 isolated "keeps quorum alone". It is
    /// quorate at the cut only because corosync has not reacted yet; it
    /// loses quorum 3.6 s later. Judged as unchanged, not reached: it had
    /// to hold through the reaction time and the hold, and did not.
    const KEEPS_ALONE: &str = r#"
[[fault]]
id = "cut"
kind = "isolate"
nodes = ["pve1"]
heal_after = "12s"
[[expect]]
name = "pve1 keeps quorum alone (false)"
after = "cut"
nodes = ["pve1"]
quorate = true
within = "8s"
hold = "2s"
[[expect]]
name = "pve2 and pve3 stay quorate"
after = "cut"
nodes = ["pve2", "pve3"]
quorate = true
within = "8s"
hold = "2s"
[[expect]]
name = "the other two drop pve1"
after = "cut"
nodes = ["pve2", "pve3"]
quorate = true
members = ["pve2", "pve3"]
within = "8s"
hold = "2s"
"#;

    fn pve1_cut_log() -> Vec<LogEvent> {
        let all = ["pve1", "pve2", "pve3"];
        let mut log = vec![ev(
            0.0,
            None,
            LogBody::DrillStart {
                experiment: "t".into(),
            },
        )];
        for n in all {
            log.push(q(0.0, n, true, &all, "1.4"));
            log.push(applied(0.01, n, "cut"));
        }
        log.extend([
            q(3.56, "pve2", true, &["pve2", "pve3"], "2.8"),
            q(3.56, "pve3", true, &["pve2", "pve3"], "2.8"),
            q(3.61, "pve1", false, &["pve1"], "1.8"),
        ]);
        for n in all {
            log.push(healed(12.01, n, "cut", true));
        }
        for n in all {
            log.push(q(13.7, n, true, &all, "1.c"));
        }
        log.push(ev(14.0, None, LogBody::DrillEnd {}));
        log
    }

    #[test]
    fn a_state_from_before_the_fault_must_outlast_the_reaction_time() {
        let e = resolved(3, KEEPS_ALONE, &[]);
        let v = judge(&e, &names(3), &pve1_cut_log());
        let alone = verdict(&v, "pve1 keeps quorum alone (false)");
        assert!(!alone.passed, "{alone:#?}");
        assert_eq!((alone.measured, alone.kept), (None, false));
        // Says when pve1 lost quorum, and what it saw then.
        assert!(
            alone.message.contains("already so at cut (t=0.010s)")
                && alone
                    .message
                    .contains("at t=3.610s (3.600s after cut, before the reaction time (5.037s) + the 2s hold had passed) pve1: inquorate, members [pve1]"),
            "{}",
            alone.message
        );
        assert!(
            alone
                .message
                .contains("observed at the deadline: pve1: inquorate"),
            "{}",
            alone.message
        );
        // The other side's quorum was kept: it passes, as kept, through
        // the reaction time and the hold, with nothing to measure.
        let kept = verdict(&v, "pve2 and pve3 stay quorate");
        assert!(
            kept.passed && kept.kept && kept.measured.is_none(),
            "{kept:#?}"
        );
        assert!(
            kept.message.contains(
                "kept, not reached: already so at cut (t=0.010s) and still so through the reaction time (5.037s) + the 2s hold, to t=7.047s (reaction time: detection 3.630s"
            ),
            "{}",
            kept.message
        );
        // Their membership changed: reached, measured from the cut.
        let dropped = verdict(&v, "the other two drop pve1");
        assert!(dropped.passed && !dropped.kept, "{dropped:#?}");
        assert!((dropped.measured.unwrap() - 3.55).abs() < 1e-9);
        assert!(
            dropped
                .message
                .contains("reached in 3.550s (within 8s), held 2s"),
            "{}",
            dropped.message
        );
    }

    /// A drill stops waiting early once every expectation has passed: a
    /// kept state passes only after the reaction time and the hold (here
    /// t=0.010 + 5.037 + 2 s), not 2 s after the cut.
    #[test]
    fn a_drill_waits_for_a_kept_state_to_outlast_the_reaction_time() {
        let mut e = resolved(3, KEEPS_ALONE, &[]);
        e.expects.retain(|x| x.name == "pve2 and pve3 stay quorate");
        let log: Vec<LogEvent> = pve1_cut_log().into_iter().filter(|ev| ev.t < 4.0).collect();
        for (now, met) in [(2.5, false), (7.0, false), (7.1, true)] {
            assert_eq!(expectations_met(&e, &names(3), &log, now), met, "{now}");
            assert_eq!(
                open_expectations(&e, &names(3), &log, now).is_empty(),
                met,
                "{now}"
            );
        }
    }

    /// Without a model of the cluster nobody can say how long corosync
    /// needs to react: a kept state never passes, a reached one does.
    #[test]
    fn without_a_reaction_time_a_kept_state_never_passes() {
        let e = parse(
            Path::new("t.toml"),
            &format!("name = \"t\"\nnodes = 3\n{KEEPS_ALONE}"),
        )
        .unwrap();
        let v = judge(&e, &names(3), &pve1_cut_log());
        let kept = verdict(&v, "pve2 and pve3 stay quorate");
        assert!(!kept.passed);
        assert!(
            kept.message.contains("no model of the cluster"),
            "{}",
            kept.message
        );
        assert!(verdict(&v, "the other two drop pve1").passed);
    }

    /// Two nodes, no QDevice, no two_node: on a cut both sides freeze about
    /// 2.2 s later. "pve1 stays quorate" must not pass on the state from
    /// before the cut.
    #[test]
    fn two_nodes_without_qdevice_one_side_quorate_fails() {
        let e = resolved(
            2,
            r#"
[[fault]]
id = "cut"
kind = "partition"
groups = [["pve1"], ["pve2"]]
heal_after = "8s"
[[expect]]
name = "pve1 stays quorate (false)"
after = "cut"
nodes = ["pve1"]
quorate = true
within = "8s"
"#,
            &[],
        );
        let both = ["pve1", "pve2"];
        let log = vec![
            q(0.0, "pve1", true, &both, "1.4"),
            q(0.0, "pve2", true, &both, "1.4"),
            applied(0.01, "pve1", "cut"),
            applied(0.01, "pve2", "cut"),
            q(2.21, "pve1", false, &["pve1"], "1.8"),
            q(2.21, "pve2", false, &["pve2"], "2.8"),
            healed(8.01, "pve1", "cut", true),
            healed(8.01, "pve2", "cut", true),
            q(9.5, "pve1", true, &both, "1.c"),
            q(9.5, "pve2", true, &both, "1.c"),
            ev(10.0, None, LogBody::DrillEnd {}),
        ];
        let v = judge(&e, &names(2), &log);
        let one = verdict(&v, "pve1 stays quorate (false)");
        assert!(!one.passed, "{one:#?}");
        assert!(
            one.message.contains(
                "(2.200s after cut, before the reaction time (5.037s) had passed) pve1: inquorate"
            ),
            "{}",
            one.message
        );
    }

    /// The drill ended the fault (it had no heal_after and a short window)
    /// before corosync could react: the state kept that long proves
    /// nothing. A blip the file itself makes shorter than the reaction time
    /// is judged through the reaction time instead.
    #[test]
    fn a_fault_rolled_back_before_the_reaction_time_proves_nothing() {
        let text = r#"
[[fault]]
id = "cut"
kind = "isolate"
nodes = ["pve1"]
[[expect]]
name = "pve1 keeps quorum"
after = "cut"
nodes = ["pve1"]
quorate = true
within = "1s"
"#;
        let all = ["pve1", "pve2", "pve3"];
        let mut log: Vec<LogEvent> = all.iter().map(|n| q(0.0, n, true, &all, "1.4")).collect();
        log.push(applied(0.01, "pve1", "cut"));
        log.push(healed(1.51, "pve1", "cut", true));
        log.push(ev(9.0, None, LogBody::DrillEnd {}));
        let v = judge(&resolved(3, text, &[]), &names(3), &log);
        let kept = verdict(&v, "pve1 keeps quorum");
        assert!(!kept.passed, "{kept:#?}");
        assert!(
            kept.message.contains("cut was rolled back at t=1.510s, 1.500s after it, before the cluster's reaction time (5.037s) had passed"),
            "{}",
            kept.message
        );
        // A 1 s blip on purpose: pve1 rides it out, judged as kept.
        let blip = text.replace(
            "nodes = [\"pve1\"]\n[[expect]]",
            "nodes = [\"pve1\"]\nheal_after = \"1500ms\"\n[[expect]]",
        );
        let v = judge(&resolved(3, &blip, &[]), &names(3), &log);
        let kept = verdict(&v, "pve1 keeps quorum");
        assert!(kept.passed && kept.kept, "{kept:#?}");
    }

    /// After a heal the same rule: pve1, in the majority all along, stays
    /// quorate through the reaction time after the heal (kept); a node that
    /// loses quorum 2 s after the heal does not "keep" it; and a drill
    /// that ends too soon cannot tell.
    #[test]
    fn after_a_heal_a_kept_state_must_outlast_the_reaction_time_too() {
        let text = r#"
[[fault]]
id = "cut"
kind = "partition"
groups = [["pve1", "pve2"], ["pve3"]]
heal_after = "20s"
[[expect]]
name = "pve1 stays quorate after the heal"
after = "cut.healed"
nodes = ["pve1"]
quorate = true
within = "15s"
hold = "1s"
[[expect]]
name = "whole again"
after = "cut.healed"
nodes = "all"
quorate = true
members = "all"
within = "15s"
"#;
        let e = resolved(3, text, &[]);
        // The drill watches on after the heal.
        let mut log = isolate_log();
        log.push(ev(30.0, None, LogBody::DrillEnd {}));
        let v = judge(&e, &names(3), &log);
        let kept = verdict(&v, "pve1 stays quorate after the heal");
        assert!(kept.passed && kept.kept, "{kept:#?}");
        assert!(
            kept.message
                .contains("already so at cut.healed (t=20.010s)")
                && kept.message.contains(", to t=26.047s (reaction time:"),
            "{}",
            kept.message
        );
        let whole = verdict(&v, "whole again");
        assert!(whole.passed && (whole.measured.unwrap() - 1.72).abs() < 1e-9);

        // pve1 drops out 2 s after the heal and stays out (back at 23 s,
        // it would have reached quorum again: that passes, as reached).
        log.insert(16, q(22.0, "pve1", false, &["pve1"], "1.12"));
        let v = judge(&e, &names(3), &log);
        let lost = verdict(&v, "pve1 stays quorate after the heal");
        assert!(!lost.passed, "{lost:#?}");
        assert!(
            lost.message
                .contains("at t=22.000s (1.990s after cut.healed"),
            "{}",
            lost.message
        );

        let mut short = isolate_log();
        short.retain(|ev| ev.t < 22.0);
        let v = judge(&e, &names(3), &short);
        let cut = verdict(&v, "pve1 stays quorate after the heal");
        assert!(!cut.passed);
        assert!(
            cut.message.contains("but the drill ended at t=21.800s, before the reaction time (5.037s) + the 1s hold had passed (t=26.047s)"),
            "{}",
            cut.message
        );
    }

    /// A resource's reaction time is quorum's, one watch interval and its
    /// manager's allowance (Pacemaker: 5 s). pve1, cut off, still runs svc
    /// at the cut: "pve1 keeps running it" must not pass on that, since
    /// pve1 stops it at t=5.1; svc, already on pve2, staying there is kept.
    #[test]
    fn a_resource_placement_from_before_the_fault_must_outlast_the_reaction_time() {
        let text = r#"
[[watch]]
resource = "svc"
interval = "100ms"
[[fault]]
id = "cut"
kind = "isolate"
nodes = ["pve1"]
at = "1s"
heal_after = "11s"
[[expect]]
name = "pve1 keeps running svc (false)"
after = "cut"
nodes = ["pve1"]
resource = "svc"
running_on = ["pve1"]
within = "10s"
hold = "1s"
[[expect]]
name = "svc on a survivor"
after = "cut"
nodes = ["pve2", "pve3"]
resource = "svc"
running_on = ["pve2", "pve3"]
within = "10s"
hold = "1s"
"#;
        let e = resolved(3, text, &[]);
        let v = judge(&e, &names(3), &failover_log());
        let wrong = verdict(&v, "pve1 keeps running svc (false)");
        assert!(!wrong.passed, "{wrong:#?}");
        assert!(
            wrong.message.contains("at t=5.100s (4.100s after cut, before the reaction time (10.137s) + the 1s hold had passed) pve1 sees svc stopped"),
            "{}",
            wrong.message
        );
        // Moving to a survivor is reached, measured as before.
        let moved = verdict(&v, "svc on a survivor");
        assert!(moved.passed && (moved.measured.unwrap() - 3.7).abs() < 1e-9);

        // svc on pve2 from the start: pve2 and pve3 see it stay there.
        let stays = text.replace(
            "running_on = [\"pve2\", \"pve3\"]",
            "running_on = [\"pve2\"]",
        );
        let mut log: Vec<LogEvent> = failover_log()
            .into_iter()
            .filter(|e| !matches!(e.body, LogBody::Resource { .. }))
            .collect();
        for n in ["pve1", "pve2", "pve3"] {
            log.push(res(0.0, n, Some(&["pve2"])));
        }
        log.push(res(5.1, "pve1", Some(&[])));
        let v = judge(&resolved(3, &stays, &[]), &names(3), &log);
        let kept = verdict(&v, "svc on a survivor");
        assert!(kept.passed && kept.kept, "{kept:#?}");
        assert!(
            kept.message
                .contains("to t=12.137s (reaction time: quorum's 5.037s")
                && kept
                    .message
                    .contains("the 100ms watch interval and Pacemaker's 5s"),
            "{}",
            kept.message
        );
        // Until then, a drill does not stop waiting for it.
        assert_eq!(
            open_expectations(
                &resolved(3, &stays, &[]),
                &names(3),
                &log[..log.len() - 2],
                11.0
            ),
            vec!["pve1 keeps running svc (false)", "svc on a survivor"]
        );
    }

    /// `nodes = "all"` across a split with predicted quorum and members:
    /// each node judged against its own prediction, in one verdict.
    #[test]
    fn every_node_against_its_own_prediction() {
        let text = r#"
[[fault]]
id = "cut"
kind = "partition"
groups = [["pve1", "pve2"], ["pve3"]]
heal_after = "20s"
[[expect]]
name = "every node as the model says"
after = "cut"
nodes = "all"
quorate = "predicted"
members = "predicted"
within = "predicted"
[[expect]]
name = "every node's quorum as the model says"
after = "cut"
nodes = "all"
quorate = "predicted"
within = "predicted"
"#;
        let e = resolved(3, text, &[]);
        let v = judge(&e, &names(3), &isolate_log());
        let each = verdict(&v, "every node as the model says");
        assert!(each.passed, "{each:#?}");
        assert!((each.measured.unwrap() - 3.54).abs() < 1e-9);
        assert!(
            each.message.starts_with(
                "pve1, pve2 quorate, members [pve1, pve2]; pve3 not quorate, members [pve3] reached in 3.540s"
            ),
            "{}",
            each.message
        );
        // Quorum only: pve3's change arrives at 3.55; pve1's and pve2's
        // quorum is kept and must last through the reaction time too.
        let quorum = verdict(&v, "every node's quorum as the model says");
        assert!(quorum.passed && !quorum.kept, "{quorum:#?}");
        assert!(
            quorum
                .message
                .contains("reached in 3.540s (within 5s 37ms); pve1, pve2 already so at cut, kept through the reaction time (5.037s), to t=5.047s (reaction time: detection"),
            "{}",
            quorum.message
        );
        // pve3 wrongly keeps quorum alone: the verdict names it.
        let mut log = isolate_log();
        log[9] = q(3.55, "pve3", true, &["pve3"], "3.d");
        let v = judge(&e, &names(3), &log);
        let each = verdict(&v, "every node as the model says");
        assert!(!each.passed);
        assert!(
            each.message
                .contains("observed at the deadline: pve3: quorate, members [pve3]"),
            "{}",
            each.message
        );
        // pve1 loses quorum at 4.0, after pve3's change but before the
        // reaction time: the kept part does not count.
        let mut log = isolate_log();
        log.insert(10, q(4.0, "pve1", false, &["pve1"], "1.e"));
        let v = judge(&e, &names(3), &log);
        let quorum = verdict(&v, "every node's quorum as the model says");
        assert!(!quorum.passed, "{quorum:#?}");
        assert!(
            quorum
                .message
                .contains("with pve1, pve2 so since cut (t=0.010s), but at t=4.000s"),
            "{}",
            quorum.message
        );
    }
}
