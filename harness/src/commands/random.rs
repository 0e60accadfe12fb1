//! `corodrill drill --random`: a stream of random faults (halves, a split
//! in three, isolating or killing or pausing a node, a flapping node, a
//! strobing clock, one link of several lost), one step at a time, each
//! judged by the quorum oracle and the split-brain invariant, the cluster
//! healed and whole between steps. Every step is an ordinary experiment
//! written from the seed, so a failure is written out as a file that `run`
//! reproduces, then shrunk to the fewest faults that still fail.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::commands::history::Recorder;
use crate::experiment;
use crate::experiment::generated::{Expect, ExperimentFile, Fault, FaultKind, Invariants};
use crate::inventory::Inventory;
use crate::judge::{judge, Verdict};
use crate::plan;
use crate::report::DrillResult;
use crate::run::{self, RunOptions};

pub struct RandomArgs {
    pub inventory: PathBuf,
    pub seed: u64,
    pub duration: Duration,
    pub out: PathBuf,
    pub model_override: BTreeMap<String, String>,
    pub lease: Duration,
    /// The history each step is appended to; None: `--no-history`.
    pub history: Option<PathBuf>,
}

/// One fault of a step (its `id` is given when the step is written).
#[derive(Debug, Clone, PartialEq)]
pub struct StepFault {
    pub kind: FaultKind,
    pub at: Duration,
    pub heal_after: Duration,
}

/// Faults applied together (or, for a flap, in a burst), then healed.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub what: String,
    pub faults: Vec<StepFault>,
    /// After a flap corosync may take many tokens to merge again.
    pub settle: Duration,
}

/// A random drill needs nodes to draw from.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the inventory has no nodes: a random drill needs at least one")]
pub struct NoNodes;

/// Draws one step. `hold` is how long faults stay: long enough for the
/// cluster to settle, so that the oracle judges the state they make.
/// `settle` is how long the cluster may take to be whole after the heal.
pub fn draw(
    rng: &mut fastrand::Rng,
    nodes: &[String],
    links: usize,
    hold: Duration,
    settle: Duration,
) -> Result<Step, NoNodes> {
    if nodes.is_empty() {
        return Err(NoNodes);
    }
    let pick = |rng: &mut fastrand::Rng| &nodes[rng.usize(..nodes.len())];
    let one = |n: &String| vec![n.clone()];
    let whole = |kind: FaultKind| StepFault {
        kind,
        at: Duration::ZERO,
        heal_after: hold,
    };
    let mut kinds = vec!["halves", "isolate", "kill", "pause", "flap", "clock-strobe"];
    if nodes.len() >= 3 {
        kinds.push("three-ways");
    }
    if links >= 2 {
        kinds.push("link-loss");
    }
    Ok(match kinds[rng.usize(..kinds.len())] {
        "halves" | "three-ways" => {
            let parts = if nodes.len() >= 3 && rng.bool() && kinds.contains(&"three-ways") {
                3
            } else {
                2
            };
            // Every node to a random group, every group non-empty.
            let mut groups: Vec<Vec<&String>> = vec![Vec::new(); parts];
            let mut order: Vec<&String> = nodes.iter().collect();
            rng.shuffle(&mut order);
            for (i, n) in order.into_iter().enumerate() {
                let g = if i < parts { i } else { rng.usize(..parts) };
                groups[g].push(n);
            }
            for g in &mut groups {
                g.sort();
            }
            let mut step = Step {
                what: format!(
                    "split {}",
                    groups
                        .iter()
                        .map(|g| g.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(","))
                        .collect::<Vec<_>>()
                        .join(" | ")
                ),
                faults: vec![whole(FaultKind::Partition {
                    groups: groups
                        .iter()
                        .map(|g| g.iter().map(|n| n.to_string()).collect())
                        .collect(),
                })],
                settle,
            };
            // Sometimes a node also dies during the split.
            if nodes.len() >= 3 && rng.usize(..3) == 0 {
                let victim = pick(rng);
                step.what.push_str(&format!(", kill {victim}"));
                step.faults
                    .push(whole(FaultKind::Kill { nodes: one(victim) }));
            }
            step
        }
        "isolate" => {
            let n = pick(rng);
            Step {
                what: format!("isolate {n}"),
                faults: vec![whole(FaultKind::Isolate { nodes: one(n) })],
                settle,
            }
        }
        "kill" => {
            let n = pick(rng);
            Step {
                what: format!("kill corosync on {n}"),
                faults: vec![whole(FaultKind::Kill { nodes: one(n) })],
                settle,
            }
        }
        "pause" => {
            let n = pick(rng);
            Step {
                what: format!("pause corosync on {n}"),
                faults: vec![whole(FaultKind::Pause { nodes: one(n) })],
                settle,
            }
        }
        "flap" => {
            let n = pick(rng);
            Step {
                what: format!("flap {n} (1 s cut, 1 s not, three times)"),
                faults: (0..3u64)
                    .map(|i| StepFault {
                        kind: FaultKind::Isolate { nodes: one(n) },
                        at: Duration::from_secs(2 * i),
                        heal_after: Duration::from_secs(1),
                    })
                    .collect(),
                // Measured: up to ~20 s to merge after the last flap
                // (token 1000), about one merge window.
                settle: settle * 2,
            }
        }
        "clock-strobe" => {
            let n = pick(rng);
            Step {
                what: format!("strobe {n}'s clock +90s every 500ms"),
                faults: vec![whole(FaultKind::ClockSkew {
                    nodes: one(n),
                    offset: "+90s".into(),
                    strobe: Duration::from_millis(500),
                })],
                settle,
            }
        }
        _ => {
            let n = pick(rng);
            let link = rng.usize(..links);
            Step {
                what: format!("{n} loses link {link}"),
                faults: vec![whole(FaultKind::LinkDown {
                    nodes: one(n),
                    link,
                })],
                settle,
            }
        }
    })
}

/// The step as an experiment file that `corodrill run` reproduces, after
/// `comment` (written as `#` lines).
pub fn experiment_text(
    name: &str,
    comment: &str,
    nodes: usize,
    step: &Step,
) -> Result<String, toml::ser::Error> {
    let faults: Vec<Fault> = step
        .faults
        .iter()
        .enumerate()
        .map(|(i, f)| Fault {
            id: format!("f{}", i + 1),
            kind: f.kind.clone(),
            at: f.at,
            heal_after: f.heal_after,
        })
        .collect();
    // Whole again after the fault that heals last (the later one of a tie).
    let expects = faults
        .iter()
        .max_by_key(|f| f.at + f.heal_after)
        .map(|last| {
            Expect::whole(
                "whole again after the step",
                format!("{}.healed", last.id),
                step.settle,
            )
        })
        .into_iter()
        .collect();
    ExperimentFile {
        name: name.to_owned(),
        description: step.what.clone(),
        nodes,
        invariants: Invariants { oracle: true },
        faults,
        expects,
    }
    .to_toml(comment)
}

/// What one step came to.
enum Outcome {
    Passed {
        checks: usize,
    },
    Failed {
        verdicts: Vec<Verdict>,
    },
    /// Could not be carried out (exit 3).
    Broken(String),
}

fn run_step(
    text: &str,
    file: &Path,
    inventory: &Inventory,
    opts: &RunOptions,
    recorder: Option<&mut Recorder>,
) -> Result<Outcome, String> {
    let e = experiment::parse(file, text).map_err(|errs| {
        errs.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    let p = plan::plan(&e, inventory).map_err(|errs| errs.join("; "))?;
    let started = Instant::now();
    let ran = run::run(&e, &p, inventory, opts);
    // Each step is a run of its own in the history.
    if let Some(recorder) = recorder {
        let mut result = match &ran {
            Ok(ran) => DrillResult {
                experiment: ran.experiment.clone(),
                log: ran.log.clone(),
                verdicts: judge(&ran.experiment, &p.nodes, &ran.log),
                error: None,
                wall: started.elapsed(),
                retried: false,
                cluster: Some(Box::new(ran.cluster.clone())),
                regressions: Vec::new(),
            },
            Err(aborted) => DrillResult {
                experiment: e.clone(),
                log: aborted.log.clone(),
                verdicts: Vec::new(),
                error: Some(aborted.error.to_string()),
                wall: started.elapsed(),
                retried: false,
                cluster: aborted.cluster.clone(),
                regressions: Vec::new(),
            },
        };
        recorder.record(&mut result, &|_| {});
    }
    Ok(match ran {
        Ok(ran) => {
            let verdicts = judge(&ran.experiment, &p.nodes, &ran.log);
            let failed: Vec<Verdict> = verdicts.iter().filter(|v| !v.passed).cloned().collect();
            if failed.is_empty() {
                Outcome::Passed {
                    checks: verdicts.len(),
                }
            } else {
                Outcome::Failed { verdicts: failed }
            }
        }
        Err(aborted) => Outcome::Broken(aborted.error.to_string()),
    })
}

/// `corodrill drill --random`: exit 0 when every step held, 1 when one
/// failed (written out and shrunk), 2 for bad input, 3 when a step could not
/// be carried out, 130 when interrupted.
pub fn random_drill(args: &RandomArgs, progress: &dyn Fn(&str), cancel: &AtomicBool) -> u8 {
    let inventory = match crate::inventory::load(&args.inventory) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    if inventory.nodes.is_empty() {
        eprintln!("{}: {NoNodes}", args.inventory.display());
        return 2;
    }
    let nodes: Vec<String> = inventory.nodes.iter().map(|n| n.name.clone()).collect();
    let mut recorder = match Recorder::open(args.history.as_deref(), &inventory.name, false) {
        Ok(r) => r,
        Err(code) => return code,
    };
    // The timing decides how long each step holds: read it once.
    let (agents, failures) =
        crate::cluster::connect::connect_all(&inventory, Duration::from_secs(20));
    if !failures.is_empty() {
        eprintln!("agents unreachable: {}", failures.join("; "));
        return 3;
    }
    let model = crate::cluster::connect::cluster_model(&agents, &inventory, &Default::default());
    drop(agents);
    let hold = model.window() + Duration::from_secs(1);
    let settle = model.merge_window();
    let opts = RunOptions {
        lease: args.lease,
        oracle: true,
        model_override: args.model_override.clone(),
        ..RunOptions::new(&|_| {}, cancel)
    };
    if let Err(e) = std::fs::create_dir_all(&args.out) {
        eprintln!("{}: {e}", args.out.display());
        return 2;
    }
    let reproduce = format!(
        "corodrill run {{file}} --inventory {}{}",
        args.inventory.display(),
        args.model_override
            .iter()
            .map(|(k, v)| format!(" --model-override {k}={v}"))
            .collect::<String>()
    );
    progress(&format!(
        "random drill, seed {} on {} nodes: each step held {:.1}s, for {}",
        args.seed,
        nodes.len(),
        hold.as_secs_f64(),
        humantime::format_duration(args.duration)
    ));
    let mut rng = fastrand::Rng::with_seed(args.seed);
    let started = Instant::now();
    let (mut steps, mut faults, mut checks) = (0usize, 0usize, 0usize);
    while started.elapsed() < args.duration {
        if cancel.load(Ordering::Relaxed) {
            return 130;
        }
        steps += 1;
        let step = match draw(&mut rng, &nodes, inventory.links(), hold, settle) {
            Ok(step) => step,
            Err(e) => {
                eprintln!("{}: {e}", args.inventory.display());
                return 2;
            }
        };
        let name = format!("random-seed-{}-step-{steps}", args.seed);
        let file = args.out.join(format!("{name}.toml"));
        let header = format!(
            "corodrill drill --random --seed {} (step {steps}): {}\nReproduce: {}",
            args.seed,
            step.what,
            reproduce.replace("{file}", &file.display().to_string())
        );
        let text = match experiment_text(&name, &header, nodes.len(), &step) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("step {steps} ({}): cannot write it: {e}", step.what);
                return 2;
            }
        };
        let step_started = Instant::now();
        match run_step(&text, &file, &inventory, &opts, recorder.as_mut()) {
            Err(e) => {
                eprintln!("step {steps} ({}): cannot plan it: {e}", step.what);
                return 2;
            }
            Ok(Outcome::Passed { checks: c }) => {
                faults += step.faults.len();
                checks += c;
                println!(
                    "step {steps}: {}: pass ({c} checks, {:.1}s)",
                    step.what,
                    step_started.elapsed().as_secs_f64()
                );
            }
            Ok(Outcome::Broken(why)) => {
                let _ = std::fs::write(&file, &text);
                eprintln!(
                    "step {steps} ({}) could not be carried out: {why}\nwritten to {}",
                    step.what,
                    file.display()
                );
                return if cancel.load(Ordering::Relaxed) {
                    130
                } else {
                    3
                };
            }
            Ok(Outcome::Failed { verdicts }) => {
                println!("step {steps}: {}: FAIL", step.what);
                for v in &verdicts {
                    println!("  FAIL {}\n       {}", v.name, v.message);
                }
                if let Err(e) = std::fs::write(&file, &text) {
                    eprintln!("{}: {e}", file.display());
                }
                println!("written to {}", file.display());
                let shrunk = shrink(
                    step, &name, &args.out, &inventory, &opts, &reproduce, progress,
                );
                if let Some((path, step)) = shrunk {
                    println!(
                        "shrunk to {} fault(s) ({}): {}",
                        step.faults.len(),
                        step.what,
                        path.display()
                    );
                }
                return 1;
            }
        }
    }
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    println!(
        "random drill, seed {}: {steps} steps, {faults} faults, {checks} checks, all held in {:.1} min ({:.1} faults judged per minute)",
        args.seed,
        minutes,
        faults as f64 / minutes.max(1e-9)
    );
    0
}

/// Drops faults one at a time while the step still fails; writes the
/// smallest step that does. None when no smaller step fails.
fn shrink(
    mut step: Step,
    name: &str,
    out: &Path,
    inventory: &Inventory,
    opts: &RunOptions,
    reproduce: &str,
    progress: &dyn Fn(&str),
) -> Option<(PathBuf, Step)> {
    let shrunk_name = format!("{name}-shrunk");
    let file = out.join(format!("{shrunk_name}.toml"));
    let mut smaller = false;
    let mut i = 0;
    while step.faults.len() > 1 && i < step.faults.len() {
        let mut candidate = step.clone();
        let dropped = candidate.faults.remove(i);
        candidate.what = format!("{} (fault {} dropped: {})", step.what, i + 1, dropped.kind);
        progress(&format!("shrinking: trying without {}", dropped.kind));
        let Ok(text) = experiment_text(&shrunk_name, "", inventory.nodes.len(), &candidate) else {
            i += 1;
            continue;
        };
        match run_step(&text, &file, inventory, opts, None) {
            Ok(Outcome::Failed { .. }) => {
                step = candidate;
                smaller = true;
                i = 0;
            }
            _ => i += 1,
        }
    }
    if !smaller {
        // Already the smallest: the step's own file reproduces it.
        return Some((out.join(format!("{name}.toml")), step));
    }
    let header = format!(
        "Shrunk from {name}: the fewest of its faults that still fail.\nReproduce: {}",
        reproduce.replace("{file}", &file.display().to_string())
    );
    let text = experiment_text(&shrunk_name, &header, inventory.nodes.len(), &step).ok()?;
    std::fs::write(&file, text).ok()?;
    Some((file, step))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the experiment parser must read back for a written fault.
    fn as_read(kind: &FaultKind) -> experiment::FaultKind {
        use experiment::FaultKind as Read;
        match kind.clone() {
            FaultKind::Partition { groups } => Read::Partition {
                groups,
                links: None,
                one_way: false,
            },
            FaultKind::Isolate { nodes } => Read::Isolate { nodes, links: None },
            FaultKind::Kill { nodes } => Read::Kill { nodes },
            FaultKind::Pause { nodes } => Read::Pause { nodes },
            FaultKind::ClockSkew {
                nodes,
                offset,
                strobe,
            } => Read::ClockSkew {
                nodes,
                offset_ms: if offset == "+90s" {
                    90_000
                } else {
                    unimplemented!()
                },
                strobe: Some(strobe),
            },
            FaultKind::LinkDown { nodes, link } => Read::LinkDown {
                nodes,
                link: u8::try_from(link).unwrap(),
            },
        }
    }

    fn draw_all(seed: u64, nodes: &[String]) -> Vec<Step> {
        let mut rng = fastrand::Rng::with_seed(seed);
        (0..200)
            .map(|_| {
                draw(
                    &mut rng,
                    nodes,
                    2,
                    Duration::from_secs(6),
                    Duration::from_secs(21),
                )
                .unwrap()
            })
            .collect()
    }

    /// Each step's file parses back to the step: the same faults, times and
    /// expectation, whatever the nodes are called.
    fn round_trip(nodes: &[String]) -> std::collections::BTreeSet<&'static str> {
        let mut kinds = std::collections::BTreeSet::new();
        for (i, step) in draw_all(7, nodes).iter().enumerate() {
            let text =
                experiment_text(&format!("s{i}"), "a header\nReproduce: x", 3, step).unwrap();
            let e = experiment::parse(Path::new("s.toml"), &text)
                .unwrap_or_else(|e| panic!("{e:?}\n{text}"));
            assert_eq!(e.name, format!("s{i}"));
            assert_eq!(e.description, step.what);
            assert!(e.invariants.oracle);
            assert_eq!(e.faults.len(), step.faults.len(), "{text}");
            for (read, written) in e.faults.iter().zip(&step.faults) {
                assert_eq!(read.kind, as_read(&written.kind), "{text}");
                assert_eq!(read.at, written.at);
                assert_eq!(read.heal_after, Some(written.heal_after));
            }
            let [expect] = &e.expects[..] else {
                panic!("one expectation: {text}")
            };
            assert_eq!(expect.within, step.settle);
            let last = step
                .faults
                .iter()
                .map(|f| f.at + f.heal_after)
                .max()
                .unwrap();
            let anchor = e
                .faults
                .iter()
                .find(|f| f.id == expect.after.fault)
                .unwrap();
            assert_eq!(anchor.at + anchor.heal_after.unwrap(), last);
            kinds.extend(e.faults.iter().map(|f| f.kind.name()));
        }
        kinds
    }

    #[test]
    fn steps_are_valid_experiments_and_the_same_for_the_same_seed() {
        let nodes: Vec<String> = (1..=3).map(|i| format!("pve{i}")).collect();
        let steps = draw_all(7, &nodes);
        assert_eq!(steps, draw_all(7, &nodes));
        assert_ne!(steps, draw_all(8, &nodes));
        let kinds = round_trip(&nodes);
        for k in [
            "partition",
            "isolate",
            "kill",
            "pause",
            "clock-skew",
            "link-down",
        ] {
            assert!(kinds.contains(k), "{k} never drawn: {kinds:?}");
        }
    }

    #[test]
    fn odd_node_names_round_trip() {
        let nodes: Vec<String> = ["a\"1", "b\\2", "c\n3 # not a comment", "dé\u{1}"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        round_trip(&nodes);
    }

    #[test]
    fn no_nodes_is_an_error_not_a_panic() {
        let mut rng = fastrand::Rng::with_seed(1);
        let d = Duration::from_secs(1);
        assert_eq!(draw(&mut rng, &[], 1, d, d), Err(NoNodes));

        let dir = std::env::temp_dir().join(format!("corodrill-random-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let inventory = dir.join("empty.toml");
        std::fs::write(&inventory, "name = \"empty\"\nnode = []\n").unwrap();
        let args = RandomArgs {
            inventory,
            seed: 1,
            duration: Duration::from_secs(1),
            out: dir.join("out"),
            model_override: BTreeMap::new(),
            lease: Duration::from_secs(5),
            history: None,
        };
        let code = random_drill(&args, &|_| {}, &AtomicBool::new(false));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(code, 2);
    }
}
