//! Kept states, reaction times and predicted expectations: a state from
//! before the anchor counts only once it has outlasted the reaction time.

use super::resources::{failover_log, res};
use super::*;

/// The experiment as `run` hands it to the judge: resolved against the
/// cluster's model (token 1650 ms + consensus 1980 ms: detection
/// 3.630 s, reaction time 5.037 s).
fn resolved(nodes: usize, text: &str, cmap: &[(&str, &str)]) -> Experiment {
    let (e, p) = crate::model::tests::drill(nodes, 1, text);
    let model = crate::model::tests::model(nodes, 1, cmap);
    crate::model::expectations::resolve(&e, &p, &model, false).unwrap_or_else(|e| panic!("{e:?}"))
}

fn names(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("pve{i}")).collect()
}

fn verdict<'v>(v: &'v [Verdict], name: &str) -> &'v Verdict {
    v.iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no verdict {name:?} in {v:#?}"))
}

/// Issue 14's example: pve1 isolated "keeps quorum alone". It is
/// quorate at the cut only because corosync has not reacted yet; it
/// loses quorum 3.6 s later. Judged as unchanged, not reached: it had
/// to hold through the reaction time and the hold, and did not.
const KEEPS_ALONE: &str = r#"
[[fault]]
id = "cut"
kind = "isolate"
nodes = ["pve1"]
heal_after = "12s"
[[expect]]
name = "pve1 keeps quorum alone (false)"
after = "cut"
nodes = ["pve1"]
quorate = true
within = "8s"
hold = "2s"
[[expect]]
name = "pve2 and pve3 stay quorate"
after = "cut"
nodes = ["pve2", "pve3"]
quorate = true
within = "8s"
hold = "2s"
[[expect]]
name = "the other two drop pve1"
after = "cut"
nodes = ["pve2", "pve3"]
quorate = true
members = ["pve2", "pve3"]
within = "8s"
hold = "2s"
"#;

fn pve1_cut_log() -> Vec<LogEvent> {
    let all = ["pve1", "pve2", "pve3"];
    let mut log = vec![ev(
        0.0,
        None,
        LogBody::DrillStart {
            experiment: "t".into(),
        },
    )];
    for n in all {
        log.push(q(0.0, n, true, &all, "1.4"));
        log.push(applied(0.01, n, "cut"));
    }
    log.extend([
        q(3.56, "pve2", true, &["pve2", "pve3"], "2.8"),
        q(3.56, "pve3", true, &["pve2", "pve3"], "2.8"),
        q(3.61, "pve1", false, &["pve1"], "1.8"),
    ]);
    for n in all {
        log.push(healed(12.01, n, "cut", true));
    }
    for n in all {
        log.push(q(13.7, n, true, &all, "1.c"));
    }
    log.push(ev(14.0, None, LogBody::DrillEnd {}));
    log
}

#[test]
fn a_state_from_before_the_fault_must_outlast_the_reaction_time() {
    let e = resolved(3, KEEPS_ALONE, &[]);
    let v = judge(&e, &names(3), &pve1_cut_log());
    let alone = verdict(&v, "pve1 keeps quorum alone (false)");
    assert!(!alone.passed, "{alone:#?}");
    assert_eq!((alone.measured, alone.kept), (None, false));
    // Says when pve1 lost quorum, and what it saw then.
    assert!(
        alone.message.contains("already so at cut (t=0.010s)")
            && alone
                .message
                .contains("at t=3.610s (3.600s after cut, before the reaction time (5.037s) + the 2s hold had passed) pve1: inquorate, members [pve1]"),
        "{}",
        alone.message
    );
    assert!(
        alone
            .message
            .contains("observed at the deadline: pve1: inquorate"),
        "{}",
        alone.message
    );
    // The other side's quorum was kept: it passes, as kept, through
    // the reaction time and the hold, with nothing to measure.
    let kept = verdict(&v, "pve2 and pve3 stay quorate");
    assert!(
        kept.passed && kept.kept && kept.measured.is_none(),
        "{kept:#?}"
    );
    assert!(
        kept.message.contains(
            "kept, not reached: already so at cut (t=0.010s) and still so through the reaction time (5.037s) + the 2s hold, to t=7.047s (reaction time: detection 3.630s"
        ),
        "{}",
        kept.message
    );
    // Their membership changed: reached, measured from the cut.
    let dropped = verdict(&v, "the other two drop pve1");
    assert!(dropped.passed && !dropped.kept, "{dropped:#?}");
    assert!((dropped.measured.unwrap() - 3.55).abs() < 1e-9);
    assert!(
        dropped
            .message
            .contains("reached in 3.550s (within 8s), held 2s"),
        "{}",
        dropped.message
    );
}

/// A drill stops waiting early once every expectation has passed: a
/// kept state passes only after the reaction time and the hold (here
/// t=0.010 + 5.037 + 2 s), not 2 s after the cut.
#[test]
fn a_drill_waits_for_a_kept_state_to_outlast_the_reaction_time() {
    let mut e = resolved(3, KEEPS_ALONE, &[]);
    e.expects.retain(|x| x.name == "pve2 and pve3 stay quorate");
    let log: Vec<LogEvent> = pve1_cut_log().into_iter().filter(|ev| ev.t < 4.0).collect();
    for (now, met) in [(2.5, false), (7.0, false), (7.1, true)] {
        assert_eq!(expectations_met(&e, &names(3), &log, now), met, "{now}");
        assert_eq!(
            open_expectations(&e, &names(3), &log, now).is_empty(),
            met,
            "{now}"
        );
    }
}

/// Without a model of the cluster nobody can say how long corosync
/// needs to react: a kept state never passes, a reached one does.
#[test]
fn without_a_reaction_time_a_kept_state_never_passes() {
    let e = parse(
        Path::new("t.toml"),
        &format!("name = \"t\"\nnodes = 3\n{KEEPS_ALONE}"),
    )
    .unwrap();
    let v = judge(&e, &names(3), &pve1_cut_log());
    let kept = verdict(&v, "pve2 and pve3 stay quorate");
    assert!(!kept.passed);
    assert!(
        kept.message.contains("no model of the cluster"),
        "{}",
        kept.message
    );
    assert!(verdict(&v, "the other two drop pve1").passed);
}

/// Two nodes, no QDevice, no two_node: on a cut both sides freeze about
/// 2.2 s later. "pve1 stays quorate" must not pass on the state from
/// before the cut.
#[test]
fn two_nodes_without_qdevice_one_side_quorate_fails() {
    let e = resolved(
        2,
        r#"
[[fault]]
id = "cut"
kind = "partition"
groups = [["pve1"], ["pve2"]]
heal_after = "8s"
[[expect]]
name = "pve1 stays quorate (false)"
after = "cut"
nodes = ["pve1"]
quorate = true
within = "8s"
"#,
        &[],
    );
    let both = ["pve1", "pve2"];
    let log = vec![
        q(0.0, "pve1", true, &both, "1.4"),
        q(0.0, "pve2", true, &both, "1.4"),
        applied(0.01, "pve1", "cut"),
        applied(0.01, "pve2", "cut"),
        q(2.21, "pve1", false, &["pve1"], "1.8"),
        q(2.21, "pve2", false, &["pve2"], "2.8"),
        healed(8.01, "pve1", "cut", true),
        healed(8.01, "pve2", "cut", true),
        q(9.5, "pve1", true, &both, "1.c"),
        q(9.5, "pve2", true, &both, "1.c"),
        ev(10.0, None, LogBody::DrillEnd {}),
    ];
    let v = judge(&e, &names(2), &log);
    let one = verdict(&v, "pve1 stays quorate (false)");
    assert!(!one.passed, "{one:#?}");
    assert!(
        one.message.contains(
            "(2.200s after cut, before the reaction time (5.037s) had passed) pve1: inquorate"
        ),
        "{}",
        one.message
    );
}

/// The drill ended the fault (it had no heal_after and a short window)
/// before corosync could react: the state kept that long proves
/// nothing. A blip the file itself makes shorter than the reaction time
/// is judged through the reaction time instead.
#[test]
fn a_fault_rolled_back_before_the_reaction_time_proves_nothing() {
    let text = r#"
[[fault]]
id = "cut"
kind = "isolate"
nodes = ["pve1"]
[[expect]]
name = "pve1 keeps quorum"
after = "cut"
nodes = ["pve1"]
quorate = true
within = "1s"
"#;
    let all = ["pve1", "pve2", "pve3"];
    let mut log: Vec<LogEvent> = all.iter().map(|n| q(0.0, n, true, &all, "1.4")).collect();
    log.push(applied(0.01, "pve1", "cut"));
    log.push(healed(1.51, "pve1", "cut", true));
    log.push(ev(9.0, None, LogBody::DrillEnd {}));
    let v = judge(&resolved(3, text, &[]), &names(3), &log);
    let kept = verdict(&v, "pve1 keeps quorum");
    assert!(!kept.passed, "{kept:#?}");
    assert!(
        kept.message.contains("cut was rolled back at t=1.510s, 1.500s after it, before the cluster's reaction time (5.037s) had passed"),
        "{}",
        kept.message
    );
    // A 1 s blip on purpose: pve1 rides it out, judged as kept.
    let blip = text.replace(
        "nodes = [\"pve1\"]\n[[expect]]",
        "nodes = [\"pve1\"]\nheal_after = \"1500ms\"\n[[expect]]",
    );
    let v = judge(&resolved(3, &blip, &[]), &names(3), &log);
    let kept = verdict(&v, "pve1 keeps quorum");
    assert!(kept.passed && kept.kept, "{kept:#?}");
}

/// After a heal the same rule: pve1, in the majority all along, stays
/// quorate through the reaction time after the heal (kept); a node that
/// loses quorum 2 s after the heal does not "keep" it; and a drill
/// that ends too soon cannot tell.
#[test]
fn after_a_heal_a_kept_state_must_outlast_the_reaction_time_too() {
    let text = r#"
[[fault]]
id = "cut"
kind = "partition"
groups = [["pve1", "pve2"], ["pve3"]]
heal_after = "20s"
[[expect]]
name = "pve1 stays quorate after the heal"
after = "cut.healed"
nodes = ["pve1"]
quorate = true
within = "15s"
hold = "1s"
[[expect]]
name = "whole again"
after = "cut.healed"
nodes = "all"
quorate = true
members = "all"
within = "15s"
"#;
    let e = resolved(3, text, &[]);
    // The drill watches on after the heal.
    let mut log = isolate_log();
    log.push(ev(30.0, None, LogBody::DrillEnd {}));
    let v = judge(&e, &names(3), &log);
    let kept = verdict(&v, "pve1 stays quorate after the heal");
    assert!(kept.passed && kept.kept, "{kept:#?}");
    assert!(
        kept.message
            .contains("already so at cut.healed (t=20.010s)")
            && kept.message.contains(", to t=26.047s (reaction time:"),
        "{}",
        kept.message
    );
    let whole = verdict(&v, "whole again");
    assert!(whole.passed && (whole.measured.unwrap() - 1.72).abs() < 1e-9);

    // pve1 drops out 2 s after the heal and stays out (back at 23 s,
    // it would have reached quorum again: that passes, as reached).
    log.insert(16, q(22.0, "pve1", false, &["pve1"], "1.12"));
    let v = judge(&e, &names(3), &log);
    let lost = verdict(&v, "pve1 stays quorate after the heal");
    assert!(!lost.passed, "{lost:#?}");
    assert!(
        lost.message
            .contains("at t=22.000s (1.990s after cut.healed"),
        "{}",
        lost.message
    );

    let mut short = isolate_log();
    short.retain(|ev| ev.t < 22.0);
    let v = judge(&e, &names(3), &short);
    let cut = verdict(&v, "pve1 stays quorate after the heal");
    assert!(!cut.passed);
    assert!(
        cut.message.contains("but the drill ended at t=21.800s, before the reaction time (5.037s) + the 1s hold had passed (t=26.047s)"),
        "{}",
        cut.message
    );
}

/// A resource's reaction time is quorum's, one watch interval and its
/// manager's allowance (Pacemaker: 5 s). pve1, cut off, still runs svc
/// at the cut: "pve1 keeps running it" must not pass on that, since
/// pve1 stops it at t=5.1; svc, already on pve2, staying there is kept.
#[test]
fn a_resource_placement_from_before_the_fault_must_outlast_the_reaction_time() {
    let text = r#"
[[watch]]
resource = "svc"
interval = "100ms"
[[fault]]
id = "cut"
kind = "isolate"
nodes = ["pve1"]
at = "1s"
heal_after = "11s"
[[expect]]
name = "pve1 keeps running svc (false)"
after = "cut"
nodes = ["pve1"]
resource = "svc"
running_on = ["pve1"]
within = "10s"
hold = "1s"
[[expect]]
name = "svc on a survivor"
after = "cut"
nodes = ["pve2", "pve3"]
resource = "svc"
running_on = ["pve2", "pve3"]
within = "10s"
hold = "1s"
"#;
    let e = resolved(3, text, &[]);
    let v = judge(&e, &names(3), &failover_log());
    let wrong = verdict(&v, "pve1 keeps running svc (false)");
    assert!(!wrong.passed, "{wrong:#?}");
    assert!(
        wrong.message.contains("at t=5.100s (4.100s after cut, before the reaction time (10.137s) + the 1s hold had passed) pve1 sees svc stopped"),
        "{}",
        wrong.message
    );
    // Moving to a survivor is reached, measured as before.
    let moved = verdict(&v, "svc on a survivor");
    assert!(moved.passed && (moved.measured.unwrap() - 3.7).abs() < 1e-9);

    // svc on pve2 from the start: pve2 and pve3 see it stay there.
    let stays = text.replace(
        "running_on = [\"pve2\", \"pve3\"]",
        "running_on = [\"pve2\"]",
    );
    let mut log: Vec<LogEvent> = failover_log()
        .into_iter()
        .filter(|e| !matches!(e.body, LogBody::Resource { .. }))
        .collect();
    for n in ["pve1", "pve2", "pve3"] {
        log.push(res(0.0, n, Some(&["pve2"])));
    }
    log.push(res(5.1, "pve1", Some(&[])));
    let v = judge(&resolved(3, &stays, &[]), &names(3), &log);
    let kept = verdict(&v, "svc on a survivor");
    assert!(kept.passed && kept.kept, "{kept:#?}");
    assert!(
        kept.message
            .contains("to t=12.137s (reaction time: quorum's 5.037s")
            && kept
                .message
                .contains("the 100ms watch interval and Pacemaker's 5s"),
        "{}",
        kept.message
    );
    // Until then, a drill does not stop waiting for it.
    assert_eq!(
        open_expectations(
            &resolved(3, &stays, &[]),
            &names(3),
            &log[..log.len() - 2],
            11.0
        ),
        vec!["pve1 keeps running svc (false)", "svc on a survivor"]
    );
}

/// `nodes = "all"` across a split with predicted quorum and members:
/// each node judged against its own prediction, in one verdict.
#[test]
fn every_node_against_its_own_prediction() {
    let text = r#"
[[fault]]
id = "cut"
kind = "partition"
groups = [["pve1", "pve2"], ["pve3"]]
heal_after = "20s"
[[expect]]
name = "every node as the model says"
after = "cut"
nodes = "all"
quorate = "predicted"
members = "predicted"
within = "predicted"
[[expect]]
name = "every node's quorum as the model says"
after = "cut"
nodes = "all"
quorate = "predicted"
within = "predicted"
"#;
    let e = resolved(3, text, &[]);
    let v = judge(&e, &names(3), &isolate_log());
    let each = verdict(&v, "every node as the model says");
    assert!(each.passed, "{each:#?}");
    assert!((each.measured.unwrap() - 3.54).abs() < 1e-9);
    assert!(
        each.message.starts_with(
            "pve1, pve2 quorate, members [pve1, pve2]; pve3 not quorate, members [pve3] reached in 3.540s"
        ),
        "{}",
        each.message
    );
    // Quorum only: pve3's change arrives at 3.55; pve1's and pve2's
    // quorum is kept and must last through the reaction time too.
    let quorum = verdict(&v, "every node's quorum as the model says");
    assert!(quorum.passed && !quorum.kept, "{quorum:#?}");
    assert!(
        quorum
            .message
            .contains("reached in 3.540s (within 5s 37ms); pve1, pve2 already so at cut, kept through the reaction time (5.037s), to t=5.047s (reaction time: detection"),
        "{}",
        quorum.message
    );
    // pve3 wrongly keeps quorum alone: the verdict names it.
    let mut log = isolate_log();
    log[9] = q(3.55, "pve3", true, &["pve3"], "3.d");
    let v = judge(&e, &names(3), &log);
    let each = verdict(&v, "every node as the model says");
    assert!(!each.passed);
    assert!(
        each.message
            .contains("observed at the deadline: pve3: quorate, members [pve3]"),
        "{}",
        each.message
    );
    // pve1 loses quorum at 4.0, after pve3's change but before the
    // reaction time: the kept part does not count.
    let mut log = isolate_log();
    log.insert(10, q(4.0, "pve1", false, &["pve1"], "1.e"));
    let v = judge(&e, &names(3), &log);
    let quorum = verdict(&v, "every node's quorum as the model says");
    assert!(!quorum.passed, "{quorum:#?}");
    assert!(
        quorum
            .message
            .contains("with pve1, pve2 so since cut (t=0.010s), but at t=4.000s"),
        "{}",
        quorum.message
    );
}
