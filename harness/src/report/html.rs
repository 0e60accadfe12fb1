//! The HTML report: one self-contained page (no network fetches) with, per
//! drill, every node's quorum state as a band over time, the fault spans,
//! each expectation's window and measured time, and the verdicts with
//! failures first. Rendered with a template (minijinja) from a view model
//! computed here; reads results, never reaches back into the run.

use serde::Serialize;

use crate::log::{LogBody, NodeState};
use crate::report::DrillResult;

const TEMPLATE: &str = include_str!("../../templates/report.html");

#[derive(Serialize)]
struct Page {
    title: String,
    generated: String,
    version: &'static str,
    passed: usize,
    /// One per drill, failures first: the table the page opens with, and
    /// each drill's section.
    groups: Vec<Group>,
}

/// One drill over all its runs.
#[derive(Serialize)]
struct Group {
    name: String,
    anchor: String,
    passed: bool,
    passed_runs: usize,
    /// "PASS", "FAIL", "DISTURBED", "PASS (1 flaky under --pass-rate 0.75)".
    verdict: String,
    runs: usize,
    /// Each measured time's spread over the runs, with its strip chart.
    times: Vec<TimeDist>,
    /// Failing runs first, each timeline open; passing ones folded.
    shown: Vec<DrillView>,
    /// Passing runs beyond those shown, by number (their timelines are left
    /// out to keep a page of hundreds of runs small).
    folded_runs: Vec<usize>,
}

#[derive(Serialize)]
struct TimeDist {
    name: String,
    passed: usize,
    of: usize,
    spread: String,
    /// Each run's time as a position on the chart (0..100 %), and its title.
    dots: Vec<(String, String, bool)>,
}

#[derive(Serialize)]
struct DrillView {
    name: String,
    description: String,
    file: String,
    run: usize,
    runs: usize,
    passed: bool,
    error: Option<String>,
    /// The machine stalled during a failing run: the evidence.
    disturbed: Option<String>,
    wall: String,
    nodes: Vec<String>,
    verdicts: Vec<VerdictView>,
    ticks: Vec<Tick>,
    faults: Vec<Span>,
    lanes: Vec<Lane>,
    windows: Vec<Window>,
}

#[derive(Serialize)]
struct VerdictView {
    passed: bool,
    name: String,
    measured: String,
    message: String,
}

#[derive(Serialize)]
struct Tick {
    x: String,
    label: String,
}

#[derive(Serialize)]
struct Span {
    id: String,
    kind: String,
    targets: String,
    title: String,
    x: String,
    w: String,
}

#[derive(Serialize)]
struct Lane {
    name: String,
    segments: Vec<Segment>,
}

#[derive(Serialize)]
struct Segment {
    state: &'static str,
    /// Shown inside the segment (where a resource runs); empty for quorum.
    text: String,
    title: String,
    x: String,
    w: String,
}

#[derive(Serialize)]
struct Window {
    name: String,
    passed: bool,
    title: String,
    x: String,
    w: String,
    hit: Option<String>,
    measured: String,
}

/// A verdict's measured time as the page shows it; a state kept from
/// before the fault has none, and says so.
fn measured_words(v: &crate::judge::Verdict) -> String {
    match v.measured {
        Some(m) => format!("{m:.3}s"),
        None if v.kept => "kept".into(),
        None => "-".into(),
    }
}

fn pct(t: f64, end: f64) -> String {
    format!("{:.3}", (t / end * 100.0).clamp(0.0, 100.0))
}

fn drill_view(r: &DrillResult, run: usize, runs: usize) -> DrillView {
    let end = r.log.iter().map(|e| e.t).fold(1.0_f64, f64::max);
    let nodes: Vec<String> = {
        let mut n: Vec<String> = r.log.iter().filter_map(|e| e.node.clone()).collect();
        n.sort_by_key(|name| (name.len(), name.clone()));
        n.dedup();
        n
    };
    // Quorum bands: each node's state from one change to the next.
    let lanes: Vec<Lane> = nodes
        .iter()
        .map(|node| {
            let changes: Vec<(f64, NodeState, &str)> = r
                .log
                .iter()
                .filter(|e| e.node.as_deref() == Some(node.as_str()))
                .filter_map(|e| {
                    let source = match &e.body {
                        LogBody::Quorum {
                            source: Some(s), ..
                        } => s.as_str(),
                        _ => "",
                    };
                    Some((e.t, NodeState::from_event(&e.body)?, source))
                })
                .collect();
            let segments = changes
                .iter()
                .enumerate()
                .map(|(i, (from, s, source))| {
                    let to = changes.get(i + 1).map_or(end, |c| c.0);
                    Segment {
                        state: if !s.corosync_up {
                            "down"
                        } else if s.quorate {
                            "quorate"
                        } else {
                            "inquorate"
                        },
                        text: String::new(),
                        title: if source.is_empty() {
                            format!("t={from:.3}s to {to:.3}s: {}", s.describe())
                        } else {
                            // Which record the change's time was taken from.
                            format!(
                                "t={from:.3}s to {to:.3}s: {} (timed from {source})",
                                s.describe()
                            )
                        },
                        x: pct(*from, end),
                        w: pct(to - from, end),
                    }
                })
                .collect();
            Lane {
                name: node.clone(),
                segments,
            }
        })
        .collect();
    let lanes = lanes
        .into_iter()
        .chain(resource_lanes(r, &nodes, end))
        .collect();
    // Fault spans: first node's apply to last node's heal.
    let faults = r
        .experiment
        .faults
        .iter()
        .filter_map(|f| {
            let applied: Vec<(f64, &str)> = r
                .log
                .iter()
                .filter_map(|e| match &e.body {
                    LogBody::FaultApplied { fault, .. } if *fault == f.id => {
                        Some((e.t, e.node.as_deref().unwrap_or("?")))
                    }
                    _ => None,
                })
                .collect();
            let from = applied.iter().map(|a| a.0).reduce(f64::min)?;
            let to = r
                .log
                .iter()
                .filter_map(|e| match &e.body {
                    LogBody::FaultHealed { fault, .. } | LogBody::LeaseExpired { fault, .. }
                        if *fault == f.id =>
                    {
                        Some(e.t)
                    }
                    _ => None,
                })
                .reduce(f64::max)
                .unwrap_or(end);
            let targets: Vec<&str> = applied.iter().map(|a| a.1).collect();
            Some(Span {
                id: f.id.clone(),
                kind: f.kind.name().into(),
                targets: targets.join(", "),
                title: format!(
                    "{} ({}) on {}: t={from:.3}s to {to:.3}s",
                    f.id,
                    f.kind.name(),
                    targets.join(", ")
                ),
                x: pct(from, end),
                w: pct((to - from).max(end / 400.0), end),
            })
        })
        .collect();
    // Expectation windows: from the anchor to the deadline, with the measured point.
    let windows = r
        .experiment
        .expects
        .iter()
        .filter_map(|e| {
            let anchor = crate::judge::anchor_time(e, &r.log)?;
            let verdict = r.verdicts.iter().find(|v| v.name == e.name)?;
            let within = e.within.as_secs_f64();
            Some(Window {
                name: e.name.clone(),
                passed: verdict.passed,
                title: format!(
                    "{}: within {} of {} (t={anchor:.3}s)",
                    e.name,
                    humantime::format_duration(e.within),
                    e.after
                ),
                x: pct(anchor, end),
                w: pct(within.min(end - anchor), end),
                hit: verdict.measured.map(|m| pct(anchor + m, end)),
                measured: measured_words(verdict),
            })
        })
        .collect();
    let step = [0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0]
        .into_iter()
        .find(|s| end / s <= 12.0)
        .unwrap_or(600.0);
    let ticks = (0..=(end / step) as usize)
        .map(|i| {
            let t = i as f64 * step;
            Tick {
                x: pct(t, end),
                label: format!("{t}s"),
            }
        })
        .collect();
    let mut verdicts: Vec<VerdictView> = r
        .verdicts
        .iter()
        .map(|v| VerdictView {
            passed: v.passed,
            name: v.name.clone(),
            measured: measured_words(v),
            message: v.message.clone(),
        })
        .collect();
    // Failures first.
    verdicts.sort_by_key(|v| v.passed);
    DrillView {
        name: r.experiment.name.clone(),
        description: r.experiment.description.trim().to_owned(),
        file: r.experiment.file.display().to_string(),
        run,
        runs,
        passed: r.passed(),
        error: r.error.clone(),
        disturbed: r.disturbed(),
        wall: format!("{:.1}s", r.wall.as_secs_f64()),
        nodes,
        verdicts,
        ticks,
        faults,
        lanes,
        windows,
    }
}

/// Resource placement next to quorum: for each watched resource, each
/// node's view of where it runs over time; and, on Proxmox VE nodes,
/// when `/etc/pve` was read-only.
fn resource_lanes(r: &DrillResult, nodes: &[String], end: f64) -> Vec<Lane> {
    let mut lanes = Vec::new();
    // (from, state, text, where the time comes from if said)
    type Change = (f64, &'static str, String, Option<String>);
    let lane = |name: String, changes: Vec<Change>, what: &str| Lane {
        name,
        segments: changes
            .iter()
            .enumerate()
            .map(|(i, (from, state, text, source))| {
                let to = changes.get(i + 1).map_or(end, |c| c.0);
                let timed = source
                    .as_ref()
                    .map(|s| format!(" (timed from {s})"))
                    .unwrap_or_default();
                Segment {
                    state,
                    text: text.clone(),
                    title: format!("t={from:.3}s to {to:.3}s: {what} {text}{timed}"),
                    x: pct(*from, end),
                    w: pct(to - from, end),
                }
            })
            .collect(),
    };
    for w in &r.experiment.watches {
        for node in nodes {
            let changes: Vec<Change> = r
                .log
                .iter()
                .filter(|e| e.node.as_deref() == Some(node.as_str()))
                .filter_map(|e| match &e.body {
                    LogBody::Resource {
                        resource,
                        active_on,
                        source,
                    } if *resource == w.resource => Some(match active_on.as_deref() {
                        None => (e.t, "unknown", "cannot say".to_owned(), source.clone()),
                        Some([]) => (e.t, "stopped", "stopped".to_owned(), source.clone()),
                        Some([one]) => (e.t, "running", format!("on {one}"), source.clone()),
                        Some(many) => (
                            e.t,
                            if w.clone { "running" } else { "double" },
                            format!("on {}", many.join(", ")),
                            source.clone(),
                        ),
                    }),
                    _ => None,
                })
                .collect();
            if !changes.is_empty() {
                lanes.push(lane(
                    format!("{} @{node}", w.resource),
                    changes,
                    &format!("{node} sees {}", w.resource),
                ));
            }
        }
    }
    for node in nodes {
        let changes: Vec<Change> = r
            .log
            .iter()
            .filter(|e| e.node.as_deref() == Some(node.as_str()))
            .filter_map(|e| match e.body {
                LogBody::EtcPve { writable: true } => {
                    Some((e.t, "running", "writable".into(), None))
                }
                LogBody::EtcPve { writable: false } => {
                    Some((e.t, "double", "read-only".into(), None))
                }
                _ => None,
            })
            .collect();
        if !changes.is_empty() {
            lanes.push(lane(format!("/etc/pve @{node}"), changes, "/etc/pve"));
        }
    }
    lanes
}

/// The whole page for every run of every experiment.
/// How many passing runs of one drill keep their timeline on the page.
const PASSING_TIMELINES: usize = 3;

fn group(runs: &[DrillResult], tolerance: Option<f64>) -> Option<Group> {
    let first = runs.first()?;
    let outcome = crate::report::DrillOutcome::of(runs, tolerance);
    let disturbed = runs.iter().filter(|r| r.disturbed().is_some()).count();
    let failed = outcome.runs - outcome.passed_runs;
    let verdict = if outcome.passed && outcome.flaky > 0 {
        format!(
            "PASS ({} flaky under --pass-rate {})",
            outcome.flaky,
            tolerance.unwrap_or(1.0)
        )
    } else if outcome.passed {
        "PASS".into()
    } else if disturbed == failed {
        "DISTURBED".into()
    } else {
        "FAIL".into()
    };
    // Every measured verdict's times over the runs.
    let mut names: Vec<&str> = Vec::new();
    for r in runs {
        for v in &r.verdicts {
            if !names.contains(&v.name.as_str()) {
                names.push(&v.name);
            }
        }
    }
    let times = names
        .into_iter()
        .filter_map(|name| {
            let vs: Vec<(usize, &crate::judge::Verdict)> = runs
                .iter()
                .enumerate()
                .filter_map(|(i, r)| Some((i + 1, r.verdicts.iter().find(|v| v.name == name)?)))
                .collect();
            let mut xs: Vec<f64> = vs.iter().filter_map(|(_, v)| v.measured).collect();
            if xs.is_empty() {
                return None;
            }
            xs.sort_by(f64::total_cmp);
            let q = |p: f64| xs[((xs.len() - 1) as f64 * p).round() as usize];
            let max = xs[xs.len() - 1].max(1e-3);
            Some(TimeDist {
                name: name.to_owned(),
                passed: vs.iter().filter(|(_, v)| v.passed).count(),
                of: vs.len(),
                spread: format!(
                    "median {:.3}s · p95 {:.3}s · max {:.3}s",
                    q(0.5),
                    q(0.95),
                    xs[xs.len() - 1]
                ),
                dots: vs
                    .iter()
                    .filter_map(|(run, v)| {
                        let m = v.measured?;
                        Some((pct(m, max), format!("run {run}: {m:.3}s"), v.passed))
                    })
                    .collect(),
            })
        })
        .collect();
    let mut shown = Vec::new();
    let mut folded_runs = Vec::new();
    let mut passing_shown = 0;
    for (i, r) in runs.iter().enumerate() {
        if r.passed() {
            if passing_shown < PASSING_TIMELINES {
                passing_shown += 1;
                shown.push(drill_view(r, i + 1, runs.len()));
            } else {
                folded_runs.push(i + 1);
            }
        } else {
            shown.push(drill_view(r, i + 1, runs.len()));
        }
    }
    // Failing runs first.
    shown.sort_by_key(|d| d.passed);
    Some(Group {
        name: first.experiment.name.clone(),
        anchor: format!(
            "drill-{}",
            first
                .experiment
                .name
                .replace(|c: char| !c.is_ascii_alphanumeric(), "-")
        ),
        passed: outcome.passed,
        passed_runs: outcome.passed_runs,
        verdict,
        runs: runs.len(),
        times,
        shown,
        folded_runs,
    })
}

/// The page without a tolerance.
pub fn render(all: &[Vec<DrillResult>]) -> Result<String, String> {
    render_with(all, None)
}

/// One self-contained page: a table of drills (failures first), then each
/// drill's section: its measured times over the runs, failing runs'
/// timelines open, a few passing ones folded.
pub fn render_with(all: &[Vec<DrillResult>], tolerance: Option<f64>) -> Result<String, String> {
    let mut groups: Vec<Group> = all
        .iter()
        .filter_map(|runs| group(runs, tolerance))
        .collect();
    groups.sort_by_key(|g| g.passed);
    let page = Page {
        title: groups
            .iter()
            .map(|g| g.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        generated: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        version: env!("CARGO_PKG_VERSION"),
        passed: groups.iter().filter(|g| g.passed).count(),
        groups,
    };
    let mut env = minijinja::Environment::new();
    env.add_template("report.html", TEMPLATE)
        .map_err(|e| e.to_string())?;
    env.get_template("report.html")
        .and_then(|t| t.render(&page))
        .map_err(|e| format!("cannot render the HTML report: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::{parse, Experiment};
    use crate::judge::judge;
    use crate::log::LogEvent;
    use std::path::Path;
    use std::time::Duration;

    fn ev(t: f64, node: &str, body: LogBody) -> LogEvent {
        LogEvent {
            t,
            ts: String::new(),
            node: Some(node.into()),
            body,
        }
    }

    /// The page for one judged run of `e` on `nodes`.
    fn page_of(e: Experiment, nodes: &[&str], log: Vec<LogEvent>) -> String {
        let nodes: Vec<String> = nodes.iter().map(|s| s.to_string()).collect();
        let verdicts = judge(&e, &nodes, &log);
        let result = DrillResult {
            experiment: e,
            log,
            verdicts,
            error: None,
            wall: Duration::from_secs(7),
            retried: false,
            cluster: None,
            regressions: Vec::new(),
        };
        render(&[vec![result]]).unwrap()
    }

    fn q(t: f64, node: &str, quorate: bool, members: &[&str]) -> LogEvent {
        ev(
            t,
            node,
            LogBody::Quorum {
                quorate,
                members: members.iter().map(|s| s.to_string()).collect(),
                ring_id: "1.9".into(),
                total_votes: None,
                expected_votes: None,
                quorum: None,
                source: None,
            },
        )
    }

    #[test]
    fn page_shows_bands_faults_windows_and_failures_first() {
        let e = parse(
            Path::new("x.toml"),
            "name = \"kill <pve2>\"\nnodes = 2\n[[fault]]\nid = \"k\"\nkind = \"kill\"\nnodes = [\"pve2\"]\nheal_after = \"5s\"\n\
             [[expect]]\nname = \"pve1 alone\"\nafter = \"k\"\nnodes = [\"pve1\"]\nquorate = false\nwithin = \"2s\"\n",
        )
        .unwrap();
        let all = ["pve1", "pve2"];
        let log = vec![
            q(0.0, "pve1", true, &all),
            q(0.0, "pve2", true, &all),
            ev(
                0.01,
                "pve2",
                LogBody::FaultApplied {
                    fault: "k".into(),
                    fault_kind: "kill".into(),
                },
            ),
            ev(
                0.02,
                "pve2",
                LogBody::CorosyncDown {
                    reason: "killed".into(),
                },
            ),
            q(3.5, "pve1", false, &["pve1"]),
            ev(
                5.0,
                "pve2",
                LogBody::FaultHealed {
                    fault: "k".into(),
                    clean: true,
                    detail: "running".into(),
                },
            ),
            q(6.5, "pve1", true, &all),
            q(6.5, "pve2", true, &all),
        ];
        let page = page_of(e, &all, log);
        assert!(
            page.contains("FAIL</span> kill &lt;pve2&gt;"),
            "names are escaped"
        );
        assert_eq!(page.matches("class=\"seg quorate\"").count(), 4);
        assert_eq!(page.matches("class=\"seg inquorate\"").count(), 1);
        assert_eq!(page.matches("class=\"seg down\"").count(), 1);
        assert!(page.contains("class=\"fault\""));
        assert!(page.contains("class=\"window fail\""));
        // The failure comes before the passing invariants.
        let fail = page.find("<td>FAIL</td><td>pve1 alone</td>").unwrap();
        let pass = page.find("<td>pass</td>").unwrap();
        assert!(fail < pass);
        // Self-contained: nothing fetched from anywhere (links only
        // within the page).
        assert!(!page.contains("src=") && !page.replace("href=\"#", "").contains("href="));
    }

    /// A run of one passing and one failing drill, each repeated.
    fn repeated(name: &str, runs: usize, failing: &[usize]) -> Vec<DrillResult> {
        let e = parse(
            Path::new("x.toml"),
            &format!("name = \"{name}\"\nnodes = 3\n[[fault]]\nid = \"cut\"\nkind = \"isolate\"\nnodes = [\"pve1\"]\nheal_after = \"10s\"\n[[expect]]\nname = \"pve1 alone\"\nafter = \"cut\"\nnodes = [\"pve1\"]\nquorate = false\nwithin = \"8s\"\n"),
        )
        .unwrap();
        (1..=runs)
            .map(|i| {
                let log: Vec<LogEvent> = (0..40)
                    .flat_map(|k| {
                        let t = k as f64 * 0.5;
                        ["pve1", "pve2", "pve3"].map(|n| {
                            ev(
                                t,
                                n,
                                LogBody::Quorum {
                                    quorate: k % 2 == 0,
                                    members: vec![n.into()],
                                    ring_id: format!("1.{k}"),
                                    total_votes: Some(1),
                                    expected_votes: Some(3),
                                    quorum: Some(2),
                                    source: None,
                                },
                            )
                        })
                    })
                    .collect();
                let passed = !failing.contains(&i);
                DrillResult {
                    experiment: e.clone(),
                    log,
                    verdicts: vec![crate::judge::Verdict {
                        name: "pve1 alone".into(),
                        invariant: false,
                        passed,
                        measured: Some(3.5 + i as f64 / 100.0),
                        kept: false,
                        message: if passed {
                            "ok".into()
                        } else {
                            "pve1 stayed quorate".into()
                        },
                    }],
                    error: None,
                    wall: Duration::from_secs(20),
                    retried: false,
                    cluster: None,
                    regressions: Vec::new(),
                }
            })
            .collect()
    }

    #[test]
    fn repeated_runs_are_grouped_failures_first_and_the_page_stays_small() {
        let all = vec![
            repeated("steady", 200, &[]),
            repeated("flapping", 200, &[7]),
        ];
        let page = render(&all).unwrap();
        // The table of drills opens the page, the failing drill first.
        let table = page.find("<th>runs passed</th>").unwrap();
        let flapping = page.find("<a href=\"#drill-flapping\">").unwrap();
        let steady = page.find("<a href=\"#drill-steady\">").unwrap();
        assert!(table < flapping && flapping < steady);
        assert!(page.contains("199/200") && page.contains("200/200"));
        // The failing run's timeline is open and comes first in its section.
        let section = page.find("id=\"drill-flapping\"").unwrap();
        let open_fail = page[section..].find("<details open>").unwrap();
        let run7 = page[section..].find("run 7 of 200").unwrap();
        assert!(
            run7 > open_fail && run7 < open_fail + 200,
            "the failing run first, open"
        );
        // Passing runs beyond a few are listed, not drawn.
        assert!(
            page.contains("197 more passing runs"),
            "steady: 200 - 3 shown"
        );
        assert!(page.len() < 2 * 1024 * 1024, "{} bytes", page.len());
    }

    #[test]
    fn resource_placement_lanes_beside_quorum() {
        let e = parse(
            Path::new("x.toml"),
            "name = \"failover\"\nnodes = 2\n[[watch]]\nresource = \"svc\"\n[[fault]]\nid = \"k\"\nkind = \"kill\"\nnodes = [\"pve1\"]\nheal_after = \"5s\"\n",
        )
        .unwrap();
        let res = |t: f64, node: &str, on: Option<&[&str]>| {
            ev(
                t,
                node,
                LogBody::Resource {
                    resource: "svc".into(),
                    active_on: on.map(|v| v.iter().map(|s| s.to_string()).collect()),
                    source: Some("pacemaker-alert".into()),
                },
            )
        };
        let log = vec![
            q(0.0, "pve1", true, &["pve1", "pve2"]),
            q(0.0, "pve2", true, &["pve1", "pve2"]),
            res(0.0, "pve1", Some(&["pve1"])),
            res(0.0, "pve2", Some(&["pve1"])),
            res(1.0, "pve1", None),
            res(3.0, "pve2", Some(&["pve1", "pve2"])),
            res(4.0, "pve2", Some(&[])),
            ev(4.5, "pve2", LogBody::EtcPve { writable: false }),
            ev(6.0, "pve2", LogBody::EtcPve { writable: true }),
        ];
        let page = page_of(e, &["pve1", "pve2"], log);
        assert!(page.contains(">svc @pve1<") && page.contains(">svc @pve2<"));
        assert_eq!(page.matches("class=\"seg running\"").count(), 3, "{page}");
        assert!(page.contains(">on pve1<") && page.contains(">cannot say<"));
        assert!(page.contains("class=\"seg double\"") && page.contains(">on pve1, pve2<"));
        assert!(page.contains(">stopped<"));
        // minijinja escapes the slashes.
        assert!(page.contains("etc&#x2f;pve @pve2<") && page.contains(">read-only<"));
    }
}
