//! Soak bench (issue 14): the shipped 3-node drills run again and again on
//! one lab, as an operator runs them (`corodrill run ... --json`), and every
//! measured time is kept: each expectation's time from its anchor (a fault:
//! detection; a heal: rejoin), and the end-of-drill whole check (the
//! drill's `cluster.whole` after its last `fault.healed`: corosync's merge
//! plus the check's own settling, so it bounds the merge from above). It
//! prints each
//! one's distribution (p50/p95/p99/max), every run that did not pass, and
//! the bounds the drills rely on beside what was measured.
//!
//! `CORODRILL_SOAK_RUNS` (default 203: 29 rounds of 7 drills) and
//! `CORODRILL_SOAK_MINUTES` (default 90) bound it, whichever comes first;
//! `CORODRILL_SOAK_OUT` (default `target/soak.tsv`) gets one line per
//! measured time, to keep beside the bounds set from it. Run as root:
//! `cargo build --release --workspace && cargo bench --bench soak`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const DRILLS: [&str; 7] = [
    "isolate-one-of-three",
    "kill-corosync",
    "pause-longer-than-token",
    "power-off-one-of-three",
    "clock-skew-five-minutes",
    "one-way-cut",
    "flapping-link",
];

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The release build if there is one (what the bench should measure),
/// else the debug build.
fn corodrill() -> PathBuf {
    let release = root().join("target/release/corodrill");
    if release.is_file() {
        release
    } else {
        root().join("target/debug/corodrill")
    }
}

/// Brings the lab down however the bench ends.
struct Lab(String);

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new(corodrill())
            .args(["-q", "lab", "down", "--name", &self.0])
            .status();
    }
}

/// Each expectation's anchor, from the drill file: `(drill, name) -> after`.
fn anchors() -> BTreeMap<(String, String), String> {
    let mut anchors = BTreeMap::new();
    for drill in DRILLS {
        let path = root().join(format!("experiments/{drill}.toml"));
        let text = std::fs::read_to_string(&path).expect("a shipped drill");
        let value: toml::Value = toml::from_str(&text).expect("a shipped drill parses");
        for e in value
            .get("expect")
            .and_then(|e| e.as_array())
            .into_iter()
            .flatten()
        {
            let name = e.get("name").and_then(|n| n.as_str()).unwrap_or_default();
            let after = e.get("after").and_then(|a| a.as_str()).unwrap_or_default();
            anchors.insert((drill.to_owned(), name.to_owned()), after.to_owned());
        }
    }
    anchors
}

/// One measured time: which drill, what, and how long.
struct Sample {
    drill: String,
    what: String,
    seconds: f64,
}

/// What one `corodrill run` of the seven drills said, from its JSON lines.
#[derive(Default)]
struct Round {
    samples: Vec<Sample>,
    /// Drills that did not pass, with why (the failing expectations).
    failed: Vec<String>,
    disturbed: Vec<String>,
}

fn read_round(json: &str, anchors: &BTreeMap<(String, String), String>) -> Round {
    let mut round = Round::default();
    let mut last_heal: BTreeMap<String, f64> = BTreeMap::new();
    for line in json.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let drill = v["experiment"].as_str().unwrap_or_default().to_owned();
        let t = v["t"].as_f64().unwrap_or_default();
        match v["kind"].as_str().unwrap_or_default() {
            "fault.healed" => {
                last_heal.insert(drill, t);
            }
            "cluster.whole" => {
                if let Some(healed) = last_heal.get(&drill) {
                    round.samples.push(Sample {
                        drill,
                        what: "whole check after the last heal".into(),
                        seconds: t - healed,
                    });
                }
            }
            kind @ ("expect.pass" | "expect.fail") => {
                let name = v["name"].as_str().unwrap_or_default().to_owned();
                if kind == "expect.fail" {
                    round.failed.push(format!("{drill}: {name}"));
                }
                let Some(measured) = v["measured"].as_f64() else {
                    continue;
                };
                let anchor = anchors
                    .get(&(drill.clone(), name.clone()))
                    .map_or("?", String::as_str);
                let stage = if anchor.ends_with(".healed") {
                    "rejoin"
                } else {
                    "detection"
                };
                round.samples.push(Sample {
                    drill,
                    what: format!("{stage}: {name}"),
                    seconds: measured,
                });
            }
            "drill.disturbed" => round.disturbed.push(drill),
            _ => {}
        }
    }
    round
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let runs: usize = env_or("CORODRILL_SOAK_RUNS", 203);
    let budget = Duration::from_secs(60 * env_or("CORODRILL_SOAK_MINUTES", 90u64));
    let out = PathBuf::from(env_or(
        "CORODRILL_SOAK_OUT",
        root().join("target/soak.tsv").display().to_string(),
    ));
    let anchors = anchors();
    let name = format!("soak{}", std::process::id() % 100_000);
    let up = Command::new(corodrill())
        .args(["-q", "lab", "up", "--name", &name])
        .output()
        .expect("cannot run corodrill");
    let lab = Lab(name);
    assert!(
        up.status.success(),
        "lab up: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    let inventory = format!("/var/lib/corodrill/labs/{}/inventory.toml", lab.0);
    let files: Vec<String> = DRILLS
        .iter()
        .map(|d| {
            root()
                .join(format!("experiments/{d}.toml"))
                .display()
                .to_string()
        })
        .collect();
    let scratch = std::env::temp_dir().join(format!("corodrill-soak-{}", lab.0));
    std::fs::create_dir_all(&scratch).expect("a scratch directory");
    let started = Instant::now();
    let (mut samples, mut failed, mut disturbed, mut done) = (Vec::new(), Vec::new(), 0, 0);
    while done < runs && started.elapsed() < budget {
        let json = scratch.join("events.jsonl");
        let _ = std::fs::remove_file(&json);
        let status = Command::new(corodrill())
            .args(["-q", "run"])
            .args(&files)
            .arg("--inventory")
            .arg(&inventory)
            .arg("--json")
            .arg(&json)
            .status()
            .expect("cannot run corodrill");
        let round = read_round(
            &std::fs::read_to_string(&json).unwrap_or_default(),
            &anchors,
        );
        done += DRILLS.len();
        disturbed += round.disturbed.len();
        for f in &round.failed {
            eprintln!("after {done} runs: FAIL {f}");
        }
        failed.extend(round.failed);
        samples.extend(round.samples);
        eprintln!(
            "{done} runs in {:.0} s, exit {:?}, {} failed expectation(s) so far",
            started.elapsed().as_secs_f64(),
            status.code(),
            failed.len()
        );
        if status.code() == Some(130) {
            break;
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    drop(lab);

    let mut tsv = String::from("drill\tmeasured\tseconds\n");
    let mut by: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    for s in &samples {
        tsv.push_str(&format!("{}\t{}\t{:.3}\n", s.drill, s.what, s.seconds));
        by.entry((s.drill.clone(), s.what.clone()))
            .or_default()
            .push(s.seconds);
    }
    std::fs::write(&out, tsv).expect("writing the samples");
    println!(
        "soak: {done} drill runs in {:.1} min, {} failed expectation(s), {disturbed} disturbed run(s); samples in {}",
        started.elapsed().as_secs_f64() / 60.0,
        failed.len(),
        out.display()
    );
    for f in &failed {
        println!("  FAIL {f}");
    }
    println!(
        "{:<26} {:<62} {:>4} {:>7} {:>7} {:>7} {:>7}",
        "drill", "measured", "n", "p50", "p95", "p99", "max"
    );
    let mut merges = Vec::new();
    for ((drill, what), mut v) in by {
        v.sort_by(f64::total_cmp);
        if what.starts_with("whole check") {
            merges.extend(v.iter().copied());
        }
        println!(
            "{drill:<26} {what:<62} {:>4} {:>7.3} {:>7.3} {:>7.3} {:>7.3}",
            v.len(),
            quantile(&v, 0.5),
            quantile(&v, 0.95),
            quantile(&v, 0.99),
            v[v.len() - 1]
        );
    }
    if !merges.is_empty() {
        merges.sort_by(f64::total_cmp);
        println!(
            "whole check after the last heal, every drill: n {} p50 {:.3} p95 {:.3} p99 {:.3} max {:.3} s",
            merges.len(),
            quantile(&merges, 0.5),
            quantile(&merges, 0.95),
            quantile(&merges, 0.99),
            merges[merges.len() - 1]
        );
    }
}
