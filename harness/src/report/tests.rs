//! The reports' tests: each format and the verdict rule they share.

use super::console::*;
use super::jsonl::*;
use super::junit::*;
use super::*;
use crate::experiment::parse;
use quick_junit::{NonSuccessKind, Report, TestCaseStatus};
use std::path::Path;
use std::time::Duration;

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
        cluster: None,
        regressions: Vec::new(),
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
        let last: serde_json::Value = serde_json::from_str(json.lines().last().unwrap()).unwrap();
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

/// A loaded machine stalls every node again and again: the evidence names
/// the longest few and counts the rest, instead of one line per stall.
#[test]
fn many_stalls_are_summed_up() {
    let mut fail = result(&[false]);
    for i in 0..30u64 {
        fail.log.push(LogEvent::new(
            3.0 + i as f64 * 0.5,
            Some(["pve1", "pve2", "pve3"][i as usize % 3]),
            LogBody::Stall {
                source: "agent".into(),
                late_ms: 300 + i * 10,
                detail: String::new(),
            },
        ));
    }
    let evidence = fail.disturbed().expect("disturbed");
    assert!(
        evidence.starts_with("the machine stalled: pve3 stalled 590 ms at t=17.5s")
            && evidence.ends_with(
                "; and 25 shorter stall(s) from t=3.0s to t=17.5s (all in the event log)"
            )
            && evidence.matches(" stalled ").count() == 5,
        "{evidence}"
    );
}

fn regressed(mut r: DrillResult) -> DrillResult {
    r.regressions = vec![crate::history::regression::Regression {
        name: "v0".into(),
        measured: 9.0,
        limit: 4.625,
        median: 3.5,
        p95: 3.7,
        runs: 5,
        changed: vec![crate::history::regression::Change {
            key: "totem.token".into(),
            before: Some("1000".into()),
            after: Some("3000".into()),
        }],
    }];
    r
}

#[test]
fn a_regression_is_said_in_the_console_junit_and_json() {
    let all = vec![vec![regressed(result(&[true, true]))]];
    let console = summary(&all[0]);
    assert!(
        console.contains("REGRESSION 9.000s beyond its usual range"),
        "{console}"
    );
    assert!(
        console.contains("since the last run: totem.token 1000 -> 3000"),
        "{console}"
    );
    assert!(
        console.starts_with("PASS"),
        "a regression alone passes: {console}"
    );
    let xml = junit(&all);
    assert!(
        xml.contains("name=\"regression\" value=\"9.000s beyond its usual range"),
        "{xml}"
    );
    let json = json_lines(&all);
    let line: serde_json::Value = json
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|l| l["kind"] == "regression")
        .expect("a regression line");
    assert_eq!(line["name"], "v0");
    assert_eq!(line["measured"], 9.0);
    assert_eq!(line["changed"][0], "totem.token 1000 -> 3000");
    assert_eq!(exit_status(&all, None), 0);
}

#[test]
fn fail_on_regression_fails_the_expectation_everywhere() {
    let mut r = regressed(result(&[true, true]));
    crate::history::regression::fail_regressed(&mut r.verdicts, &r.regressions.clone());
    let all = vec![vec![r]];
    let console = summary(&all[0]);
    assert!(console.starts_with("FAIL"), "{console}");
    // Said once, as the failure's message.
    assert_eq!(
        console.matches("beyond its usual range").count(),
        1,
        "{console}"
    );
    let xml = junit(&all);
    assert!(
        xml.contains("<failure message=\"regression: 9.000s"),
        "{xml}"
    );
    assert_eq!(exit_status(&all, None), 1);
}

#[test]
fn metrics_label_each_drill_and_expectation() {
    let all = vec![vec![regressed(result(&[true, false]))]];
    let text = super::prometheus::metrics("lab \"a\"", &all, None, 1_700_000_000.0);
    assert!(
        text.contains("corodrill_drill_passed{cluster=\"lab \\\"a\\\"\",drill=\"x\"} 0"),
        "{text}"
    );
    assert!(
        text.contains(
            "corodrill_expectation_seconds{cluster=\"lab \\\"a\\\"\",drill=\"x\",expectation=\"v0\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("corodrill_expectation_regression{cluster=\"lab \\\"a\\\"\",drill=\"x\",expectation=\"v0\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("corodrill_expectation_passed{cluster=\"lab \\\"a\\\"\",drill=\"x\",expectation=\"v1\"} 0"),
        "{text}"
    );
    assert!(text.contains("# TYPE corodrill_expectation_seconds gauge"));
}

/// Debian's promtool (package prometheus, in scripts/install-deps) lints
/// the text file as Prometheus would read it.
#[test]
fn promtool_accepts_the_metrics() {
    use std::io::Write;
    let all = vec![
        vec![regressed(result(&[true, false]))],
        vec![result(&[true]), result(&[true])],
    ];
    let text = super::prometheus::metrics("pve", &all, None, 1_700_000_000.0);
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => panic!("promtool (Debian package prometheus; make deps installs it): {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
