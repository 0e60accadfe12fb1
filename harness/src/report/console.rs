//! The console summary: what a person reads in one glance.

use super::{by_name, DrillOutcome, DrillResult, Stats};

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
        let failure = verdicts.iter().rev().find(|v| !v.passed);
        if let Some(v) = failure {
            lines.push(format!("         {}", v.message));
        }
        // Outside its usual range in the history; said once (a regression
        // that failed the verdict, `--fail-on-regression`, said it above).
        if let Some(g) = runs
            .iter()
            .rev()
            .flat_map(|r| &r.regressions)
            .find(|g| g.name == name)
            .filter(|_| !failure.is_some_and(|v| v.message.starts_with("regression: ")))
        {
            lines.push(format!("         REGRESSION {}", g.words()));
        }
    }
    lines.join("\n")
}
