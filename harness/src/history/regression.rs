//! The regression rule (pure): a measured time compared with the same
//! cluster's earlier runs of the same drill, and what changed since the
//! last of them. docs/history.md states the rule in the operator's words;
//! the constants here are the rule.

use std::collections::BTreeMap;

use serde::Serialize;

/// How many earlier runs the usual range is drawn from (the latest ones).
pub const BASELINE_RUNS: usize = 20;
/// Fewer earlier runs than this with a measured time: no usual range yet,
/// nothing is flagged.
pub const MIN_RUNS: usize = 5;
/// The limit is the baseline's p95 times this...
pub const FACTOR: f64 = 1.25;
/// ...or the p95 plus this many seconds, whichever is larger: a drill of
/// sub-second times does not flag a few hundred milliseconds of noise.
pub const MARGIN_S: f64 = 0.5;

/// One measured time outside its usual range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Regression {
    /// The expectation (or invariant) whose time it is.
    pub name: String,
    /// This run's time, seconds.
    pub measured: f64,
    /// The limit it went beyond: max(p95 × 1.25, p95 + 0.5 s).
    pub limit: f64,
    /// The earlier runs' median and p95, seconds.
    pub median: f64,
    pub p95: f64,
    /// How many earlier runs the range was drawn from.
    pub runs: usize,
    /// What changed since the last earlier run (settings, versions, the
    /// drill file); empty when nothing did.
    pub changed: Vec<Change>,
}

impl Regression {
    /// "6.210s beyond its usual range (median 3.512s, p95 3.700s over 12
    /// runs; limit 4.625s); since the last run: totem.token 1000 -> 3000".
    pub fn words(&self) -> String {
        format!(
            "{:.3}s beyond its usual range (median {:.3}s, p95 {:.3}s over {} runs; limit {:.3}s); {}",
            self.measured,
            self.median,
            self.p95,
            self.runs,
            self.limit,
            changes_words(&self.changed)
        )
    }
}

/// "since the last run: a -> b, ..." or "nothing changed since the last run".
pub fn changes_words(changed: &[Change]) -> String {
    if changed.is_empty() {
        return "nothing changed since the last run".into();
    }
    format!(
        "since the last run: {}",
        changed
            .iter()
            .map(Change::words)
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// One fact that differs between two runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// `totem.token`, `corosync.version.pve1`, `drill.sha256`, ...
    pub key: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

impl Change {
    pub fn words(&self) -> String {
        let show = |v: &Option<String>| match v {
            // Fingerprints: the first 12 hex digits say enough.
            Some(v) if self.key.contains("sha256") => v.chars().take(12).collect(),
            Some(v) => v.clone(),
            None => "(none)".into(),
        };
        format!(
            "{} {} -> {}",
            self.key,
            show(&self.before),
            show(&self.after)
        )
    }
}

/// The facts that differ between two runs, by key.
pub fn diff(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<Change> {
    let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| before.get(*k) != after.get(*k))
        .map(|k| Change {
            key: k.clone(),
            before: before.get(k).cloned(),
            after: after.get(k).cloned(),
        })
        .collect()
}

/// The q-quantile of sorted samples, nearest rank (the smallest sample
/// with at least q of them at or below it). None for no samples.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The usual range of one measured time over earlier runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    pub median: f64,
    pub p95: f64,
    pub min: f64,
    pub max: f64,
    pub runs: usize,
}

impl Range {
    /// The range of these samples (any order); None for none.
    pub fn of(samples: &[f64]) -> Option<Range> {
        let mut sorted: Vec<f64> = samples.iter().copied().filter(|t| t.is_finite()).collect();
        sorted.sort_by(f64::total_cmp);
        Some(Range {
            median: quantile(&sorted, 0.5)?,
            p95: quantile(&sorted, 0.95)?,
            min: *sorted.first()?,
            max: *sorted.last()?,
            runs: sorted.len(),
        })
    }

    /// Beyond it: max(p95 × FACTOR, p95 + MARGIN_S).
    pub fn limit(&self) -> f64 {
        (self.p95 * FACTOR).max(self.p95 + MARGIN_S)
    }
}

/// `--fail-on-regression`: each verdict whose time regressed fails, its
/// message the regression's words, so that the console, the JUnit, the
/// JSON and the exit status all say so as they say any failure.
pub fn fail_regressed(verdicts: &mut [crate::judge::Verdict], regressions: &[Regression]) {
    for v in verdicts.iter_mut() {
        if let Some(r) = regressions.iter().find(|r| r.name == v.name) {
            v.passed = false;
            v.message = format!("regression: {}", r.words());
        }
    }
}

/// The measured times of this run outside their usual range. `earlier`
/// holds, by expectation name, the times of the latest earlier runs
/// (at most [`BASELINE_RUNS`] used, newest last); `changed` is what
/// changed since the last earlier run, named in each regression.
pub fn regressions(
    measured: &[(String, f64)],
    earlier: &BTreeMap<String, Vec<f64>>,
    changed: &[Change],
) -> Vec<Regression> {
    measured
        .iter()
        .filter_map(|(name, t)| {
            let times = earlier.get(name)?;
            let recent = &times[times.len().saturating_sub(BASELINE_RUNS)..];
            let range = Range::of(recent)?;
            if range.runs < MIN_RUNS || *t <= range.limit() {
                return None;
            }
            Some(Regression {
                name: name.clone(),
                measured: *t,
                limit: range.limit(),
                median: range.median,
                p95: range.p95,
                runs: range.runs,
                changed: changed.to_vec(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn earlier(name: &str, times: &[f64]) -> BTreeMap<String, Vec<f64>> {
        BTreeMap::from([(name.to_owned(), times.to_vec())])
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let s = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile(&s, 0.5), Some(3.0));
        assert_eq!(quantile(&s, 0.95), Some(5.0));
        assert_eq!(quantile(&s, 0.0), Some(1.0));
        assert_eq!(quantile(&[], 0.5), None);
        let twenty: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(quantile(&twenty, 0.95), Some(19.0));
    }

    #[test]
    fn a_time_beyond_the_limit_is_flagged_with_what_changed() {
        let changed = vec![Change {
            key: "totem.token".into(),
            before: Some("1000".into()),
            after: Some("3000".into()),
        }];
        let r = regressions(
            &[("majority keeps quorum".into(), 6.2)],
            &earlier("majority keeps quorum", &[3.4, 3.5, 3.6, 3.5, 3.7]),
            &changed,
        );
        assert_eq!(r.len(), 1);
        // p95 of five runs is their largest; 3.7 × 1.25 > 3.7 + 0.5.
        assert!((r[0].limit - 4.625).abs() < 1e-9, "{r:?}");
        assert_eq!(r[0].runs, 5);
        let words = r[0].words();
        assert!(words.contains("6.200s beyond"), "{words}");
        assert!(words.contains("totem.token 1000 -> 3000"), "{words}");
    }

    #[test]
    fn within_the_limit_or_too_few_runs_is_not_flagged() {
        let times = [3.4, 3.5, 3.6, 3.5, 3.7];
        let e = earlier("x", &times);
        assert!(regressions(&[("x".into(), 4.6)], &e, &[]).is_empty());
        // Four earlier runs are not enough for a usual range.
        let e4 = earlier("x", &times[..4]);
        assert!(regressions(&[("x".into(), 60.0)], &e4, &[]).is_empty());
        // No history for that name at all.
        assert!(regressions(&[("y".into(), 60.0)], &e, &[]).is_empty());
    }

    #[test]
    fn short_times_get_the_half_second_margin() {
        // p95 0.4 s: the limit is 0.9 s, not 0.5 s.
        let e = earlier("x", &[0.3, 0.35, 0.4, 0.3, 0.32]);
        assert!(regressions(&[("x".into(), 0.85)], &e, &[]).is_empty());
        assert_eq!(regressions(&[("x".into(), 0.95)], &e, &[]).len(), 1);
    }

    #[test]
    fn only_the_latest_twenty_runs_count() {
        // Slow long ago, fast lately: the old slow runs no longer widen
        // the range.
        let mut times = vec![10.0; 30];
        times.extend([3.0; 20]);
        let e = earlier("x", &times);
        let r = regressions(&[("x".into(), 5.0)], &e, &[]);
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].runs, 20);
    }

    #[test]
    fn diff_names_each_changed_added_and_removed_fact() {
        let a = BTreeMap::from([
            ("totem.token".to_owned(), "1000".to_owned()),
            ("corosync.version.pve1".to_owned(), "3.1.7".to_owned()),
            ("two_node".to_owned(), "1".to_owned()),
        ]);
        let b = BTreeMap::from([
            ("totem.token".to_owned(), "3000".to_owned()),
            ("corosync.version.pve1".to_owned(), "3.1.7".to_owned()),
            ("drill.sha256".to_owned(), "abcdef0123456789".to_owned()),
        ]);
        let d = diff(&a, &b);
        let words: Vec<String> = d.iter().map(Change::words).collect();
        assert_eq!(
            words,
            [
                "drill.sha256 (none) -> abcdef012345",
                "totem.token 1000 -> 3000",
                "two_node 1 -> (none)"
            ]
        );
        assert!(diff(&a, &a).is_empty());
        assert_eq!(changes_words(&[]), "nothing changed since the last run");
    }
}
