//! What `corodrill history` prints (pure): each drill's recent runs on
//! each cluster as a table, each measured time's median and spread over
//! them, and what differs between two runs.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use super::regression::{diff, Change, Range};
use super::{DrillKey, StoredRun};

/// UTC, to the second: "2026-12-02T09:50:01Z".
pub fn when(started: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(started.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A run's result in one word.
pub fn result_word(run: &StoredRun) -> &'static str {
    if run.error.is_some() {
        "ERROR"
    } else if run.passed {
        "PASS"
    } else if run.disturbed {
        "DISTURBED"
    } else {
        "FAIL"
    }
}

/// One drill on one cluster: its runs (oldest first) as a table, then each
/// measured time's median and spread over them.
pub fn drill_table(key: &DrillKey, runs: &[StoredRun]) -> String {
    let mut out = format!(
        "{} / {}: {} run(s){}\n",
        key.cluster,
        key.drill,
        key.runs,
        if runs.len() < key.runs {
            format!(", the last {} below", runs.len())
        } else {
            String::new()
        }
    );
    out.push_str(&format!(
        "  {:>6}  {:<20}  {:<9}  {:>7}  {}\n",
        "run", "started (UTC)", "result", "wall", "changed since the run before"
    ));
    let mut before: Option<&StoredRun> = None;
    for run in runs {
        let changed = before.map_or_else(Vec::new, |b| diff(&b.facts, &run.facts));
        let regressions = run
            .verdicts
            .iter()
            .filter(|v| v.regression.is_some())
            .count();
        let mut notes: Vec<String> = Vec::new();
        if regressions > 0 {
            notes.push(format!("REGRESSION ({regressions})"));
        }
        if !changed.is_empty() {
            notes.push(
                changed
                    .iter()
                    .map(Change::words)
                    .collect::<Vec<_>>()
                    .join(", "),
            );
        }
        let line = format!(
            "  {:>6}  {:<20}  {:<9}  {:>6.1}s  {}",
            run.id,
            when(run.started),
            result_word(run),
            run.wall,
            notes.join(" ")
        );
        out.push_str(line.trim_end());
        out.push('\n');
        // A run whose agents were not reached knows nothing of the
        // cluster: the next one is compared with the one before it.
        if run.facts.contains_key("nodes") {
            before = Some(run);
        }
    }
    // Each measured time over these runs, in the order the drill names them.
    let mut names: Vec<&str> = Vec::new();
    let mut times: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for run in runs.iter().filter(|r| r.error.is_none() && !r.disturbed) {
        for v in &run.verdicts {
            if let Some(t) = v.measured {
                if !names.contains(&v.name.as_str()) {
                    names.push(&v.name);
                }
                times.entry(&v.name).or_default().push(t);
            }
        }
    }
    if !names.is_empty() {
        out.push_str(&format!(
            "  {:>8}  {:>8}  {:>8}  {:>8}  {:>4}  {:>8}  measured time\n",
            "median", "min", "p95", "max", "runs", "latest"
        ));
    }
    let latest = runs.last();
    for name in names {
        let Some(range) = times.get(name).and_then(|t| Range::of(t)) else {
            continue;
        };
        let last = latest.and_then(|r| r.verdicts.iter().find(|v| v.name == name));
        out.push_str(&format!(
            "  {:>7.3}s  {:>7.3}s  {:>7.3}s  {:>7.3}s  {:>4}  {:>8}  {name}{}\n",
            range.median,
            range.min,
            range.p95,
            range.max,
            range.runs,
            last.and_then(|v| v.measured)
                .map_or_else(|| "-".to_owned(), |t| format!("{t:.3}s")),
            if last.is_some_and(|v| v.regression.is_some()) {
                "  REGRESSION"
            } else {
                ""
            }
        ));
    }
    out
}

/// Every drill's table, one after the other.
pub fn tables(groups: &[(DrillKey, Vec<StoredRun>)]) -> String {
    if groups.is_empty() {
        return "no runs recorded\n".into();
    }
    groups
        .iter()
        .map(|(key, runs)| drill_table(key, runs))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What differs between two runs: which drill and cluster, the facts
/// (versions, settings, fingerprints of corosync.conf and the drill file),
/// and each verdict and measured time.
pub fn diff_text(a: &StoredRun, b: &StoredRun) -> String {
    let mut out = format!(
        "run {} ({}, {} / {}, {}) -> run {} ({}, {} / {}, {})\n",
        a.id,
        when(a.started),
        a.cluster,
        a.drill,
        result_word(a),
        b.id,
        when(b.started),
        b.cluster,
        b.drill,
        result_word(b)
    );
    let changed = diff(&a.facts, &b.facts);
    if changed.is_empty() {
        out.push_str("  the same cluster settings, versions and drill file\n");
    } else {
        out.push_str("  changed:\n");
        for c in &changed {
            out.push_str(&format!("    {}\n", c.words()));
        }
    }
    let mut names: Vec<&str> = a.verdicts.iter().map(|v| v.name.as_str()).collect();
    for v in &b.verdicts {
        if !names.contains(&v.name.as_str()) {
            names.push(&v.name);
        }
    }
    out.push_str("  verdicts:\n");
    let show = |run: &StoredRun, name: &str| match run.verdicts.iter().find(|v| v.name == name) {
        None => "-".to_owned(),
        Some(v) => format!(
            "{} {}",
            if v.passed { "pass" } else { "FAIL" },
            v.measured.map_or_else(
                || if v.kept { "kept".into() } else { "-".into() },
                |t| format!("{t:.3}s")
            )
        ),
    };
    for name in names {
        let (x, y) = (show(a, name), show(b, name));
        out.push_str(&format!(
            "    {x:<16} {} {y:<16} {name}\n",
            if x == y { " " } else { ">" }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::sample_run;

    fn run(id: i64, token: &str, t: f64, regression: bool) -> StoredRun {
        sample_run(id, 1_764_667_801 + id, "lab", token, t, regression)
    }

    #[test]
    fn the_table_names_changes_regressions_and_the_spread() {
        let runs = vec![
            run(1, "1000", 3.0, false),
            run(2, "1000", 4.0, false),
            run(3, "3000", 9.0, true),
        ];
        let key = DrillKey {
            cluster: "lab".into(),
            drill: "isolate".into(),
            runs: 7,
            last: 0,
        };
        let text = drill_table(&key, &runs);
        assert!(
            text.contains("lab / isolate: 7 run(s), the last 3 below"),
            "{text}"
        );
        assert!(
            text.contains("REGRESSION (1) totem.token 1000 -> 3000"),
            "{text}"
        );
        assert!(text.contains("4.000s"), "median: {text}");
        assert!(
            text.contains("9.000s  majority keeps quorum  REGRESSION"),
            "{text}"
        );
        assert!(text.contains("2025-12-02T09:30:02Z"), "{text}");
    }

    #[test]
    fn a_diff_names_settings_and_times_that_moved() {
        let text = diff_text(&run(1, "1000", 3.0, false), &run(3, "3000", 9.0, true));
        assert!(text.contains("totem.token 1000 -> 3000"), "{text}");
        assert!(
            text.contains("pass 3.000s      > pass 9.000s      majority keeps quorum"),
            "{text}"
        );
        let same = diff_text(&run(1, "1000", 3.0, false), &run(2, "1000", 3.0, false));
        assert!(same.contains("the same cluster settings"), "{same}");
    }
}
