//! Experiment files that corodrill writes itself (the random drill's steps,
//! the every-split drill): plain structs serialized by the toml crate, so
//! that any node name, description or comment is quoted the way TOML wants
//! and the file parses back to the experiment that was meant.

use std::time::Duration;

use serde::Serialize;

/// One experiment file, in the order its keys are written.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExperimentFile {
    pub name: String,
    pub description: String,
    pub nodes: usize,
    #[serde(skip_serializing_if = "Invariants::is_default")]
    pub invariants: Invariants,
    #[serde(rename = "fault")]
    pub faults: Vec<Fault>,
    #[serde(rename = "expect")]
    pub expects: Vec<Expect>,
}

/// `[invariants]`, written only when one is set: experiments without it
/// read the same.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Invariants {
    pub oracle: bool,
}

impl Invariants {
    fn is_default(&self) -> bool {
        *self == Invariants::default()
    }
}

/// A `[[fault]]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fault {
    pub id: String,
    #[serde(flatten)]
    pub kind: FaultKind,
    #[serde(serialize_with = "millis")]
    pub at: Duration,
    #[serde(serialize_with = "millis")]
    pub heal_after: Duration,
}

/// The fault kinds corodrill writes, with their fields as experiments
/// name them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FaultKind {
    Partition {
        groups: Vec<Vec<String>>,
    },
    Isolate {
        nodes: Vec<String>,
    },
    Kill {
        nodes: Vec<String>,
    },
    Pause {
        nodes: Vec<String>,
    },
    ClockSkew {
        nodes: Vec<String>,
        /// As experiments write it: "+90s".
        offset: String,
        #[serde(serialize_with = "millis")]
        strobe: Duration,
    },
    LinkDown {
        nodes: Vec<String>,
        link: usize,
    },
}

impl std::fmt::Display for FaultKind {
    /// In words, for progress lines (not TOML).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let words = |nodes: &[String]| nodes.join(", ");
        match self {
            FaultKind::Partition { groups } => {
                let sides: Vec<String> = groups.iter().map(|g| format!("[{}]", words(g))).collect();
                write!(f, "partition {}", sides.join(" "))
            }
            FaultKind::Isolate { nodes } => write!(f, "isolate {}", words(nodes)),
            FaultKind::Kill { nodes } => write!(f, "kill {}", words(nodes)),
            FaultKind::Pause { nodes } => write!(f, "pause {}", words(nodes)),
            FaultKind::ClockSkew {
                nodes,
                offset,
                strobe,
            } => write!(
                f,
                "clock-skew {} {offset} strobe {}ms",
                words(nodes),
                strobe.as_millis()
            ),
            FaultKind::LinkDown { nodes, link } => {
                write!(f, "link-down {} link {link}", words(nodes))
            }
        }
    }
}

/// An `[[expect]]` of the whole cluster, quorate with every member.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Expect {
    pub name: String,
    /// An anchor: `"f1.healed"`.
    pub after: String,
    pub nodes: &'static str,
    pub quorate: bool,
    pub members: &'static str,
    #[serde(serialize_with = "millis")]
    pub within: Duration,
}

impl Expect {
    /// Every node quorate with every member within `within` of `after`.
    pub fn whole(name: &str, after: String, within: Duration) -> Expect {
        Expect {
            name: name.to_owned(),
            after,
            nodes: "all",
            quorate: true,
            members: "all",
            within,
        }
    }
}

/// A duration as experiments write it, in whole milliseconds: `"1500ms"`.
fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{}ms", d.as_millis()))
}

impl ExperimentFile {
    /// The file's text, after `comment` (any text: each of its lines is
    /// written as a `#` comment).
    pub fn to_toml(&self, comment: &str) -> Result<String, toml::ser::Error> {
        let mut text: String = comment.lines().map(|l| format!("# {l}\n")).collect();
        text.push_str(&toml::to_string(self)?);
        Ok(text)
    }
}

/// Every way of splitting `nodes` into two non-empty groups (2^(n-1) - 1
/// of them), the group holding the first node first.
pub fn two_way_splits(nodes: &[String]) -> Vec<[Vec<String>; 2]> {
    let n = nodes.len();
    if !(2..=16).contains(&n) {
        return Vec::new();
    }
    (1u32..(1 << (n - 1)))
        .map(|mask| {
            // Bit i set: node i+1 goes to the second group; node 0 stays.
            let (mut a, mut b) = (vec![nodes[0].clone()], Vec::new());
            for (i, node) in nodes.iter().enumerate().skip(1) {
                if mask & (1 << (i - 1)) != 0 {
                    b.push(node.clone());
                } else {
                    a.push(node.clone());
                }
            }
            [a, b]
        })
        .collect()
}

/// A drill that splits the cluster every way in two, one split at a time:
/// each lasts `hold`, then `hold` healed before the next. Meant for `run
/// --oracle`, which judges every node after every split and every heal.
pub fn every_split_drill(nodes: &[String], hold: Duration) -> String {
    let faults: Vec<Fault> = two_way_splits(nodes)
        .into_iter()
        .zip(0u32..)
        .map(|([a, b], i)| Fault {
            id: format!("split{}", i + 1),
            kind: FaultKind::Partition { groups: vec![a, b] },
            at: hold.saturating_mul(2 * i),
            heal_after: hold,
        })
        .collect();
    let expects = faults
        .last()
        .map(|last| {
            Expect::whole(
                "whole after the last split",
                format!("{}.healed", last.id),
                hold,
            )
        })
        .into_iter()
        .collect();
    ExperimentFile {
        name: format!("every-split-of-{}", nodes.len()),
        description: format!(
            "Every way of splitting {} nodes in two, one at a time, judged by the oracle (run --oracle).",
            nodes.len()
        ),
        nodes: nodes.len(),
        invariants: Default::default(),
        faults,
        expects,
    }
    .to_toml("")
    // Strings, numbers and lists always serialize; were it ever not so, a
    // file that `run` refuses with this message rather than a panic.
    .unwrap_or_else(|e| format!("# cannot write the every-split drill: {e}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment;
    use std::path::Path;

    /// Names an operator may give nodes that Rust's `{:?}` quoting and a
    /// hand-written comment would have got wrong.
    const ODD: [&str; 4] = ["pve\"1", "pve\\2", "pve\n3", "pvé\u{7f}4"];

    #[test]
    fn odd_names_and_comments_parse_back_to_the_same_experiment() {
        let nodes: Vec<String> = ODD.iter().map(|s| s.to_string()).collect();
        let file = ExperimentFile {
            name: "odd \"name\"\n".into(),
            description: "a 'description' with \\ and \t".into(),
            nodes: 4,
            invariants: Invariants { oracle: true },
            faults: vec![
                Fault {
                    id: "f1".into(),
                    kind: FaultKind::Partition {
                        groups: vec![nodes[..2].to_vec(), nodes[2..].to_vec()],
                    },
                    at: Duration::ZERO,
                    heal_after: Duration::from_millis(1500),
                },
                Fault {
                    id: "f2".into(),
                    kind: FaultKind::ClockSkew {
                        nodes: vec![nodes[2].clone()],
                        offset: "+90s".into(),
                        strobe: Duration::from_millis(500),
                    },
                    at: Duration::from_secs(2),
                    heal_after: Duration::from_secs(1),
                },
                Fault {
                    id: "f3".into(),
                    kind: FaultKind::LinkDown {
                        nodes: vec![nodes[3].clone()],
                        link: 1,
                    },
                    at: Duration::from_secs(3),
                    heal_after: Duration::from_secs(1),
                },
            ],
            expects: vec![Expect::whole(
                "whole \"again\"",
                "f3.healed".into(),
                Duration::from_secs(21),
            )],
        };
        let text = file
            .to_toml("from a test\nReproduce: corodrill run /tmp/a\nb.toml")
            .unwrap();
        assert!(text.starts_with("# from a test\n# Reproduce"), "{text}");
        let e = experiment::parse(Path::new("odd.toml"), &text)
            .unwrap_or_else(|e| panic!("{e:?}\n{text}"));
        assert_eq!(e.name, file.name);
        assert_eq!(e.description, file.description);
        assert_eq!(e.nodes, 4);
        assert!(e.invariants.oracle);
        assert_eq!(e.faults.len(), 3);
        for (read, written) in e.faults.iter().zip(&file.faults) {
            assert_eq!(read.id, written.id);
            assert_eq!(read.at, written.at);
            assert_eq!(read.heal_after, Some(written.heal_after));
        }
        match &e.faults[0].kind {
            experiment::FaultKind::Partition { groups, .. } => {
                assert_eq!(groups, &[nodes[..2].to_vec(), nodes[2..].to_vec()])
            }
            other => panic!("{other:?}"),
        }
        match &e.faults[1].kind {
            experiment::FaultKind::ClockSkew {
                nodes: n,
                offset_ms,
                strobe,
            } => {
                assert_eq!(n, &[nodes[2].clone()]);
                assert_eq!(*offset_ms, 90_000);
                assert_eq!(*strobe, Some(Duration::from_millis(500)));
            }
            other => panic!("{other:?}"),
        }
        match &e.faults[2].kind {
            experiment::FaultKind::LinkDown { nodes: n, link } => {
                assert_eq!(n, &[nodes[3].clone()]);
                assert_eq!(*link, 1);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(e.expects.len(), 1);
        assert_eq!(e.expects[0].name, "whole \"again\"");
        assert_eq!(e.expects[0].within, Duration::from_secs(21));
    }

    #[test]
    fn no_oracle_key_unless_set() {
        let file = ExperimentFile {
            name: "n".into(),
            description: String::new(),
            nodes: 1,
            invariants: Invariants::default(),
            faults: Vec::new(),
            expects: Vec::new(),
        };
        let text = file.to_toml("").unwrap();
        assert!(!text.contains("invariants"), "{text}");
    }

    #[test]
    fn faults_in_words() {
        let k = FaultKind::Partition {
            groups: vec![vec!["a".into()], vec!["b".into(), "c".into()]],
        };
        assert_eq!(k.to_string(), "partition [a] [b, c]");
    }
}

#[cfg(test)]
mod split_tests {
    use super::*;

    #[test]
    fn five_nodes_split_fifteen_ways() {
        let nodes: Vec<String> = (1..=5).map(|i| format!("pve{i}")).collect();
        let splits = two_way_splits(&nodes);
        assert_eq!(splits.len(), 15);
        let mut seen = std::collections::BTreeSet::new();
        for [a, b] in &splits {
            assert_eq!(a.len() + b.len(), 5);
            assert!(!b.is_empty() && a[0] == "pve1");
            assert!(seen.insert(b.clone()));
        }
        let text = every_split_drill(&nodes, Duration::from_secs(9));
        let e = crate::experiment::parse(std::path::Path::new("every.toml"), &text)
            .unwrap_or_else(|e| panic!("{e:?}\n{text}"));
        assert_eq!(e.faults.len(), 15);
        assert_eq!(e.faults[14].at, Duration::from_secs(14 * 18));
        // The file is the splits: each fault the split of the same index.
        for (f, [a, b]) in e.faults.iter().zip(&splits) {
            assert_eq!(f.heal_after, Some(Duration::from_secs(9)));
            assert_eq!(
                f.kind,
                crate::experiment::FaultKind::Partition {
                    groups: vec![a.clone(), b.clone()],
                    links: None,
                    one_way: false,
                }
            );
        }
        assert_eq!(e.expects.len(), 1);
        assert_eq!(e.expects[0].after.fault, "split15");
        assert_eq!(e.expects[0].within, Duration::from_secs(9));
    }
}
