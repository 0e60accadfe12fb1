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
    let mut names: Vec<&str> = Vec::new();
    for r in runs {
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

/// JUnit XML: one testsuite per experiment, one testcase per expectation and
/// invariant, its time the measured time. With repeated runs, the earlier
/// runs are recorded as flaky or rerun entries.
pub fn junit(all: &[Vec<DrillResult>]) -> String {
    let mut report = Report::new("corodrill");
    for runs in all {
        let Some(first) = runs.first() else { continue };
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
            // The run the last verdict comes from: disturbed, its failure
            // is an error with the evidence, not a plain failure.
            let disturbed = runs
                .iter()
                .rev()
                .find(|r| r.verdicts.iter().any(|v| v.name == name))
                .and_then(DrillResult::disturbed);
            let mut status = if last.passed {
                TestCaseStatus::success()
            } else if let Some(evidence) = &disturbed {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
                s.set_message(format!("disturbed ({evidence}): {}", last.message));
                s.set_type("disturbed");
                s
            } else {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(last.message.clone());
                s.set_type(if last.invariant {
                    "invariant"
                } else {
                    "expectation"
                });
                s
            };
            // Earlier runs: failures of a passing case make it flaky; all runs
            // of a failing case are reruns.
            for earlier in &verdicts[..verdicts.len() - 1] {
                if !earlier.passed || !last.passed {
                    let kind = if earlier.passed {
                        continue;
                    } else {
                        NonSuccessKind::Failure
                    };
                    let mut rerun = TestRerun::new(kind);
                    rerun.set_message(earlier.message.clone());
                    if let Some(m) = earlier.measured {
                        rerun.set_time(Duration::from_secs_f64(m));
                    }
                    status.add_rerun(rerun);
                }
            }
            let mut case = TestCase::new(name.to_owned(), status);
            case.set_classname(first.experiment.name.clone());
            if let Some(m) = last.measured {
                case.set_time(Duration::from_secs_f64(m));
            }
            // A state kept from before the fault has no time to measure:
            // no time, and a property that says why.
            if last.kept {
                case.add_property(Property::new("kept", "true"));
            }
            if last.passed {
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
        report.add_test_suite(suite);
    }
    report
        .to_string()
        .unwrap_or_else(|e| format!("<!-- cannot write JUnit: {e} -->\n"))
}

#[derive(Serialize)]
struct Line<'a> {
    experiment: &'a str,
    run: usize,
    #[serde(flatten)]
    event: &'a LogEvent,
}

/// The JSON Lines event log, the verdicts last (a kept state's
/// `measured` is null: nothing arrived to be timed).
pub fn json_lines(all: &[Vec<DrillResult>]) -> String {
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
                    event,
                };
                if let Ok(text) = serde_json::to_string(&line) {
                    out.push_str(&text);
                    out.push('\n');
                }
            }
        }
    }
    out
}

/// What a person reads in one glance: each expectation, its verdict, its
/// measured time; failures with expected, observed and when.
pub fn summary(runs: &[DrillResult]) -> String {
    let Some(first) = runs.first() else {
        return String::new();
    };
    let passed = runs.iter().filter(|r| r.passed()).count();
    let disturbed: Vec<String> = runs.iter().filter_map(DrillResult::disturbed).collect();
    let wall: f64 = runs.iter().map(|r| r.wall.as_secs_f64()).sum::<f64>() / runs.len() as f64;
    let verdict = if passed == runs.len() {
        "PASS"
    } else if disturbed.len() == runs.len() - passed {
        // Every failing run failed while the machine stalled.
        "DISTURBED"
    } else {
        "FAIL"
    };
    let mut lines = vec![format!(
        "{verdict} {}  ({}{}{:.1}s)",
        first.experiment.name,
        if runs.len() > 1 {
            format!("{passed}/{} runs passed, ", runs.len())
        } else {
            String::new()
        },
        if runs.len() > 1 && !disturbed.is_empty() {
            format!("{} disturbed, ", disturbed.len())
        } else {
            String::new()
        },
        wall
    )];
    for evidence in &disturbed {
        lines.push(format!(
            "  DISTURBED {evidence}: the failures below may be the machine's, not the cluster's"
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
    fn junit_reads_back_with_failures_and_flaky_reruns() {
        // Three runs of one experiment: v0 passes, fails, passes (flaky);
        // v1 fails every time.
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
            TestCaseStatus::Success { flaky_runs } => assert_eq!(flaky_runs.len(), 1),
            other => panic!("{other:?}"),
        }
        assert_eq!(v0.time, Some(Duration::from_secs(1)));
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
