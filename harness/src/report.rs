//! Reports of a run: JUnit XML (quick-junit), the JSON Lines event log, and
//! the console summary. They read results; they never reach back into the
//! run or an agent.

use std::time::Duration;

use quick_junit::{
    NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestRerun, TestSuite,
};
use serde::Serialize;

use crate::experiment::Experiment;
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
        let stalls: Vec<String> = self
            .stalls()
            .into_iter()
            .filter_map(|e| match &e.body {
                // corosync not scheduled because the drill paused it.
                LogBody::Stall { source, .. } if source == "pause" => None,
                LogBody::Stall {
                    source, late_ms, ..
                } => Some(format!(
                    "{} stalled {late_ms} ms at t={:.1}s ({})",
                    e.node.as_deref().unwrap_or("?"),
                    e.t,
                    if source == "corosync" {
                        "corosync: main process not scheduled"
                    } else {
                        "the agent's timer"
                    }
                )),
                _ => None,
            })
            .collect();
        (!stalls.is_empty()).then(|| format!("the machine stalled: {}", stalls.join("; ")))
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

/// JUnit XML without a tolerance: any failing run fails its test case.
pub fn junit(all: &[Vec<DrillResult>]) -> String {
    junit_with(all, None)
}

/// JUnit XML: one testsuite per experiment, one testcase per expectation and
/// invariant, its time the measured time. A case that failed in any run is
/// a failure (the last failing run's message; the other failing runs as
/// rerun failures), unless the drill meets the stated tolerance: then it
/// passes, its failing runs listed as flaky. It agrees with the exit status.
pub fn junit_with(all: &[Vec<DrillResult>], tolerance: Option<f64>) -> String {
    let mut report = Report::new("corodrill");
    for runs in all {
        let Some(first) = runs.first() else { continue };
        let outcome = DrillOutcome::of(runs, tolerance);
        let mut suite = TestSuite::new(first.experiment.name.clone());
        suite.add_property(Property::new(
            "file",
            first.experiment.file.display().to_string(),
        ));
        suite.add_property(Property::new("runs", runs.len().to_string()));
        let disturbed = runs.iter().filter(|r| r.disturbed().is_some()).count();
        if disturbed > 0 {
            suite.add_property(Property::new("disturbed_runs", disturbed.to_string()));
        }
        suite.set_time(runs.iter().map(|r| r.wall).sum());
        for r in runs.iter().filter_map(|r| r.error.as_ref()) {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
            status.set_message(r.clone());
            suite.add_test_case(TestCase::new("drill carried out", status));
        }
        for (name, verdicts) in by_name(runs) {
            let Some(last) = verdicts.last() else {
                continue;
            };
            let stats = Stats::of(&verdicts);
            // The verdict that speaks for the case: the last failing run's,
            // or the last run's when none failed.
            let failing: Vec<(&DrillResult, &Verdict)> = runs
                .iter()
                .filter(|r| !r.retried)
                .filter_map(|r| Some((r, r.verdicts.iter().find(|v| v.name == name)?)))
                .filter(|(_, v)| !v.passed)
                .collect();
            let mut status = match failing.last() {
                None => TestCaseStatus::success(),
                Some(_) if outcome.passed => TestCaseStatus::success(),
                Some((run, v)) => {
                    let mut s = match run.disturbed() {
                        // The machine stalled: an error with the evidence.
                        Some(evidence) => {
                            let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
                            s.set_message(format!("disturbed ({evidence}): {}", v.message));
                            s.set_type("disturbed");
                            s
                        }
                        None => {
                            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                            s.set_message(v.message.clone());
                            s.set_type(if v.invariant {
                                "invariant"
                            } else {
                                "expectation"
                            });
                            s
                        }
                    };
                    if runs.len() > 1 {
                        s.set_description(format!(
                            "failed in {} of {} runs",
                            failing.len(),
                            runs.len()
                        ));
                    }
                    s
                }
            };
            // The other failing runs: reruns of a failure, or the flaky runs
            // of a pass under the tolerance.
            let others = if status_failed(&status) {
                &failing[..failing.len().saturating_sub(1)]
            } else {
                &failing[..]
            };
            for (_, earlier) in others {
                let mut rerun = TestRerun::new(NonSuccessKind::Failure);
                rerun.set_message(earlier.message.clone());
                if let Some(t) = earlier.measured.and_then(junit_time) {
                    rerun.set_time(t);
                }
                status.add_rerun(rerun);
            }
            // Disturbed runs that were run again: shown with their evidence.
            for r in runs.iter().filter(|r| r.retried) {
                let Some(v) = r.verdicts.iter().find(|v| v.name == name && !v.passed) else {
                    continue;
                };
                let mut rerun = TestRerun::new(NonSuccessKind::Error);
                rerun.set_message(format!(
                    "disturbed, run again ({}): {}",
                    r.disturbed().unwrap_or_default(),
                    v.message
                ));
                status.add_rerun(rerun);
            }
            let mut case = TestCase::new(name.to_owned(), status);
            case.set_classname(first.experiment.name.clone());
            if let Some(t) = last.measured.and_then(junit_time) {
                case.set_time(t);
            }
            // A state kept from before the fault has no time to measure:
            // no time, and a property that says why.
            if last.kept {
                case.add_property(Property::new("kept", "true"));
            }
            if last.passed && !status_failed(&case.status) {
                case.set_system_out(last.message.clone());
            }
            if runs.len() > 1 {
                case.add_property(Property::new(
                    "pass_rate",
                    format!("{}/{}", stats.passed, stats.runs),
                ));
                if let Some(spread) = stats.spread() {
                    case.add_property(Property::new("measured", spread));
                }
            }
            suite.add_test_case(case);
        }
        if outcome.flaky > 0 {
            suite.add_property(Property::new(
                "passed_with_flaky_runs",
                format!(
                    "{} of {} runs failed, within --pass-rate {}",
                    outcome.flaky,
                    outcome.runs,
                    tolerance.unwrap_or(1.0)
                ),
            ));
        }
        report.add_test_suite(suite);
    }
    report
        .to_string()
        .unwrap_or_else(|e| format!("<!-- cannot write JUnit: {e} -->\n"))
}

/// 0 when every drill passed (under the tolerance, if any), 1 otherwise:
/// the status `run` exits with once every drill was carried out.
/// A measured time as JUnit's `time`; none for a time that is not one
/// (negative, NaN: `Duration::from_secs_f64` panics on those).
fn junit_time(seconds: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(seconds).ok()
}

pub fn exit_status(all: &[Vec<DrillResult>], tolerance: Option<f64>) -> u8 {
    u8::from(
        all.iter()
            .any(|runs| !DrillOutcome::of(runs, tolerance).passed),
    )
}

fn status_failed(status: &TestCaseStatus) -> bool {
    matches!(status, TestCaseStatus::NonSuccess { .. })
}

#[derive(Serialize)]
struct Line<'a> {
    experiment: &'a str,
    run: usize,
    /// How many runs of this drill there were.
    of: usize,
    #[serde(flatten)]
    event: &'a LogEvent,
}

/// The closing line of one drill in the JSON log: the same verdict the
/// exit status, the console and the JUnit give.
#[derive(Serialize)]
struct DrillSummary<'a> {
    experiment: &'a str,
    kind: &'static str,
    passed: bool,
    runs: usize,
    passed_runs: usize,
    flaky_runs: usize,
    disturbed_runs: usize,
    pass_rate_required: Option<f64>,
}

/// The JSON Lines event log without a tolerance.
pub fn json_lines(all: &[Vec<DrillResult>]) -> String {
    json_lines_with(all, None)
}

/// The JSON Lines event log, the verdicts last (a kept state's
/// `measured` is null: nothing arrived to be timed); each run marked
/// (`run`, `of`), and one `drill.summary` line closing each drill.
pub fn json_lines_with(all: &[Vec<DrillResult>], tolerance: Option<f64>) -> String {
    let mut out = String::new();
    for runs in all {
        for (i, r) in runs.iter().enumerate() {
            let end = r.log.last().map_or(0.0, |e| e.t);
            let verdicts: Vec<LogEvent> = r
                .verdicts
                .iter()
                .map(|v| {
                    LogEvent::new(
                        end,
                        None,
                        if v.passed {
                            LogBody::ExpectPass {
                                name: v.name.clone(),
                                measured: v.measured,
                            }
                        } else {
                            LogBody::ExpectFail {
                                name: v.name.clone(),
                                message: v.message.clone(),
                            }
                        },
                    )
                })
                .collect();
            let disturbed: Vec<LogEvent> = r
                .disturbed()
                .map(|evidence| LogEvent::new(end, None, LogBody::DrillDisturbed { evidence }))
                .into_iter()
                .collect();
            for event in r.log.iter().chain(&verdicts).chain(&disturbed) {
                let line = Line {
                    experiment: &r.experiment.name,
                    run: i + 1,
                    of: runs.len(),
                    event,
                };
                if let Ok(text) = serde_json::to_string(&line) {
                    out.push_str(&text);
                    out.push('\n');
                }
            }
        }
        if let Some(first) = runs.first() {
            let o = DrillOutcome::of(runs, tolerance);
            let line = DrillSummary {
                experiment: &first.experiment.name,
                kind: "drill.summary",
                passed: o.passed,
                runs: o.runs,
                passed_runs: o.passed_runs,
                flaky_runs: o.flaky,
                disturbed_runs: o.disturbed,
                pass_rate_required: tolerance,
            };
            if let Ok(text) = serde_json::to_string(&line) {
                out.push_str(&text);
                out.push('\n');
            }
        }
    }
    out
}

/// The console summary without a tolerance.
pub fn summary(runs: &[DrillResult]) -> String {
    summary_with(runs, None)
}

/// What a person reads in one glance: each expectation, its verdict, its
/// measured time; failures with expected, observed and when.
pub fn summary_with(runs: &[DrillResult], tolerance: Option<f64>) -> String {
    let Some(first) = runs.first() else {
        return String::new();
    };
    let outcome = DrillOutcome::of(runs, tolerance);
    let disturbed: Vec<String> = runs
        .iter()
        .filter(|r| !r.retried)
        .filter_map(DrillResult::disturbed)
        .collect();
    let wall: f64 = runs.iter().map(|r| r.wall.as_secs_f64()).sum::<f64>() / runs.len() as f64;
    let failed = outcome.runs - outcome.passed_runs;
    let verdict = if outcome.passed {
        "PASS"
    } else if disturbed.len() == failed {
        // Every failing run failed while the machine stalled.
        "DISTURBED"
    } else {
        "FAIL"
    };
    let mut lines = vec![format!(
        "{verdict} {}  ({}{:.1}s)",
        first.experiment.name,
        outcome.words(),
        wall
    )];
    for evidence in &disturbed {
        lines.push(format!(
            "  DISTURBED {evidence}: the failures below may be the machine's, not the cluster's"
        ));
    }
    for evidence in runs
        .iter()
        .filter(|r| r.retried)
        .filter_map(DrillResult::disturbed)
    {
        lines.push(format!(
            "  RETRIED a run failed while {evidence}; run again"
        ));
    }
    for r in runs.iter().filter_map(|r| r.error.as_ref()) {
        lines.push(format!("  ERROR {r}"));
    }
    for (name, verdicts) in by_name(runs) {
        let stats = Stats::of(&verdicts);
        let ok = stats.passed == stats.runs;
        // Kept states (already so at the fault, held through the reaction
        // time) have no measured time: say "kept" rather than a number.
        let kept = verdicts.iter().filter(|v| v.kept).count();
        let time = match (runs.len(), stats.quantile(0.5)) {
            (1, Some(t)) => format!("{t:>7.3}s"),
            (_, Some(_)) => stats.spread().unwrap_or_default(),
            (_, None) if kept > 0 => format!("{:>8}", "kept"),
            (_, None) => format!("{:>8}", "-"),
        };
        let rate = if runs.len() > 1 {
            let kept = if kept > 0 && stats.quantile(0.5).is_some() {
                format!(", kept in {kept}")
            } else {
                String::new()
            };
            format!(" {}/{}{kept}", stats.passed, stats.runs)
        } else {
            String::new()
        };
        lines.push(format!(
            "  {} {time}{rate}  {name}",
            if ok { "pass" } else { "FAIL" }
        ));
        if let Some(v) = verdicts.iter().rev().find(|v| !v.passed) {
            lines.push(format!("         {}", v.message));
        }
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::parse;
    use std::path::Path;

    fn result(passed: &[bool]) -> DrillResult {
        let e = parse(
            Path::new("x.toml"),
            "name = \"x\"\nnodes = 3\n[[fault]]\nid = \"f\"\nkind = \"kill\"\nnodes = [\"pve1\"]\n[[expect]]\nname = \"e\"\nafter = \"f\"\nnodes = \"all\"\nquorate = true\nwithin = \"5s\"\n",
        )
        .unwrap();
        DrillResult {
            experiment: e,
            log: Vec::new(),
            verdicts: passed
                .iter()
                .enumerate()
                .map(|(i, p)| Verdict {
                    name: format!("v{i}"),
                    invariant: false,
                    passed: *p,
                    measured: Some(1.0 + i as f64),
                    kept: false,
                    message: if *p {
                        "ok".into()
                    } else {
                        "expected X, observed Y at t=3s".into()
                    },
                })
                .collect(),
            error: None,
            wall: Duration::from_secs(10),
            retried: false,
        }
    }

    fn stalled(mut r: DrillResult) -> DrillResult {
        r.log.push(LogEvent::new(
            4.2,
            Some("pve2"),
            LogBody::Stall {
                source: "corosync".into(),
                late_ms: 1376,
                detail: "Corosync main process was not scheduled (@1) for 1375.7979 ms (threshold is 1320.0000 ms)".into(),
            },
        ));
        r
    }

    #[test]
    fn a_failure_beside_a_stall_is_disturbed_a_pass_is_not() {
        // A pass stays a pass, stall or not.
        let pass = stalled(result(&[true]));
        assert_eq!(pass.disturbed(), None);
        assert!(summary(&[pass]).starts_with("PASS x"));

        let fail = stalled(result(&[false]));
        let evidence = fail.disturbed().expect("disturbed");
        assert!(
            evidence.contains("pve2 stalled 1376 ms at t=4.2s"),
            "{evidence}"
        );
        let text = summary(std::slice::from_ref(&fail));
        assert!(text.starts_with("DISTURBED x"), "{text}");
        // JUnit: an error with the evidence, not a plain failure.
        let report = Report::deserialize_from_str(&junit(&[vec![fail]])).unwrap();
        match &report.test_suites[0].test_cases[0].status {
            TestCaseStatus::NonSuccess {
                kind, message, ty, ..
            } => {
                assert_eq!(*kind, NonSuccessKind::Error);
                assert_eq!(ty.as_ref().map(|t| t.as_str()), Some("disturbed"));
                assert!(
                    message.as_ref().is_some_and(|m| m.contains("1376 ms")),
                    "{message:?}"
                );
            }
            other => panic!("{other:?}"),
        }
        // corosync not scheduled because the drill paused it is the fault,
        // not the machine.
        let mut paused = result(&[false]);
        paused.log.push(LogEvent::new(
            4.2,
            Some("pve2"),
            LogBody::Stall {
                source: "pause".into(),
                late_ms: 9000,
                detail: "Corosync main process was not scheduled".into(),
            },
        ));
        assert_eq!(paused.disturbed(), None);
        // A disturbed run that was run again is reported, not counted.
        let mut retried = stalled(result(&[false]));
        retried.retried = true;
        let all = vec![vec![retried, result(&[true])]];
        assert_eq!(exit_status(&all, None), 0);
        let text = summary(&all[0]);
        assert!(
            text.starts_with("PASS x  (1 disturbed run(s) retried,") && text.contains("RETRIED"),
            "{text}"
        );
        // Without a stall the same failure is a plain failure.
        let plain = result(&[false]);
        assert_eq!(plain.disturbed(), None);
        assert!(summary(&[plain]).starts_with("FAIL x"));
        // Repeated: counted apart.
        let runs = vec![result(&[true]), stalled(result(&[false])), result(&[false])];
        let text = summary(&runs);
        assert!(
            text.starts_with("FAIL x  (1/3 runs passed, 1 disturbed,"),
            "{text}"
        );
    }

    #[test]
    fn junit_reads_back_with_failures_and_reruns() {
        // Three runs of one experiment: v0 passes, fails, passes; v1 fails
        // every time. Without a tolerance both cases fail, as the exit does.
        let runs = vec![
            result(&[true, false]),
            result(&[false, false]),
            result(&[true, false]),
        ];
        let xml = junit(&[runs]);
        let report = Report::deserialize_from_str(&xml).unwrap();
        let suite = &report.test_suites[0];
        assert_eq!(suite.name.as_str(), "x");
        let v0 = &suite.test_cases[0];
        match &v0.status {
            TestCaseStatus::NonSuccess {
                kind,
                reruns,
                description,
                ..
            } => {
                assert_eq!(*kind, NonSuccessKind::Failure);
                assert!(reruns.runs.is_empty());
                assert_eq!(
                    description.as_ref().map(|d| d.as_str()),
                    Some("failed in 1 of 3 runs")
                );
            }
            other => panic!("a case that failed in one run of three: {other:?}"),
        }
        let v1 = &suite.test_cases[1];
        match &v1.status {
            TestCaseStatus::NonSuccess {
                message, reruns, ..
            } => {
                assert_eq!(
                    message.as_ref().unwrap().as_str(),
                    "expected X, observed Y at t=3s"
                );
                assert_eq!(reruns.runs.len(), 2);
            }
            other => panic!("{other:?}"),
        }
        assert!(xml.contains("pass_rate") && xml.contains("2/3"), "{xml}");
    }

    /// What a CI job reads from the JUnit file: does any case fail?
    fn junit_fails(all: &[Vec<DrillResult>], tolerance: Option<f64>) -> bool {
        let report = Report::deserialize_from_str(&junit_with(all, tolerance)).unwrap();
        report
            .test_suites
            .iter()
            .flat_map(|s| &s.test_cases)
            .any(|c| status_failed(&c.status))
    }

    #[test]
    fn junit_console_json_and_exit_status_tell_one_story() {
        let cases: Vec<(&str, Vec<DrillResult>, Option<f64>, u8)> = vec![
            ("all pass", vec![result(&[true]), result(&[true])], None, 0),
            (
                "one run fails",
                vec![
                    result(&[true]),
                    result(&[false]),
                    result(&[true]),
                    result(&[true]),
                ],
                None,
                1,
            ),
            (
                "all fail",
                vec![result(&[false]), result(&[false])],
                None,
                1,
            ),
            (
                "one of four under --pass-rate 0.75",
                vec![
                    result(&[true]),
                    result(&[false]),
                    result(&[true]),
                    result(&[true]),
                ],
                Some(0.75),
                0,
            ),
            (
                "two of four under --pass-rate 0.75",
                vec![
                    result(&[false]),
                    result(&[false]),
                    result(&[true]),
                    result(&[true]),
                ],
                Some(0.75),
                1,
            ),
        ];
        for (what, runs, tolerance, exit) in cases {
            let all = vec![runs];
            assert_eq!(exit_status(&all, tolerance), exit, "{what}: exit status");
            assert_eq!(junit_fails(&all, tolerance), exit == 1, "{what}: JUnit");
            let console = summary_with(&all[0], tolerance);
            assert_eq!(console.starts_with("PASS"), exit == 0, "{what}: {console}");
            let json = json_lines_with(&all, tolerance);
            let last: serde_json::Value =
                serde_json::from_str(json.lines().last().unwrap()).unwrap();
            assert_eq!(last["kind"], "drill.summary", "{what}");
            assert_eq!(last["passed"], exit == 0, "{what}: {last}");
            if tolerance.is_some() && exit == 0 {
                assert!(
                    console.contains("1 flaky under --pass-rate 0.75"),
                    "{console}"
                );
                assert_eq!(last["flaky_runs"], 1);
                let report = Report::deserialize_from_str(&junit_with(&all, tolerance)).unwrap();
                match &report.test_suites[0].test_cases[0].status {
                    TestCaseStatus::Success { flaky_runs } => assert_eq!(flaky_runs.len(), 1),
                    other => panic!("{what}: {other:?}"),
                }
            }
            // Every event line says which run of how many it belongs to.
            let first: serde_json::Value =
                serde_json::from_str(json.lines().next().unwrap_or("{}")).unwrap_or_default();
            if !first.is_null() && first.get("of").is_some() {
                assert_eq!(first["of"], all[0].len());
            }
        }
    }

    /// A state kept from before the fault has no measured time: the
    /// summary says "kept", JUnit gives no time and a `kept` property.
    #[test]
    fn kept_states_say_kept_instead_of_a_time() {
        let mut r = result(&[true]);
        r.verdicts[0].measured = None;
        r.verdicts[0].kept = true;
        let s = summary(std::slice::from_ref(&r));
        assert!(s.contains("pass     kept  v0"), "{s}");
        let xml = junit(&[vec![r]]);
        let report = Report::deserialize_from_str(&xml).unwrap();
        let case = &report.test_suites[0].test_cases[0];
        assert_eq!(case.time, None);
        assert!(xml.contains("name=\"kept\" value=\"true\""), "{xml}");
    }

    /// A measured time that is not a time (a clock stepped back, a NaN)
    /// leaves JUnit's time out instead of panicking in the report.
    #[test]
    fn negative_and_nan_times_never_panic() {
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            let run = || {
                let mut r = result(&[false, true]);
                r.verdicts[0].measured = Some(bad);
                r.verdicts[1].measured = Some(bad);
                r
            };
            // Two failing runs: the case's time and a rerun's.
            let all = [vec![run(), run()]];
            let report = Report::deserialize_from_str(&junit(&all)).unwrap();
            assert!(report.test_suites[0]
                .test_cases
                .iter()
                .all(|c| c.time.is_none()));
            assert!(summary(&all[0]).contains("FAIL"));
            assert!(!json_lines(&all).is_empty());
        }
    }

    #[test]
    fn summary_reads_in_one_glance() {
        let s = summary(&[result(&[true, false])]);
        assert!(s.starts_with("FAIL x"), "{s}");
        assert!(s.contains("pass   1.000s  v0"), "{s}");
        assert!(
            s.contains("FAIL   2.000s  v1") && s.contains("expected X, observed Y"),
            "{s}"
        );
    }
}
