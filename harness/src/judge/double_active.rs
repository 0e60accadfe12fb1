//! Double-active resources: the windows in which two nodes' views each
//! say a resource runs on different nodes, against what the drill allows.

use std::collections::BTreeMap;

use crate::experiment::SplitBrain;

use super::timeline::Timeline;
use super::Verdict;

/// One window in which two nodes or more each said they ran the resource.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Window {
    pub(super) from: f64,
    pub(super) to: f64,
    pub(super) nodes: Vec<String>,
    /// Whether every claim that changed from its opening to its close
    /// (both included) was timed by the resource manager's own record (a
    /// Pacemaker alert), not by a poll: such a window happened, however
    /// short. (A claim made before the window opened bounds it only by
    /// its end, which is one of those changes.)
    pub(super) exact: bool,
}

/// A watched resource active on two nodes at once, as each of those nodes'
/// own view says (a node's view of what it runs itself is its own
/// resource manager's word): every such window, with the nodes.
pub(super) fn double_active_windows(resource: &str, timeline: &Timeline) -> Vec<Window> {
    let mut claims: BTreeMap<&str, bool> = BTreeMap::new();
    let mut windows = Vec::new();
    let mut open: Option<Window> = None;
    for (t, node, r, view, exact) in &timeline.resources {
        if r != resource {
            continue;
        }
        let runs_it = view.as_ref().is_some_and(|v| v.iter().any(|n| n == node));
        if claims.insert(node.as_str(), runs_it) == Some(runs_it) {
            continue; // this node's claim did not change
        }
        let exact = *exact && view.is_some();
        let holders: Vec<String> = claims
            .iter()
            .filter(|(_, on)| **on)
            .map(|(n, _)| n.to_string())
            .collect();
        match (&mut open, holders.len() >= 2) {
            (None, true) => {
                open = Some(Window {
                    from: *t,
                    to: *t,
                    nodes: holders,
                    exact,
                })
            }
            (Some(w), true) => {
                w.exact &= exact;
                for h in holders {
                    if !w.nodes.contains(&h) {
                        w.nodes.push(h);
                    }
                }
            }
            (Some(_), false) => {
                if let Some(mut w) = open.take() {
                    w.to = *t;
                    w.exact &= exact;
                    windows.push(w);
                }
            }
            (None, false) => {}
        }
    }
    if let Some(mut w) = open {
        w.to = timeline.end;
        windows.push(w);
    }
    windows
}

/// `interval`: how often nodes read their views. Views are read at
/// different moments, so during an orderly move (stop here, then start
/// there) one node's stale "still here" can overlap another's fresh "now
/// here" for up to one interval: windows that short are not evidence,
/// unless every claim in them was timed by Pacemaker's own record (its
/// alerts): then no view was stale, and a window of any length happened.
pub(super) fn double_active(
    resource: &str,
    interval: f64,
    policy: SplitBrain,
    timeline: &Timeline,
) -> Verdict {
    let windows: Vec<(f64, f64, Vec<String>)> = double_active_windows(resource, timeline)
        .into_iter()
        .filter(|w| {
            if w.exact {
                w.to > w.from
            } else {
                w.to - w.from > interval
            }
        })
        .map(|w| (w.from, w.to, w.nodes))
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
