//! The model against hand-made clusters and drills; `inventory`, `model`
//! and `drill` serve the judge's tests too.

use super::expectations::*;
use super::predict::*;
use crate::inventory::{Inventory, InventoryNode, Power};
use std::collections::BTreeMap;
use std::time::Duration;

use super::oracle::{QuorumConfig, Timing};
use crate::experiment::{Experiment, FaultSpec, NodeSet};
use crate::plan::Plan;

pub(crate) fn inventory(nodes: usize, links: usize) -> Inventory {
    Inventory {
        name: "t".into(),
        nodes: (1..=nodes)
            .map(|i| InventoryNode {
                name: format!("pve{i}"),
                connect: "false".into(),
                links: (0..links)
                    .map(|l| (format!("ring{l}"), format!("198.18.{l}.{i}")))
                    .collect(),
                power: Power::Lab { lab: "t".into() },
            })
            .collect(),
    }
}

pub(crate) fn model(nodes: usize, links: usize, cmap: &[(&str, &str)]) -> Model {
    let cmap: BTreeMap<String, String> = cmap
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Model {
        config: QuorumConfig::from_cmap(
            (1..=nodes as u32).map(|i| (i, format!("pve{i}"))).collect(),
            &cmap,
        ),
        // Three nodes with a 1 s token: 1650 + 1980 ms.
        timing: Timing {
            token_ms: 1650,
            consensus_ms: 1980,
        },
        links,
    }
}

pub(crate) fn drill(nodes: usize, links: usize, text: &str) -> (Experiment, Plan) {
    let text = format!("name = \"t\"\nnodes = {nodes}\n{text}");
    let e = crate::experiment::parse(std::path::Path::new("t.toml"), &text)
        .unwrap_or_else(|e| panic!("{e:?}"));
    let p = crate::plan::plan(&e, &inventory(nodes, links)).unwrap();
    (e, p)
}

fn names(n: &[&str]) -> Vec<String> {
    n.iter().map(|s| s.to_string()).collect()
}

#[test]
fn faults_make_sides() {
    let nodes = names(&["pve1", "pve2", "pve3", "pve4", "pve5"]);
    let (e, _) = drill(
        5,
        2,
        r#"
[[fault]]
id = "split"
kind = "partition"
groups = [["pve1", "pve2", "pve3"], ["pve4", "pve5"]]
[[fault]]
id = "alone"
kind = "isolate"
nodes = ["pve1"]
[[fault]]
id = "kill"
kind = "kill"
nodes = ["pve5"]
[[fault]]
id = "pause"
kind = "pause"
nodes = ["pve2"]
[[fault]]
id = "ring1"
kind = "link-down"
nodes = ["pve3"]
link = 1
[[fault]]
id = "one-link-only"
kind = "partition"
groups = [["pve1"], ["pve2", "pve3", "pve4", "pve5"]]
links = [1]
[[expect]]
after = "split"
nodes = "all"
quorate = true
within = "5s"
"#,
    );
    let all: Vec<&FaultSpec> = e.faults.iter().collect();
    let s = situation(&nodes, 2, &all).unwrap();
    assert_eq!(
        s,
        Situation {
            sides: vec![names(&["pve1"]), names(&["pve3"]), names(&["pve4"])],
            down: names(&["pve5"]),
            frozen: names(&["pve2"]),
        }
    );
    // One link: a link down cuts the node off.
    let s = situation(&nodes, 1, &[&e.faults[4]]).unwrap();
    assert_eq!(s.sides.len(), 2, "{s:?}");
}

#[test]
fn unmodelled_faults_are_named() {
    let (e, _) = drill(
        3,
        1,
        r#"
[[fault]]
id = "lossy"
kind = "degrade"
nodes = ["pve1"]
loss = "30%"
[[expect]]
after = "lossy"
nodes = "all"
quorate = true
within = "5s"
"#,
    );
    let err = situation(&names(&["pve1", "pve2", "pve3"]), 1, &[&e.faults[0]]).unwrap_err();
    assert!(err.contains("\"lossy\": a degraded link"), "{err}");
}

#[test]
fn predicted_fields_are_filled_in_from_the_model() {
    let (e, p) = drill(
        3,
        1,
        r#"
[[fault]]
id = "cut"
kind = "isolate"
nodes = ["pve3"]
heal_after = "10s"
[[expect]]
name = "majority"
after = "cut"
nodes = ["pve1", "pve2"]
quorate = "predicted"
members = "predicted"
within = "predicted"
[[expect]]
name = "minority"
after = "cut"
nodes = ["pve3"]
quorate = "predicted"
within = "8s"
[[expect]]
name = "whole"
after = "cut.healed"
nodes = "all"
quorate = "predicted"
members = "predicted"
within = "predicted"
"#,
    );
    let m = model(3, 1, &[]);
    let r = resolve(&e, &p, &m, false).unwrap();
    let window = Duration::from_millis(5037);
    assert_eq!(r.expects[0].quorate, Some(true));
    assert_eq!(
        r.expects[0].members,
        Some(NodeSet::Some(names(&["pve1", "pve2"])))
    );
    assert_eq!(r.expects[0].within, window);
    assert_eq!(r.expects[1].quorate, Some(false));
    assert_eq!(r.expects[1].within, Duration::from_secs(8));
    assert_eq!(r.expects[2].quorate, Some(true));
    assert_eq!(
        r.expects[2].members,
        Some(NodeSet::Some(names(&["pve1", "pve2", "pve3"])))
    );
    // With a forced expected_votes of 2 (corosync-quorumtool -e 2), pve3
    // alone is still not quorate, and the majority keeps quorum.
    let r = resolve(&e, &p, &model(3, 1, &[("expected_votes", "2")]), false).unwrap();
    assert_eq!(r.expects[1].quorate, Some(false));
    // Two nodes, two_node: each half keeps quorum; the expectation
    // names both sides, which the model says see different things:
    // each node is judged against its own prediction.
    let (e, p) = drill(
        2,
        1,
        r#"
[[fault]]
id = "cut"
kind = "isolate"
nodes = ["pve2"]
[[expect]]
after = "cut"
nodes = "all"
quorate = "predicted"
members = "predicted"
within = "predicted"
"#,
    );
    let r = resolve(&e, &p, &model(2, 1, &[("two_node", "1")]), false).unwrap();
    let x = &r.expects[0];
    assert_eq!((x.quorate, &x.members), (None, &None));
    assert_eq!(
        x.want_of("pve1"),
        (Some(true), Some(&NodeSet::Some(names(&["pve1"]))))
    );
    assert_eq!(
        x.want_of("pve2"),
        (Some(true), Some(&NodeSet::Some(names(&["pve2"]))))
    );
    assert_eq!(
        x.describe(&p.nodes),
        "pve1 quorate, members [pve1]; pve2 quorate, members [pve2]"
    );
}

/// A split's sides see different things; only the predicted fields
/// are per node, and nodes that agree are grouped in words.
#[test]
fn nodes_across_a_split_each_get_their_own_prediction() {
    let (e, p) = drill(
        5,
        1,
        r#"
[[fault]]
id = "split"
kind = "partition"
groups = [["pve1", "pve2", "pve3"], ["pve4", "pve5"]]
[[expect]]
name = "every node as the model says"
after = "split"
nodes = "all"
quorate = "predicted"
within = "predicted"
"#,
    );
    let r = resolve(&e, &p, &model(5, 1, &[]), false).unwrap();
    let x = &r.expects[0];
    assert_eq!(x.per_node.len(), 5);
    assert_eq!(x.want_of("pve2"), (Some(true), None));
    assert_eq!(x.want_of("pve5"), (Some(false), None));
    assert_eq!(
        x.describe(&p.nodes),
        "pve1, pve2, pve3 quorate; pve4, pve5 not quorate"
    );
    // A paused node's view cannot be predicted: still refused.
    let (e, p) = drill(
        3,
        1,
        r#"
[[fault]]
id = "pause"
kind = "pause"
nodes = ["pve3"]
[[expect]]
after = "pause"
nodes = "all"
quorate = "predicted"
within = "predicted"
"#,
    );
    let errs = resolve(&e, &p, &model(3, 1, &[]), false).unwrap_err();
    assert!(
        errs[0].contains("cannot predict the view of pve3"),
        "{errs:?}"
    );
}

/// Every expectation, predicted or not, gets the cluster's reaction
/// time: the quorum window, and for a watched resource one interval
/// and its manager's allowance on top.
#[test]
fn every_expectation_gets_its_reaction_time() {
    let (e, p) = drill(
        3,
        1,
        r#"
[[watch]]
resource = "svc"
interval = "500ms"
[[watch]]
resource = "vm:100"
kind = "pve-ha"
interval = "2s"
[[fault]]
id = "cut"
kind = "isolate"
nodes = ["pve1"]
heal_after = "10s"
[[expect]]
after = "cut"
nodes = ["pve1"]
quorate = true
within = "8s"
[[expect]]
after = "cut.healed"
nodes = ["pve2"]
resource = "svc"
running_on = ["pve2"]
within = "8s"
[[expect]]
after = "cut"
nodes = ["pve2"]
resource = "vm:100"
running_on = ["pve1"]
within = "8s"
"#,
    );
    let r = resolve(&e, &p, &model(3, 1, &[]), true).unwrap();
    let times: Vec<Option<Duration>> = r
        .expects
        .iter()
        .map(|x| x.reaction.as_ref().map(|r| r.time))
        .collect();
    assert_eq!(times[0], Some(Duration::from_millis(5037)));
    assert!(r.expects[0]
        .reaction
        .as_ref()
        .unwrap()
        .basis
        .contains("detection 3.630s"));
    assert_eq!(times[1], Some(Duration::from_millis(5037 + 500 + 5000)));
    assert_eq!(times[2], Some(Duration::from_millis(5037 + 2000 + 140_000)));
    // The oracle's own expectations too.
    assert!(r.expects.len() > 3 && times.iter().all(Option::is_some));
}

/// Every shipped drill lasts long enough to judge a state kept from
/// before its anchor, on the lab (1 s token) and with corosync's
/// default 3 s token: the run watches at least the reaction time and
/// the hold after each anchor, and a fault the run itself ends (no
/// heal_after) lasts at least the reaction time.
#[test]
fn shipped_drills_last_long_enough_to_judge_kept_states() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments");
    let drills = crate::experiment::load(&[root.clone(), root.join("pacemaker"), root.join("pve")])
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(drills.len() >= 20, "{}", drills.len());
    for token in ["1000", "3000"] {
        for e in &drills {
            let n = e.requires.nodes.unwrap_or(e.nodes).max(e.nodes);
            let links = e.requires.links.unwrap_or(1);
            let p = crate::plan::plan(e, &inventory(n, links)).unwrap();
            let mut cmap: Vec<(String, String)> = e
                .requires
                .quorum
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string().trim_matches('"').to_owned()))
                .collect();
            if e.requires.qdevice == Some(true) {
                cmap.push(("device.model".into(), "net".into()));
            }
            let cmap: Vec<(&str, &str)> =
                cmap.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let mut m = model(n, links, &cmap);
            let totem = BTreeMap::from([("token".to_owned(), token.to_owned())]);
            m.timing = Timing::from_totem(&totem, n);
            let r = resolve(e, &p, &m, e.invariants.oracle)
                .unwrap_or_else(|errs| panic!("{}: {errs:?}", e.name));
            let watched = p.end + p.after_end;
            for x in &r.expects {
                let what = format!("{} / {:?} (token {token})", e.name, x.name);
                let a = p.anchor_time(&x.after).unwrap_or(p.end);
                let reaction = x.reaction.as_ref().map(|r| r.time).unwrap_or_default();
                assert!(
                    a + reaction + x.hold <= watched,
                    "{what}: watched until {watched:?}, a kept state needs {:?}",
                    a + reaction + x.hold
                );
                let unplanned = e
                    .faults
                    .iter()
                    .find(|f| f.id == x.after.fault)
                    .is_some_and(|f| f.heal_after.is_none());
                if !x.after.healed && unplanned {
                    assert!(
                        p.end >= a + reaction,
                        "{what}: the run ends the fault too soon"
                    );
                }
            }
        }
    }
}

/// votequorum(5): with last_man_standing, after a node leaves and the
/// window passes, the rest recalculate expected votes, so losing
/// another node still leaves a quorate pair (down to two nodes; one
/// alone only with auto_tie_breaker).
#[test]
fn last_man_standing_lowers_expected_votes_after_its_window() {
    let (e, p) = drill(
        4,
        1,
        r#"
[[fault]]
id = "k1"
kind = "kill"
nodes = ["pve4"]
[[fault]]
id = "k2"
kind = "kill"
nodes = ["pve3"]
at = "10s"
[[fault]]
id = "k3"
kind = "kill"
nodes = ["pve2"]
at = "20s"
[[expect]]
name = "two left"
after = "k2"
nodes = ["pve1", "pve2"]
quorate = "predicted"
within = "predicted"
[[expect]]
name = "one left"
after = "k3"
nodes = ["pve1"]
quorate = "predicted"
within = "predicted"
"#,
    );
    let plain = resolve(&e, &p, &model(4, 1, &[]), false).unwrap();
    assert_eq!(plain.expects[0].quorate, Some(false));
    let lms = model(
        4,
        1,
        &[
            ("last_man_standing", "1"),
            ("last_man_standing_window", "3000"),
        ],
    );
    let r = resolve(&e, &p, &lms, false).unwrap();
    assert_eq!(r.expects[0].quorate, Some(true), "4 -> 3 -> 2 nodes");
    assert_eq!(r.expects[1].quorate, Some(false), "never down to one");
    let atb = model(
        4,
        1,
        &[
            ("last_man_standing", "1"),
            ("last_man_standing_window", "3000"),
            ("auto_tie_breaker", "1"),
        ],
    );
    let r = resolve(&e, &p, &atb, false).unwrap();
    assert_eq!(
        r.expects[1].quorate,
        Some(true),
        "with auto_tie_breaker, to one"
    );
    // The window not yet passed: the second loss comes too soon.
    let slow = model(
        4,
        1,
        &[
            ("last_man_standing", "1"),
            ("last_man_standing_window", "9000"),
        ],
    );
    let r = resolve(&e, &p, &slow, false).unwrap();
    assert_eq!(r.expects[0].quorate, Some(false));
}

#[test]
fn the_oracle_checks_each_node_after_each_change_that_lasts() {
    let (e, p) = drill(
        3,
        1,
        r#"
[[fault]]
id = "cut"
kind = "isolate"
nodes = ["pve3"]
heal_after = "10s"
[[fault]]
id = "blip"
kind = "isolate"
nodes = ["pve1"]
at = "20s"
heal_after = "1s"
[[expect]]
after = "cut"
nodes = ["pve1"]
quorate = true
within = "5s"
"#,
    );
    let oracle = oracle_expectations(&e, &p, &model(3, 1, &[]));
    let names: Vec<&str> = oracle.iter().map(|x| x.name.as_str()).collect();
    // cut and cut.healed, three nodes each; not the blip (1 s: too
    // short to settle) nor its heal (from an unsettled cluster).
    assert_eq!(names.len(), 6, "{names:#?}");
    assert!(names.contains(&"oracle: pve3 after cut: not quorate with pve3"));
    assert!(names.contains(&"oracle: pve1 after cut: quorate with pve1,pve2"));
    assert!(names.contains(&"oracle: pve2 after cut.healed: quorate with pve1,pve2,pve3"));
    assert!(!names.iter().any(|n| n.contains("after blip")));
    // A loss is judged within the detection window; a merge gets the
    // looser merge window, cut short by the next change (the blip,
    // 10 s after the heal).
    let within = |name: &str| oracle.iter().find(|x| x.name == name).map(|x| x.within);
    assert_eq!(
        within("oracle: pve1 after cut: quorate with pve1,pve2"),
        Some(Duration::from_millis(5037))
    );
    assert_eq!(
        within("oracle: pve2 after cut.healed: quorate with pve1,pve2,pve3"),
        Some(Duration::from_secs(10))
    );
    assert_eq!(
        model(3, 1, &[]).merge_window(),
        Duration::from_millis(18650)
    );
    // The last heal: nothing comes after it, the whole merge window.
    let (e, p) = drill(
        3,
        1,
        "[[fault]]\nid = \"split\"\nkind = \"partition\"\ngroups = [[\"pve1\"], [\"pve2\"], [\"pve3\"]]\nheal_after = \"6s\"\n",
    );
    let oracle = oracle_expectations(&e, &p, &model(3, 1, &[]));
    let healed: Vec<Duration> = oracle
        .iter()
        .filter(|x| x.after.healed)
        .map(|x| x.within)
        .collect();
    assert_eq!(healed, vec![Duration::from_millis(18650); 3]);
}
