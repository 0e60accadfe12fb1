//! The run's verdicts and measured times in Prometheus's text exposition
//! format, for node_exporter's textfile collector (or a Pushgateway): one
//! series per drill and per expectation, labelled by cluster, drill and
//! expectation. Each drill speaks through its latest counted run.

use std::fmt::Write;

use super::{DrillOutcome, DrillResult};

/// A label value as the format wants it: backslash, double quote and
/// newline escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One metric family: its HELP and TYPE lines, then its samples.
struct Family {
    name: &'static str,
    help: &'static str,
    samples: Vec<(String, f64)>,
}

/// The text file. `cluster` is the inventory's name; `now` the time of the
/// run's end, seconds since the Unix epoch.
pub fn metrics(
    cluster: &str,
    all: &[Vec<DrillResult>],
    tolerance: Option<f64>,
    now: f64,
) -> String {
    let family = |name, help| Family {
        name,
        help,
        samples: Vec::new(),
    };
    let mut drill_passed = family(
        "corodrill_drill_passed",
        "Whether the drill passed: 1 passed, 0 failed (every run counted, under --pass-rate).",
    );
    let mut drill_runs = family("corodrill_drill_runs", "How many times the drill ran.");
    let mut drill_seconds = family(
        "corodrill_drill_duration_seconds",
        "How long the drill's latest run took, from connecting to its verdicts.",
    );
    let mut drill_time = family(
        "corodrill_drill_last_run_timestamp_seconds",
        "When the drill last ran (Unix time).",
    );
    let mut passed = family(
        "corodrill_expectation_passed",
        "Whether the expectation or invariant held in the drill's latest run: 1 held, 0 failed.",
    );
    let mut seconds = family(
        "corodrill_expectation_seconds",
        "The measured time of the expectation in the drill's latest run: from its anchor to the state reached.",
    );
    let mut regression = family(
        "corodrill_expectation_regression",
        "Whether the measured time was outside its usual range in the cluster's history: 1 outside, 0 within.",
    );
    for runs in all {
        let Some(latest) = runs.iter().rev().find(|r| !r.retried).or(runs.last()) else {
            continue;
        };
        let drill = format!(
            "cluster=\"{}\",drill=\"{}\"",
            label(cluster),
            label(&latest.experiment.name)
        );
        let outcome = DrillOutcome::of(runs, tolerance);
        drill_passed
            .samples
            .push((drill.clone(), f64::from(u8::from(outcome.passed))));
        drill_runs
            .samples
            .push((drill.clone(), outcome.runs as f64));
        drill_seconds
            .samples
            .push((drill.clone(), latest.wall.as_secs_f64()));
        drill_time.samples.push((drill.clone(), now));
        for v in &latest.verdicts {
            let labels = format!("{drill},expectation=\"{}\"", label(&v.name));
            passed
                .samples
                .push((labels.clone(), f64::from(u8::from(v.passed))));
            if let Some(t) = v.measured.filter(|t| t.is_finite()) {
                seconds.samples.push((labels.clone(), t));
                let flagged = latest.regressions.iter().any(|g| g.name == v.name);
                regression
                    .samples
                    .push((labels, f64::from(u8::from(flagged))));
            }
        }
    }
    let mut out = String::new();
    for f in [
        drill_passed,
        drill_runs,
        drill_seconds,
        drill_time,
        passed,
        seconds,
        regression,
    ] {
        if f.samples.is_empty() {
            continue;
        }
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} gauge", f.name);
        for (labels, value) in f.samples {
            let _ = writeln!(out, "{}{{{labels}}} {value}", f.name);
        }
    }
    out
}
