//! Experiment files read, and refused, as an operator writes them.

use super::durations::parse_flag_duration;
use super::*;

const GOOD: &str = r#"
name = "isolate-one-of-three"
description = "pve3 loses the corosync network"
nodes = 3

[[fault]]
id = "cut"
kind = "partition"
groups = [["pve1", "pve2"], ["pve3"]]
at = "0s"
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
after = "cut.healed"
nodes = "all"
quorate = true
members = "all"
within = "15s"
"#;

fn errors(text: &str) -> Vec<String> {
    parse(Path::new("x.toml"), text)
        .err()
        .unwrap_or_default()
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn design_md_example_parses() {
    let e = parse(Path::new("x.toml"), GOOD).unwrap();
    assert_eq!(e.nodes, 3);
    assert_eq!(e.faults[0].heal_after, Some(Duration::from_secs(20)));
    assert!(
        matches!(&e.faults[0].kind, FaultKind::Partition { groups, one_way: false, .. } if groups.len() == 2)
    );
    assert_eq!(
        e.expects[1].after,
        Anchor {
            fault: "cut".into(),
            healed: true
        }
    );
    assert_eq!(e.expects[1].members, Some(NodeSet::All));
    assert_eq!(e.expects[0].hold, Duration::from_secs(5));
    assert_eq!(e.invariants, Invariants::default());
}

#[test]
fn every_error_with_its_position() {
    let text = GOOD
        .replace("at = \"0s\"", "at = \"0x\"")
        .replace("after = \"cut.healed\"", "after = \"cutt.healed\"")
        .replace("within = \"10s\"", "within = \"300ms\"")
        .replace("hold = \"5s\"", "hold = \"5s\"\nbogus = 1");
    let errs = errors(&text);
    assert_eq!(errs.len(), 4, "{errs:#?}");
    assert!(
        errs.iter()
            .any(|e| e.starts_with("x.toml:10:1: at: invalid duration \"0x\"")),
        "{errs:#?}"
    );
    assert!(
        errs[1].contains("within = 300ms") && errs[1].starts_with("x.toml:19:1:"),
        "{errs:#?}"
    );
    assert!(
        errs[2].contains("unknown field `bogus`") && errs[2].starts_with("x.toml:21:1:"),
        "{errs:#?}"
    );
    assert!(
        errs[3].contains("names no fault") && errs[3].starts_with("x.toml:24:1:"),
        "{errs:#?}"
    );
}

/// humantime reads "18446744073709551615s" as it is: `at + heal_after`
/// and an anchor plus `within` would overflow. Refused where written.
#[test]
fn absurd_durations_are_refused_where_written() {
    let huge = "18446744073709551615s";
    let text = GOOD
        .replace("heal_after = \"20s\"", &format!("heal_after = \"{huge}\""))
        .replace("within = \"15s\"", &format!("within = \"{huge}\""));
    let errs = errors(&text);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(
        errs[0]
            .starts_with("x.toml:11:1: heal_after: \"18446744073709551615s\" is longer than 7days"),
        "{errs:#?}"
    );
    assert!(errs[1].starts_with("x.toml:27:1: within:"), "{errs:#?}");
    // A week is still a duration; so is a watch's interval.
    assert!(errors(&GOOD.replace("heal_after = \"20s\"", "heal_after = \"7days\"")).is_empty());
    let watch = format!("{GOOD}[[watch]]\nresource = \"svc\"\ninterval = \"{huge}\"\n");
    let errs = errors(&watch);
    assert!(
        errs.len() == 1
            && errs[0].starts_with("x.toml:30:1: interval:")
            && errs[0].contains("longer than"),
        "{errs:#?}"
    );
    let skew = "name = \"x\"\nnodes = 3\n[[fault]]\nid = \"f\"\nkind = \"clock-skew\"\nnodes = [\"pve1\"]\noffset = \"-18446744073709551615s\"\n";
    let errs = errors(skew);
    assert!(
        errs.iter()
            .any(|e| e.starts_with("x.toml:7:1:") && e.contains("longer than")),
        "{errs:#?}"
    );
    assert!(parse_flag_duration(huge).is_err());
    assert_eq!(parse_flag_duration("10s"), Ok(Duration::from_secs(10)));
}

#[test]
fn command_faults_carry_their_timeout() {
    let command = |extra: &str| {
        GOOD.replace(
            "kind = \"partition\"\ngroups = [[\"pve1\", \"pve2\"], [\"pve3\"]]",
            &format!("kind = \"command\"\nnodes = [\"pve1\"]\nrun = \"true\"\n{extra}"),
        )
    };
    let e = parse(Path::new("x.toml"), &command("timeout = \"90s\"")).unwrap();
    assert!(matches!(
        &e.faults[0].kind,
        FaultKind::Command { timeout: Some(t), .. } if *t == Duration::from_secs(90)
    ));
    let e = parse(Path::new("x.toml"), &command("")).unwrap();
    assert!(matches!(
        &e.faults[0].kind,
        FaultKind::Command { timeout: None, .. }
    ));
    let errs = errors(&command("timeout = \"0s\""));
    assert!(
        errs.iter()
            .any(|e| e.contains("timeout") && e.starts_with("x.toml:")),
        "{errs:?}"
    );
}

#[test]
fn syntax_and_top_level_errors() {
    let errs = errors("name = \"x\"\nnodes = 3\nnodez = 4\n");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("x.toml:3:1:") && errs[0].contains("nodez"),
        "{errs:?}"
    );
    let errs = errors("name = \"x\nnodes = 3\n");
    assert!(errs[0].starts_with("x.toml:1:"), "{errs:?}");
}

#[test]
fn partitions_must_place_every_node() {
    let text = GOOD.replace(
        "groups = [[\"pve1\", \"pve2\"], [\"pve3\"]]",
        "groups = [[\"pve1\"], [\"pve3\"]]",
    );
    let errs = errors(&text);
    assert!(
        errs.iter()
            .any(|e| e.contains("every node must be in a group") && e.starts_with("x.toml:9:1:")),
        "{errs:#?}"
    );
    let text = GOOD.replace(
        "groups = [[\"pve1\", \"pve2\"], [\"pve3\"]]",
        "groups = [[\"pve1\", \"pve2\"], [\"pve2\", \"pve3\"]]",
    );
    assert!(errors(&text).iter().any(|e| e.contains("in two groups")));
}

#[test]
fn fault_kinds_and_fields() {
    let base = "name = \"x\"\nnodes = 3\n[[expect]]\nafter = \"f\"\nnodes = \"all\"\nquorate = true\nwithin = \"5s\"\n[[fault]]\nid = \"f\"\n";
    assert!(
        errors(&format!("{base}kind = \"explode\"\nnodes = [\"pve1\"]\n"))[0]
            .contains("unknown fault kind \"explode\"")
    );
    assert!(errors(&format!(
        "{base}kind = \"kill\"\nnodes = [\"pve1\"]\ngroups = []\n"
    ))[0]
        .contains("unknown field `groups` for a kill fault"));
    assert!(errors(&format!(
        "{base}kind = \"clock-skew\"\nnodes = [\"pve1\"]\noffset = \"+5x\"\n"
    ))[0]
        .contains("invalid offset"));
    assert!(errors(&format!(
        "{base}kind = \"degrade\"\nnodes = [\"pve1\"]\nloss = \"130%\"\n"
    ))[0]
        .contains("1% to 100%"));
    let e = parse(
        Path::new("x.toml"),
        &format!("{base}kind = \"clock-skew\"\nnodes = [\"pve1\"]\noffset = \"-90s\"\n"),
    )
    .unwrap();
    assert!(matches!(
        e.faults[0].kind,
        FaultKind::ClockSkew {
            offset_ms: -90_000,
            ..
        }
    ));
    let e = parse(
        Path::new("x.toml"),
        &format!(
            "{base}kind = \"degrade\"\nnodes = [\"pve1\"]\nloss = \"30%\"\nrate = \"1mbit\"\n"
        ),
    )
    .unwrap();
    assert!(matches!(
        e.faults[0].kind,
        FaultKind::Degrade {
            loss_percent: Some(30),
            ..
        }
    ));
}
