//! Double-active resources: the windows in which two nodes' views each
//! say a resource runs on different nodes, against what the drill allows.

use std::collections::BTreeMap;

use crate::experiment::SplitBrain;

use super::timeline::Timeline;
use super::Verdict;

/// A watched resource active on two nodes at once, as each of those nodes'
/// own view says (a node's view of what it runs itself is its own
/// resource manager's word): every such window, with the nodes.
pub(super) fn double_active_windows(
    resource: &str,
    timeline: &Timeline,
) -> Vec<(f64, f64, Vec<String>)> {
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
pub(super) fn double_active(
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
