//! End-to-end tests of `corodrill run`, `check` and the shipped drills on
//! real labs: every shipped drill passes on a lab of its shape; a wrong
//! expectation exits 1 with a JUnit failure naming it; a fault that cannot
//! be applied exits 3 and leaves nothing; Ctrl-C heals and exits 130;
//! `check` reports every error of broken files with its position.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;
use corodrill::inventory::{Inventory, Power};
use quick_junit::Report;

/// Drills measure corosync's timing; two labs at once on a 2-core machine
/// starve each other's corosync of CPU. Tests that run drills take turns.
static ONE_LAB_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_lab_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_LAB_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

fn experiments_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments")
}

fn shipped(names: &[&str]) -> Vec<String> {
    names
        .iter()
        .map(|n| {
            experiments_dir()
                .join(format!("{n}.toml"))
                .display()
                .to_string()
        })
        .collect()
}

/// `corodrill run FILES --inventory <lab's> --junit ...`: the output and the
/// JUnit report read back.
fn drill(lab: &TestLab, files: &[String]) -> (Output, Option<Report>) {
    drill_with(lab, files, &[])
}

/// `drill` with more flags for `run`.
fn drill_with(lab: &TestLab, files: &[String], flags: &[&str]) -> (Output, Option<Report>) {
    let dir = scratch(&format!("{}-{}", lab.name, files.len()));
    let junit = dir.join("junit.xml");
    let inventory = lab.dir().join("inventory.toml");
    let out = Command::new(CORODRILL)
        .arg("run")
        .args(files)
        .arg("--inventory")
        .arg(&inventory)
        .arg("--junit")
        .arg(&junit)
        .arg("--json")
        .arg(dir.join("events.jsonl"))
        // A run that fails while the machine stalls (a CI run saw corosync
        // starve the two cores ~950 ms of every second) is DISTURBED, not
        // the cluster's failure: run it once more, as an operator would.
        // A pass is never retried, so this cannot turn a failure into one.
        .args(["--retry-disturbed", "1"])
        .args(flags)
        .output()
        .expect("cannot run corodrill");
    let report = std::fs::read_to_string(&junit)
        .ok()
        .map(|xml| Report::deserialize_from_str(&xml).expect("unreadable JUnit"));
    (out, report)
}

fn assert_all_pass(lab: &TestLab, files: &[String]) {
    let (out, report) = drill(lab, files);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = report.expect("no JUnit report");
    assert_eq!(report.test_suites.len(), files.len());
    for suite in &report.test_suites {
        assert_eq!(suite.failures, 0, "{}: {}", suite.name.as_str(), text(&out));
        assert!(suite.test_cases.len() >= 3, "{}", suite.name.as_str());
    }
}

#[test]
fn three_node_drills_and_exit_statuses() {
    let _turn = one_lab_at_a_time();
    let lab = TestLab::up(&[]);
    // Every shipped 3-node drill passes, and kills every mutant of its
    // expectations (one run each, for both).
    shipped_three_node_drills_kill_every_mutant(&lab);
    lab_clean(&lab, 3);

    // --repeat: every run judged, the pass rate and the spread of each
    // measured time in the summary and in JUnit.
    let repeat_dir = scratch(&format!("{}-repeat", lab.name));
    let out = Command::new(CORODRILL)
        .args([
            "-q",
            "run",
            &shipped(&["kill-corosync"])[0],
            "--repeat",
            "2",
            "--inventory",
        ])
        .arg(lab.dir().join("inventory.toml"))
        .arg("--junit")
        .arg(repeat_dir.join("junit.xml"))
        .arg("--html")
        .arg(repeat_dir.join("report.html"))
        .arg("--json")
        .arg(repeat_dir.join("events.jsonl"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("2/2 runs passed") && stdout.contains("median"),
        "{stdout}"
    );
    let xml = std::fs::read_to_string(repeat_dir.join("junit.xml")).unwrap();
    assert!(xml.contains("name=\"pass_rate\" value=\"2/2\""), "{xml}");
    let html = std::fs::read_to_string(repeat_dir.join("report.html")).unwrap();
    assert!(html.contains("run 2 of 2"), "the HTML shows every run");
    assert!(
        html.contains("(timed from corosync-log)"),
        "the timeline says which record timed a view"
    );
    quorum_times_are_corosyncs_own(&lab, &repeat_dir.join("events.jsonl"));
    lab_clean(&lab, 3);

    disturbed_runs_are_told_apart_and_retried(&lab);
    lab_clean(&lab, 3);

    a_token_lost_among_untouched_nodes_disturbs_the_run(&lab);
    lab_clean(&lab, 3);

    power_drivers_on_a_real_lab(&lab);
    lab_clean(&lab, 3);

    probe_watchers(&lab);
    lab_clean(&lab, 3);

    fencing_foresight_on_a_lab(&lab);
    lab_clean(&lab, 3);

    // A directory runs the drills that fit this cluster and skips the
    // others, saying why; the same drill named on its own is an error.
    let mixed = scratch(&format!("{}-mixed", lab.name));
    for name in ["clock-skew-five-minutes", "five-nodes-split-two-three"] {
        std::fs::copy(
            experiments_dir().join(format!("{name}.toml")),
            mixed.join(format!("{name}.toml")),
        )
        .unwrap();
    }
    let inventory = lab.dir().join("inventory.toml");
    let out = run_with(&inventory, &[mixed.display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("PASS clock-skew-five-minutes")
            && stdout.contains("five-nodes-split-two-three.toml: the experiment needs 5 nodes")
            && stdout.contains("SKIP "),
        "{stdout}"
    );
    let out = run_with(
        &inventory,
        &[mixed
            .join("five-nodes-split-two-three.toml")
            .display()
            .to_string()],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    lab_clean(&lab, 3);

    let dir = scratch(&format!("{}-bad", lab.name));
    // A deliberately wrong expectation: exit 1, the JUnit failure names it
    // and says expected, observed and when.
    let wrong = dir.join("wrong.toml");
    std::fs::write(
        &wrong,
        std::fs::read_to_string(experiments_dir().join("isolate-one-of-three.toml"))
            .unwrap()
            .replace(
                "name = \"pve3 loses quorum\"",
                "name = \"pve3 keeps quorum (wrong)\"",
            )
            // True at the start, so it must hold; the cut breaks it.
            .replace(
                "nodes = [\"pve3\"]\nquorate = false\nwithin = \"10s\"",
                "nodes = [\"pve3\"]\nquorate = true\nmembers = \"all\"\nwithin = \"5s\"\nhold = \"5s\"",
            )
            .replace("heal_after = \"12s\"", "heal_after = \"6s\""),
    )
    .unwrap();
    let (out, report) = drill(&lab, &[wrong.display().to_string()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = report.unwrap();
    let failed: Vec<_> = report.test_suites[0]
        .test_cases
        .iter()
        .filter(|c| !matches!(c.status, quick_junit::TestCaseStatus::Success { .. }))
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].name.as_str(), "pve3 keeps quorum (wrong)");
    let message = match &failed[0].status {
        quick_junit::TestCaseStatus::NonSuccess { message, .. } => {
            message.as_ref().unwrap().as_str().to_owned()
        }
        other => panic!("{other:?}"),
    };
    assert!(
        message.contains("expected pve3 quorate")
            && message.contains("observed")
            && message.contains("deadline t="),
        "{message}"
    );
    lab_clean(&lab, 3);

    // A fault that cannot be applied: exit 3, and nothing left behind (the
    // cut applied just before it is healed too).
    let broken = dir.join("broken.toml");
    std::fs::write(
        &broken,
        r#"name = "cannot-apply"
nodes = 3
[[fault]]
id = "cut"
kind = "isolate"
nodes = ["pve3"]
[[fault]]
id = "boom"
kind = "command"
nodes = ["pve2"]
run = "exit 7"
at = "1s"
[[expect]]
after = "cut"
nodes = ["pve3"]
quorate = false
within = "10s"
"#,
    )
    .unwrap();
    let (out, _) = drill(&lab, &[broken.display().to_string()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("exit status: 7")
            || String::from_utf8_lossy(&out.stdout).contains("exit status: 7"),
        "{}",
        text(&out)
    );
    lab_clean(&lab, 3);

    // A drill that needs another cluster is refused before anything happens.
    let (out, _) = drill(&lab, &shipped(&["two-nodes-with-qdevice"]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    // Ctrl-C mid-drill: every fault healed, exit 130.
    let mut child = Command::new(CORODRILL)
        .args(["run", &shipped(&["isolate-one-of-three"])[0], "--inventory"])
        .arg(lab.dir().join("inventory.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the cut is in force on pve3, then interrupt.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !lab
        .tool("pve3", &["nft", "list", "ruleset"])
        .contains("corodrill")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the cut never appeared"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    lab_clean(&lab, 3);

    // `status` shows every node's own view; `heal` rolls back what a dead
    // agent left (a rate limit, which no kernel owner removes).
    let inventory = lab.dir().join("inventory.toml");
    let out = Command::new(CORODRILL)
        .arg("status")
        .arg("--inventory")
        .arg(&inventory)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("pve1,pve2,pve3")
            .count(),
        3,
        "{}",
        text(&out)
    );
    let pve3 = lab.agent("pve3");
    let applied = pve3
        .request(
            corodrill_protocol::Op::Apply {
                fault_id: "left".into(),
                fault: corodrill_protocol::Fault::Degrade {
                    peers: vec![],
                    addresses: vec!["198.18.0.3".parse().unwrap()],
                    loss_percent: None,
                    delay_ms: None,
                    jitter_ms: None,
                    rate: Some("1mbit".into()),
                },
                lease_ms: 600_000,
                allow_management_cut: false,
                drill: None,
                at_mono_ns: None,
            },
            Duration::from_secs(10),
        )
        .unwrap();
    assert!(
        matches!(applied, corodrill_protocol::Outcome::Ok { .. }),
        "{applied:?}"
    );
    // The agent's guard first, then the agent: with both gone (a guard
    // OOM-killed too, say) only the journal is left to undo the fault. The
    // chaos test covers the guard's own rollback.
    for who in ["--guard [0-9]+ ", "--stdio "] {
        let pids = lab.tool(
            "pve3",
            &[
                "sh",
                "-c",
                &format!(
                    "pgrep -f 'corodrill-agent {who}.*{}/pve3$'",
                    lab.dir().display()
                ),
            ],
        );
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    drop(pve3);
    assert!(lab
        .tool("pve3", &["tc", "qdisc", "show", "dev", "ring0"])
        .contains("tbf"));
    let out = Command::new(CORODRILL)
        .arg("heal")
        .arg("--inventory")
        .arg(&inventory)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("pve3: rolled back left (degrade)"),
        "{}",
        text(&out)
    );
    lab_clean(&lab, 3);

    lab.down();
    assert_nothing_left(&lab.name);
}

/// Time of day in µs, modulo a quarter hour (time zones are whole quarter
/// hours), of `2026-12-02T10:04:14.473123Z` or corosync's hires
/// `Dec 02 10:04:14.473 [pid] ...`.
fn quarter_hour_us(hms: &str) -> i64 {
    let (hms, frac) = hms.split_once('.').unwrap();
    let mut p = hms.split(':').map(|x| x.parse::<i64>().unwrap());
    let (_, m, s) = (p.next().unwrap(), p.next().unwrap(), p.next().unwrap());
    let frac: String = frac.chars().take_while(|c| c.is_ascii_digit()).collect();
    let us: i64 = format!("{frac:0<6}")[..6].parse().unwrap();
    ((m % 15) * 60 + s) * 1_000_000 + us
}

/// Each quorum transition of kill-corosync's JSON log (two runs) timed from
/// corosync's own log is within 2 ms of that node's `[QUORUM] Members[N]`
/// line for the same members (the line has ms, the log µs); pve2's view
/// right after its corosync is restarted (the agent connects ~20 ms after
/// corosync logged it) is among them.
fn quorum_times_are_corosyncs_own(lab: &TestLab, events: &Path) {
    let text = std::fs::read_to_string(events).unwrap();
    let mut from_log = 0;
    let mut restarted_firsts = 0;
    let mut after_down = std::collections::BTreeSet::new();
    for line in text.lines() {
        let ev: serde_json::Value = serde_json::from_str(line).unwrap();
        let node = ev["node"].as_str().unwrap_or_default().to_owned();
        match ev["kind"].as_str() {
            Some("corosync.down") => {
                after_down.insert(node);
                continue;
            }
            Some("quorum") if ev["t"].as_f64().unwrap() > 0.0 => {}
            _ => continue,
        }
        let first_after_restart = after_down.remove(&node);
        assert!(
            matches!(ev["source"].as_str(), Some("corosync-log" | "notification")),
            "{line}"
        );
        if ev["source"] != "corosync-log" {
            assert!(
                !first_after_restart,
                "a restarted corosync's first view: {line}"
            );
            continue;
        }
        let ids: Vec<String> = ev["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_str().unwrap().trim_start_matches("pve").to_owned())
            .collect();
        let want = format!("[QUORUM] Members[{}]: {}", ids.len(), ids.join(" "));
        let at = quarter_hour_us(ev["ts"].as_str().unwrap().split_once('T').unwrap().1);
        let log = std::fs::read_to_string(lab.dir().join(&node).join("corosync.log")).unwrap();
        let nearest = log
            .lines()
            .filter(|l| l.trim_end().ends_with(&want))
            .map(|l| {
                let d = (at - quarter_hour_us(l.split_whitespace().nth(2).unwrap()))
                    .rem_euclid(900_000_000);
                if d > 450_000_000 {
                    d - 900_000_000
                } else {
                    d
                }
            })
            .min_by_key(|d| d.abs())
            .unwrap_or(i64::MAX);
        // 1 ms of the line's truncation, 1 ms of mapping agent times onto
        // the controller's clock.
        assert!(
            (-1_000..=2_000).contains(&nearest),
            "{nearest} µs from corosync's line: {line}"
        );
        from_log += 1;
        restarted_firsts += usize::from(first_after_restart);
    }
    assert!(
        from_log >= 8,
        "only {from_log} quorum views timed from corosync's log:\n{text}"
    );
    assert_eq!(
        restarted_firsts, 2,
        "pve2's first view after each restart:\n{text}"
    );
}

/// Each start or stop of svc by a node, in the JSON log of the Pacemaker
/// failover drills, that the node's agent timed from Pacemaker's alert is
/// within 10 ms of the "Result of start/stop operation" line in that
/// node's pacemaker.log (the line has ms, the log µs); the failovers'
/// starts are among them.
fn resource_times_are_pacemakers_own(lab: &TestLab, events: &Path) {
    let text = std::fs::read_to_string(events).unwrap();
    let mut claims: std::collections::BTreeMap<String, bool> = Default::default();
    let (mut starts, mut stops) = (0, 0);
    let mut worst: i64 = 0;
    for line in text.lines() {
        let ev: serde_json::Value = serde_json::from_str(line).unwrap();
        if ev["kind"] != "resource" {
            continue;
        }
        let node = ev["node"].as_str().unwrap().to_owned();
        let Some(on) = ev["active_on"].as_array() else {
            claims.remove(&node);
            continue;
        };
        let runs = on.iter().any(|n| n.as_str() == Some(node.as_str()));
        let before = claims.insert(node.clone(), runs);
        if before.is_none_or(|b| b == runs) || ev["source"] != "pacemaker-alert" {
            continue;
        }
        // A start or stop, or a probe that found it running after a
        // restart: Pacemaker logs each result.
        let want = format!(" operation for svc on {node}: ");
        let at = quarter_hour_us(ev["ts"].as_str().unwrap().split_once('T').unwrap().1);
        let log = std::fs::read_to_string(
            lab.dir()
                .join(&node)
                .join("pacemaker")
                .join("log")
                .join("pacemaker.log"),
        )
        .unwrap();
        let (nearest, what) = log
            .lines()
            .filter(|l| l.contains("Result of ") && l.contains(&want))
            .map(|l| {
                let d = (at - quarter_hour_us(l.split_whitespace().nth(2).unwrap()))
                    .rem_euclid(900_000_000);
                let d = if d > 450_000_000 { d - 900_000_000 } else { d };
                (d, l.to_owned())
            })
            .min_by_key(|(d, _)| d.abs())
            .unwrap_or((i64::MAX, String::new()));
        assert!(
            nearest.abs() <= 10_000,
            "{nearest} µs from Pacemaker's line: {line}"
        );
        worst = worst.max(nearest.abs());
        if runs && what.contains("Result of start operation") {
            starts += 1;
        } else if !runs && what.contains("Result of stop operation") {
            stops += 1;
        }
    }
    eprintln!("resource starts {starts}, stops {stops} timed from Pacemaker's alerts, worst {worst} µs from its log");
    assert!(
        starts >= 3,
        "only {starts} starts timed from Pacemaker's alerts:\n{text}"
    );
}

/// The shipped drills for one link and three nodes.
const THREE_NODE_DRILLS: [&str; 7] = [
    "isolate-one-of-three",
    "kill-corosync",
    "pause-longer-than-token",
    "power-off-one-of-three",
    "clock-skew-five-minutes",
    "one-way-cut",
    "flapping-link",
];

/// `corodrill mutate` on the shipped 3-node drills: each runs once and
/// passes, and every mutant of its expectations that is not unviable or
/// equivalent is killed by what the cluster did; an expectation whose
/// window reaches past the heal lets a flipped mutant survive, and
/// `mutate` exits 1 naming it.
fn shipped_three_node_drills_kill_every_mutant(lab: &TestLab) {
    let inventory = lab.dir().join("inventory.toml");
    let files = shipped(&THREE_NODE_DRILLS);
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
    let dir = scratch(&format!("{}-mutate", lab.name));
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
}

/// A drill that fails while the machine stalls is DISTURBED, not FAIL:
/// here an operator command holds pve1's corosync still for 2.5 s (past
/// corosync's own "not scheduled" threshold, so corosync says so in its
/// log) while an expectation fails. `--retry-disturbed 1` runs it again
/// once; both runs stay in the reports, and JUnit has an error of type
/// `disturbed` with the evidence, the exit status 1.
fn disturbed_runs_are_told_apart_and_retried(lab: &TestLab) {
    let dir = scratch(&format!("{}-stall", lab.name));
    let file = dir.join("stall.toml");
    std::fs::write(
        &file,
        r#"name = "stalled-machine"
nodes = 3

[[fault]]
id = "stall"
kind = "command"
nodes = ["pve1"]
run = "p=$(cat /run/corosync.pid); kill -STOP $p; sleep 2.5; kill -CONT $p"
timeout = "20s"
heal_after = "6s"

[[expect]]
name = "pve3 loses quorum (it does not)"
after = "stall"
nodes = ["pve3"]
quorate = false
within = "4s"
"#,
    )
    .unwrap();
    let junit = dir.join("junit.xml");
    let out = Command::new(CORODRILL)
        .args(["-q", "run"])
        .arg(&file)
        .arg("--inventory")
        .arg(lab.dir().join("inventory.toml"))
        .args(["--retry-disturbed", "1", "--junit"])
        .arg(&junit)
        .output()
        .unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("DISTURBED stalled-machine"), "{said}");
    assert!(
        said.contains("RETRIED") && said.contains("not scheduled"),
        "{said}"
    );
    let report = Report::deserialize_from_str(&std::fs::read_to_string(&junit).unwrap()).unwrap();
    let case = report.test_suites[0]
        .test_cases
        .iter()
        .find(|c| c.name.as_str().starts_with("pve3 loses quorum"))
        .expect("the expectation's test case");
    match &case.status {
        quick_junit::TestCaseStatus::NonSuccess {
            kind, ty, reruns, ..
        } => {
            assert_eq!(*kind, quick_junit::NonSuccessKind::Error, "{said}");
            assert_eq!(ty.as_ref().map(|t| t.as_str()), Some("disturbed"));
            assert_eq!(reruns.runs.len(), 1, "the retried run as a rerun");
        }
        other => panic!("{other:?}\n{said}"),
    }
}

/// A machine too starved to keep a healthy ring: the drill pauses pve2;
/// once pve1 and pve3 have formed their own ring, the test (not the drill)
/// drops all traffic between them in pve1's namespace for 2.5 s, longer
/// than the token. Neither corosync misses its schedule, so nothing says
/// "not scheduled": the only evidence is corosync's "Token has not been
/// received" in the ring [pve1, pve3], which no fault touched, while pve2,
/// the one node a fault touched, is held silent. The run fails (pve1 loses
/// quorum) and is DISTURBED by that evidence, not FAIL.
fn a_token_lost_among_untouched_nodes_disturbs_the_run(lab: &TestLab) {
    let dir = scratch(&format!("{}-token", lab.name));
    let file = dir.join("token.toml");
    std::fs::write(
        &file,
        r#"name = "starved-ring"
nodes = 3

[[fault]]
id = "pause"
kind = "pause"
nodes = ["pve2"]
heal_after = "12s"

[[expect]]
name = "pve1 keeps quorum with pve3"
after = "pause"
nodes = ["pve1"]
quorate = true
members = ["pve1", "pve3"]
within = "5s"
hold = "6s"
"#,
    )
    .unwrap();
    let log = lab.dir().join("pve1/corosync.log");
    let start = std::fs::metadata(&log).map_or(0, |m| m.len() as usize);
    let run = Command::new(CORODRILL)
        .args(["-q", "run"])
        .arg(&file)
        .arg("--inventory")
        .arg(lab.dir().join("inventory.toml"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // pve1's ring without pve2, as its log says.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read(&log).unwrap_or_default();
        if String::from_utf8_lossy(&text[start.min(text.len())..]).contains("Members[2]: 1 3") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pve1 never formed a ring with pve3 alone"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // pve3's addresses on both links, dropped both ways in pve1's namespace.
    let pve1 = lab.netns("pve1");
    let pve3 = (0..2)
        .map(|link| corodrill::lab::spec::node_address(3, link).to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let nft = |script: &str| {
        let done = Command::new("ip")
            .args(["netns", "exec", &pve1, "nft", script])
            .status()
            .unwrap();
        assert!(done.success(), "nft in {pve1}: {script}");
    };
    nft(&format!(
        "add table inet starve; \
         add chain inet starve in {{ type filter hook input priority -10; }}; \
         add chain inet starve out {{ type filter hook output priority -10; }}; \
         add rule inet starve in ip saddr {{ {pve3} }} drop; \
         add rule inet starve out ip daddr {{ {pve3} }} drop"
    ));
    std::thread::sleep(Duration::from_millis(2500));
    nft("delete table inet starve");
    let out = run.wait_with_output().unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("DISTURBED starved-ring"), "{said}");
    assert!(
        said.contains("token lost among nodes no fault touched"),
        "{said}"
    );
    assert!(!said.contains("not scheduled"), "{said}");
}

/// The lab's inventory with pve3's power driver replaced.
/// `probe` watchers run an operator's command on the nodes: here "the
/// lowest-named member of my quorate partition" stands for a service that
/// follows quorum. Isolating pve1 moves it to pve2 in the majority's
/// views and pve1 stops answering (inquorate, exit 2). Nothing fences
/// pve1, so it keeps claiming the leader until its own probe sees quorum
/// gone, a few hundred ms after the majority moved it (once 0.32 s in CI):
/// the drill reports that window instead of forbidding it. A probe past
/// its timeout is killed with its children and its node cannot say.
fn probe_watchers(lab: &TestLab) {
    let dir = scratch(&format!("{}-probe", lab.name));
    let file = dir.join("probe.toml");
    std::fs::write(
        &file,
        r#"name = "probe"
nodes = 3

[invariants]
double_active = "report"

[[watch]]
resource = "leader"
kind = "probe"
command = "corosync-quorumtool -s >/dev/null && corosync-quorumtool -l | sed 's/ (local)//' | awk '$1 ~ /^[0-9]+$/ {print $NF}' | sort | head -n 1"
interval = "200ms"

[[watch]]
resource = "slow"
kind = "probe"
nodes = ["pve3"]
command = "sleep 7.25; echo pve3"
timeout = "300ms"

[[fault]]
id = "cut"
kind = "isolate"
nodes = ["pve1"]
heal_after = "8s"

[[expect]]
name = "leader moves to pve2"
after = "cut"
nodes = ["pve2", "pve3"]
resource = "leader"
running_on = ["pve2"]
within = "6s"
hold = "1s"

[[expect]]
name = "pve1 stops answering"
after = "cut"
nodes = ["pve1"]
resource = "leader"
running = false
within = "6s"

[[expect]]
name = "leader back on pve1"
after = "cut.healed"
nodes = "all"
resource = "leader"
running_on = ["pve1"]
within = "10s"
"#,
    )
    .unwrap();
    let (out, report) = drill(lab, &[file.display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let cases: Vec<String> = report.unwrap().test_suites[0]
        .test_cases
        .iter()
        .map(|c| c.name.as_str().to_owned())
        .collect();
    assert!(
        cases
            .iter()
            .any(|c| c == "leader on two nodes at once (reported)"),
        "{cases:?}"
    );
    // pve3's slow probe: killed at its timeout, so pve3 cannot say; no
    // `sleep` of it is left running.
    let events =
        std::fs::read_to_string(scratch_path(&format!("{}-1", lab.name)).join("events.jsonl"))
            .unwrap();
    assert!(
        events.lines().any(|l| l.contains("\"resource\":\"slow\"")
            && l.contains("\"node\":\"pve3\"")
            && l.contains("\"active_on\":null")),
        "{events}"
    );
    assert!(
        !events.contains("\"resource\":\"slow\",\"active_on\":["),
        "{events}"
    );
    let left = Command::new("pgrep")
        .args(["-f", "sleep 7.25"])
        .output()
        .unwrap();
    assert!(left.stdout.is_empty(), "{}", text(&left));
}

/// Fencing foresight: with Proxmox VE HA services configured (staged in
/// the lab nodes' own /etc/pve/ha/resources.cfg), a 62 s isolate would get
/// pve3 reset by its watchdog. --dry-run says so; run refuses it (exit 2,
/// nothing applied). `a_foreseen_watchdog_reset_is_taken_as_such` runs it.
fn fencing_foresight_on_a_lab(lab: &TestLab) {
    let (file, _) = stage_ha(lab);
    let inventory = lab.dir().join("inventory.toml");
    let run = |extra: &[&str]| {
        Command::new(CORODRILL)
            .arg("run")
            .arg(&file)
            .arg("--inventory")
            .arg(&inventory)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&["--dry-run", "--model-override", "totem.token=1000"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("pve3: out of the quorate partition from t=3.6s")
            && !stdout.contains("pve1: out of"),
        "{stdout}"
    );
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("refused") && all.contains("vm:100") && all.contains("--allow-fencing"),
        "{all}"
    );
    assert!(!lab
        .tool("pve3", &["nft", "list", "ruleset"])
        .contains("corodrill"));
    unstage_ha(lab);
}

fn inventory_with_power(lab: &TestLab, dir: &Path, file: &str, power: Power) -> PathBuf {
    let text = std::fs::read_to_string(lab.dir().join("inventory.toml")).unwrap();
    let mut inventory = Inventory::from_toml(&text).unwrap();
    inventory.nodes[2].power = power;
    let path = dir.join(file);
    std::fs::write(&path, inventory.to_toml()).unwrap();
    path
}

fn run_with(inventory: &Path, files: &[String]) -> Output {
    Command::new(CORODRILL)
        .arg("run")
        .args(files)
        .arg("--inventory")
        .arg(inventory)
        .output()
        .expect("cannot run corodrill")
}

/// Power-off through the `command` driver (the operator's commands, here
/// `corodrill lab power`), and power drivers that cannot be used: a
/// missing credential (exit 2) and a BMC tool that does not answer (exit 3),
/// both before any fault is applied.
fn power_drivers_on_a_real_lab(lab: &TestLab) {
    let dir = scratch(&format!("{}-power", lab.name));
    let lab_power =
        |action: &str| format!("{CORODRILL} lab power --name {} pve3 {action}", lab.name);
    let calls = dir.join("calls");
    let logged = |action: &str| {
        format!(
            "echo {action} >> {} && {}",
            calls.display(),
            lab_power(action)
        )
    };
    let inventory = inventory_with_power(
        lab,
        &dir,
        "command.toml",
        Power::Command {
            off: logged("off"),
            on: logged("on"),
            status: lab_power("status"),
        },
    );
    let out = run_with(&inventory, &shipped(&["power-off-one-of-three"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&calls).unwrap(), "off\non\n");

    let ipmi = |password_env: &str| Power::Ipmi {
        host: "198.51.100.13".into(),
        user: "admin".into(),
        password_env: password_env.into(),
    };
    let inventory = inventory_with_power(lab, &dir, "ipmi.toml", ipmi("CORODRILL_TEST_UNSET"));
    let out = run_with(&inventory, &shipped(&["power-off-one-of-three"]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains(
            "node pve3: power driver ipmi: environment variable CORODRILL_TEST_UNSET is not set"
        ),
        "{}",
        text(&out)
    );
    // PATH is set in every environment: a credential that is present, for
    // a BMC whose tool cannot be reached.
    let inventory = inventory_with_power(lab, &dir, "ipmi-gone.toml", ipmi("PATH"));
    let out = Command::new(CORODRILL)
        .args([
            "run",
            &shipped(&["power-off-one-of-three"])[0],
            "--inventory",
        ])
        .arg(&inventory)
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("node pve3: power driver ipmi: power status: cannot run ipmitool"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("apply power"), "{}", text(&out));
}

/// The ssh transport for real: every node runs sshd, the inventory
/// reaches each agent with `ssh root@... corodrill-agent --stdio`, the agent
/// is installed over that path, and drills (power-off included: sshd comes
/// back with the node) run entirely over it.
#[test]
fn drills_entirely_over_ssh() {
    let _turn = one_lab_at_a_time();
    let lab = TestLab::up(&["--ssh"]);
    let inventory_path = lab.dir().join("inventory.toml");
    let inventory =
        Inventory::from_toml(&std::fs::read_to_string(&inventory_path).unwrap()).unwrap();
    for node in &inventory.nodes {
        assert!(
            node.connect.contains(" ssh ") && node.connect.contains("root@127.0.0.1"),
            "{}",
            node.connect
        );
    }

    // `lab up --ssh` installed the agents over ssh; an operator's
    // install-agent does it again and checks each one.
    let out = Command::new(CORODRILL)
        .args(["install-agent", "--inventory"])
        .arg(&inventory_path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for i in 1..=3 {
        let installed = format!(
            "pve{i}: corodrill-agent {} installed at {}/pve{i}/bin/corodrill-agent",
            env!("CARGO_PKG_VERSION"),
            lab.dir().display()
        );
        assert!(stdout.contains(&installed), "{stdout}");
    }

    // The agent really is sshd's child, run from the node's own copy.
    let agent = corodrill::cluster::agent::AgentConn::connect(
        "pve1",
        &inventory.nodes[0].connect,
        Duration::from_secs(20),
    )
    .unwrap();
    let copy = format!("{}/pve1/bin/corodrill-agent", lab.dir().display());
    let parent_of_agent = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .find_map(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            String::from_utf8_lossy(&cmdline)
                .starts_with(&copy)
                .then(|| std::fs::read_to_string(e.path().join("stat")).ok())?
        })
        .and_then(|stat| {
            let ppid = stat
                .rsplit(')')
                .next()?
                .split_whitespace()
                .nth(1)?
                .to_owned();
            std::fs::read_to_string(format!("/proc/{ppid}/comm")).ok()
        });
    assert_eq!(parent_of_agent.as_deref().map(str::trim), Some("sshd"));
    drop(agent);

    assert_all_pass(
        &lab,
        &shipped(&["isolate-one-of-three", "power-off-one-of-three"]),
    );
    lab_clean(&lab, 3);

    // A node whose sshd does not answer: install-agent names it, installs
    // the others, exits 3.
    let mut broken = inventory.clone();
    broken.nodes[2].connect = broken.nodes[2]
        .connect
        .replace("root@127.0.0.1", "-p 2222 root@127.0.0.1");
    let dir = scratch(&format!("{}-ssh", lab.name));
    std::fs::write(dir.join("broken.toml"), broken.to_toml()).unwrap();
    let out = Command::new(CORODRILL)
        .args(["install-agent", "--inventory"])
        .arg(dir.join("broken.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("node pve3: ") && stderr.contains("Connection refused"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("pve2: corodrill-agent"));
}

/// Random drills: a fixed seed draws the same faults; against the real
/// model every step holds; against a planted wrong one (expected_votes=1:
/// a node alone would keep quorum) the drill fails, writes the step as an
/// experiment, shrinks it, and the shrunk file reproduces the failure.
#[test]
fn random_drill_holds_and_catches_a_wrong_model() {
    let _turn = one_lab_at_a_time();
    let lab = TestLab::up(&["--links", "2"]);
    let inventory = lab.dir().join("inventory.toml");
    let dir = scratch(&format!("{}-random", lab.name));
    let random = |extra: &[&str]| {
        Command::new(CORODRILL)
            .args(["drill", "--random", "--seed", "7", "--inventory"])
            .arg(&inventory)
            .arg("--out")
            .arg(&dir)
            .args(extra)
            .output()
            .unwrap()
    };
    // Two steps or so here; `random_drills_hold_for_minutes` runs longer.
    let out = random(&["--duration", "20s"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("all held") && stdout.contains("faults judged per minute"),
        "{stdout}"
    );
    assert!(
        stdout.lines().filter(|l| l.starts_with("step ")).count() >= 2,
        "{stdout}"
    );
    lab_clean(&lab, 3);

    let out = random(&["--duration", "20s", "--model-override", "expected_votes=1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("expected pve"), "{stdout}");
    let shrunk = dir.join("random-seed-7-step-1-shrunk.toml");
    assert!(stdout.contains("shrunk to 1 fault(s)"), "{stdout}");
    let e =
        corodrill::experiment::parse(&shrunk, &std::fs::read_to_string(&shrunk).unwrap()).unwrap();
    assert_eq!(e.faults.len(), 1);
    assert!(dir.join("random-seed-7-step-1.toml").is_file());
    lab_clean(&lab, 3);

    let rerun = |extra: &[&str]| {
        Command::new(CORODRILL)
            .arg("run")
            .arg(&shrunk)
            .arg("--inventory")
            .arg(&inventory)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = rerun(&["--model-override", "expected_votes=1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let out = rerun(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    lab_clean(&lab, 3);
    lab.down();
    assert_nothing_left(&lab.name);
}

fn pacemaker_drills(names: &[&str]) -> Vec<String> {
    names
        .iter()
        .map(|n| {
            experiments_dir()
                .join(format!("pacemaker/{n}.toml"))
                .display()
                .to_string()
        })
        .collect()
}

/// Failover on the Pacemaker lab: the shipped drills pass on a lab of their
/// shape; a drill that wants failover within 1 s fails and says when it did
/// happen; with no-quorum-policy=ignore on the cut node (no fencing) the
/// resource runs on two nodes at once and the report says where and how long.
#[test]
fn pacemaker_failover_drills() {
    let _turn = one_lab_at_a_time();
    let lab = TestLab::up(&["--pacemaker", "--resource", "svc"]);
    let drills = pacemaker_drills(&[
        "failover-when-its-node-is-cut",
        "failover-when-its-node-is-powered-off",
        "failover-when-corosync-is-killed",
    ]);
    assert_all_pass(&lab, &drills);
    resource_times_are_pacemakers_own(
        &lab,
        &scratch_path(&format!("{}-{}", lab.name, drills.len())).join("events.jsonl"),
    );
    lab_clean(&lab, 3);

    let dir = scratch(&format!("{}-pacemaker", lab.name));
    let cut = std::fs::read_to_string(
        experiments_dir().join("pacemaker/failover-when-its-node-is-cut.toml"),
    )
    .unwrap();
    let fast = dir.join("fast.toml");
    std::fs::write(
        &fast,
        cut.replacen("within = \"15s\"", "within = \"1s\"", 1),
    )
    .unwrap();
    // Run with --pacemaker-alert, as on a real cluster: pve1's agent
    // installs the alert (journaled like a fault) and removes it at the
    // drill's last heal, read back.
    let (out, report) = drill_with(&lab, &[fast.display().to_string()], &["--pacemaker-alert"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("installing corodrill's Pacemaker alert from pve1"),
        "{}",
        text(&out)
    );
    let events =
        std::fs::read_to_string(scratch_path(&format!("{}-1", lab.name)).join("events.jsonl"))
            .unwrap();
    assert!(
        events
            .lines()
            .any(|l| l.contains("\"kind\":\"fault.healed\"")
                && l.contains("\"fault\":\"corodrill-run\"")
                && l.contains("\"clean\":true")),
        "{events}"
    );
    let alerts = corodrill(&[
        "lab", "exec", "--name", &lab.name, "pve2", "--", "cibadmin", "--query", "--scope",
        "alerts",
    ]);
    let alerts = String::from_utf8_lossy(&alerts.stdout).into_owned();
    assert!(
        alerts.contains("id=\"corodrill\"") && !alerts.contains("corodrill-run"),
        "{alerts}"
    );
    let report = report.unwrap();
    let case = report.test_suites[0]
        .test_cases
        .iter()
        .find(|c| c.name.as_str() == "svc fails over to pve2 or pve3")
        .unwrap();
    let message = match &case.status {
        quick_junit::TestCaseStatus::NonSuccess { message, .. } => {
            message.as_ref().unwrap().as_str().to_owned()
        }
        other => panic!("{other:?}"),
    };
    assert!(
        message.contains("within 1s") && message.contains("s after cut"),
        "{message}"
    );
    lab_clean(&lab, 3);

    // pve1 told to ignore the loss of quorum: cut off, it keeps its copy
    // while pve2 or pve3 starts another.
    let ignore = dir.join("ignore.toml");
    let set = |policy: &str| {
        format!("crm_attribute --type crm_config --name no-quorum-policy --update {policy}")
    };
    std::fs::write(
        &ignore,
        format!(
            r#"name = "double-active-without-fencing"
nodes = 3
[[watch]]
resource = "svc"
[invariants]
double_active = "expect"
[[fault]]
id = "policy"
kind = "command"
nodes = ["pve1"]
run = "{}"
undo = "{}"
[[fault]]
id = "cut"
kind = "isolate"
nodes = ["pve1"]
at = "1s"
heal_after = "10s"
[[expect]]
name = "svc fails over"
after = "cut"
nodes = ["pve2", "pve3"]
resource = "svc"
running_on = ["pve2", "pve3"]
within = "15s"
"#,
            set("ignore"),
            set("stop")
        ),
    )
    .unwrap();
    let (out, report) = drill(&lab, &[ignore.display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = report.unwrap();
    let caught = report.test_suites[0]
        .test_cases
        .iter()
        .find(|c| c.name.as_str() == "svc double-active window caught")
        .unwrap();
    let said = caught
        .system_out
        .as_ref()
        .map(|s| s.as_str().to_owned())
        .unwrap_or_default();
    assert!(said.contains("svc was active on pve1 and pve"), "{said}");
    // The window lasts from the failover to the heal: seconds, not a blip.
    let window = caught.time.unwrap().as_secs_f64();
    assert!(window > 3.0, "{window}");
    lab_clean(&lab, 3);
    lab.down();
    assert_nothing_left(&lab.name);
}

/// The two-node Pacemaker drills, without and with a QDevice.
#[test]
fn pacemaker_two_node_drills() {
    let _turn = one_lab_at_a_time();
    let lab = TestLab::up(&["--nodes", "2", "--pacemaker", "--resource", "svc"]);
    assert_all_pass(
        &lab,
        &pacemaker_drills(&["two-nodes-without-qdevice-stop-it"]),
    );
    lab.down();
    let lab = TestLab::up(&[
        "--nodes",
        "2",
        "--qdevice",
        "--pacemaker",
        "--resource",
        "svc",
    ]);
    assert_all_pass(&lab, &pacemaker_drills(&["two-nodes-with-qdevice-keep-it"]));
    lab.down();
    assert_nothing_left(&lab.name);
}

#[test]
fn two_node_drills() {
    let _turn = one_lab_at_a_time();
    let lab = TestLab::up(&["--nodes", "2"]);
    assert_all_pass(
        &lab,
        &shipped(&[
            "two-nodes-without-qdevice",
            "expected-votes-override",
            "expected-votes-override-both-sides",
        ]),
    );
    lab_clean(&lab, 2);
    lab.down();
    assert_nothing_left(&lab.name);
}

#[test]
fn two_nodes_with_qdevice_drill() {
    let _turn = one_lab_at_a_time();
    let lab = TestLab::up(&["--nodes", "2", "--qdevice"]);
    assert_all_pass(&lab, &shipped(&["two-nodes-with-qdevice"]));
    lab_clean(&lab, 2);
    lab.down();
    assert_nothing_left(&lab.name);
}

#[test]
fn redundant_links_drill() {
    let _turn = one_lab_at_a_time();
    let lab = TestLab::up(&["--links", "2"]);
    assert_all_pass(&lab, &shipped(&["redundant-links"]));
    lab_clean(&lab, 3);
    lab.down();
    assert_nothing_left(&lab.name);
}

#[test]
fn five_node_drill() {
    let _turn = one_lab_at_a_time();
    let lab = TestLab::up(&["--nodes", "5"]);
    // With --oracle: the model's prediction for every node after the split
    // and after the heal equals what corosync did.
    let file = &shipped(&["five-nodes-split-two-three"])[0];
    let out = Command::new(CORODRILL)
        .args(["run", "--oracle", file, "--inventory"])
        .arg(lab.dir().join("inventory.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("oracle: "),
        "{}",
        text(&out)
    );
    lab_clean(&lab, 5);
    lab.down();
    assert_nothing_left(&lab.name);
}

#[test]
fn check_reports_every_error_with_its_position() {
    // Every shipped drill parses, those in subdirectories too.
    let dirs = ["", "pacemaker", "pve"].map(|d| experiments_dir().join(d));
    let out = Command::new(CORODRILL)
        .arg("check")
        .args(&dirs)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("pve-ha-vm-recovers-when-its-node-is-cut")
    );

    let dir = scratch("check");
    std::fs::write(dir.join("a.toml"), "name = \"a\"\nnodes = 3\n[[fault]]\nid = \"x\"\nkind = \"explode\"\n[[expect]]\nafter = \"y\"\nnodes = \"all\"\nquorate = true\nwithin = \"10q\"\n").unwrap();
    std::fs::write(dir.join("b.toml"), "name = \"b\"\nnodes = \n").unwrap();
    std::fs::write(
        dir.join("c.toml"),
        std::fs::read_to_string(experiments_dir().join("kill-corosync.toml")).unwrap(),
    )
    .unwrap();
    let out = Command::new(CORODRILL)
        .arg("check")
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let a = dir.join("a.toml").display().to_string();
    let b = dir.join("b.toml").display().to_string();
    assert!(
        stderr.contains(&format!("{a}:5:1: unknown fault kind \"explode\"")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{a}:7:1: after = \"y\" names no fault")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{a}:10:1: within: invalid duration \"10q\"")),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("{b}:2:")), "{stderr}");
    assert!(stderr.contains("4 error(s)"), "{stderr}");

    // The shipped drills are all valid.
    let out = Command::new(CORODRILL)
        .arg("check")
        .arg(experiments_dir())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn dry_run_and_bad_inventory_touch_nothing() {
    let dir = scratch("dry");
    // An inventory whose agents cannot be reached: a dry run never tries.
    let inventory = dir.join("inventory.toml");
    let mut toml = String::from("name = \"paper\"\n");
    for i in 1..=3 {
        toml.push_str(&format!(
            "[[node]]\nname = \"pve{i}\"\nconnect = \"false\"\nlinks = {{ ring0 = \"198.18.0.{i}\" }}\npower = {{ driver = \"lab\", lab = \"paper\" }}\n"
        ));
    }
    std::fs::write(&inventory, toml).unwrap();
    let out = Command::new(CORODRILL)
        .args(["run", "--dry-run", "--inventory"])
        .arg(&inventory)
        .arg(experiments_dir().join("isolate-one-of-three.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("apply cut (partition) on pve1, pve2, pve3")
            && stdout.contains("12.0s heal cut"),
        "{stdout}"
    );

    // Unreachable agents: exit 3, naming the node.
    let out = Command::new(CORODRILL)
        .args(["run", "--inventory"])
        .arg(&inventory)
        .arg(experiments_dir().join("isolate-one-of-three.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("pve1"),
        "{}",
        text(&out)
    );

    // A broken inventory: exit 2 with its position.
    std::fs::write(
        &inventory,
        "name = \"x\"\n[[node]]\nname = \"pve1\"\nconect = \"ssh\"\n",
    )
    .unwrap();
    let out = Command::new(CORODRILL)
        .args(["run", "--inventory"])
        .arg(&inventory)
        .arg(experiments_dir().join("isolate-one-of-three.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("{}:4:1:", inventory.display())),
        "{}",
        text(&out)
    );
}

#[test]
fn preflight_passes_warns_and_fails_with_fixes() {
    let _turn = one_lab_at_a_time();
    let lab = TestLab::up(&["--nodes", "2"]);
    let inventory = lab.dir().join("inventory.toml");
    let junit = scratch(&format!("{}-preflight", lab.name)).join("preflight.xml");
    let preflight = || {
        Command::new(CORODRILL)
            .args(["-q", "preflight", "--inventory"])
            .arg(&inventory)
            .arg("--junit")
            .arg(&junit)
            .output()
            .unwrap()
    };
    let out = preflight();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(
            "pass  pve1     name resolution                  pve2 resolves to 198.18.0.2"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("pass  pve2     round trip under 2 ms"),
        "{stdout}"
    );
    assert!(
        stdout.contains("warn  cluster  two nodes without QDevice"),
        "{stdout}"
    );
    assert!(stdout.contains("fix: add a second link"), "{stdout}");

    // The quorum model's answers for this very cluster, live and from its
    // corosync.conf.
    let out = Command::new(CORODRILL)
        .args(["plan", "--inventory"])
        .arg(&inventory)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("expected votes 2, quorum 2"), "{stdout}");
    assert!(stdout.contains("survives losing 0 of 2"), "{stdout}");
    assert!(
        stdout.contains("pve1 | pve2: neither side is quorate"),
        "{stdout}"
    );
    // Two nodes, token 1000: no token_coefficient, consensus 1200.
    assert!(
        stdout.contains("about 2.20s later (token 1000 ms + consensus 1200 ms)"),
        "{stdout}"
    );
    // With a drill: each node's predicted quorum after each change, and
    // who Proxmox VE HA would fence (a 70 s cut leaves no quorate side).
    let drill = scratch(&format!("{}-plan", lab.name)).join("cut.toml");
    std::fs::write(
        &drill,
        "name = \"long cut\"\nnodes = 2\n[[fault]]\nid = \"cut\"\nkind = \"isolate\"\nnodes = [\"pve2\"]\nheal_after = \"70s\"\n",
    )
    .unwrap();
    let out = Command::new(CORODRILL)
        .args(["plan", "--inventory"])
        .arg(&inventory)
        .arg(&drill)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("0.0s after apply cut: pve1 NOT quorate, pve2 NOT quorate")
            && stdout.contains("70.0s after heal cut: pve1 quorate, pve2 quorate"),
        "{stdout}"
    );
    assert!(
        stdout.contains("this cluster has no HA services: as if it had")
            && stdout.contains("pve1: out of the quorate partition from t=2.2s")
            && stdout.contains("pve2: out of the quorate partition from t=2.2s"),
        "{stdout}"
    );
    let out = Command::new(CORODRILL)
        .args(["plan", "--from"])
        .arg(lab.dir().join("pve1/corosync.conf"))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("pve1 | pve2: neither side is quorate"),
        "{}",
        text(&out)
    );

    // Someone's firewall on pve2 drops corosync: fail, exit 1, in JUnit too.
    let block = "add table inet blocker; add chain inet blocker in { type filter hook input priority 0; }; \
                 add rule inet blocker in udp dport 5405 drop";
    let added = Command::new("ip")
        .args(["netns", "exec", &lab.netns("pve2"), "nft", block])
        .status()
        .unwrap();
    assert!(added.success());
    let out = preflight();
    Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.netns("pve2"),
            "nft",
            "delete table inet blocker",
        ])
        .status()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("FAIL  pve2     firewall lets corosync through   nft: udp dport 5405 drop"),
        "{stdout}"
    );
    let report = Report::deserialize_from_str(&std::fs::read_to_string(&junit).unwrap()).unwrap();
    let failed: Vec<&str> = report.test_suites[0]
        .test_cases
        .iter()
        .filter(|c| !matches!(c.status, quick_junit::TestCaseStatus::Success { .. }))
        .map(|c| c.name.as_str())
        .collect();
    assert!(
        failed.contains(&"pve2: firewall lets corosync through"),
        "{failed:?}"
    );
    lab.wait_whole(2);
    lab.down();
    assert_nothing_left(&lab.name);
}

#[test]
fn demo_runs_drills_on_labs_of_their_shape_and_writes_reports() {
    let _turn = one_lab_at_a_time();
    require_root();
    let dir = scratch("demo");
    let experiments = dir.join("experiments");
    std::fs::create_dir_all(&experiments).unwrap();
    std::fs::copy(
        experiments_dir().join("clock-skew-five-minutes.toml"),
        experiments.join("skew.toml"),
    )
    .unwrap();
    let prefix = unique_name().replacen('t', "d", 1);
    let prefix = &prefix[..prefix.len().min(8)];
    let out = Command::new(CORODRILL)
        .args(["-q", "demo", "--experiments"])
        .arg(&experiments)
        .arg("--reports")
        .arg(dir.join("reports"))
        .args(["--lab-prefix", prefix])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1/1 drills passed"),
        "{}",
        text(&out)
    );
    for report in ["junit.xml", "events.jsonl", "report.html"] {
        assert!(dir.join("reports").join(report).is_file(), "no {report}");
    }
    assert_nothing_left(&format!("{prefix}0"));
}

/// A child process killed when the test ends, passed or failed.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Copies run `id` of the history `n` times, as if the drill had run that
/// often with the same times (each copy a run of its own, its facts and
/// verdicts too).
fn copy_run(db: &Path, id: i64, n: usize) {
    let conn = rusqlite::Connection::open(db).unwrap();
    for _ in 0..n {
        conn.execute(
            "INSERT INTO runs (started, cluster, drill, file, passed, error, disturbed, wall)
             SELECT started, cluster, drill, file, passed, error, disturbed, wall FROM runs WHERE id = ?1",
            [id],
        )
        .unwrap();
        let copy = conn.last_insert_rowid();
        conn.execute(
            "INSERT INTO facts (run, key, value) SELECT ?1, key, value FROM facts WHERE run = ?2",
            [copy, id],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO verdicts (run, seq, name, invariant, passed, kept, measured, message, regression)
             SELECT ?1, seq, name, invariant, passed, kept, measured, message, regression
             FROM verdicts WHERE run = ?2",
            [copy, id],
        )
        .unwrap();
    }
}

/// The history on a real lab: a drill's run is recorded; once the history
/// holds five runs of it, the same lab rebuilt with a three times larger
/// token (the same cluster, by name) detects the split later, and the run
/// says so in the console, the JUnit, the JSON log and the metrics (a file
/// and a real Pushgateway on loopback), naming
/// the token's change; `--fail-on-regression` fails it (exit 1), and
/// `corodrill history` shows it. To stay cheap, the four runs before the
/// last are copies of the first, real one.
#[test]
fn history_flags_a_slower_cluster() {
    let _turn = one_lab_at_a_time();
    let lab = TestLab::up(&["--nodes", "2"]);
    let dir = scratch(&format!("{}-history", lab.name));
    let db = dir.join("history.sqlite");
    let drill = dir.join("split.toml");
    std::fs::write(
        &drill,
        r#"name = "split-two"
nodes = 2

[[fault]]
id = "cut"
kind = "partition"
groups = [["pve1"], ["pve2"]]
heal_after = "10s"

[[expect]]
name = "both nodes lose quorum"
after = "cut"
nodes = "all"
quorate = false
within = "10s"
"#,
    )
    .unwrap();
    let inventory = lab.dir().join("inventory.toml");
    let run = |extra: &[&str]| {
        Command::new(CORODRILL)
            .arg("run")
            .arg(&drill)
            .arg("--inventory")
            .arg(&inventory)
            .arg("--history")
            .arg(&db)
            .args(extra)
            .output()
            .expect("cannot run corodrill")
    };
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    copy_run(&db, 1, 4);

    // The same cluster, slower: token 3000 instead of 1000.
    let down = lab.down();
    assert!(down.status.success(), "{}", text(&down));
    let up = corodrill(&[
        "lab", "up", "--name", &lab.name, "--nodes", "2", "--token", "3000",
    ]);
    assert!(up.status.success(), "{}", text(&up));
    let (junit, json, metrics) = (
        dir.join("junit.xml"),
        dir.join("events.jsonl"),
        dir.join("drill.prom"),
    );
    // A real Pushgateway on loopback receives the same metrics.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let gateway = KillOnDrop(
        Command::new("prometheus-pushgateway")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-pushgateway (Debian package prometheus-pushgateway)"),
    );
    let pushgateway = format!("http://127.0.0.1:{port}");
    let out = run(&[
        "--fail-on-regression",
        "--junit",
        &junit.display().to_string(),
        "--json",
        &json.display().to_string(),
        "--metrics",
        &metrics.display().to_string(),
        "--pushgateway",
        &pushgateway,
    ]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("regression: "), "{said}");
    assert!(said.contains("beyond its usual range"), "{said}");
    assert!(said.contains("totem.token 1000 -> 3000"), "{said}");

    let xml = std::fs::read_to_string(&junit).unwrap();
    let report = Report::deserialize_from_str(&xml).unwrap();
    let case = report.test_suites[0]
        .test_cases
        .iter()
        .find(|c| c.name.as_str() == "both nodes lose quorum")
        .expect("the expectation's case");
    assert!(
        case.properties
            .iter()
            .any(|p| p.name.as_str() == "regression"
                && p.value.as_str().contains("totem.token 1000 -> 3000")),
        "{xml}"
    );
    assert!(
        matches!(case.status, quick_junit::TestCaseStatus::NonSuccess { .. }),
        "{xml}"
    );

    let events = std::fs::read_to_string(&json).unwrap();
    let line: serde_json::Value = events
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["kind"] == "regression")
        .unwrap_or_else(|| panic!("no regression line: {events}"));
    assert_eq!(line["name"], "both nodes lose quorum");
    assert_eq!(line["runs"], 5);

    let prom = std::fs::read_to_string(&metrics).unwrap();
    let series = format!(
        "corodrill_expectation_regression{{cluster=\"{}\",drill=\"split-two\",expectation=\"both nodes lose quorum\"}} 1",
        lab.name
    );
    assert!(prom.contains(&series), "{prom}");
    let pushed = ureq::get(&format!("{pushgateway}/metrics"))
        .call()
        .and_then(|mut r| r.body_mut().read_to_string())
        .unwrap();
    drop(gateway);
    assert!(
        pushed
            .lines()
            .any(|l| l.starts_with("corodrill_expectation_regression{")
                && l.contains("expectation=\"both nodes lose quorum\"")
                && l.contains("job=\"corodrill\"")
                && l.ends_with(" 1")),
        "{pushed}"
    );
    let check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&metrics).unwrap())
        .output()
        .expect("promtool (Debian package prometheus)");
    assert!(check.status.success(), "{}", text(&check));

    let page = dir.join("history.html");
    let history = corodrill(&[
        "history",
        "--history",
        &db.display().to_string(),
        "--html",
        &page.display().to_string(),
    ]);
    let table = text(&history);
    assert_eq!(history.status.code(), Some(0), "{table}");
    // The page: the time's trend, the slower run marked.
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("<svg class=\"trend\""), "{html}");
    assert_eq!(
        html.matches("<circle class=\"regression\"").count(),
        1,
        "{html}"
    );
    assert!(html.contains("totem.token 1000 -&gt; 3000"), "{html}");
    assert!(
        table.contains(&format!("{} / split-two: 6 run(s)", lab.name)),
        "{table}"
    );
    assert!(table.contains("REGRESSION (1) "), "{table}");
    let diff = corodrill(&[
        "history",
        "--history",
        &db.display().to_string(),
        "--diff",
        "1",
        "6",
    ]);
    assert!(
        text(&diff).contains("totem.token 1000 -> 3000"),
        "{}",
        text(&diff)
    );
    // What an operator reads (with --no-capture).
    eprintln!("{said}\n{table}\n{}", text(&diff));

    lab_clean(&lab, 2);
    lab.down();
    assert_nothing_left(&lab.name);
    let _ = std::fs::remove_dir_all(&dir);
}
