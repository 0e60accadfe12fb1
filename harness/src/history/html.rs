//! `corodrill history --html`: one self-contained page (minijinja, the
//! template in `harness/templates/history.html`, like the run report's):
//! each drill on each cluster, a trend chart (inline SVG) per measured
//! time with its median and the usual range's limit, and its runs with
//! what changed. Pure: data in, text out.

use std::collections::BTreeMap;

use serde::Serialize;

use super::regression::{diff, Change, Range, BASELINE_RUNS, MIN_RUNS};
use super::render::{result_word, when};
use super::{DrillKey, StoredRun};

const TEMPLATE: &str = include_str!("../../templates/history.html");

/// The chart's size in pixels; the left margin holds the axis' labels.
const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 140.0;
const LEFT: f64 = 40.0;
const PAD: f64 = 10.0;

#[derive(Serialize)]
struct Page {
    title: String,
    generated: String,
    version: &'static str,
    clusters: usize,
    last: usize,
    groups: Vec<Group>,
}

#[derive(Serialize)]
struct Group {
    anchor: String,
    cluster: String,
    drill: String,
    runs: usize,
    shown: usize,
    latest_result: &'static str,
    latest_when: String,
    latest_regressions: usize,
    charts: Vec<Chart>,
    rows: Vec<Row>,
}

#[derive(Serialize)]
struct Row {
    id: i64,
    when: String,
    result: &'static str,
    wall: String,
    regressions: usize,
    changed: String,
}

#[derive(Serialize)]
struct Chart {
    name: String,
    median: String,
    p95: String,
    latest: String,
    regression: bool,
    width: f64,
    height: f64,
    left: f64,
    top: String,
    median_y: f64,
    limit_y: Option<f64>,
    polyline: String,
    points: Vec<Point>,
}

#[derive(Serialize)]
struct Point {
    x: f64,
    y: f64,
    regression: bool,
    title: String,
}

/// One chart: the measured times of `name` over `runs` (oldest first).
fn chart(name: &str, runs: &[StoredRun]) -> Option<Chart> {
    // (index of the run, its time, flagged)
    let samples: Vec<(usize, f64, bool)> = runs
        .iter()
        .enumerate()
        .filter(|(_, r)| r.error.is_none())
        .filter_map(|(i, r)| {
            let v = r.verdicts.iter().find(|v| v.name == name)?;
            Some((i, v.measured?, v.regression.is_some()))
        })
        .filter(|(_, t, _)| t.is_finite())
        .collect();
    let counted: Vec<f64> = runs
        .iter()
        .filter(|r| r.error.is_none() && !r.disturbed)
        .filter_map(|r| r.verdicts.iter().find(|v| v.name == name)?.measured)
        .collect();
    let range = Range::of(&counted)?;
    // The usual range the latest run was held to: the runs before it.
    let before: Vec<f64> = counted[..counted.len() - 1]
        .iter()
        .rev()
        .take(BASELINE_RUNS)
        .copied()
        .collect();
    let limit = Range::of(&before)
        .filter(|r| r.runs >= MIN_RUNS)
        .map(|r| r.limit());
    let top = samples
        .iter()
        .map(|s| s.1)
        .chain(limit)
        .fold(0.0_f64, f64::max)
        .max(0.001)
        * 1.1;
    let x = |i: usize| {
        let span = (runs.len().max(2) - 1) as f64;
        LEFT + PAD + (WIDTH - LEFT - 2.0 * PAD) * i as f64 / span
    };
    let y = |t: f64| HEIGHT - PAD - (HEIGHT - 2.0 * PAD) * (t / top);
    let points: Vec<Point> = samples
        .iter()
        .map(|&(i, t, regression)| Point {
            x: round(x(i)),
            y: round(y(t)),
            regression,
            title: format!(
                "run {} ({}): {t:.3}s{}",
                runs[i].id,
                when(runs[i].started),
                if regression { ", a regression" } else { "" }
            ),
        })
        .collect();
    let latest = runs
        .last()
        .and_then(|r| r.verdicts.iter().find(|v| v.name == name));
    Some(Chart {
        name: name.to_owned(),
        median: format!("{:.3}s", range.median),
        p95: format!("{:.3}s", range.p95),
        latest: latest
            .and_then(|v| v.measured)
            .map_or_else(|| "-".into(), |t| format!("{t:.3}s")),
        regression: latest.is_some_and(|v| v.regression.is_some()),
        width: WIDTH,
        height: HEIGHT,
        left: LEFT,
        top: format!("{top:.1} s"),
        median_y: round(y(range.median)),
        limit_y: limit.map(|l| round(y(l))),
        polyline: points
            .iter()
            .map(|p| format!("{},{}", p.x, p.y))
            .collect::<Vec<_>>()
            .join(" "),
        points,
    })
}

fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn group(index: usize, key: &DrillKey, runs: &[StoredRun]) -> Group {
    let mut names: Vec<&str> = Vec::new();
    for r in runs {
        for v in r.verdicts.iter().filter(|v| v.measured.is_some()) {
            if !names.contains(&v.name.as_str()) {
                names.push(&v.name);
            }
        }
    }
    let mut before: Option<&StoredRun> = None;
    let mut rows = Vec::new();
    for r in runs {
        rows.push(Row {
            id: r.id,
            when: when(r.started),
            result: result_word(r),
            wall: format!("{:.1}s", r.wall),
            regressions: r.verdicts.iter().filter(|v| v.regression.is_some()).count(),
            changed: before
                .map(|b| diff(&b.facts, &r.facts))
                .unwrap_or_default()
                .iter()
                .map(Change::words)
                .collect::<Vec<_>>()
                .join(", "),
        });
        // As in the table: runs that did not reach the cluster are skipped.
        if r.facts.contains_key("nodes") {
            before = Some(r);
        }
    }
    let latest = runs.last();
    Group {
        anchor: format!("d{index}"),
        cluster: key.cluster.clone(),
        drill: key.drill.clone(),
        runs: key.runs,
        shown: runs.len(),
        latest_result: latest.map_or("-", result_word),
        latest_when: latest.map(|r| when(r.started)).unwrap_or_default(),
        latest_regressions: rows.last().map_or(0, |r| r.regressions),
        charts: names.iter().filter_map(|n| chart(n, runs)).collect(),
        rows,
    }
}

/// The page for these drills' runs (each oldest first), `last` the most
/// shown of each.
pub fn page(groups: &[(DrillKey, Vec<StoredRun>)], last: usize) -> Result<String, String> {
    let clusters: BTreeMap<&str, ()> = groups
        .iter()
        .map(|(k, _)| (k.cluster.as_str(), ()))
        .collect();
    let page = Page {
        title: clusters.keys().copied().collect::<Vec<_>>().join(", "),
        generated: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        version: env!("CARGO_PKG_VERSION"),
        clusters: clusters.len(),
        last,
        groups: groups
            .iter()
            .enumerate()
            .map(|(i, (k, runs))| group(i, k, runs))
            .collect(),
    };
    let mut env = minijinja::Environment::new();
    env.add_template("history.html", TEMPLATE)
        .map_err(|e| e.to_string())?;
    env.get_template("history.html")
        .and_then(|t| t.render(&page))
        .map_err(|e| format!("cannot render the history page: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::sample_run;

    /// Weekly runs; the regression came with a 3 s token.
    fn run(id: i64, t: f64, regression: bool) -> StoredRun {
        let token = if regression { "3000" } else { "1000" };
        sample_run(
            id,
            1_764_667_801 + id * 604_800,
            "pve <prod>",
            token,
            t,
            regression,
        )
    }

    #[test]
    fn the_page_charts_each_time_marks_regressions_and_escapes_names() {
        let runs: Vec<StoredRun> = [3.4, 3.5, 3.6, 3.5, 3.7]
            .iter()
            .enumerate()
            .map(|(i, t)| run(i as i64 + 1, *t, false))
            .chain([run(6, 9.0, true)])
            .collect();
        let key = DrillKey {
            cluster: "pve <prod>".into(),
            drill: "isolate".into(),
            runs: 6,
            last: 0,
        };
        let html = page(&[(key, runs)], 20).unwrap();
        assert!(html.contains("<svg class=\"trend\""), "{html}");
        assert_eq!(html.matches("<circle").count(), 6, "{html}");
        assert_eq!(html.matches("<circle class=\"regression\"").count(), 1);
        assert!(
            html.contains("class=\"limit\""),
            "the usual range's limit: {html}"
        );
        assert!(html.contains("totem.token 1000 -&gt; 3000"), "{html}");
        assert!(html.contains("pve &lt;prod&gt;"), "escaped: {html}");
        assert!(!html.contains("pve <prod>"), "{html}");
        assert!(html.contains("REGRESSION (1)"), "{html}");
    }

    #[test]
    fn too_few_runs_draw_no_limit() {
        let runs: Vec<StoredRun> = (1..=3).map(|i| run(i, 3.0, false)).collect();
        let key = DrillKey {
            cluster: "pve".into(),
            drill: "isolate".into(),
            runs: 3,
            last: 0,
        };
        let html = page(&[(key, runs)], 20).unwrap();
        assert!(!html.contains("class=\"limit\""), "{html}");
        assert!(html.contains("<polyline"), "{html}");
    }
}
