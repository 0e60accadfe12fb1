//! The HTML report: one self-contained page (no network fetches) with, per
//! drill, every node's quorum state as a band over time, the fault spans,
//! each expectation's window and measured time, and the verdicts with
//! failures first. Rendered with a template (minijinja) from a view model
//! computed here; reads results, never reaches back into the run.

use serde::Serialize;

use crate::log::{LogBody, NodeState};
use crate::report::DrillResult;

const TEMPLATE: &str = include_str!("../templates/report.html");

#[derive(Serialize)]
struct Page {
    title: String,
    generated: String,
    version: &'static str,
    passed: usize,
    drills: Vec<DrillView>,
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
            let changes: Vec<(f64, NodeState)> = r
                .log
                .iter()
                .filter(|e| e.node.as_deref() == Some(node.as_str()))
                .filter_map(|e| Some((e.t, NodeState::from_event(&e.body)?)))
                .collect();
            let segments = changes
                .iter()
                .enumerate()
                .map(|(i, (from, s))| {
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
                        title: format!("t={from:.3}s to {to:.3}s: {}", s.describe()),
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
    let lane = |name: String, changes: Vec<(f64, &'static str, String)>, what: &str| Lane {
        name,
        segments: changes
            .iter()
            .enumerate()
            .map(|(i, (from, state, text))| {
                let to = changes.get(i + 1).map_or(end, |c| c.0);
                Segment {
                    state,
                    text: text.clone(),
                    title: format!("t={from:.3}s to {to:.3}s: {what} {text}"),
                    x: pct(*from, end),
                    w: pct(to - from, end),
                }
            })
            .collect(),
    };
    for w in &r.experiment.watches {
        for node in nodes {
            let changes: Vec<(f64, &'static str, String)> = r
                .log
                .iter()
                .filter(|e| e.node.as_deref() == Some(node.as_str()))
                .filter_map(|e| match &e.body {
                    LogBody::Resource {
                        resource,
                        active_on,
                    } if *resource == w.resource => Some(match active_on.as_deref() {
                        None => (e.t, "unknown", "cannot say".to_owned()),
                        Some([]) => (e.t, "stopped", "stopped".to_owned()),
                        Some([one]) => (e.t, "running", format!("on {one}")),
                        Some(many) => (
                            e.t,
                            if w.clone { "running" } else { "double" },
                            format!("on {}", many.join(", ")),
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
        let changes: Vec<(f64, &'static str, String)> = r
            .log
            .iter()
            .filter(|e| e.node.as_deref() == Some(node.as_str()))
            .filter_map(|e| match e.body {
                LogBody::EtcPve { writable: true } => Some((e.t, "running", "writable".into())),
                LogBody::EtcPve { writable: false } => Some((e.t, "double", "read-only".into())),
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
pub fn render(all: &[Vec<DrillResult>]) -> Result<String, String> {
    let drills: Vec<DrillView> = all
        .iter()
        .flat_map(|runs| {
            runs.iter()
                .enumerate()
                .map(move |(i, r)| drill_view(r, i + 1, runs.len()))
        })
        .collect();
    let page = Page {
        title: drills
            .iter()
            .map(|d| d.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        generated: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        version: env!("CARGO_PKG_VERSION"),
        passed: drills.iter().filter(|d| d.passed).count(),
        drills,
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
        // Self-contained: nothing fetched from anywhere.
        assert!(!page.contains("src=") && !page.contains("href="));
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
