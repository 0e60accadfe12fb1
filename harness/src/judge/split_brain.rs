//! Split-brain: two sides quorate at once with different memberships,
//! each span named with its ring ids.

use std::collections::BTreeMap;

use crate::experiment::SplitBrain;
use crate::log::NodeState;

use super::timeline::Timeline;
use super::Verdict;

/// A split-brain: two quorate nodes, each outside the other's membership.
/// (A node inside the other's membership but with an older view is only
/// late to hear of a new ring: quorum notifications do not reach all nodes
/// at the same instant.)
#[derive(Debug, Clone, PartialEq)]
pub(super) struct SplitBrainSpan {
    from: f64,
    to: Option<f64>,
    a: Side,
    b: Side,
}

/// One quorate side of a split-brain: a node, its ring id, its members.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Side {
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

pub(super) fn split_pairs(states: &BTreeMap<&str, &NodeState>) -> Vec<(Side, Side)> {
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

pub(super) fn split_brain_spans(timeline: &Timeline) -> Vec<SplitBrainSpan> {
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

pub(super) fn describe_span(s: &SplitBrainSpan) -> String {
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

pub(super) fn split_brain(policy: SplitBrain, timeline: &Timeline) -> Verdict {
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
