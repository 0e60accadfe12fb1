//! End-to-end test of `corodrill mutate` on a real lab: the shipped 3-node
//! drills run once each, and every mutant of their expectations that is
//! not unviable or equivalent is killed by what the cluster did; an
//! expectation whose window reaches past the heal lets a flipped mutant
//! survive, and `mutate` exits 1 naming it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// The shipped drills for one link and three nodes (tests/drills.rs runs
/// the same on its three-node lab).
const THREE_NODE_DRILLS: [&str; 7] = [
    "isolate-one-of-three",
    "kill-corosync",
    "pause-longer-than-token",
    "power-off-one-of-three",
    "clock-skew-five-minutes",
    "one-way-cut",
    "flapping-link",
];

fn experiments_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments")
}

#[test]
fn shipped_three_node_drills_kill_every_mutant() {
    let lab = TestLab::up(&[]);
    let inventory = lab.dir().join("inventory.toml");
    let files: Vec<PathBuf> = THREE_NODE_DRILLS
        .iter()
        .map(|d| experiments_dir().join(format!("{d}.toml")))
        .collect();
    let out = Command::new(CORODRILL)
        .args(["-q", "mutate"])
        .args(&files)
        .arg("--inventory")
        .arg(&inventory)
        .output()
        .expect("cannot run corodrill");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for drill in THREE_NODE_DRILLS {
        assert!(
            stdout.contains(&format!("score {drill}: 100% (")),
            "{drill}: {}",
            text(&out)
        );
    }
    assert!(
        stdout.contains("7 drill(s): ")
            && stdout.contains(" survived\n")
            && !stdout.contains("survived: "),
        "{}",
        text(&out)
    );
    lab.wait_whole(3);

    // pve3 "loses quorum within 25 s" of a cut healed at 12 s: it is
    // quorate again by then, so "pve3 quorate within 25 s" passes too.
    let dir = std::env::temp_dir().join(format!("corodrill-test-{}-mutate", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let weak = dir.join("weak.toml");
    std::fs::write(
        &weak,
        std::fs::read_to_string(experiments_dir().join("isolate-one-of-three.toml"))
            .unwrap()
            .replace(
                "nodes = [\"pve3\"]\nquorate = false\nwithin = \"10s\"",
                "nodes = [\"pve3\"]\nquorate = false\nwithin = \"25s\"",
            ),
    )
    .unwrap();
    let out = Command::new(CORODRILL)
        .args(["-q", "mutate"])
        .arg(&weak)
        .arg("--inventory")
        .arg(&inventory)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(
            "survived: \"pve3 loses quorum\": quorate flipped: quorate = true: this expectation does not constrain it"
        ),
        "{}",
        text(&out)
    );
    lab.wait_whole(3);

    // Invalid input: exit 2, nothing run.
    let out = Command::new(CORODRILL)
        .args(["-q", "mutate"])
        .arg(dir.join("missing.toml"))
        .arg("--inventory")
        .arg(&inventory)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    lab.down();
    assert_nothing_left(&lab.name);
}
