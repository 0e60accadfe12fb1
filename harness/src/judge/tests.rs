//! The judge on hand-written logs: no agent, no cluster.

use super::*;
use crate::experiment::parse;
use std::path::Path;

mod reaction;
mod resources;

fn nodes() -> Vec<String> {
    ["pve1", "pve2", "pve3"].map(String::from).to_vec()
}

fn ev(t: f64, node: Option<&str>, body: LogBody) -> LogEvent {
    LogEvent {
        t,
        ts: String::new(),
        node: node.map(String::from),
        body,
    }
}

fn q(t: f64, node: &str, quorate: bool, members: &[&str], ring: &str) -> LogEvent {
    ev(
        t,
        Some(node),
        LogBody::Quorum {
            quorate,
            members: members.iter().map(|s| s.to_string()).collect(),
            ring_id: ring.into(),
            total_votes: Some(members.len() as u32),
            expected_votes: Some(3),
            quorum: Some(2),
            source: None,
        },
    )
}

fn applied(t: f64, node: &str, fault: &str) -> LogEvent {
    ev(
        t,
        Some(node),
        LogBody::FaultApplied {
            fault: fault.into(),
            fault_kind: "partition".into(),
        },
    )
}

fn healed(t: f64, node: &str, fault: &str, clean: bool) -> LogEvent {
    ev(
        t,
        Some(node),
        LogBody::FaultHealed {
            fault: fault.into(),
            clean,
            detail: "table gone".into(),
        },
    )
}

const ISOLATE: &str = r#"
name = "isolate"
nodes = 3
[[fault]]
id = "cut"
kind = "partition"
groups = [["pve1", "pve2"], ["pve3"]]
heal_after = "20s"
[[expect]]
name = "majority keeps quorum"
after = "cut"
nodes = ["pve1", "pve2"]
quorate = true
members = ["pve1", "pve2"]
within = "10s"
hold = "5s"
[[expect]]
name = "pve3 loses quorum"
after = "cut"
nodes = ["pve3"]
quorate = false
within = "10s"
[[expect]]
name = "whole again"
after = "cut.healed"
nodes = "all"
quorate = true
members = "all"
within = "15s"
"#;

/// What a real isolate of pve3 looks like (token 1000: ~3.5 s to notice,
/// ~2 s to rejoin), with notifications reaching nodes a few ms apart.
fn isolate_log() -> Vec<LogEvent> {
    let all = ["pve1", "pve2", "pve3"];
    vec![
        ev(
            0.0,
            None,
            LogBody::DrillStart {
                experiment: "isolate".into(),
            },
        ),
        q(0.0, "pve1", true, &all, "1.9"),
        q(0.0, "pve2", true, &all, "1.9"),
        q(0.0, "pve3", true, &all, "1.9"),
        applied(0.01, "pve1", "cut"),
        applied(0.012, "pve2", "cut"),
        applied(0.011, "pve3", "cut"),
        q(3.52, "pve1", true, &["pve1", "pve2"], "1.d"),
        q(3.53, "pve2", true, &["pve1", "pve2"], "1.d"),
        q(3.55, "pve3", false, &["pve3"], "3.d"),
        healed(20.0, "pve1", "cut", true),
        healed(20.0, "pve2", "cut", true),
        healed(20.01, "pve3", "cut", true),
        q(21.70, "pve3", true, &all, "1.11"),
        q(21.72, "pve1", true, &all, "1.11"),
        q(21.73, "pve2", true, &all, "1.11"),
        ev(21.8, None, LogBody::ClusterWhole {}),
        ev(22.0, None, LogBody::DrillEnd {}),
    ]
}

fn run(toml: &str, log: &[LogEvent]) -> Vec<Verdict> {
    judge(&parse(Path::new("x.toml"), toml).unwrap(), &nodes(), log)
}

#[test]
fn isolate_passes_with_measured_times() {
    let v = run(ISOLATE, &isolate_log());
    assert!(v.iter().all(|v| v.passed), "{v:#?}");
    assert_eq!(v.len(), 5);
    assert!((v[0].measured.unwrap() - 3.52).abs() < 1e-9, "{v:#?}");
    assert!((v[1].measured.unwrap() - 3.54).abs() < 1e-9);
    assert!((v[2].measured.unwrap() - 1.72).abs() < 1e-9);
    // pve3 saw the new ring 20 ms before pve1 and pve2: late, not split.
    assert_eq!(v[3].name, "no split-brain");
}

#[test]
fn too_slow_fails_with_expected_observed_and_when() {
    let toml = ISOLATE.replacen("within = \"10s\"", "within = \"3s\"", 1);
    let v = run(&toml, &isolate_log());
    assert!(!v[0].passed);
    assert!(
        v[0].message.contains("within 3s of cut"),
        "{}",
        v[0].message
    );
    assert!(
        v[0].message.contains("deadline t=3.010s"),
        "{}",
        v[0].message
    );
    assert!(
        v[0].message
            .contains("pve1: quorate, members [pve1, pve2, pve3]"),
        "{}",
        v[0].message
    );
}

#[test]
fn hold_broken_fails() {
    let mut log = isolate_log();
    // pve2 drops out for a moment 2 s after the majority formed.
    log.insert(10, q(5.5, "pve2", false, &["pve2"], "2.e"));
    log.insert(11, q(6.0, "pve2", true, &["pve1", "pve2"], "1.f"));
    let v = run(ISOLATE, &log);
    // It became true again at 6.0 and held 5 s until 11.0 (< deadline + hold).
    assert!(v[0].passed, "{v:#?}");
    assert!((v[0].measured.unwrap() - 5.99).abs() < 1e-9);
    let strict = ISOLATE.replacen("within = \"10s\"", "within = \"5s\"", 1);
    let v = run(&strict, &log);
    assert!(!v[0].passed);
    assert!(
        v[0].message.contains("before the 5s hold"),
        "{}",
        v[0].message
    );
}

#[test]
fn split_brain_is_caught_with_ring_ids_and_span() {
    let mut log = isolate_log();
    // pve3 wrongly keeps quorum on its own (an expected-votes override).
    log.insert(10, q(4.0, "pve3", true, &["pve3"], "3.e"));
    let v = run(ISOLATE, &log);
    let sb = v.iter().find(|v| v.name == "no split-brain").unwrap();
    assert!(!sb.passed);
    assert!(sb.message.contains("ring 1.d"), "{}", sb.message);
    assert!(sb.message.contains("ring 3.e"), "{}", sb.message);
    assert!(
        sb.message.contains("from t=4.000s to t=21.700s"),
        "{}",
        sb.message
    );

    let expecting = format!("{ISOLATE}\n[invariants]\nsplit_brain = \"expect\"\n");
    let v = run(&expecting, &log);
    let sb = v.iter().find(|v| v.name == "split-brain caught").unwrap();
    assert!(sb.passed, "{sb:?}");
    let v = run(&expecting, &isolate_log());
    assert!(
        !v.iter()
            .find(|v| v.name == "split-brain caught")
            .unwrap()
            .passed
    );
}

#[test]
fn unclean_rollback_or_partial_cluster_fails_the_end_invariant() {
    let mut log = isolate_log();
    log[12] = healed(20.01, "pve3", "cut", false);
    let v = run(ISOLATE, &log);
    let end = v.last().unwrap();
    assert!(!end.passed);
    assert!(
        end.message.contains("cut on pve3 not rolled back"),
        "{}",
        end.message
    );

    // Retried at the drill's last heal and clean then: undone, so the
    // invariant holds, and the report says the first attempt failed.
    let mut log = isolate_log();
    log[12] = healed(20.01, "pve3", "cut", false);
    let last = log.iter().map(|e| e.t).fold(0.0, f64::max);
    log.push(healed(last + 0.1, "pve3", "cut", true));
    let v = run(ISOLATE, &log);
    let end = v.last().unwrap();
    assert!(end.passed, "{end:?}");
    assert!(
        end.message
            .contains("cut on pve3 rolled back at a later attempt (the first failed: table gone)"),
        "{}",
        end.message
    );

    let mut log = isolate_log();
    log.retain(|e| !(e.t > 21.0 && e.node.as_deref() == Some("pve3")));
    let v = run(ISOLATE, &log);
    assert!(!v.last().unwrap().passed);
    assert!(
        v.last().unwrap().message.contains("pve3 ended inquorate"),
        "{}",
        v.last().unwrap().message
    );
}

#[test]
fn corosync_down_counts_as_not_quorate() {
    let mut log = isolate_log();
    log[9] = ev(
        3.55,
        Some("pve3"),
        LogBody::CorosyncDown {
            reason: "killed".into(),
        },
    );
    let v = run(ISOLATE, &log);
    assert!(v[1].passed, "{v:#?}");
}
