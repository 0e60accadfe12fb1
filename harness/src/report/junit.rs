//! JUnit XML (quick-junit): one testsuite per drill, one testcase per
//! expectation and invariant.

use std::time::Duration;

use quick_junit::{
    NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestRerun, TestSuite,
};

use super::{by_name, DrillOutcome, DrillResult, Stats};
use crate::judge::Verdict;

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
            // Outside its usual range in the history (the latest run that was).
            if let Some(g) = runs
                .iter()
                .rev()
                .flat_map(|r| &r.regressions)
                .find(|g| g.name == name)
            {
                case.add_property(Property::new("regression", g.words()));
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

/// A measured time as JUnit's `time`; none for a time that is not one
/// (negative, NaN: `Duration::from_secs_f64` panics on those).
fn junit_time(seconds: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(seconds).ok()
}

pub(super) fn status_failed(status: &TestCaseStatus) -> bool {
    matches!(status, TestCaseStatus::NonSuccess { .. })
}
