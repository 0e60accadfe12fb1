//! Benchmark of issue 13's figures: rounds of each chaos case survived with
//! nothing left (aim 100/100), time from each death to every fault gone
//! (aim: controller <= 1 s, agent <= lease + 1 s), and from Ctrl-C to the
//! controller's exit with the cluster verified whole (aim <= corosync's
//! rejoin time + 1 s). A round that leaves anything panics with what it left.
//!
//! Run as root: `cargo build --workspace && cargo bench --bench chaos`
//! (`CORODRILL_CHAOS_ROUNDS`, default 100; `CORODRILL_CHAOS_SEED`).

#[path = "../../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::chaos::{self, Case, CASES};

fn figures(name: &str, mut xs: Vec<f64>) {
    if xs.is_empty() {
        return;
    }
    xs.sort_by(f64::total_cmp);
    let q = |p: f64| xs[((xs.len() - 1) as f64 * p).round() as usize];
    println!(
        "  {name}: n={} min {:.2}s p50 {:.2}s p95 {:.2}s max {:.2}s",
        xs.len(),
        xs[0],
        q(0.5),
        q(0.95),
        xs[xs.len() - 1]
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rounds: u64 = std::env::var("CORODRILL_CHAOS_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let seed: u64 = std::env::var("CORODRILL_CHAOS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(13);
    let lab = common::TestLab::up(&["--ssh"]);
    let dir = std::env::temp_dir().join(format!("corodrill-chaos-bench-{}", lab.name));
    std::fs::create_dir_all(&dir).expect("cannot create the bench's directory");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut clean: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut exits = Vec::new();
    for r in 0..rounds {
        for case in CASES {
            let delay = Duration::from_millis(rng.u64(0..3000));
            let round = chaos::round(&lab, &dir, case, delay);
            clean
                .entry(format!("{case:?}"))
                .or_default()
                .push(round.to_clean.as_secs_f64());
            if case == Case::Interrupt {
                exits.extend(round.to_exit.map(|d| d.as_secs_f64()));
            }
        }
        eprintln!("round {} of {rounds} survived", r + 1);
    }
    println!("chaos: {rounds}/{rounds} rounds of each of {} cases survived with nothing left (seed {seed})", CASES.len());
    println!("time from the chaos to every fault gone (Beside: status + preflight's own time, faults kept):");
    for (case, xs) in clean {
        figures(&case, xs);
    }
    println!("from Ctrl-C to the controller's exit, cluster verified whole:");
    figures("Interrupt", exits);
    let _ = std::fs::remove_dir_all(&dir);
}
