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

use crate::experiment;
use crate::inventory::Inventory;
use crate::judge::{judge, Verdict};
use crate::plan;
use crate::run::{self, RunOptions};

pub struct RandomArgs {
    pub inventory: PathBuf,
    pub seed: u64,
    pub duration: Duration,
    pub out: PathBuf,
    pub model_override: BTreeMap<String, String>,
    pub lease: Duration,
}

/// One fault of a step, as experiment TOML (without `id`, `at` and
/// `heal_after`, which the step gives it).
#[derive(Debug, Clone, PartialEq)]
pub struct StepFault {
    pub toml: String,
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

fn list(nodes: &[&String]) -> String {
    nodes
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Draws one step. `hold` is how long faults stay: long enough for the
/// cluster to settle, so that the oracle judges the state they make.
/// `settle` is how long the cluster may take to be whole after the heal.
pub fn draw(
    rng: &mut fastrand::Rng,
    nodes: &[String],
    links: usize,
    hold: Duration,
    settle: Duration,
) -> Step {
    let pick = |rng: &mut fastrand::Rng| &nodes[rng.usize(..nodes.len())];
    let whole = |toml: String| StepFault {
        toml,
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
    match kinds[rng.usize(..kinds.len())] {
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
            let text = groups
                .iter()
                .map(|g| format!("[{}]", list(g)))
                .collect::<Vec<_>>();
            let mut step = Step {
                what: format!(
                    "split {}",
                    groups
                        .iter()
                        .map(|g| g.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(","))
                        .collect::<Vec<_>>()
                        .join(" | ")
                ),
                faults: vec![whole(format!(
                    "kind = \"partition\"\ngroups = [{}]\n",
                    text.join(", ")
                ))],
                settle,
            };
            // Sometimes a node also dies during the split.
            if nodes.len() >= 3 && rng.usize(..3) == 0 {
                let victim = pick(rng);
                step.what.push_str(&format!(", kill {victim}"));
                step.faults
                    .push(whole(format!("kind = \"kill\"\nnodes = [{victim:?}]\n")));
            }
            step
        }
        "isolate" => {
            let n = pick(rng);
            Step {
                what: format!("isolate {n}"),
                faults: vec![whole(format!("kind = \"isolate\"\nnodes = [{n:?}]\n"))],
                settle,
            }
        }
        "kill" => {
            let n = pick(rng);
            Step {
                what: format!("kill corosync on {n}"),
                faults: vec![whole(format!("kind = \"kill\"\nnodes = [{n:?}]\n"))],
                settle,
            }
        }
        "pause" => {
            let n = pick(rng);
            Step {
                what: format!("pause corosync on {n}"),
                faults: vec![whole(format!("kind = \"pause\"\nnodes = [{n:?}]\n"))],
                settle,
            }
        }
        "flap" => {
            let n = pick(rng);
            Step {
                what: format!("flap {n} (1 s cut, 1 s not, three times)"),
                faults: (0..3u64)
                    .map(|i| StepFault {
                        toml: format!("kind = \"isolate\"\nnodes = [{n:?}]\n"),
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
                faults: vec![whole(format!(
                    "kind = \"clock-skew\"\nnodes = [{n:?}]\noffset = \"+90s\"\nstrobe = \"500ms\"\n"
                ))],
                settle,
            }
        }
        _ => {
            let n = pick(rng);
            let link = rng.usize(..links);
            Step {
                what: format!("{n} loses link {link}"),
                faults: vec![whole(format!(
                    "kind = \"link-down\"\nnodes = [{n:?}]\nlink = {link}\n"
                ))],
                settle,
            }
        }
    }
}

/// The step as an experiment file that `corodrill run` reproduces.
pub fn experiment_text(name: &str, header: &str, nodes: usize, step: &Step) -> String {
    let ms = |d: Duration| format!("{}ms", d.as_millis());
    let mut text = format!(
        "{header}name = {name:?}\ndescription = {:?}\nnodes = {nodes}\n\n[invariants]\noracle = true\n",
        step.what
    );
    let mut last = (Duration::ZERO, String::new());
    for (i, f) in step.faults.iter().enumerate() {
        let id = format!("f{}", i + 1);
        text.push_str(&format!(
            "\n[[fault]]\nid = {id:?}\n{}at = \"{}\"\nheal_after = \"{}\"\n",
            f.toml,
            ms(f.at),
            ms(f.heal_after)
        ));
        if f.at + f.heal_after >= last.0 {
            last = (f.at + f.heal_after, id);
        }
    }
    text.push_str(&format!(
        "\n[[expect]]\nname = \"whole again after the step\"\nafter = \"{}.healed\"\nnodes = \"all\"\nquorate = true\nmembers = \"all\"\nwithin = \"{}\"\n",
        last.1,
        ms(step.settle)
    ));
    text
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
) -> Result<Outcome, String> {
    let e = experiment::parse(file, text).map_err(|errs| {
        errs.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    let p = plan::plan(&e, inventory).map_err(|errs| errs.join("; "))?;
    Ok(match run::run(&e, &p, inventory, opts) {
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
    let inventory = match crate::drills::load_inventory(&args.inventory) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let nodes: Vec<String> = inventory.nodes.iter().map(|n| n.name.clone()).collect();
    // The timing decides how long each step holds: read it once.
    let (agents, failures) = crate::ops::connect_all(&inventory, Duration::from_secs(20));
    if !failures.is_empty() {
        eprintln!("agents unreachable: {}", failures.join("; "));
        return 3;
    }
    let model = crate::ops::cluster_model(&agents, &inventory, &Default::default());
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
        let step = draw(&mut rng, &nodes, inventory.links(), hold, settle);
        let name = format!("random-seed-{}-step-{steps}", args.seed);
        let file = args.out.join(format!("{name}.toml"));
        let header = format!(
            "# corodrill drill --random --seed {} (step {steps}): {}\n# Reproduce: {}\n",
            args.seed,
            step.what,
            reproduce.replace("{file}", &file.display().to_string())
        );
        let text = experiment_text(&name, &header, nodes.len(), &step);
        let step_started = Instant::now();
        match run_step(&text, &file, &inventory, &opts) {
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
        candidate.what = format!(
            "{} (fault {} dropped: {})",
            step.what,
            i + 1,
            dropped.toml.trim().replace('\n', "; ")
        );
        progress(&format!(
            "shrinking: trying without {}",
            dropped.toml.trim().replace('\n', "; ")
        ));
        let text = experiment_text(&shrunk_name, "", inventory.nodes.len(), &candidate);
        match run_step(&text, &file, inventory, opts) {
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
        "# Shrunk from {name}: the fewest of its faults that still fail.\n# Reproduce: {}\n",
        reproduce.replace("{file}", &file.display().to_string())
    );
    let text = experiment_text(&shrunk_name, &header, inventory.nodes.len(), &step);
    std::fs::write(&file, text).ok()?;
    Some((file, step))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_valid_experiments_and_the_same_for_the_same_seed() {
        let nodes: Vec<String> = (1..=3).map(|i| format!("pve{i}")).collect();
        let draw_all = |seed| {
            let mut rng = fastrand::Rng::with_seed(seed);
            (0..200)
                .map(|_| {
                    draw(
                        &mut rng,
                        &nodes,
                        2,
                        Duration::from_secs(6),
                        Duration::from_secs(21),
                    )
                })
                .collect::<Vec<_>>()
        };
        let steps = draw_all(7);
        assert_eq!(steps, draw_all(7));
        assert_ne!(steps, draw_all(8));
        let mut kinds = std::collections::BTreeSet::new();
        for (i, step) in steps.iter().enumerate() {
            let text = experiment_text(&format!("s{i}"), "# header\n", 3, step);
            let e = experiment::parse(Path::new("s.toml"), &text)
                .unwrap_or_else(|e| panic!("{e:?}\n{text}"));
            assert!(e.invariants.oracle);
            kinds.extend(e.faults.iter().map(|f| f.kind.name()));
        }
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
}
