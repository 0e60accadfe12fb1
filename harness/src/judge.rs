//! The judge: a pure function from an experiment and its event log to
//! verdicts. It never talks to an agent; unit tests drive it with
//! hand-written logs.

use std::collections::BTreeMap;

use crate::experiment::{Expect, Experiment, ResourceWant, SplitBrain};
use crate::log::{LogBody, LogEvent, NodeState};

#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub name: String,
    pub invariant: bool,
    pub passed: bool,
    /// The measured time (seconds): how long the expected state took to arrive.
    pub measured: Option<f64>,
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
        .map(|e| judge_expect(e, nodes, &log, &timeline))
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
/// waiting then (a pass cannot be undone by later events).
pub fn expectations_met(
    experiment: &Experiment,
    nodes: &[String],
    log: &[LogEvent],
    now: f64,
) -> bool {
    open_expectations(experiment, nodes, log, now).is_empty()
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
        .filter(|e| !judge_expect(e, nodes, &log, &timeline).passed)
        .map(|e| e.name.as_str())
        .collect()
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
        times.into_iter()
    }
}

/// Whether the expectation holds at `t` (`anchor`: when its window opened);
/// Err says what does not.
fn holds_at(
    e: &Expect,
    nodes: &[String],
    timeline: &Timeline,
    t: f64,
    anchor: f64,
) -> Result<(), String> {
    let Some(r) = &e.resource else {
        return holds(e, nodes, &timeline.states_at(t));
    };
    let views = timeline.views_at(&r.resource, t);
    let before = timeline.views_at(&r.resource, anchor);
    let mut wrong = Vec::new();
    for node in e.nodes.resolve(nodes) {
        let view = match views.get(node) {
            None => {
                wrong.push(format!("{node}: no view of {} yet", r.resource));
                continue;
            }
            Some(None) => {
                wrong.push(format!("{node}: cannot say (no answer from its watcher)"));
                continue;
            }
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
        if !ok {
            wrong.push(format!(
                "{node} sees {} {}",
                r.resource,
                if view.is_empty() {
                    "stopped".to_owned()
                } else {
                    format!("on {}", view.join(", "))
                }
            ));
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("; "))
    }
}

/// Whether a quorum expectation holds in these states; Err says what does not.
fn holds(e: &Expect, nodes: &[String], states: &BTreeMap<&str, &NodeState>) -> Result<(), String> {
    let mut wrong = Vec::new();
    for node in e.nodes.resolve(nodes) {
        let Some(state) = states.get(node) else {
            wrong.push(format!("{node}: nothing observed"));
            continue;
        };
        let mut ok = e.quorate.is_none_or(|q| state.quorate == q);
        if let Some(members) = &e.members {
            let mut want: Vec<&str> = members.resolve(nodes);
            let mut have: Vec<&str> = state.members.iter().map(String::as_str).collect();
            want.sort();
            have.sort();
            ok &= want == have;
        }
        ok &= e.total_votes.is_none_or(|v| state.total_votes == Some(v));
        if !ok {
            wrong.push(format!("{node}: {}", state.describe()));
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("; "))
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

fn judge_expect(e: &Expect, nodes: &[String], log: &[&LogEvent], timeline: &Timeline) -> Verdict {
    let fail = |message: String| Verdict {
        name: e.name.clone(),
        invariant: false,
        passed: false,
        measured: None,
        message,
    };
    let Some(anchor) = anchor_time(e, log.iter().copied()) else {
        return fail(format!("{} never happened in this run", e.after));
    };
    let within = e.within.as_secs_f64();
    let hold = e.hold.as_secs_f64();
    let deadline = anchor + within;
    let candidates = std::iter::once(anchor).chain(timeline.change_times(anchor, deadline));
    let mut broken: Option<String> = None;
    for start in candidates {
        if holds_at(e, nodes, timeline, start, anchor).is_err() {
            continue;
        }
        // True from `start`: does it stay true for `hold`?
        let until = start + hold;
        let breach = timeline.change_times(start, until).find_map(|t| {
            holds_at(e, nodes, timeline, t, anchor)
                .err()
                .map(|why| (t, why))
        });
        match breach {
            None if timeline.end + 1e-9 >= until => {
                return Verdict {
                    name: e.name.clone(),
                    invariant: false,
                    passed: true,
                    measured: Some(start - anchor),
                    message: format!(
                        "{} after {:.3}s (within {}){}",
                        e.describe(nodes),
                        start - anchor,
                        humantime::format_duration(e.within),
                        if hold > 0.0 {
                            format!(", held {}", humantime::format_duration(e.hold))
                        } else {
                            String::new()
                        }
                    ),
                };
            }
            None => {
                broken = Some(format!(
                    "true from t={start:.3}s, but the drill ended at t={:.3}s, before it had held {}",
                    timeline.end,
                    humantime::format_duration(e.hold)
                ));
                break;
            }
            Some((t, why)) => {
                broken = Some(format!(
                    "true from t={start:.3}s, but at t={t:.3}s ({:.3}s later, before the {} hold) {why}",
                    t - start,
                    humantime::format_duration(e.hold)
                ));
            }
        }
    }
    let observed = holds_at(e, nodes, timeline, deadline, anchor)
        .err()
        .unwrap_or_else(|| "it held only briefly".into());
    // Too slow is not never: say when it did become true, if it did.
    let late = timeline
        .change_times(deadline, timeline.end)
        .find(|&t| holds_at(e, nodes, timeline, t, anchor).is_ok())
        .map(|t| {
            format!(
                "; it was true from t={t:.3}s, {:.3}s after {}",
                t - anchor,
                e.after
            )
        })
        .unwrap_or_default();
    fail(format!(
        "expected {} within {} of {} (t={anchor:.3}s, deadline t={deadline:.3}s); observed at the deadline: {observed}{}",
        e.describe(nodes),
        humantime::format_duration(e.within),
        e.after,
        broken.map(|b| format!("; {b}")).unwrap_or_default()
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
}
