//! Benchmark of drills on a real 3-node lab (issue 5's figures):
//! - error of the quorum-transition times in the event log against
//!   corosync's own hires log lines (`[QUORUM] Members[N]: ...`) for the
//!   same transitions on the same node, aim p95 <= 2 ms (issue 18: each
//!   view timed from that line where the agent could read it, `source`
//!   "corosync-log"; the figures are printed for all views and by source);
//! - each drill's wall time divided by the time corosync itself needs for
//!   the drill's schedule (from the start until the cluster is whole after
//!   the last heal), aim <= 1.2.
//!
//! Run as root after a release build of the agent:
//! `cargo build --release --workspace && cargo bench --bench drills`.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use corodrill::experiment;
use corodrill::lab::{self, LabSpec, Profile};
use corodrill::log::{LogBody, LogEvent};
use corodrill::plan;
use corodrill::run::{self, RunOptions};

/// "2026-11-25T16:00:00.123456Z" -> seconds since the epoch.
fn rfc3339(ts: &str) -> f64 {
    humantime::parse_rfc3339(ts)
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0.0, |d| d.as_secs_f64())
}

/// corosync's `Nov 25 16:16:03.194 [pid] pve1 corosync notice  [QUORUM] Members[3]: 1 2 3`
/// lines: (seconds since the epoch, member ids). The log has no year: take
/// this year's (the lab's clock is the host's, at offset zero).
fn members_lines(log: &str) -> Vec<(f64, Vec<u32>)> {
    let year = humantime::format_rfc3339(SystemTime::now()).to_string()[..4].to_owned();
    log.lines()
        .filter_map(|l| {
            let (_, ids) = l.split_once("[QUORUM] Members[")?;
            let ids: Vec<u32> = ids
                .split_once("]: ")?
                .1
                .split_whitespace()
                .filter_map(|i| i.parse().ok())
                .collect();
            let mut words = l.split_whitespace();
            let (mon, day, time) = (words.next()?, words.next()?, words.next()?);
            let month = [
                "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
            ]
            .iter()
            .position(|m| *m == mon)?
                + 1;
            let stamp = format!("{year}-{month:02}-{:02}T{time}Z", day.parse::<u32>().ok()?);
            Some((rfc3339(&stamp), ids))
        })
        .collect()
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("drills bench: needs root (it builds a real lab)");
        std::process::exit(1);
    }
    let name = "benchdr";
    let _ = lab::down(name);
    let spec =
        LabSpec::new(name, 3, 1, false, None, Profile::Fast, &[]).unwrap_or_else(|e| panic!("{e}"));
    let up = lab::up(spec, None, &|_| {}).unwrap_or_else(|e| panic!("{e}"));
    let inventory = lab::inventory(&up.lab);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments");
    let cancel = AtomicBool::new(false);
    let opts = RunOptions::new(&|_| {}, &cancel);
    // (source, error in ms) of each transition.
    let mut errors_ms: Vec<(String, f64)> = Vec::new();
    println!("drill: wall time / time corosync needs for its schedule (start to whole after the last heal)");
    for file in [
        "isolate-one-of-three",
        "kill-corosync",
        "pause-longer-than-token",
        "power-off-one-of-three",
        "one-way-cut",
    ] {
        let exps = experiment::load(&[dir.join(format!("{file}.toml"))])
            .unwrap_or_else(|e| panic!("{e:?}"));
        let e = &exps[0];
        let p = plan::plan(e, &inventory).unwrap_or_else(|e| panic!("{e:?}"));
        let started = Instant::now();
        let log: Vec<LogEvent> = run::run(e, &p, &inventory, &opts)
            .unwrap_or_else(|a| panic!("{}", a.error))
            .log;
        let wall = started.elapsed().as_secs_f64();
        let whole = log
            .iter()
            .rev()
            .find(|ev| matches!(ev.body, LogBody::ClusterWhole {}))
            .map_or(f64::NAN, |ev| ev.t);
        println!(
            "  {file}: wall {wall:.2}s, corosync {whole:.2}s, ratio {:.3}",
            wall / whole
        );

        // Each transition the drill logged (not the opening views) against
        // the node's own corosync log line for the same membership.
        for node in ["pve1", "pve2", "pve3"] {
            let text = std::fs::read_to_string(up.lab.host_dir(node).join("corosync.log"))
                .unwrap_or_default();
            let lines = members_lines(&text);
            for ev in log
                .iter()
                .filter(|ev| ev.t > 0.0 && ev.node.as_deref() == Some(node))
            {
                let LogBody::Quorum {
                    members, source, ..
                } = &ev.body
                else {
                    continue;
                };
                let source = source.clone().unwrap_or_else(|| "none".into());
                let ids: Vec<u32> = members
                    .iter()
                    .filter_map(|m| m.trim_start_matches("pve").parse().ok())
                    .collect();
                let at = rfc3339(&ev.ts);
                if let Some(err) = lines
                    .iter()
                    .filter(|(_, l)| *l == ids)
                    .map(|(t, _)| (at - t) * 1e3)
                    .min_by(|a, b| a.abs().total_cmp(&b.abs()))
                    .filter(|e| e.abs() < 2000.0)
                {
                    if err.abs() > 2.0 {
                        println!("    {file} {node} t={:.3}s members {members:?} ({source}): logged {err:+.1} ms from corosync's line", ev.t);
                    }
                    errors_ms.push((source, err));
                }
            }
        }
    }
    for (label, which) in [
        ("all views", None),
        ("timed from corosync's log", Some("corosync-log")),
        ("timed by the notification", Some("notification")),
    ] {
        let mut errs: Vec<f64> = errors_ms
            .iter()
            .filter(|(s, _)| which.is_none_or(|w| w == s))
            .map(|(_, e)| *e)
            .collect();
        if errs.is_empty() {
            println!("quorum transition time, {label}: none");
            continue;
        }
        errs.sort_by(|a, b| a.abs().total_cmp(&b.abs()));
        let q = |p: f64| errs[((errs.len() - 1) as f64 * p).round() as usize];
        let mean = errs.iter().sum::<f64>() / errs.len() as f64;
        println!(
            "quorum transition time, {label}, event log minus corosync's own log line: |error| p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms (n={}, mean signed {mean:+.2} ms, positive = logged later)",
            q(0.5).abs(),
            q(0.95).abs(),
            q(1.0).abs(),
            errs.len()
        );
    }
    let _ = lab::down(name);
}
