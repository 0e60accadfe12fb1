//! Benchmark of Pacemaker failover on a real 3-node lab (issue 9's figures):
//! the lab of `corodrill lab up --pacemaker --resource svc` (token 1000 ms,
//! one `ocf:pacemaker:Dummy` resource that prefers pve1), and for each of
//! the shipped cut and kill drills, repeated (20 times, or
//! `FAILOVER_REPS`):
//! - failover time: from the fault's `fault.applied` until pve2's and
//!   pve3's views say svc runs on one of them, as the judge measures the
//!   drill's "fails over" expectation (the JUnit testcase's time):
//!   min / median / p95 / max (nearest rank);
//! - double-active windows: every window the judge's double-active
//!   invariant reports (those longer than the watch interval): how many,
//!   and their spans' min / median / max.
//!
//! - started: from `fault.applied` until the node that takes svc over
//!   starts it, as its own view says (with the lab's Pacemaker alert, that
//!   view's time is Pacemaker's record of the start, `source =
//!   "pacemaker-alert"`, to the millisecond; the failover time above also
//!   waits for the other survivor's view, which only its `crm_mon` poll
//!   can give);
//! - where each resource event's time came from, by `source`;
//! - the agents' cost: their peak RSS and their CPU time over their
//!   lifetime, sampled every second from /proc.
//!
//! Every repetition starts with svc on pve1 in every node's view.
//!
//! Run as root after a release build of the agent:
//! `cargo build --release --workspace && cargo bench --bench failover`.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use corodrill::experiment::{self, Experiment, ResourceWant};
use corodrill::judge::{self, Verdict};
use corodrill::lab::{self, pacemaker, LabSpec, Profile};
use corodrill::plan;
use corodrill::run::{self, RunOptions};

mod common;
use common::percentile;

const RESOURCE: &str = "svc";
/// Where the lab places svc and where it goes back after a heal.
const HOME: &str = "pve1";
/// The shipped drills measured, with a short name for the table.
const DRILLS: [(&str, &str); 2] = [
    ("cut", "failover-when-its-node-is-cut"),
    ("kill", "failover-when-corosync-is-killed"),
];
/// How long svc may take to be back on pve1 before a repetition: the
/// drills' own "back" expectations allow 30 s and 45 s after the heal.
const HOME_TIMEOUT: Duration = Duration::from_secs(120);

/// A lab taken down however the bench ends (return, panic, Ctrl-C).
struct LabGuard(String);

impl Drop for LabGuard {
    fn drop(&mut self) {
        eprintln!("failover bench: taking lab {} down", self.0);
        if let Err(e) = lab::down(&self.0) {
            eprintln!("failover bench: lab down {}: {e}", self.0);
        }
    }
}

fn sorted(times: &[f64]) -> Vec<f64> {
    let mut t = times.to_vec();
    t.sort_by(f64::total_cmp);
    t
}

/// `min / median / p95 / max s` of sorted times, or `-` for none.
fn spread(t: &[f64]) -> String {
    match (t.first(), t.last()) {
        (Some(min), Some(max)) => format!(
            "{min:.3} / {:.3} / {:.3} / {max:.3} s",
            percentile(t, 0.5),
            percentile(t, 0.95)
        ),
        _ => "-".to_owned(),
    }
}

/// One drill's figures over its repetitions.
#[derive(Default)]
struct Figures {
    reps: usize,
    /// The "fails over" expectation's measured time, for reps that passed it.
    failover: Vec<f64>,
    /// Spans of every double-active window, over all reps.
    windows: Vec<f64>,
    /// Reps with at least one double-active window.
    reps_double_active: usize,
    /// Reps whose "back on pve1" expectation passed.
    back: usize,
    /// What went wrong in the reps that did not fail over (or not run).
    failures: Vec<String>,
    /// Fault applied -> the new node's own start of svc, per rep.
    started: Vec<f64>,
    /// Resource events by `source`.
    sources: std::collections::BTreeMap<String, usize>,
}

/// From the drill's first fault to the first start of svc on a node other
/// than HOME in that node's own view, and that view's source.
fn own_start(log: &[corodrill::log::LogEvent]) -> Option<(f64, String)> {
    use corodrill::log::LogBody;
    let applied = log.iter().find_map(|e| match &e.body {
        LogBody::FaultApplied { .. } => Some(e.t),
        _ => None,
    })?;
    log.iter()
        .filter(|e| e.t >= applied)
        .find_map(|e| match (&e.body, e.node.as_deref()) {
            (
                LogBody::Resource {
                    resource,
                    active_on: Some(on),
                    source,
                },
                Some(node),
            ) if resource == RESOURCE && node != HOME && on.iter().any(|n| n == node) => {
                Some((e.t - applied, source.clone().unwrap_or_default()))
            }
            _ => None,
        })
}

/// The agents of the lab (their command line names the lab's directory):
/// peak RSS and CPU time over their lives, sampled every second.
#[derive(Default)]
struct AgentCost {
    /// pid -> (first seen, last seen, CPU ticks then, CPU ticks at first sight)
    seen: std::collections::BTreeMap<i32, (Instant, Instant, u64, u64)>,
    peak_rss_kib: u64,
}

impl AgentCost {
    fn sample(&mut self, lab_dir: &str) {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return;
        };
        for entry in dir.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if !cmdline.contains("corodrill-agent --stdio") || !cmdline.contains(lab_dir) {
                continue;
            }
            let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    let f: Vec<u64> = s
                        .rsplit_once(')')?
                        .1
                        .split_whitespace()
                        .skip(11)
                        .take(2)
                        .filter_map(|x| x.parse().ok())
                        .collect();
                    Some(f.iter().sum::<u64>())
                });
            let Some(ticks) = ticks else { continue };
            let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("VmHWM:"))?
                        .split_whitespace()
                        .nth(1)?
                        .parse::<u64>()
                        .ok()
                })
                .unwrap_or(0);
            self.peak_rss_kib = self.peak_rss_kib.max(rss);
            let now = Instant::now();
            self.seen
                .entry(pid)
                .and_modify(|e| {
                    e.1 = now;
                    e.2 = ticks;
                })
                .or_insert((now, now, ticks, ticks));
        }
    }

    /// CPU used per second of agent life, in percent of one core.
    fn cpu_percent(&self) -> f64 {
        let hz = 100.0; // USER_HZ on Linux
        let (cpu, life) = self.seen.values().fold((0.0, 0.0), |(c, l), e| {
            (c + (e.2 - e.3) as f64 / hz, l + (e.1 - e.0).as_secs_f64())
        });
        if life > 0.0 {
            100.0 * cpu / life
        } else {
            0.0
        }
    }
}

/// The double-active windows the invariant's verdict lists, as spans in
/// seconds. The verdict carries only their total as its measured time; each
/// window is in its message, as "... at once from t=A to t=B (S s)".
fn double_active_spans(v: &Verdict) -> Vec<f64> {
    let spans: Vec<f64> = v
        .message
        .split("at once from t=")
        .skip(1)
        .filter_map(|w| {
            let (from, rest) = w.split_once("s to t=")?;
            let (to, _) = rest.split_once("s (")?;
            Some(to.parse::<f64>().ok()? - from.parse::<f64>().ok()?)
        })
        .collect();
    let total: f64 = spans.iter().sum();
    // The message rounds each time to the millisecond.
    let slack = 2e-3 * spans.len() as f64 + 1e-9;
    if (total - v.measured.unwrap_or(0.0)).abs() > slack {
        eprintln!(
            "failover bench: the double-active windows read from the verdict ({total:.3}s) \
             do not add up to its measured time ({:?}): {}",
            v.measured, v.message
        );
    }
    spans
}

/// Waits until every node's Pacemaker says svc is started on pve1.
fn wait_home(lab: &lab::Lab) -> Result<(), String> {
    let started = Instant::now();
    let mut last_report = Instant::now();
    loop {
        let views: Vec<(String, Option<String>)> = lab
            .spec()
            .node_names()
            .map(|n| {
                let on = pacemaker::view(lab, &n)
                    .and_then(|v| v.started_on(RESOURCE).map(str::to_owned));
                (n, on)
            })
            .collect();
        if views.iter().all(|(_, on)| on.as_deref() == Some(HOME)) {
            return Ok(());
        }
        let state = views
            .iter()
            .map(|(n, on)| format!("{n}: {}", on.as_deref().unwrap_or("-")))
            .collect::<Vec<_>>()
            .join(", ");
        if started.elapsed() >= HOME_TIMEOUT {
            return Err(format!(
                "{RESOURCE} not back on {HOME} within {HOME_TIMEOUT:?} ({state})"
            ));
        }
        if corodrill::run::CANCEL.load(Ordering::Relaxed) {
            return Err("interrupted".into());
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            eprintln!(
                "  waiting for {RESOURCE} back on {HOME} ({:.0}s; {state})",
                started.elapsed().as_secs_f64()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The drill's expectation that svc moves off pve1, and the one that it
/// comes back, by what they want rather than by name.
fn failover_and_back(e: &Experiment) -> (String, Option<String>) {
    let want = |x: &experiment::Expect| x.resource.as_ref().map(|r| r.want.clone());
    let failover = e
        .expects
        .iter()
        .find(|x| {
            !x.after.healed
                && matches!(want(x), Some(ResourceWant::RunningOn(on)) if !on.iter().any(|n| n == HOME))
        })
        .unwrap_or_else(|| panic!("{}: no expectation that svc fails over", e.file.display()));
    let back = e.expects.iter().find(|x| {
        x.after.healed && matches!(want(x), Some(ResourceWant::RunningOn(on)) if on == [HOME])
    });
    (failover.name.clone(), back.map(|b| b.name.clone()))
}

/// This process's nice value (field 19 of /proc/self/stat), to show the
/// command as it was run.
fn niceness() -> i64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(16)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("failover bench: needs root (it builds a real lab)");
        std::process::exit(1);
    }
    let reps: usize = match std::env::var("FAILOVER_REPS") {
        Ok(v) => v.parse().ok().filter(|n| *n > 0).unwrap_or_else(|| {
            eprintln!("failover bench: FAILOVER_REPS={v:?}: expected a positive number");
            std::process::exit(2);
        }),
        Err(_) => 20,
    };
    corodrill::run::cancel_on_signals();
    let bench_started = Instant::now();
    // Lab names are short (network namespaces are NAME-pveN); the pid keeps
    // this one apart from labs others have up.
    let name: String = format!("fo{}", std::process::id())
        .chars()
        .take(9)
        .collect();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments/pacemaker");
    let drills: Vec<(&str, Experiment)> = DRILLS
        .iter()
        .map(|(short, file)| {
            let mut exps = experiment::load(&[dir.join(format!("{file}.toml"))])
                .unwrap_or_else(|e| panic!("{e:?}"));
            (*short, exps.remove(0))
        })
        .collect();

    let spec = LabSpec::new(&name, 3, 1, false, Some(1000), Profile::Fast, &[])
        .and_then(|s| s.with_pacemaker(true, &[RESOURCE.to_owned()]))
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("failover bench: lab {name} up (3 nodes, Pacemaker, resource {RESOURCE})");
    let up = lab::up(spec, None, &|m| eprintln!("  {m}")).unwrap_or_else(|e| panic!("{e}"));
    // Only now is the lab ours to take down: `up` refuses a name in use.
    let _guard = LabGuard(name.clone());
    let inventory = lab::inventory(&up.lab);
    let opts = RunOptions::new(&|_| {}, &corodrill::run::CANCEL);
    let cost = std::sync::Arc::new(std::sync::Mutex::new(AgentCost::default()));
    let lab_dir = up.lab.dir.display().to_string();
    {
        let cost = cost.clone();
        std::thread::spawn(move || loop {
            if let Ok(mut c) = cost.lock() {
                c.sample(&lab_dir);
            }
            std::thread::sleep(Duration::from_secs(1));
        });
    }

    let mut results: Vec<(&str, Figures)> = Vec::new();
    let mut stopped: Option<String> = None;
    'drills: for (short, e) in &drills {
        let p = plan::plan(e, &inventory).unwrap_or_else(|e| panic!("{e:?}"));
        let (failover_name, back_name) = failover_and_back(e);
        let mut fig = Figures::default();
        for i in 1..=reps {
            if let Err(why) = wait_home(&up.lab) {
                stopped = Some(format!("before {short} {i}/{reps}: {why}"));
                results.push((short, fig));
                break 'drills;
            }
            fig.reps += 1;
            let ran = match run::run(e, &p, &inventory, &opts) {
                Ok(ran) => ran,
                Err(aborted) => {
                    let why = format!(
                        "{short} {i}/{reps}: drill not carried out: {}",
                        aborted.error
                    );
                    eprintln!("  {why}");
                    fig.failures.push(why);
                    if corodrill::run::CANCEL.load(Ordering::Relaxed) {
                        stopped = Some("interrupted".into());
                        results.push((short, fig));
                        break 'drills;
                    }
                    continue;
                }
            };
            let verdicts = judge::judge(&ran.experiment, &p.nodes, &ran.log);
            for e in &ran.log {
                if let corodrill::log::LogBody::Resource { source, .. } = &e.body {
                    let s = source.clone().unwrap_or_else(|| "(opening view)".into());
                    *fig.sources.entry(s).or_default() += 1;
                }
            }
            let own = own_start(&ran.log);
            if let Some((t, _)) = &own {
                fig.started.push(*t);
            }
            let failover = verdicts.iter().find(|v| v.name == failover_name);
            let back = back_name
                .as_ref()
                .and_then(|b| verdicts.iter().find(|v| &v.name == b))
                .is_some_and(|v| v.passed);
            // The double-active invariant is the watched resource's
            // invariant verdict (the other always-on ones are about quorum).
            let spans = verdicts
                .iter()
                .find(|v| v.invariant && v.name.starts_with(&format!("{RESOURCE} ")))
                .map(double_active_spans)
                .unwrap_or_default();
            let said = match failover {
                Some(v) if v.passed && v.measured.is_some() => {
                    let t = v.measured.unwrap_or_default();
                    fig.failover.push(t);
                    format!("failover {t:.3}s")
                }
                Some(v) => {
                    fig.failures.push(format!(
                        "{short} {i}/{reps}: did not fail over: {}",
                        v.message
                    ));
                    "did NOT fail over".to_owned()
                }
                None => {
                    fig.failures
                        .push(format!("{short} {i}/{reps}: no verdict {failover_name:?}"));
                    "no failover verdict".to_owned()
                }
            };
            if !spans.is_empty() {
                fig.reps_double_active += 1;
            }
            if back {
                fig.back += 1;
            }
            eprintln!(
                "  {short} {i}/{reps}: {said}, started {}, double-active windows: {}, back on {HOME}: {}",
                own.map_or("-".to_owned(), |(t, s)| format!("{t:.3}s ({s})")),
                if spans.is_empty() {
                    "none".to_owned()
                } else {
                    spans
                        .iter()
                        .map(|s| format!("{s:.3}s"))
                        .collect::<Vec<_>>()
                        .join(" ")
                },
                if back { "yes" } else { "no" }
            );
            fig.windows.extend(spans);
        }
        results.push((short, fig));
    }

    let wall = bench_started.elapsed();
    let command = format!(
        "{}{}cargo bench --bench failover",
        std::env::var("FAILOVER_REPS")
            .map(|v| format!("FAILOVER_REPS={v} "))
            .unwrap_or_default(),
        match niceness() {
            0 => String::new(),
            10 => "nice ".to_owned(),
            n => format!("nice -n {n} "),
        }
    );
    println!();
    println!(
        "Pacemaker failover on a 3-node lab (token 1000 ms, {RESOURCE} = ocf:pacemaker:Dummy \
         monitored every {}, prefers {HOME}), {reps} repetitions per drill",
        pacemaker::MONITOR_INTERVAL
    );
    println!("failover time: fault applied -> pve2's and pve3's views say {RESOURCE} runs on pve2 or pve3 (the judge's measured time)");
    println!("double-active: every window the judge's double-active invariant reports");
    println!(
        "{:<5} {:>11} | {:>34} | {:>7} {:>13} {:>28} | {:>6}",
        "drill",
        "failed over",
        "failover time min/median/p95/max",
        "windows",
        "reps with one",
        "window span min/median/max",
        "back"
    );
    for (short, fig) in &results {
        let w = sorted(&fig.windows);
        let times = spread(&sorted(&fig.failover));
        let spans = if w.is_empty() {
            "-".to_owned()
        } else {
            format!(
                "{:.3} / {:.3} / {:.3} s",
                w[0],
                percentile(&w, 0.5),
                w[w.len() - 1]
            )
        };
        println!(
            "{:<5} {:>11} | {:>34} | {:>7} {:>13} {:>28} | {:>6}",
            short,
            format!("{}/{}", fig.failover.len(), fig.reps),
            times,
            w.len(),
            format!("{}/{}", fig.reps_double_active, fig.reps),
            spans,
            format!("{}/{}", fig.back, fig.reps)
        );
    }
    println!("started: fault applied -> the new node's own view says it started {RESOURCE} (Pacemaker's alert where it came)");
    println!(
        "{:<5} {:>34} | sources of resource events",
        "drill", "started min/median/p95/max"
    );
    for (short, fig) in &results {
        let t = sorted(&fig.started);
        let times = spread(&t);
        let sources = fig
            .sources
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        println!("{short:<5} {times:>34} | {sources}");
        println!(
            "      started times: {}",
            t.iter()
                .map(|x| format!("{x:.3}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    if let Ok(c) = cost.lock() {
        println!(
            "agents: {} processes seen, peak RSS {:.1} MiB, CPU {:.2} % of one core over their lives",
            c.seen.len(),
            c.peak_rss_kib as f64 / 1024.0,
            c.cpu_percent()
        );
    }
    for (_, fig) in &results {
        for f in &fig.failures {
            println!("  {f}");
        }
    }
    if let Some(why) = &stopped {
        println!("  stopped early: {why}");
    }
    println!(
        "command: {command} (as root, after cargo build --release --workspace); wall time {:.1} min",
        wall.as_secs_f64() / 60.0
    );
}
