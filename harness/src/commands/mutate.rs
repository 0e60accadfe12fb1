//! `corodrill mutate`: mutation testing of drills. Each drill runs once,
//! for real (`run::run`, as `corodrill run` does, so predictions are
//! resolved against the live model); then mutants of its expectations
//! are judged against the same recorded event log. The judge is pure, so
//! a mutant costs nothing. A mutant the judge still passes (it
//! *survived*, was *missed*) is a change to an expectation that the
//! cluster's behaviour does not contradict: the expectation does not
//! constrain what the cluster did.
//!
//! Everything but `mutate_command` is pure: expectation, verdict and log
//! in, mutants and outcomes out.
//!
//! Mutant kinds (`Kind`), each only where the expectation says the thing
//! it changes:
//! - `quorate` flipped (every node's want);
//! - a member added (each inventory node not in `members`) or dropped
//!   (each one in it), from every judged node's wanted view; where that
//!   drops a judged node from its own view (unviable), also from each
//!   other judged node's view alone ("pve1 sees [pve1, pve2] while pve2
//!   and pve3 see all three": a view left behind in a merge);
//! - `total_votes` one more, one fewer;
//! - `running_on` another node (each node not in the list, alone), and
//!   the resource's want flipped (`running_on` -> `running = false`,
//!   `running = false` -> running on any node, `moved` -> stopped);
//! - `within` 1 ms shorter than the measured time: only for a reached
//!   state (a kept one has no measured time, so it does not apply);
//! - `hold` past the next change: the state that met the expectation must
//!   last beyond the moment it actually ended (for a kept state, beyond
//!   the reaction time by that much): only where it did end before the
//!   log did.
//!
//! Outcomes, in cargo-mutants' words: *caught* (killed: the judge fails
//! it), *missed* (survived: the judge passes it), *unviable* (not an
//! expectation worth judging: experiment validation would refuse it, or
//! no cluster can show what it wants, so it fails on every log and its
//! kill proves nothing), *equivalent* (no log can tell it from the
//! original). The score is caught / (caught + missed); unviable and
//! equivalent mutants are listed with why and not counted, nor are the
//! mutants of an expectation whose original failed.
//!
//! Unviable rules:
//! - `within` under 1 s (`experiment::MIN_WITHIN`): validation refuses it.
//! - A node named in `nodes` missing from its own wanted `members` (a
//!   member dropped from `members = "all"` with `nodes = "all"`, or from
//!   `["pve1", "pve2"]` judged on pve1 and pve2): while corosync runs, a
//!   node's own view always lists it, and when it does not run the view
//!   is empty. Likewise quorate with no members.
//!
//! Equivalent rules:
//! - The mutant changes nothing the judge reads: every node's wanted
//!   quorum, members (as a set), votes and resource, `within` and `hold`
//!   are the original's (a `quorate` every node's own prediction
//!   overrides; a list equal to `"all"`).
//! - The expectation names no node: it holds on every log, mutated or not.
//!
//! Mutants that only widen the expectation (a longer `within`, a shorter
//! `hold`) are not made: they pass wherever the original does.
//! The invariants (split-brain, whole at the end) and the oracle's own
//! expectations (`--oracle`) are judged with the drill, not mutated.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::experiment::{Expect, Experiment, NodeSet, NodeWant, ResourceWant, MIN_WITHIN};
use crate::judge::{self, Verdict};
use crate::log::LogEvent;

/// What a mutant changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    QuorateFlipped,
    MemberAdded,
    MemberDropped,
    VotesUp,
    VotesDown,
    RunningOnOther,
    RunningFlipped,
    WithinShorter,
    HoldPastChange,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::QuorateFlipped => "quorate flipped",
            Kind::MemberAdded => "member added",
            Kind::MemberDropped => "member dropped",
            Kind::VotesUp => "total_votes + 1",
            Kind::VotesDown => "total_votes - 1",
            Kind::RunningOnOther => "running_on another node",
            Kind::RunningFlipped => "running flipped",
            Kind::WithinShorter => "within shorter than measured",
            Kind::HoldPastChange => "hold past the next change",
        }
    }
}

/// One mutant of one expectation.
#[derive(Debug, Clone)]
pub struct Mutant {
    pub kind: Kind,
    /// What it changed, in the file's words: `quorate = false`.
    pub change: String,
    pub expect: Expect,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Killed: the judge fails the mutant on the recorded log.
    Caught,
    /// Survived: the judge passes it too.
    Missed,
    /// Not counted: validation refuses it, or no cluster can show it.
    Unviable(String),
    /// Not counted: no log can tell it from the original.
    Equivalent(String),
}

impl Outcome {
    fn word(&self) -> &'static str {
        match self {
            Outcome::Caught => "caught",
            Outcome::Missed => "MISSED",
            Outcome::Unviable(_) => "unviable",
            Outcome::Equivalent(_) => "equivalent",
        }
    }
}

/// A mutant and what the judge made of it.
#[derive(Debug, Clone)]
pub struct Judged {
    pub mutant: Mutant,
    pub outcome: Outcome,
    /// The judge's message on the mutant (for a missed one: what met it).
    pub message: String,
}

/// One expectation of the drill, its verdict and its mutants.
#[derive(Debug, Clone)]
pub struct ExpectScore {
    pub name: String,
    pub original: Verdict,
    /// Empty when the original failed: nothing to count.
    pub mutants: Vec<Judged>,
    /// Kinds that do not apply to this expectation, with why.
    pub not_applicable: Vec<(Kind, String)>,
}

/// One drill's mutation testing.
#[derive(Debug, Clone)]
pub struct DrillScore {
    pub drill: String,
    pub file: PathBuf,
    pub expects: Vec<ExpectScore>,
    /// Expectations the oracle added (`--oracle`): judged, not mutated.
    pub oracle_expects: usize,
    /// Verdicts of the drill's own run that failed, invariants included.
    pub failed: Vec<String>,
}

impl DrillScore {
    /// The counted mutants: of expectations that passed, neither unviable
    /// nor equivalent.
    fn counted(&self) -> impl Iterator<Item = (&ExpectScore, &Judged)> {
        self.expects
            .iter()
            .filter(|x| x.original.passed)
            .flat_map(|x| x.mutants.iter().map(move |j| (x, j)))
            .filter(|(_, j)| matches!(j.outcome, Outcome::Caught | Outcome::Missed))
    }

    pub fn killed(&self) -> usize {
        self.counted()
            .filter(|(_, j)| j.outcome == Outcome::Caught)
            .count()
    }

    /// Non-equivalent, viable mutants of expectations that passed.
    pub fn total(&self) -> usize {
        self.counted().count()
    }

    /// Every mutant that survived, with its expectation's name.
    pub fn survived(&self) -> Vec<(&str, &Judged)> {
        self.counted()
            .filter(|(_, j)| j.outcome == Outcome::Missed)
            .map(|(x, j)| (x.name.as_str(), j))
            .collect()
    }

    fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.expects
            .iter()
            .flat_map(|x| &x.mutants)
            .filter(|j| f(&j.outcome))
            .count()
    }

    /// The score in whole percent, rounded down (so 100 % means every
    /// counted mutant was killed); None when nothing was counted.
    pub fn percent(&self) -> Option<usize> {
        let total = self.total();
        (total > 0).then(|| self.killed() * 100 / total)
    }

    /// 0: every counted mutant killed and the drill passed; 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        u8::from(!self.failed.is_empty() || self.killed() < self.total())
    }
}

/// Milliseconds, rounded up.
fn ceil_ms(seconds: f64) -> Duration {
    Duration::from_millis((seconds * 1000.0 - 1e-6).ceil().max(0.0) as u64)
}

fn secs(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

fn list(names: &[String]) -> String {
    format!("[{}]", names.join(", "))
}

/// What `node` is to see of members, as names (None: not constrained).
fn members_of(e: &Expect, node: &str, nodes: &[String]) -> Option<Vec<String>> {
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
fn members_mutants(
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
fn reads(e: &Expect, nodes: &[String]) -> impl PartialEq + std::fmt::Debug {
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

/// Judges every mutant of every expectation of `experiment` (as run: its
/// predictions resolved) on `log`. The first `file_expects` expectations
/// are the file's; any after them are the oracle's and are not mutated.
pub fn score(
    experiment: &Experiment,
    file_expects: usize,
    nodes: &[String],
    log: &[LogEvent],
) -> DrillScore {
    let verdicts = judge::judge(experiment, nodes, log);
    let failed = verdicts
        .iter()
        .filter(|v| !v.passed)
        .map(|v| v.name.clone())
        .collect();
    let file_expects = file_expects.min(experiment.expects.len());
    let expects = experiment.expects[..file_expects]
        .iter()
        .zip(&verdicts)
        .map(|(e, v)| {
            let (made, not_applicable) = mutants(e, v, nodes, log);
            let judged = if v.passed {
                made.into_iter()
                    .map(|mutant| judge_mutant(experiment, e, mutant, nodes, log))
                    .collect()
            } else {
                Vec::new()
            };
            ExpectScore {
                name: e.name.clone(),
                original: v.clone(),
                mutants: judged,
                not_applicable,
            }
        })
        .collect();
    DrillScore {
        drill: experiment.name.clone(),
        file: experiment.file.clone(),
        expects,
        oracle_expects: experiment.expects.len() - file_expects,
        failed,
    }
}

fn judge_mutant(
    experiment: &Experiment,
    original: &Expect,
    mutant: Mutant,
    nodes: &[String],
    log: &[LogEvent],
) -> Judged {
    if let Some(why) = equivalent(original, &mutant.expect, nodes) {
        return Judged {
            mutant,
            outcome: Outcome::Equivalent(why),
            message: String::new(),
        };
    }
    if let Some(why) = unviable(&mutant.expect, nodes) {
        return Judged {
            mutant,
            outcome: Outcome::Unviable(why),
            message: String::new(),
        };
    }
    // The mutant alone: the other expectations do not change its verdict.
    let mut alone = experiment.clone();
    alone.expects = vec![mutant.expect.clone()];
    let v = judge::judge(&alone, nodes, log).swap_remove(0);
    Judged {
        mutant,
        outcome: if v.passed {
            Outcome::Missed
        } else {
            Outcome::Caught
        },
        message: v.message,
    }
}

/// The score line: `score NAME: 100% (9 of 9 mutants killed; ...)`.
pub fn score_line(s: &DrillScore) -> String {
    let unviable = s.count(|o| matches!(o, Outcome::Unviable(_)));
    let equivalent = s.count(|o| matches!(o, Outcome::Equivalent(_)));
    let percent = s
        .percent()
        .map_or_else(|| "n/a".to_owned(), |p| format!("{p}%"));
    format!(
        "score {}: {percent} ({} of {} mutants killed, {} survived; {unviable} unviable and {equivalent} equivalent not counted)",
        s.drill,
        s.killed(),
        s.total(),
        s.total() - s.killed()
    )
}

/// Everything about one drill's mutants, for a person: each expectation,
/// each mutant with its outcome, the score line, the survivors again.
pub fn render(s: &DrillScore) -> String {
    let mut lines = vec![format!("mutate {} ({})", s.drill, s.file.display())];
    for x in &s.expects {
        let how = match (x.original.passed, x.original.kept, x.original.measured) {
            (false, ..) => "FAILED".to_owned(),
            (true, true, _) => "passed, kept".to_owned(),
            (true, false, Some(t)) => format!("passed, reached in {t:.3}s"),
            (true, false, None) => "passed".to_owned(),
        };
        lines.push(format!("  {:?}: {how}", x.name));
        if !x.original.passed {
            lines.push(format!(
                "    its mutants are not counted: the expectation itself failed: {}",
                x.original.message
            ));
            continue;
        }
        for j in &x.mutants {
            let why = match &j.outcome {
                Outcome::Unviable(w) | Outcome::Equivalent(w) => format!(": {w}"),
                Outcome::Missed => format!(": the judge passes it too: {}", j.message),
                Outcome::Caught => String::new(),
            };
            lines.push(format!(
                "    {:<10} {}: {}{why}",
                j.outcome.word(),
                j.mutant.kind.name(),
                j.mutant.change
            ));
        }
        for (kind, why) in &x.not_applicable {
            lines.push(format!("    {:<10} {}: {why}", "n/a", kind.name()));
        }
    }
    if s.oracle_expects > 0 {
        lines.push(format!(
            "  {} expectation(s) of the oracle judged, not mutated (the model wrote them)",
            s.oracle_expects
        ));
    }
    if !s.failed.is_empty() {
        lines.push(format!(
            "  the drill itself FAILED ({}): mutation testing judges a drill that passes",
            s.failed.join("; ")
        ));
    }
    lines.push(format!("  {}", score_line(s)));
    for (name, j) in s.survived() {
        lines.push(format!(
            "  survived: {name:?}: {}: {}: this expectation does not constrain it",
            j.mutant.kind.name(),
            j.mutant.change
        ));
    }
    lines.join("\n")
}

/// `corodrill mutate`'s arguments.
pub struct MutateArgs {
    pub paths: Vec<PathBuf>,
    pub inventory: PathBuf,
    pub lease: Duration,
    pub model_override: BTreeMap<String, String>,
    pub allow_fencing: bool,
}

/// `corodrill mutate`: every drill run once for real, as `run` does, then
/// its mutants judged on the log it recorded. Exit status: 0 every
/// counted mutant killed (and every drill passed), 1 a mutant survived
/// (or a drill failed), 2 invalid input, 3 a drill could not be carried
/// out, 130 interrupted.
pub fn mutate_command(args: &MutateArgs, progress: &dyn Fn(&str), cancel: &AtomicBool) -> u8 {
    let inventory = match crate::cluster::inventory::load(&args.inventory) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let mut skipped = Vec::new();
    let planned = match crate::commands::drills::prepare(&args.paths, &inventory, &mut skipped) {
        Ok(p) => p,
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            return 2;
        }
    };
    let say_skipped = |skipped: &[String]| {
        for s in skipped {
            println!("SKIP {s}");
        }
    };
    if planned.is_empty() {
        say_skipped(&skipped);
        eprintln!("no drill fits this inventory");
        return 2;
    }
    let opts = crate::run::RunOptions {
        lease: args.lease,
        model_override: args.model_override.clone(),
        allow_fencing: args.allow_fencing,
        ..crate::run::RunOptions::new(progress, cancel)
    };
    let mut scores = Vec::new();
    let mut code = 0;
    for (e, p) in &planned {
        progress(&format!("drill {} ({}), once", e.name, e.file.display()));
        match crate::run::run(e, p, &inventory, &opts) {
            Ok(ran) => {
                let s = score(&ran.experiment, e.expects.len(), &p.nodes, &ran.log);
                println!("{}", render(&s));
                code = code.max(s.exit_code());
                scores.push(s);
            }
            Err(aborted) => {
                if let crate::run::RunError::Requires(why) = &aborted.error {
                    if crate::commands::drills::from_directory(&args.paths, e) {
                        skipped.push(format!("{}: {why}", e.file.display()));
                        continue;
                    }
                }
                println!(
                    "mutate {} ({}): the drill could not be carried out: {}",
                    e.name,
                    e.file.display(),
                    aborted.error
                );
                say_skipped(&skipped);
                return aborted.error.exit_code();
            }
        }
        if cancel.load(Ordering::Relaxed) {
            return 130;
        }
    }
    say_skipped(&skipped);
    let killed: usize = scores.iter().map(DrillScore::killed).sum();
    let total: usize = scores.iter().map(DrillScore::total).sum();
    let survived: usize = total - killed;
    println!(
        "{} drill(s): {killed} of {total} mutants killed, {survived} survived{}",
        scores.len(),
        if scores.iter().any(|s| !s.failed.is_empty()) {
            "; a drill failed"
        } else {
            ""
        }
    );
    code
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::{parse, Reaction};
    use crate::log::LogBody;
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

    fn q(t: f64, node: &str, quorate: bool, members: &[&str]) -> LogEvent {
        ev(
            t,
            Some(node),
            LogBody::Quorum {
                quorate,
                members: members.iter().map(|s| s.to_string()).collect(),
                ring_id: format!("{t}"),
                total_votes: Some(members.len() as u32),
                expected_votes: Some(3),
                quorum: Some(2),
            },
        )
    }

    fn fault(t: f64, node: &str, fault: &str, healed: bool) -> LogEvent {
        let body = if healed {
            LogBody::FaultHealed {
                fault: fault.into(),
                clean: true,
                detail: String::new(),
            }
        } else {
            LogBody::FaultApplied {
                fault: fault.into(),
                fault_kind: "partition".into(),
            }
        };
        ev(t, Some(node), body)
    }

    /// The experiment as `run` resolves it: every expectation with the
    /// lab's reaction time (token 1000: 5.037 s).
    fn drill(expects: &str) -> Experiment {
        let text = format!(
            "name = \"isolate\"\nnodes = 3\n[[fault]]\nid = \"cut\"\nkind = \"partition\"\n\
             groups = [[\"pve1\", \"pve2\"], [\"pve3\"]]\nheal_after = \"12s\"\n{expects}"
        );
        let mut e = parse(Path::new("isolate.toml"), &text).unwrap_or_else(|e| panic!("{e:?}"));
        for x in &mut e.expects {
            x.reaction = Some(Reaction {
                time: Duration::from_millis(5037),
                basis: "the lab's".into(),
            });
        }
        e
    }

    /// pve3 cut off at 0.01 s: the majority re-forms at 3.52 s, pve3 is
    /// alone at 3.55 s; healed at 12.01 s, whole at 13.7 s.
    fn isolate_log() -> Vec<LogEvent> {
        let all = ["pve1", "pve2", "pve3"];
        let mut log: Vec<LogEvent> = all.iter().map(|n| q(0.0, n, true, &all)).collect();
        log.extend(all.iter().map(|n| fault(0.01, n, "cut", false)));
        log.push(q(3.52, "pve1", true, &["pve1", "pve2"]));
        log.push(q(3.53, "pve2", true, &["pve1", "pve2"]));
        log.push(q(3.55, "pve3", false, &["pve3"]));
        log.extend(all.iter().map(|n| fault(12.01, n, "cut", true)));
        log.extend(all.iter().map(|n| q(13.7, n, true, &all)));
        log.push(ev(15.0, None, LogBody::DrillEnd {}));
        log
    }

    const STRONG: &str = r#"
[[expect]]
name = "majority keeps quorum"
after = "cut"
nodes = ["pve1", "pve2"]
quorate = true
members = ["pve1", "pve2"]
total_votes = 2
within = "10s"
hold = "2s"
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

    fn outcomes<'s>(s: &'s DrillScore, expect: &str) -> Vec<(Kind, &'s Outcome)> {
        s.expects
            .iter()
            .find(|x| x.name == expect)
            .unwrap_or_else(|| panic!("no {expect:?}"))
            .mutants
            .iter()
            .map(|j| (j.mutant.kind, &j.outcome))
            .collect()
    }

    #[test]
    fn strong_expectations_kill_every_mutant() {
        let s = score(&drill(STRONG), 3, &nodes(), &isolate_log());
        assert!(s.failed.is_empty(), "{s:#?}");
        assert_eq!(s.survived().len(), 0, "{}", render(&s));
        assert_eq!(s.percent(), Some(100));
        assert_eq!(s.exit_code(), 0);
        let majority = outcomes(&s, "majority keeps quorum");
        let kinds: Vec<Kind> = majority.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            kinds,
            [
                Kind::QuorateFlipped,
                Kind::MemberAdded,
                Kind::MemberDropped,
                Kind::MemberDropped,
                Kind::MemberDropped,
                Kind::MemberDropped,
                Kind::VotesUp,
                Kind::VotesDown,
                Kind::WithinShorter,
                Kind::HoldPastChange,
            ]
        );
        // Dropping pve1 or pve2 wants a node's view without itself.
        assert!(
            matches!(majority[2].1, Outcome::Unviable(w) if w.contains("pve1 missing from its own view"))
        );
        // Whole again: dropping any member of "all" from "all" nodes is
        // unviable; nothing to add; held to the end: no hold mutant.
        let whole = outcomes(&s, "whole again");
        assert_eq!(
            whole
                .iter()
                .filter(|(k, o)| *k == Kind::MemberDropped && matches!(o, Outcome::Unviable(_)))
                .count(),
            3
        );
        let text = render(&s);
        assert!(
            text.contains("score isolate: 100% (19 of 19 mutants killed, 0 survived; 5 unviable and 0 equivalent not counted)"),
            "{text}"
        );
        assert!(
            text.contains("caught     within shorter than measured: within = 3.519s (measured 3.520s, was 10s)")
                && text.contains("caught     hold past the next change: hold = 10.170s (was 2s; the state lasted 10.170s, to t=13.700s)")
                && text.contains("n/a        hold past the next change: held from t=13.700s to the end of the recorded log (t=15.000s)"),
            "{text}"
        );
    }

    /// "pve1 quorate within 15 s of the heal", no hold: pve1 drops out for
    /// 0.3 s after the heal and is back. The expectation passes, and so
    /// does its flip ("pve1 not quorate"): it does not say pve1 stays
    /// quorate. With a hold the flip is killed.
    #[test]
    fn a_weak_expectation_has_a_surviving_mutant() {
        let weak = r#"
[[expect]]
name = "pve1 quorate after the heal"
after = "cut.healed"
nodes = ["pve1"]
quorate = true
within = "15s"
"#;
        let mut log = isolate_log();
        log.pop();
        log.push(q(14.0, "pve1", false, &["pve1"]));
        log.push(q(14.3, "pve1", true, &["pve1", "pve2", "pve3"]));
        log.push(ev(25.0, None, LogBody::DrillEnd {}));
        let s = score(&drill(weak), 1, &nodes(), &log);
        let survived = s.survived();
        assert_eq!(survived.len(), 1, "{}", render(&s));
        assert_eq!(survived[0].1.mutant.kind, Kind::QuorateFlipped);
        assert_eq!(s.exit_code(), 1);
        assert_eq!(s.percent(), Some(50));
        let text = render(&s);
        assert!(
            text.contains("MISSED     quorate flipped: quorate = false: the judge passes it too: pve1 not quorate reached in 1.990s")
                && text.contains("survived: \"pve1 quorate after the heal\": quorate flipped: quorate = false: this expectation does not constrain it")
                && text.contains("score isolate: 50% (1 of 2 mutants killed, 1 survived;"),
            "{text}"
        );

        let strong = weak.replace("within = \"15s\"", "within = \"15s\"\nhold = \"5s\"");
        let s = score(&drill(&strong), 1, &nodes(), &log);
        assert_eq!(s.survived().len(), 0, "{}", render(&s));
        assert_eq!(s.percent(), Some(100));
    }

    /// Nodes hear of a merge milliseconds apart: for 20 ms pve2 and pve3
    /// see everyone and pve1 still sees [pve1, pve2]. Where the merge
    /// comes after the reaction time (6.7 s after the heal here, as after
    /// a flapping link), pve1's old view has outlasted it, so "whole
    /// again" with no hold is met at one instant, and so is the mutant
    /// that drops pve3 from pve1's view alone; held 2 s, it is killed.
    /// (A quicker merge kills it anyway: pve1's view, kept from the heal,
    /// would have to last through the reaction time.)
    #[test]
    fn a_moment_of_whole_lets_a_view_left_behind_survive() {
        let whole = r#"
[[expect]]
name = "whole again"
after = "cut.healed"
nodes = "all"
quorate = true
members = "all"
within = "15s"
"#;
        let all = ["pve1", "pve2", "pve3"];
        let mut log = isolate_log();
        log.retain(|e| e.t < 13.0);
        log.push(q(18.70, "pve3", true, &all));
        log.push(q(18.71, "pve2", true, &all));
        log.push(q(18.73, "pve1", true, &all));
        log.push(ev(25.0, None, LogBody::DrillEnd {}));
        let s = score(&drill(whole), 1, &nodes(), &log);
        let survived: Vec<&str> = s
            .survived()
            .iter()
            .map(|(_, j)| j.mutant.change.as_str())
            .collect();
        assert_eq!(
            survived,
            ["pve1's members = [pve1, pve2] (pve3 dropped from pve1's view only)"],
            "{}",
            render(&s)
        );
        let held = whole.replace("within = \"15s\"", "within = \"15s\"\nhold = \"2s\"");
        let s = score(&drill(&held), 1, &nodes(), &log);
        assert_eq!(s.percent(), Some(100), "{}", render(&s));
    }

    /// A watched resource: running_on another node and the want flipped.
    /// svc moves from pve1 to pve2 5 s after the cut, in pve2's and pve3's
    /// views: "running on pve1" is kept at the cut but breaks before the
    /// reaction time, "stopped" is never so: both caught.
    #[test]
    fn resource_mutants() {
        let text = r#"
[[watch]]
resource = "svc"
[[expect]]
name = "svc moves to pve2"
after = "cut"
nodes = ["pve2", "pve3"]
resource = "svc"
running_on = ["pve2"]
within = "10s"
hold = "1s"
"#;
        let res = |t: f64, node: &str, on: &str| {
            ev(
                t,
                Some(node),
                LogBody::Resource {
                    resource: "svc".into(),
                    active_on: Some(vec![on.into()]),
                },
            )
        };
        let mut log = isolate_log();
        log.extend(["pve1", "pve2", "pve3"].map(|n| res(0.0, n, "pve1")));
        log.push(res(5.0, "pve2", "pve2"));
        log.push(res(5.1, "pve3", "pve2"));
        let s = score(&drill(text), 1, &nodes(), &log);
        let changes: Vec<(&str, &Outcome)> = s.expects[0]
            .mutants
            .iter()
            .map(|j| (j.mutant.change.as_str(), &j.outcome))
            .collect();
        assert_eq!(
            changes,
            [
                ("running_on = [pve1] (was [pve2])", &Outcome::Caught),
                ("running_on = [pve3] (was [pve2])", &Outcome::Caught),
                (
                    "running = false (was running_on = [pve2])",
                    &Outcome::Caught
                ),
                (
                    "within = 5.089s (measured 5.090s, was 10s)",
                    &Outcome::Caught
                ),
            ],
            "{}",
            render(&s)
        );
        assert_eq!(s.percent(), Some(100));
    }

    /// A state kept from before its anchor has no measured time: no
    /// within mutant; its hold mutant wants it to outlast the reaction
    /// time by more than it did (pve1 and pve2, quorate all along, keep
    /// it after the heal until pve1 drops out at 21 s).
    #[test]
    fn kept_states_get_a_hold_past_the_change_not_a_shorter_within() {
        let kept = r#"
[[expect]]
name = "the majority stays quorate after the heal"
after = "cut.healed"
nodes = ["pve1", "pve2"]
quorate = true
within = "1s"
hold = "2s"
"#;
        let mut log = isolate_log();
        log.pop();
        log.push(q(21.0, "pve1", false, &["pve1"]));
        log.push(ev(25.0, None, LogBody::DrillEnd {}));
        let s = score(&drill(kept), 1, &nodes(), &log);
        let x = &s.expects[0];
        assert!(x.original.passed && x.original.kept, "{x:#?}");
        assert!(x
            .not_applicable
            .iter()
            .any(|(k, why)| *k == Kind::WithinShorter && why.contains("kept, not reached")));
        let hold = x
            .mutants
            .iter()
            .find(|j| j.mutant.kind == Kind::HoldPastChange)
            .expect("no hold mutant");
        // The heal at 12.01 + 5.037 s of reaction time: 3.953 s more.
        assert_eq!(hold.mutant.expect.hold, Duration::from_millis(3953));
        assert_eq!(hold.outcome, Outcome::Caught, "{hold:#?}");
        assert!(
            hold.mutant
                .change
                .contains("the state lasted 8.990s, to t=21.000s, kept from the anchor"),
            "{}",
            hold.mutant.change
        );
        assert_eq!(s.percent(), Some(100), "{}", render(&s));
    }

    /// A mutant that wants a within corosync cannot meet is unviable; one
    /// the judge cannot tell from the original is equivalent; an
    /// expectation that failed has its mutants uncounted, and the drill
    /// exits 1.
    #[test]
    fn unviable_equivalent_and_uncounted_mutants() {
        let text = r#"
[[expect]]
name = "pve3 alone"
after = "cut"
nodes = ["pve3"]
members = ["pve3"]
within = "10s"
[[expect]]
name = "nobody"
after = "cut"
nodes = []
quorate = true
within = "10s"
[[expect]]
name = "pve1 loses quorum (fails)"
after = "cut"
nodes = ["pve1"]
quorate = false
within = "2s"
"#;
        let mut log = isolate_log();
        // pve3 sees itself alone 0.8 s after the cut.
        log.retain(|e| !(e.t == 3.55 && e.node.as_deref() == Some("pve3")));
        log.push(q(0.81, "pve3", false, &["pve3"]));
        let s = score(&drill(text), 3, &nodes(), &log);
        let alone = outcomes(&s, "pve3 alone");
        assert!(
            alone.iter().any(|(k, o)| *k == Kind::WithinShorter
                && matches!(o, Outcome::Unviable(w) if w.contains("validation refuses"))),
            "{}",
            render(&s)
        );
        // Dropping pve3 from its own one-node view wants corosync down:
        // viable (a stopped corosync shows no members), and caught.
        assert!(alone
            .iter()
            .any(|(k, o)| *k == Kind::MemberDropped && **o == Outcome::Caught));
        let nobody = outcomes(&s, "nobody");
        assert!(!nobody.is_empty());
        assert!(nobody
            .iter()
            .all(|(_, o)| matches!(o, Outcome::Equivalent(w) if w.contains("names no node"))));
        let failed = &s.expects[2];
        assert!(!failed.original.passed && failed.mutants.is_empty());
        assert_eq!(s.failed, vec!["pve1 loses quorum (fails)".to_owned()]);
        assert_eq!(s.exit_code(), 1);
        let text = render(&s);
        assert!(
            text.contains("its mutants are not counted: the expectation itself failed")
                && text.contains("the drill itself FAILED (pve1 loses quorum (fails))"),
            "{text}"
        );
        // A mutant that reads the same as its original.
        let e = &drill(STRONG).expects[2];
        let mut same = e.clone();
        same.members = Some(NodeSet::Some(nodes()));
        assert!(equivalent(e, &same, &nodes()).is_some());
        assert!(equivalent(e, &drill(STRONG).expects[0], &nodes()).is_none());
    }
}
