//! No fault outlives its drill, whatever dies, hangs or runs beside it: on
//! one 3-node lab reached over ssh, a drill holding every fault kind, and
//! at a random moment (a) the controller SIGKILLed, (b) an agent
//! SIGKILLed, (c) the controller SIGSTOPped, (d) `corodrill heal` with
//! corosync paused, (e) `status` and `preflight` beside it, (f) an ssh
//! connection dropped, (g) Ctrl-C. Each round checks the faults were in
//! place until then, and then every node for every kind of leftover and the
//! cluster whole. `CORODRILL_CHAOS_ROUNDS` (default 1) runs more, and
//! `CORODRILL_CHAOS_SEED` (printed; new each run) replays the same moments;
//! the chaos bench runs 100 of each.

mod common;

use std::time::Duration;

use common::chaos::{self, CASES};
use common::*;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn no_fault_outlives_its_drill() {
    let rounds = env_u64("CORODRILL_CHAOS_ROUNDS", 1);
    // A new seed each run explores new moments; the seed is printed, and
    // CORODRILL_CHAOS_SEED replays a failing run's moments.
    let fresh = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(13, |d| d.as_secs());
    let seed = env_u64("CORODRILL_CHAOS_SEED", fresh);
    eprintln!("chaos seed {seed} (CORODRILL_CHAOS_SEED={seed} replays it)");
    let lab = TestLab::up(&["--ssh"]);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("corodrill-chaos-{}", lab.name));
    std::fs::create_dir_all(&dir).unwrap();
    let mut rng = fastrand::Rng::with_seed(seed);
    for r in 0..rounds {
        for case in CASES {
            let delay = Duration::from_millis(rng.u64(0..3000));
            eprintln!(
                "round {r} {case:?}: chaos {delay:?} after the faults are in place (seed {seed})"
            );
            let round = chaos::round(&lab, &dir, case, delay);
            eprintln!(
                "  clean after {:.2}s{}",
                round.to_clean.as_secs_f64(),
                round.to_exit.map_or(String::new(), |e| format!(
                    ", exited after {:.2}s",
                    e.as_secs_f64()
                ))
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
