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

mod mutants;
mod render;
mod viability;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::experiment::{Expect, Experiment};
use crate::judge::{self, Verdict};
use crate::log::LogEvent;

use mutants::mutants;
use render::render;
use viability::{equivalent, unviable};

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
    let crate::commands::drills::Prepared {
        inventory,
        planned,
        mut skipped,
    } = match crate::commands::drills::load_and_plan(&args.paths, &args.inventory) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let say_skipped = crate::commands::drills::say_skipped;
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
mod tests;
