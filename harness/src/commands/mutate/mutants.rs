//! The mutants of one expectation: each a small change to what it asks
//! (a tighter window, a longer hold, another node set, the opposite
//! state), drawn from its verdict and the log.

use std::time::Duration;

use crate::experiment::{Expect, NodeSet, NodeWant, ResourceWant};
use crate::judge::{self, Verdict};
use crate::log::LogEvent;

use super::{Kind, Mutant};

/// Milliseconds, rounded up.
pub(super) fn ceil_ms(seconds: f64) -> Duration {
    Duration::from_millis((seconds * 1000.0 - 1e-6).ceil().max(0.0) as u64)
}

pub(super) fn secs(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

pub(super) fn list(names: &[String]) -> String {
    format!("[{}]", names.join(", "))
}

/// What `node` is to see of members, as names (None: not constrained).
pub(super) fn members_of(e: &Expect, node: &str, nodes: &[String]) -> Option<Vec<String>> {
    e.want_of(node)
        .1
        .map(|m| m.resolve(nodes).into_iter().map(str::to_owned).collect())
}

/// Every mutant of `e`, and the kinds that do not apply, with why.
/// `verdict` is the original's on `log` (the within and hold mutants are
/// cut to what it measured); `nodes` the inventory's.
pub fn mutants(
    e: &Expect,
    verdict: &Verdict,
    nodes: &[String],
    log: &[LogEvent],
) -> (Vec<Mutant>, Vec<(Kind, String)>) {
    let mut out = Vec::new();
    let mut na = Vec::new();
    let targets: Vec<String> = e
        .nodes
        .resolve(nodes)
        .into_iter()
        .map(String::from)
        .collect();
    let push = |out: &mut Vec<Mutant>, kind, change: String, m: Expect| {
        out.push(Mutant {
            kind,
            change,
            expect: m,
        })
    };
    match &e.resource {
        None => {
            // Quorate, on every node that is to be one or the other.
            if e.quorate.is_some() || e.per_node.values().any(|w| w.quorate.is_some()) {
                let mut m = e.clone();
                m.quorate = e.quorate.map(|q| !q);
                for w in m.per_node.values_mut() {
                    w.quorate = w.quorate.map(|q| !q);
                }
                let change = match (e.quorate, e.per_node.values().any(|w| w.quorate.is_some())) {
                    (Some(q), false) => format!("quorate = {}", !q),
                    _ => "quorate flipped on each node".to_owned(),
                };
                push(&mut out, Kind::QuorateFlipped, change, m);
            }
            members_mutants(e, &targets, nodes, &mut out, &mut na);
            if let Some(v) = e.total_votes {
                let mut m = e.clone();
                m.total_votes = Some(v + 1);
                push(
                    &mut out,
                    Kind::VotesUp,
                    format!("total_votes = {} (was {v})", v + 1),
                    m,
                );
                if v > 0 {
                    let mut m = e.clone();
                    m.total_votes = Some(v - 1);
                    push(
                        &mut out,
                        Kind::VotesDown,
                        format!("total_votes = {} (was {v})", v - 1),
                        m,
                    );
                } else {
                    na.push((Kind::VotesDown, "total_votes is 0 already".into()));
                }
            }
        }
        Some(r) => {
            let with = |want: ResourceWant| {
                let mut m = e.clone();
                if let Some(r) = m.resource.as_mut() {
                    r.want = want;
                }
                m
            };
            match &r.want {
                ResourceWant::RunningOn(set) => {
                    let others: Vec<&String> = nodes.iter().filter(|n| !set.contains(n)).collect();
                    if others.is_empty() {
                        na.push((
                            Kind::RunningOnOther,
                            "running_on names every node already".into(),
                        ));
                    }
                    for n in others {
                        let m = with(ResourceWant::RunningOn(vec![n.clone()]));
                        push(
                            &mut out,
                            Kind::RunningOnOther,
                            format!("running_on = [{n}] (was {})", list(set)),
                            m,
                        );
                    }
                    let m = with(ResourceWant::Stopped);
                    push(
                        &mut out,
                        Kind::RunningFlipped,
                        format!("running = false (was running_on = {})", list(set)),
                        m,
                    );
                }
                ResourceWant::Stopped => {
                    let m = with(ResourceWant::RunningOn(nodes.to_vec()));
                    push(
                        &mut out,
                        Kind::RunningFlipped,
                        format!("running_on = {} (was running = false)", list(nodes)),
                        m,
                    );
                }
                ResourceWant::Moved => {
                    let m = with(ResourceWant::Stopped);
                    push(
                        &mut out,
                        Kind::RunningFlipped,
                        "running = false (was moved = true)".into(),
                        m,
                    );
                }
            }
        }
    }
    if !verdict.passed {
        return (out, na);
    }
    // Timing: cut to what this run measured.
    let anchor = judge::anchor_time(e, log).unwrap_or(0.0);
    match verdict.measured {
        _ if verdict.kept => na.push((
            Kind::WithinShorter,
            "kept, not reached: no measured time to undercut".into(),
        )),
        Some(t) => {
            let within = ceil_ms(t).saturating_sub(Duration::from_millis(1));
            let mut m = e.clone();
            m.within = within;
            push(
                &mut out,
                Kind::WithinShorter,
                format!(
                    "within = {} (measured {t:.3}s, was {})",
                    secs(within),
                    humantime::format_duration(e.within)
                ),
                m,
            );
        }
        None => {}
    }
    let start = anchor + verdict.measured.unwrap_or(0.0);
    match judge::holds_until(e, nodes, log, start) {
        None => na.push((
            Kind::HoldPastChange,
            format!(
                "held from t={start:.3}s to the end of the recorded log (t={:.3}s): no later change to hold past",
                log.iter().map(|ev| ev.t).fold(0.0, f64::max)
            ),
        )),
        Some(end) => {
            // Kept: it must last the reaction time and the hold from the
            // anchor; reached: the hold from its arrival.
            let from = match (&e.reaction, verdict.kept) {
                (Some(r), true) => anchor + r.time.as_secs_f64(),
                _ => start,
            };
            let hold = ceil_ms(end - from).max(Duration::from_millis(1));
            let mut m = e.clone();
            m.hold = hold;
            push(
                &mut out,
                Kind::HoldPastChange,
                format!(
                    "hold = {} (was {}; the state lasted {:.3}s, to t={end:.3}s{})",
                    secs(hold),
                    humantime::format_duration(e.hold),
                    end - start,
                    if verdict.kept { ", kept from the anchor" } else { "" }
                ),
                m,
            );
        }
    }
    (out, na)
}

/// Members added and dropped: one mutant for the whole expectation where
/// its nodes want the same members, else one per node and change.
pub(super) fn members_mutants(
    e: &Expect,
    targets: &[String],
    nodes: &[String],
    out: &mut Vec<Mutant>,
    na: &mut Vec<(Kind, String)>,
) {
    let wants: Vec<(&String, Vec<String>)> = targets
        .iter()
        .filter_map(|n| Some((n, members_of(e, n, nodes)?)))
        .collect();
    if wants.is_empty() {
        return;
    }
    let uniform = wants.len() == targets.len() && {
        let sorted = |v: &Vec<String>| {
            let mut v = v.clone();
            v.sort();
            v
        };
        wants.iter().all(|(_, w)| sorted(w) == sorted(&wants[0].1))
    };
    // (whose, their members): None for the whole expectation.
    let groups: Vec<(Option<&String>, &Vec<String>)> = if uniform {
        vec![(None, &wants[0].1)]
    } else {
        wants.iter().map(|(n, w)| (Some(*n), w)).collect()
    };
    let set = |m: &mut Expect, whose: Option<&String>, members: Vec<String>| match whose {
        None => {
            m.members = Some(NodeSet::Some(members));
            for w in m.per_node.values_mut() {
                w.members = None;
            }
        }
        Some(n) => {
            let quorate = m.per_node.get(n).and_then(|w| w.quorate);
            m.per_node.insert(
                n.clone(),
                NodeWant {
                    quorate,
                    members: Some(NodeSet::Some(members)),
                },
            );
        }
    };
    let prefix = |whose: Option<&String>| whose.map(|n| format!("{n}'s ")).unwrap_or_default();
    let mut added = false;
    for (whose, members) in groups {
        for n in nodes.iter().filter(|n| !members.contains(n)) {
            let mut new = members.clone();
            new.push(n.clone());
            let mut m = e.clone();
            let change = format!("{}members = {} ({n} added)", prefix(whose), list(&new));
            set(&mut m, whose, new);
            out.push(Mutant {
                kind: Kind::MemberAdded,
                change,
                expect: m,
            });
            added = true;
        }
        for d in members {
            let new: Vec<String> = members.iter().filter(|x| *x != d).cloned().collect();
            let mut m = e.clone();
            let change = format!("{}members = {} ({d} dropped)", prefix(whose), list(&new));
            set(&mut m, whose, new.clone());
            out.push(Mutant {
                kind: Kind::MemberDropped,
                change,
                expect: m,
            });
            // Dropped from every view it is unviable where d is judged
            // itself (its own view lists it); dropped from each other
            // judged node's view alone, it is a view a cluster can show.
            if whose.is_none() && targets.contains(d) {
                for n in targets.iter().filter(|n| *n != d) {
                    let mut m = e.clone();
                    let change = format!(
                        "{n}'s members = {} ({d} dropped from {n}'s view only)",
                        list(&new)
                    );
                    set(&mut m, Some(n), new.clone());
                    out.push(Mutant {
                        kind: Kind::MemberDropped,
                        change,
                        expect: m,
                    });
                }
            }
        }
    }
    if !added {
        na.push((Kind::MemberAdded, "members names every node already".into()));
    }
}
