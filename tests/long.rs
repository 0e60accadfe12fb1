//! Tests long by nature, which `make test` does not build (`test = false`)
//! and `make test-long` runs: every split of five nodes against the model,
//! a 62 s isolate whose watchdog reset is foreseen and taken as such, ten
//! minutes of random drills. Each builds its own lab like every other
//! end-to-end test.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use quick_junit::Report;

/// Two labs at once on a 2-core machine starve each other's corosync
/// under `cargo test`'s threads; nextest runs each test alone anyway.
static ONE_LAB_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_lab_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_LAB_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

/// Long by nature (`make test-long`, 15 splits of about 18 s each).
#[test]
fn every_split_of_five_nodes_matches_the_model() {
    let _turn = one_lab_at_a_time();
    let lab = TestLab::up(&["--nodes", "5"]);
    // Every way of splitting five nodes in two (15), one at a time, with
    // run --oracle: the model's prediction for every node after every split
    // and every heal equals what corosync did, in state and in time.
    let dir = scratch(&format!("{}-splits", lab.name));
    let nodes: Vec<String> = (1..=5).map(|i| format!("pve{i}")).collect();
    let file = dir.join("every-split.toml");
    std::fs::write(
        &file,
        corodrill::experiment::generated::every_split_drill(&nodes, Duration::from_secs(9)),
    )
    .unwrap();
    let junit = dir.join("junit.xml");
    let out = Command::new(CORODRILL)
        .args(["run", "--oracle", "--inventory"])
        .arg(lab.dir().join("inventory.toml"))
        .arg(&file)
        .arg("--junit")
        .arg(&junit)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = Report::deserialize_from_str(&std::fs::read_to_string(&junit).unwrap()).unwrap();
    let oracle: Vec<_> = report.test_suites[0]
        .test_cases
        .iter()
        .filter(|c| c.name.as_str().starts_with("oracle: "))
        .collect();
    // 15 splits and 15 heals, five nodes each.
    assert_eq!(oracle.len(), 150, "{}", text(&out));
    assert!(oracle
        .iter()
        .all(|c| matches!(c.status, quick_junit::TestCaseStatus::Success { .. })));
    lab_clean(&lab, 5);
    lab.down();
    assert_nothing_left(&lab.name);
}

/// Long by nature (`make test-long`): the 62 s isolate of
/// `fencing_foresight_on_a_lab` run with --allow-fencing, pve3 going silent
/// (its plug pulled mid-drill, as a watchdog reset would) taken as that
/// reset, and pve3 reconnected once it is back.
#[test]
fn a_foreseen_watchdog_reset_is_taken_as_such() {
    let _turn = one_lab_at_a_time();
    let lab = TestLab::up(&[]);
    let (file, dir) = stage_ha(&lab);
    let inventory = lab.dir().join("inventory.toml");
    // The "watchdog": pve3's plug pulled 20 s in, back 10 s later.
    let name = lab.name.clone();
    let reset = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(20));
        let off = corodrill(&["lab", "power", "--name", &name, "pve3", "off"]);
        std::thread::sleep(std::time::Duration::from_secs(10));
        let on = corodrill(&["lab", "power", "--name", &name, "pve3", "on"]);
        (off, on)
    });
    let json = dir.join("events.jsonl");
    let out = Command::new(CORODRILL)
        .arg("run")
        .arg(&file)
        .arg("--inventory")
        .arg(&inventory)
        .args(["--allow-fencing", "--json", json.to_str().unwrap()])
        .output()
        .unwrap();
    let (off, on) = reset.join().unwrap();
    assert!(
        off.status.success() && on.status.success(),
        "{}{}",
        text(&off),
        text(&on)
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let events = std::fs::read_to_string(&json).unwrap();
    assert!(
        events.contains("reset by its watchdog, as foreseen"),
        "{events}"
    );
    assert!(events.contains("\"kind\":\"node.back\""), "{events}");
    unstage_ha(&lab);
    lab_clean(&lab, 3);
    lab.down();
    assert_nothing_left(&lab.name);
}

/// Long by nature (`make test-long`): ten minutes of random steps with
/// another seed, every one as the model says.
#[test]
fn random_drills_hold_for_minutes() {
    let _turn = one_lab_at_a_time();
    let lab = TestLab::up(&["--links", "2"]);
    let dir = scratch(&format!("{}-random-long", lab.name));
    let out = Command::new(CORODRILL)
        .args([
            "drill",
            "--random",
            "--seed",
            "11",
            "--duration",
            "10m",
            "--inventory",
        ])
        .arg(lab.dir().join("inventory.toml"))
        .arg("--out")
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("all held")
            && stdout.lines().filter(|l| l.starts_with("step ")).count() >= 20,
        "{stdout}"
    );
    lab_clean(&lab, 3);
    lab.down();
    assert_nothing_left(&lab.name);
}
