//! Reports of a run: JUnit XML (`junit`), the JSON Lines event log
//! (`jsonl`), the console summary (`console`), the HTML page (`html`) and
//! Prometheus's text format (`prometheus`),
//! and here the one rule for a drill's verdict over repeated runs that the
//! exit status and every report follow. They read results; they never
//! reach back into the run or an agent.

pub mod console;
pub mod html;
pub mod jsonl;
pub mod junit;
pub mod prometheus;

use std::time::Duration;

use crate::cluster::connect::ClusterFacts;
use crate::experiment::Experiment;
use crate::history::regression::Regression;
use crate::judge::Verdict;
use crate::log::{LogBody, LogEvent};

/// One run of one experiment.
pub struct DrillResult {
    pub experiment: Experiment,
    pub log: Vec<LogEvent>,
    pub verdicts: Vec<Verdict>,
    /// Set when the drill could not be carried out to the end.
    pub error: Option<String>,
    pub wall: Duration,
    /// A disturbed run that `--retry-disturbed` ran again: reported with
    /// its evidence, not counted in the drill's verdict.
    pub retried: bool,
    /// What the cluster ran, as its agents said hello (None when they
    /// could not be reached).
    pub cluster: Option<Box<ClusterFacts>>,
    /// Measured times outside their usual range in the cluster's history
    /// (`history::regression`); empty without a history.
    pub regressions: Vec<Regression>,
}

impl DrillResult {
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.verdicts.iter().all(|v| v.passed)
    }

    /// The machine's stalls seen during the run (corosync's own warning,
    /// the agents' timers).
    pub fn stalls(&self) -> Vec<&LogEvent> {
        self.log
            .iter()
            .filter(|e| matches!(e.body, LogBody::Stall { .. }))
            .collect()
    }

    /// A run that failed while the machine stalled is disturbed: its
    /// failures may be the machine's, not the cluster's. The evidence, in
    /// words. A pass is never disturbed.
    pub fn disturbed(&self) -> Option<String> {
        if self.passed() {
            return None;
        }
        // (late_ms, t, words)
        let mut stalls: Vec<(u64, f64, String)> = self
            .stalls()
            .into_iter()
            .filter_map(|e| match &e.body {
                // corosync not scheduled because the drill paused it.
                LogBody::Stall { source, .. } if source == "pause" => None,
                LogBody::Stall {
                    source, late_ms, ..
                } => Some((
                    *late_ms,
                    e.t,
                    format!(
                        "{} stalled {late_ms} ms at t={:.1}s ({})",
                        e.node.as_deref().unwrap_or("?"),
                        e.t,
                        match source.as_str() {
                            "corosync" => "corosync: main process not scheduled",
                            "token" => "corosync: token lost among nodes no fault touched",
                            _ => "the agent's timer",
                        }
                    ),
                )),
                _ => None,
            })
            .collect();
        if stalls.is_empty() {
            return None;
        }
        // A loaded machine stalls every node, again and again: say the
        // longest few and how many more, not every one (the event log has
        // them all).
        const LISTED: usize = 5;
        let more = stalls.len().saturating_sub(LISTED);
        let (first, last) = stalls
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), s| (a.min(s.1), b.max(s.1)));
        if more > 0 {
            stalls.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.total_cmp(&b.1)));
            stalls.truncate(LISTED);
        }
        let listed: Vec<&str> = stalls.iter().map(|s| s.2.as_str()).collect();
        Some(format!(
            "the machine stalled: {}{}",
            listed.join("; "),
            if more > 0 {
                format!(
                    "; and {more} shorter stall(s) from t={first:.1}s to t={last:.1}s (all in the event log)"
                )
            } else {
                String::new()
            }
        ))
    }
}

/// One drill's verdict over all its runs: the one rule that the exit
/// status, the console, the JUnit and the JSON all follow. A drill with a
/// failing run fails, unless the operator stated a tolerance (the pass rate
/// it needs) and the drill meets it: then it passes with flaky runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DrillOutcome {
    pub passed: bool,
    pub runs: usize,
    pub passed_runs: usize,
    /// Failing runs forgiven under the tolerance.
    pub flaky: usize,
    /// Failing runs during which the machine stalled.
    pub disturbed: usize,
    /// Disturbed runs run again (`--retry-disturbed`), not counted above.
    pub retried: usize,
    pub tolerance: Option<f64>,
}

impl DrillOutcome {
    pub fn of(runs: &[DrillResult], tolerance: Option<f64>) -> DrillOutcome {
        // Disturbed runs that were run again speak through their reruns.
        let counted: Vec<&DrillResult> = runs.iter().filter(|r| !r.retried).collect();
        let passed_runs = counted.iter().filter(|r| r.passed()).count();
        let failed = counted.len() - passed_runs;
        // A run that could not be carried out is never forgiven.
        let errors = counted.iter().any(|r| r.error.is_some());
        let tolerated = !errors
            && tolerance.is_some_and(|t| {
                !counted.is_empty() && passed_runs as f64 / counted.len() as f64 >= t - 1e-9
            });
        DrillOutcome {
            passed: failed == 0 || tolerated,
            runs: counted.len(),
            passed_runs,
            flaky: if tolerated { failed } else { 0 },
            disturbed: counted.iter().filter(|r| r.disturbed().is_some()).count(),
            retried: runs.len() - counted.len(),
            tolerance,
        }
    }

    /// "3/4 runs passed, 1 flaky under --pass-rate 0.75, " (empty for one run).
    fn words(&self) -> String {
        let retried = if self.retried > 0 {
            format!("{} disturbed run(s) retried, ", self.retried)
        } else {
            String::new()
        };
        if self.runs <= 1 {
            return retried;
        }
        let mut w = format!("{}/{} runs passed, {retried}", self.passed_runs, self.runs);
        if self.flaky > 0 {
            w.push_str(&format!(
                "{} flaky under --pass-rate {}, ",
                self.flaky,
                self.tolerance.unwrap_or(1.0)
            ));
        }
        if self.disturbed > 0 {
            w.push_str(&format!("{} disturbed, ", self.disturbed));
        }
        w
    }
}

/// Pass rate and spread of one verdict over repeated runs.
struct Stats {
    passed: usize,
    runs: usize,
    times: Vec<f64>,
}

impl Stats {
    fn of(runs: &[&Verdict]) -> Stats {
        let mut times: Vec<f64> = runs.iter().filter_map(|v| v.measured).collect();
        times.sort_by(f64::total_cmp);
        Stats {
            passed: runs.iter().filter(|v| v.passed).count(),
            runs: runs.len(),
            times,
        }
    }

    fn quantile(&self, q: f64) -> Option<f64> {
        if self.times.is_empty() {
            return None;
        }
        let i = ((self.times.len() - 1) as f64 * q).round() as usize;
        Some(self.times[i])
    }

    fn spread(&self) -> Option<String> {
        Some(format!(
            "min {:.3}s median {:.3}s p95 {:.3}s max {:.3}s",
            self.quantile(0.0)?,
            self.quantile(0.5)?,
            self.quantile(0.95)?,
            self.quantile(1.0)?
        ))
    }
}

/// The verdicts of every run of one experiment, by verdict name, in order.
fn by_name(runs: &[DrillResult]) -> Vec<(&str, Vec<&Verdict>)> {
    // Disturbed runs that were run again are reported apart.
    let runs: Vec<&DrillResult> = runs.iter().filter(|r| !r.retried).collect();
    let mut names: Vec<&str> = Vec::new();
    for r in &runs {
        for v in &r.verdicts {
            if !names.contains(&v.name.as_str()) {
                names.push(&v.name);
            }
        }
    }
    names
        .into_iter()
        .map(|n| {
            (
                n,
                runs.iter()
                    .flat_map(|r| r.verdicts.iter().filter(move |v| v.name == n))
                    .collect(),
            )
        })
        .collect()
}

/// 0 when every drill passed (under the tolerance, if any), 1 otherwise:
/// the status `run` exits with once every drill was carried out.
pub fn exit_status(all: &[Vec<DrillResult>], tolerance: Option<f64>) -> u8 {
    u8::from(
        all.iter()
            .any(|runs| !DrillOutcome::of(runs, tolerance).passed),
    )
}

#[cfg(test)]
mod tests;
