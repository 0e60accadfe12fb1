//! Mutants told apart before they are judged: unviable ones (refused by
//! validation, or asking what the drill never reads) and equivalent ones
//! (the same expectation written otherwise).

use crate::experiment::{Expect, ResourceWant, MIN_WITHIN};

use super::mutants::members_of;

/// Why a mutant is not worth judging, if it is not.
pub fn unviable(m: &Expect, nodes: &[String]) -> Option<String> {
    if m.within < MIN_WITHIN {
        return Some(format!(
            "within under {}: experiment validation refuses it (corosync cannot notice anything that fast)",
            humantime::format_duration(MIN_WITHIN)
        ));
    }
    if m.resource.is_some() {
        return None;
    }
    for n in m.nodes.resolve(nodes) {
        let (quorate, _) = m.want_of(n);
        match members_of(m, n, nodes) {
            Some(list) if !list.is_empty() && !list.iter().any(|x| x == n) => {
                return Some(format!(
                    "{n} missing from its own view: no cluster shows that (corosync lists its own node)"
                ))
            }
            Some(list) if list.is_empty() && quorate == Some(true) => {
                return Some(format!(
                    "{n} quorate with no members: no cluster shows that"
                ))
            }
            _ => {}
        }
    }
    None
}

/// What the judge reads of an expectation, normalized: two expectations
/// that read the same are judged the same on every log.
pub(super) fn reads(e: &Expect, nodes: &[String]) -> impl PartialEq + std::fmt::Debug {
    let wants: Vec<(String, Option<bool>, Option<Vec<String>>)> = e
        .nodes
        .resolve(nodes)
        .into_iter()
        .map(|n| {
            let members = members_of(e, n, nodes).map(|mut m| {
                m.sort();
                m
            });
            (n.to_owned(), e.want_of(n).0, members)
        })
        .collect();
    let resource = e.resource.as_ref().map(|r| {
        let want = match &r.want {
            ResourceWant::RunningOn(set) => {
                let mut s = set.clone();
                s.sort();
                s.dedup();
                ResourceWant::RunningOn(s)
            }
            other => other.clone(),
        };
        (r.resource.clone(), want)
    });
    (
        wants,
        e.total_votes,
        resource,
        e.within,
        e.hold,
        e.after.clone(),
    )
}

/// Why a mutant is equivalent to the original, if it is.
pub fn equivalent(original: &Expect, m: &Expect, nodes: &[String]) -> Option<String> {
    if original.nodes.resolve(nodes).is_empty() {
        return Some("the expectation names no node: it holds on every log, mutated or not".into());
    }
    (reads(original, nodes) == reads(m, nodes))
        .then(|| "changes nothing the judge reads (every node's want, within and hold are the original's)".into())
}
