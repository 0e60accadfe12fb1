//! Whole at the end: after the last heal, every node quorate with every
//! node as member, and every fault rolled back cleanly.

use crate::experiment::Experiment;
use crate::log::{LogBody, LogEvent};

use super::timeline::Timeline;
use super::Verdict;

pub(super) fn whole_at_end(
    experiment: &Experiment,
    nodes: &[String],
    log: &[&LogEvent],
    timeline: &Timeline,
) -> Verdict {
    let mut problems = Vec::new();
    let mut late = Vec::new();
    for f in &experiment.faults {
        let applied: Vec<&str> = log
            .iter()
            .filter(|e| matches!(&e.body, LogBody::FaultApplied { fault, .. } if *fault == f.id))
            .filter_map(|e| e.node.as_deref())
            .collect();
        for node in applied {
            let rollbacks: Vec<(bool, String)> = log
                .iter()
                .filter_map(|e| match &e.body {
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
                })
                .collect();
            // A rollback that failed and was tried again: undone, but late.
            if rollbacks.last().is_some_and(|(clean, _)| *clean) {
                if let Some((_, first)) = rollbacks.iter().find(|(clean, _)| !clean) {
                    late.push(format!(
                        "{} on {node} rolled back at a later attempt (the first failed: {first})",
                        f.id
                    ));
                }
            }
            match rollbacks.last().cloned() {
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
            let late = if late.is_empty() {
                String::new()
            } else {
                format!(" ({})", late.join("; "))
            };
            format!(
                "all faults rolled back{late}; {} quorate with every node as member",
                nodes.join(", ")
            )
        } else {
            problems.extend(late);
            problems.join("; ")
        },
    }
}
