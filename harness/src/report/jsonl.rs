//! The JSON Lines event log: every run's events, its verdicts, and one
//! summary line per drill.

use serde::Serialize;

use super::{DrillOutcome, DrillResult};
use crate::log::{LogBody, LogEvent};

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
            let regressions: Vec<LogEvent> = r
                .regressions
                .iter()
                .map(|g| {
                    LogEvent::new(
                        end,
                        None,
                        LogBody::Regression {
                            name: g.name.clone(),
                            measured: g.measured,
                            limit: g.limit,
                            median: g.median,
                            p95: g.p95,
                            runs: g.runs,
                            changed: g.changed.iter().map(|c| c.words()).collect(),
                        },
                    )
                })
                .collect();
            for event in r
                .log
                .iter()
                .chain(&verdicts)
                .chain(&regressions)
                .chain(&disturbed)
            {
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
