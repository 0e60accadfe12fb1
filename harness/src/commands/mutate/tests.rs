//! Mutants of hand-written expectations, judged on hand-written logs.

use super::*;
use crate::experiment::{parse, NodeSet, Reaction};
use crate::log::LogBody;
use std::path::Path;

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

fn q(t: f64, node: &str, quorate: bool, members: &[&str]) -> LogEvent {
    ev(
        t,
        Some(node),
        LogBody::Quorum {
            quorate,
            members: members.iter().map(|s| s.to_string()).collect(),
            ring_id: format!("{t}"),
            total_votes: Some(members.len() as u32),
            expected_votes: Some(3),
            quorum: Some(2),
            source: None,
        },
    )
}

fn fault(t: f64, node: &str, fault: &str, healed: bool) -> LogEvent {
    let body = if healed {
        LogBody::FaultHealed {
            fault: fault.into(),
            clean: true,
            detail: String::new(),
        }
    } else {
        LogBody::FaultApplied {
            fault: fault.into(),
            fault_kind: "partition".into(),
        }
    };
    ev(t, Some(node), body)
}

/// The experiment as `run` resolves it: every expectation with the
/// lab's reaction time (token 1000: 5.037 s).
fn drill(expects: &str) -> Experiment {
    let text = format!(
        "name = \"isolate\"\nnodes = 3\n[[fault]]\nid = \"cut\"\nkind = \"partition\"\n\
         groups = [[\"pve1\", \"pve2\"], [\"pve3\"]]\nheal_after = \"12s\"\n{expects}"
    );
    let mut e = parse(Path::new("isolate.toml"), &text).unwrap_or_else(|e| panic!("{e:?}"));
    for x in &mut e.expects {
        x.reaction = Some(Reaction {
            time: Duration::from_millis(5037),
            basis: "the lab's".into(),
        });
    }
    e
}

/// pve3 cut off at 0.01 s: the majority re-forms at 3.52 s, pve3 is
/// alone at 3.55 s; healed at 12.01 s, whole at 13.7 s.
fn isolate_log() -> Vec<LogEvent> {
    let all = ["pve1", "pve2", "pve3"];
    let mut log: Vec<LogEvent> = all.iter().map(|n| q(0.0, n, true, &all)).collect();
    log.extend(all.iter().map(|n| fault(0.01, n, "cut", false)));
    log.push(q(3.52, "pve1", true, &["pve1", "pve2"]));
    log.push(q(3.53, "pve2", true, &["pve1", "pve2"]));
    log.push(q(3.55, "pve3", false, &["pve3"]));
    log.extend(all.iter().map(|n| fault(12.01, n, "cut", true)));
    log.extend(all.iter().map(|n| q(13.7, n, true, &all)));
    log.push(ev(15.0, None, LogBody::DrillEnd {}));
    log
}

const STRONG: &str = r#"
[[expect]]
name = "majority keeps quorum"
after = "cut"
nodes = ["pve1", "pve2"]
quorate = true
members = ["pve1", "pve2"]
total_votes = 2
within = "10s"
hold = "2s"
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

fn outcomes<'s>(s: &'s DrillScore, expect: &str) -> Vec<(Kind, &'s Outcome)> {
    s.expects
        .iter()
        .find(|x| x.name == expect)
        .unwrap_or_else(|| panic!("no {expect:?}"))
        .mutants
        .iter()
        .map(|j| (j.mutant.kind, &j.outcome))
        .collect()
}

#[test]
fn strong_expectations_kill_every_mutant() {
    let s = score(&drill(STRONG), 3, &nodes(), &isolate_log());
    assert!(s.failed.is_empty(), "{s:#?}");
    assert_eq!(s.survived().len(), 0, "{}", render(&s));
    assert_eq!(s.percent(), Some(100));
    assert_eq!(s.exit_code(), 0);
    let majority = outcomes(&s, "majority keeps quorum");
    let kinds: Vec<Kind> = majority.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        kinds,
        [
            Kind::QuorateFlipped,
            Kind::MemberAdded,
            Kind::MemberDropped,
            Kind::MemberDropped,
            Kind::MemberDropped,
            Kind::MemberDropped,
            Kind::VotesUp,
            Kind::VotesDown,
            Kind::WithinShorter,
            Kind::HoldPastChange,
        ]
    );
    // Dropping pve1 or pve2 wants a node's view without itself.
    assert!(
        matches!(majority[2].1, Outcome::Unviable(w) if w.contains("pve1 missing from its own view"))
    );
    // Whole again: dropping any member of "all" from "all" nodes is
    // unviable; nothing to add; held to the end: no hold mutant.
    let whole = outcomes(&s, "whole again");
    assert_eq!(
        whole
            .iter()
            .filter(|(k, o)| *k == Kind::MemberDropped && matches!(o, Outcome::Unviable(_)))
            .count(),
        3
    );
    let text = render(&s);
    assert!(
        text.contains("score isolate: 100% (19 of 19 mutants killed, 0 survived; 5 unviable and 0 equivalent not counted)"),
        "{text}"
    );
    assert!(
        text.contains("caught     within shorter than measured: within = 3.519s (measured 3.520s, was 10s)")
            && text.contains("caught     hold past the next change: hold = 10.170s (was 2s; the state lasted 10.170s, to t=13.700s)")
            && text.contains("n/a        hold past the next change: held from t=13.700s to the end of the recorded log (t=15.000s)"),
        "{text}"
    );
}

/// "pve1 quorate within 15 s of the heal", no hold: pve1 drops out for
/// 0.3 s after the heal and is back. The expectation passes, and so
/// does its flip ("pve1 not quorate"): it does not say pve1 stays
/// quorate. With a hold the flip is killed.
#[test]
fn a_weak_expectation_has_a_surviving_mutant() {
    let weak = r#"
[[expect]]
name = "pve1 quorate after the heal"
after = "cut.healed"
nodes = ["pve1"]
quorate = true
within = "15s"
"#;
    let mut log = isolate_log();
    log.pop();
    log.push(q(14.0, "pve1", false, &["pve1"]));
    log.push(q(14.3, "pve1", true, &["pve1", "pve2", "pve3"]));
    log.push(ev(25.0, None, LogBody::DrillEnd {}));
    let s = score(&drill(weak), 1, &nodes(), &log);
    let survived = s.survived();
    assert_eq!(survived.len(), 1, "{}", render(&s));
    assert_eq!(survived[0].1.mutant.kind, Kind::QuorateFlipped);
    assert_eq!(s.exit_code(), 1);
    assert_eq!(s.percent(), Some(50));
    let text = render(&s);
    assert!(
        text.contains("MISSED     quorate flipped: quorate = false: the judge passes it too: pve1 not quorate reached in 1.990s")
            && text.contains("survived: \"pve1 quorate after the heal\": quorate flipped: quorate = false: this expectation does not constrain it")
            && text.contains("score isolate: 50% (1 of 2 mutants killed, 1 survived;"),
        "{text}"
    );

    let strong = weak.replace("within = \"15s\"", "within = \"15s\"\nhold = \"5s\"");
    let s = score(&drill(&strong), 1, &nodes(), &log);
    assert_eq!(s.survived().len(), 0, "{}", render(&s));
    assert_eq!(s.percent(), Some(100));
}

/// Nodes hear of a merge milliseconds apart: for 20 ms pve2 and pve3
/// see everyone and pve1 still sees [pve1, pve2]. Where the merge
/// comes after the reaction time (6.7 s after the heal here, as after
/// a flapping link), pve1's old view has outlasted it, so "whole
/// again" with no hold is met at one instant, and so is the mutant
/// that drops pve3 from pve1's view alone; held 2 s, it is killed.
/// (A quicker merge kills it anyway: pve1's view, kept from the heal,
/// would have to last through the reaction time.)
#[test]
fn a_moment_of_whole_lets_a_view_left_behind_survive() {
    let whole = r#"
[[expect]]
name = "whole again"
after = "cut.healed"
nodes = "all"
quorate = true
members = "all"
within = "15s"
"#;
    let all = ["pve1", "pve2", "pve3"];
    let mut log = isolate_log();
    log.retain(|e| e.t < 13.0);
    log.push(q(18.70, "pve3", true, &all));
    log.push(q(18.71, "pve2", true, &all));
    log.push(q(18.73, "pve1", true, &all));
    log.push(ev(25.0, None, LogBody::DrillEnd {}));
    let s = score(&drill(whole), 1, &nodes(), &log);
    let survived: Vec<&str> = s
        .survived()
        .iter()
        .map(|(_, j)| j.mutant.change.as_str())
        .collect();
    assert_eq!(
        survived,
        ["pve1's members = [pve1, pve2] (pve3 dropped from pve1's view only)"],
        "{}",
        render(&s)
    );
    let held = whole.replace("within = \"15s\"", "within = \"15s\"\nhold = \"2s\"");
    let s = score(&drill(&held), 1, &nodes(), &log);
    assert_eq!(s.percent(), Some(100), "{}", render(&s));
}

/// A watched resource: running_on another node and the want flipped.
/// svc moves from pve1 to pve2 5 s after the cut, in pve2's and pve3's
/// views: "running on pve1" is kept at the cut but breaks before the
/// reaction time, "stopped" is never so: both caught.
#[test]
fn resource_mutants() {
    let text = r#"
[[watch]]
resource = "svc"
[[expect]]
name = "svc moves to pve2"
after = "cut"
nodes = ["pve2", "pve3"]
resource = "svc"
running_on = ["pve2"]
within = "10s"
hold = "1s"
"#;
    let res = |t: f64, node: &str, on: &str| {
        ev(
            t,
            Some(node),
            LogBody::Resource {
                resource: "svc".into(),
                active_on: Some(vec![on.into()]),
                source: None,
            },
        )
    };
    let mut log = isolate_log();
    log.extend(["pve1", "pve2", "pve3"].map(|n| res(0.0, n, "pve1")));
    log.push(res(5.0, "pve2", "pve2"));
    log.push(res(5.1, "pve3", "pve2"));
    let s = score(&drill(text), 1, &nodes(), &log);
    let changes: Vec<(&str, &Outcome)> = s.expects[0]
        .mutants
        .iter()
        .map(|j| (j.mutant.change.as_str(), &j.outcome))
        .collect();
    assert_eq!(
        changes,
        [
            ("running_on = [pve1] (was [pve2])", &Outcome::Caught),
            ("running_on = [pve3] (was [pve2])", &Outcome::Caught),
            (
                "running = false (was running_on = [pve2])",
                &Outcome::Caught
            ),
            (
                "within = 5.089s (measured 5.090s, was 10s)",
                &Outcome::Caught
            ),
        ],
        "{}",
        render(&s)
    );
    assert_eq!(s.percent(), Some(100));
}

/// A state kept from before its anchor has no measured time: no
/// within mutant; its hold mutant wants it to outlast the reaction
/// time by more than it did (pve1 and pve2, quorate all along, keep
/// it after the heal until pve1 drops out at 21 s).
#[test]
fn kept_states_get_a_hold_past_the_change_not_a_shorter_within() {
    let kept = r#"
[[expect]]
name = "the majority stays quorate after the heal"
after = "cut.healed"
nodes = ["pve1", "pve2"]
quorate = true
within = "1s"
hold = "2s"
"#;
    let mut log = isolate_log();
    log.pop();
    log.push(q(21.0, "pve1", false, &["pve1"]));
    log.push(ev(25.0, None, LogBody::DrillEnd {}));
    let s = score(&drill(kept), 1, &nodes(), &log);
    let x = &s.expects[0];
    assert!(x.original.passed && x.original.kept, "{x:#?}");
    assert!(x
        .not_applicable
        .iter()
        .any(|(k, why)| *k == Kind::WithinShorter && why.contains("kept, not reached")));
    let hold = x
        .mutants
        .iter()
        .find(|j| j.mutant.kind == Kind::HoldPastChange)
        .expect("no hold mutant");
    // The heal at 12.01 + 5.037 s of reaction time: 3.953 s more.
    assert_eq!(hold.mutant.expect.hold, Duration::from_millis(3953));
    assert_eq!(hold.outcome, Outcome::Caught, "{hold:#?}");
    assert!(
        hold.mutant
            .change
            .contains("the state lasted 8.990s, to t=21.000s, kept from the anchor"),
        "{}",
        hold.mutant.change
    );
    assert_eq!(s.percent(), Some(100), "{}", render(&s));
}

/// A mutant that wants a within corosync cannot meet is unviable; one
/// the judge cannot tell from the original is equivalent; an
/// expectation that failed has its mutants uncounted, and the drill
/// exits 1.
#[test]
fn unviable_equivalent_and_uncounted_mutants() {
    let text = r#"
[[expect]]
name = "pve3 alone"
after = "cut"
nodes = ["pve3"]
members = ["pve3"]
within = "10s"
[[expect]]
name = "nobody"
after = "cut"
nodes = []
quorate = true
within = "10s"
[[expect]]
name = "pve1 loses quorum (fails)"
after = "cut"
nodes = ["pve1"]
quorate = false
within = "2s"
"#;
    let mut log = isolate_log();
    // pve3 sees itself alone 0.8 s after the cut.
    log.retain(|e| !(e.t == 3.55 && e.node.as_deref() == Some("pve3")));
    log.push(q(0.81, "pve3", false, &["pve3"]));
    let s = score(&drill(text), 3, &nodes(), &log);
    let alone = outcomes(&s, "pve3 alone");
    assert!(
        alone.iter().any(|(k, o)| *k == Kind::WithinShorter
            && matches!(o, Outcome::Unviable(w) if w.contains("validation refuses"))),
        "{}",
        render(&s)
    );
    // Dropping pve3 from its own one-node view wants corosync down:
    // viable (a stopped corosync shows no members), and caught.
    assert!(alone
        .iter()
        .any(|(k, o)| *k == Kind::MemberDropped && **o == Outcome::Caught));
    let nobody = outcomes(&s, "nobody");
    assert!(!nobody.is_empty());
    assert!(nobody
        .iter()
        .all(|(_, o)| matches!(o, Outcome::Equivalent(w) if w.contains("names no node"))));
    let failed = &s.expects[2];
    assert!(!failed.original.passed && failed.mutants.is_empty());
    assert_eq!(s.failed, vec!["pve1 loses quorum (fails)".to_owned()]);
    assert_eq!(s.exit_code(), 1);
    let text = render(&s);
    assert!(
        text.contains("its mutants are not counted: the expectation itself failed")
            && text.contains("the drill itself FAILED (pve1 loses quorum (fails))"),
        "{text}"
    );
    // A mutant that reads the same as its original.
    let e = &drill(STRONG).expects[2];
    let mut same = e.clone();
    same.members = Some(NodeSet::Some(nodes()));
    assert!(equivalent(e, &same, &nodes()).is_some());
    assert!(equivalent(e, &drill(STRONG).expects[0], &nodes()).is_none());
}
