//! `corodrill run`, `check` and `demo`: the pipeline wired together.
//! experiment -> plan -> run (event log) -> judge -> report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::commands::history::Recorder;
use crate::experiment::{self, Experiment};
use crate::inventory::Inventory;
use crate::judge::judge;
use crate::lab::{self, LabSpec, Profile};
use crate::plan::{self, Plan};
use crate::report::{self, DrillResult};
use crate::run::{self, RunError, RunOptions};

pub struct RunArgs {
    pub paths: Vec<PathBuf>,
    pub inventory: PathBuf,
    pub junit: Option<PathBuf>,
    pub json: Option<PathBuf>,
    pub html: Option<PathBuf>,
    pub dry_run: bool,
    pub repeat: usize,
    pub lease: Duration,
    pub oracle: bool,
    pub model_override: BTreeMap<String, String>,
    pub allow_fencing: bool,
    /// Install corodrill's Pacemaker alert for each drill.
    pub pacemaker_alert: bool,
    /// The pass rate a repeated drill needs to pass with flaky runs; None:
    /// every run must pass.
    pub pass_rate: Option<f64>,
    /// How many times a run that failed while the machine stalled is run
    /// again (per drill).
    pub retry_disturbed: usize,
    /// The history file every run is appended to; None: `--no-history`.
    pub history: Option<PathBuf>,
    /// A measured time outside its usual range fails its expectation.
    pub fail_on_regression: bool,
    /// The verdicts and measured times in Prometheus's text format.
    pub metrics: Option<PathBuf>,
    /// A Pushgateway the same metrics are pushed to.
    pub pushgateway: Option<String>,
}

/// The model a dry run assumes: one vote per node, corosync's default
/// totem timing, and the operator's overrides (`two_node=1`,
/// `totem.token=1000`, ...).
fn assumed_model(
    inventory: &Inventory,
    overrides: &BTreeMap<String, String>,
) -> crate::model::predict::Model {
    let nodes: Vec<(u32, String)> = inventory
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (i as u32 + 1, n.name.clone()))
        .collect();
    let totem: BTreeMap<String, String> = overrides
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("totem.")?.to_owned(), v.clone())))
        .collect();
    crate::model::predict::Model {
        config: crate::model::oracle::QuorumConfig::from_cmap(nodes, overrides),
        timing: crate::model::oracle::Timing::from_totem(&totem, inventory.nodes.len()),
        links: inventory.links(),
    }
}

/// Exit statuses (README): 0 all held, 1 a verdict failed, 2 invalid
/// input, 3 the drill could not be carried out, 130 interrupted.
pub fn check(paths: &[PathBuf]) -> u8 {
    match experiment::load(paths) {
        Ok(experiments) => {
            for e in &experiments {
                println!(
                    "ok {} ({}): {} fault(s), {} expectation(s)",
                    e.file.display(),
                    e.name,
                    e.faults.len(),
                    e.expects.len()
                );
            }
            0
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!("{} error(s)", errors.len());
            2
        }
    }
}

/// Loads and plans every experiment against the inventory, or says every
/// reason it cannot (exit 2).
/// The drills to run, each with its plan. A drill found in a directory
/// that cannot be planned on this inventory (another shape of cluster) is
/// skipped (listed in `skipped`), so `run experiments/` runs what fits; a
/// file named on its own that does not fit is an error.
pub(crate) fn prepare(
    paths: &[PathBuf],
    inventory: &Inventory,
    skipped: &mut Vec<String>,
) -> Result<Vec<(Experiment, Plan)>, Vec<String>> {
    let experiments = experiment::load(paths)
        .map_err(|errs| errs.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    let mut errors = Vec::new();
    let mut planned = Vec::new();
    for e in experiments {
        match plan::plan(&e, inventory) {
            // Found in a directory and planned for another shape of
            // cluster (node count, names, links): not this cluster's drill.
            Err(errs) if from_directory(paths, &e) => {
                let more = match errs.len() {
                    0 | 1 => String::new(),
                    n => format!(" (and {} more)", n - 1),
                };
                skipped.push(format!(
                    "{}: {}{more}",
                    e.file.display(),
                    errs.first().map_or("", String::as_str)
                ));
            }
            Ok(p) => {
                // Credentials are checked for every drill before the first
                // runs: a missing one is bad input, not a failure halfway.
                for node in p.faults.iter().flat_map(|f| f.power_off.iter()) {
                    let Some(node) = inventory.nodes.iter().find(|n| &n.name == node) else {
                        continue;
                    };
                    if let Err(err) = crate::cluster::power::driver_for(
                        node,
                        &crate::cluster::power::Tools::default(),
                        &crate::cluster::power::from_environment,
                    ) {
                        errors.push(
                            crate::errors::ErrorCode::MissingSecret
                                .tag(format!("{}: {err}", e.file.display())),
                        );
                    }
                }
                planned.push((e, p))
            }
            Err(errs) => errors.extend(
                errs.into_iter()
                    .map(|m| format!("{}: {m}", e.file.display())),
            ),
        }
    }
    if errors.is_empty() {
        Ok(planned)
    } else {
        Err(errors)
    }
}

/// Whether the experiment was found in a directory rather than named.
pub(crate) fn from_directory(paths: &[PathBuf], e: &Experiment) -> bool {
    !paths.contains(&e.file)
}

/// What `run` and `mutate` start from: the inventory, the drills that fit
/// it with their plans, and the ones skipped (with why).
pub(crate) struct Prepared {
    pub inventory: Inventory,
    pub planned: Vec<(Experiment, Plan)>,
    pub skipped: Vec<String>,
}

/// Loads the inventory and plans the drills on it; every error is said on
/// stderr and is exit status 2, as is a set of drills none of which fits.
pub(crate) fn load_and_plan(paths: &[PathBuf], inventory: &Path) -> Result<Prepared, u8> {
    let inventory = crate::inventory::load(inventory).map_err(|e| {
        eprintln!("{e}");
        2
    })?;
    let mut skipped = Vec::new();
    let planned = prepare(paths, &inventory, &mut skipped).map_err(|errors| {
        for e in errors {
            eprintln!("{e}");
        }
        2
    })?;
    if planned.is_empty() {
        say_skipped(&skipped);
        eprintln!("no drill fits this inventory");
        return Err(2);
    }
    Ok(Prepared {
        inventory,
        planned,
        skipped,
    })
}

pub(crate) fn say_skipped(skipped: &[String]) {
    for s in skipped {
        println!("SKIP {s}");
    }
}

pub fn run_command(args: &RunArgs, progress: &dyn Fn(&str), cancel: &AtomicBool) -> u8 {
    let Prepared {
        inventory,
        planned,
        mut skipped,
    } = match load_and_plan(&args.paths, &args.inventory) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if args.dry_run {
        // Touch nothing: not even the agents (starting one rolls back what
        // a previous one journaled). The model is corosync's defaults with
        // the operator's --model-override on top, and says so.
        let model = assumed_model(&inventory, &args.model_override);
        for (e, p) in &planned {
            println!("{}", plan::describe(e, p));
            println!(
                "{}\n",
                crate::model::fencing::foresight_text(
                    e,
                    p,
                    &model,
                    "if the nodes run Proxmox VE HA services; --model-override changes the model"
                )
            );
        }
        return 0;
    }
    let mut recorder = match Recorder::open(
        args.history.as_deref(),
        &inventory.name,
        args.fail_on_regression,
    ) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let opts = RunOptions {
        lease: args.lease,
        oracle: args.oracle,
        model_override: args.model_override.clone(),
        allow_fencing: args.allow_fencing,
        pacemaker_alert: args.pacemaker_alert,
        ..RunOptions::new(progress, cancel)
    };
    let skippable = |e: &Experiment| from_directory(&args.paths, e);
    let (results, code) = drill_all(
        &planned,
        &inventory,
        Repeat {
            times: args.repeat,
            retry_disturbed: args.retry_disturbed,
        },
        &opts,
        &skippable,
        &mut skipped,
        &mut recorder,
    );
    let code = finish(
        &results,
        code,
        Reports {
            junit: args.junit.as_deref(),
            json: args.json.as_deref(),
            html: args.html.as_deref(),
            metrics: args.metrics.as_deref(),
            pushgateway: args.pushgateway.as_deref(),
            cluster: &inventory.name,
        },
        args.pass_rate,
    );
    say_skipped(&skipped);
    code
}

/// How often each drill runs.
#[derive(Debug, Clone, Copy)]
struct Repeat {
    times: usize,
    /// Runs that fail while the machine stalls are run again, this many
    /// times per drill at most.
    retry_disturbed: usize,
}

/// Where the reports go.
struct Reports<'p> {
    junit: Option<&'p Path>,
    json: Option<&'p Path>,
    html: Option<&'p Path>,
    /// The Prometheus text file.
    metrics: Option<&'p Path>,
    /// A Pushgateway to push the same metrics to.
    pushgateway: Option<&'p str>,
    /// The cluster's name, the metrics' label.
    cluster: &'p str,
}

/// Runs each experiment `repeat.times` times (a disturbed run again, as
/// `repeat.retry_disturbed` allows); stops at the first run that could not
/// be carried out.
fn drill_all(
    planned: &[(Experiment, Plan)],
    inventory: &Inventory,
    repeat: Repeat,
    opts: &RunOptions,
    skippable: &dyn Fn(&Experiment) -> bool,
    skipped: &mut Vec<String>,
    recorder: &mut Option<Recorder>,
) -> (Vec<Vec<DrillResult>>, u8) {
    let (progress, cancel) = (opts.progress, opts.cancel);
    let times = repeat.times.max(1);
    let mut all = Vec::new();
    for (e, p) in planned {
        let mut runs = Vec::new();
        let mut retries = repeat.retry_disturbed;
        let mut i = 0;
        while i < times {
            progress(&format!(
                "drill {}{} ({})",
                e.name,
                if times > 1 {
                    format!(" run {}/{times}", i + 1)
                } else {
                    String::new()
                },
                e.file.display()
            ));
            let started = Instant::now();
            let result = run::run(e, p, inventory, opts);
            let (experiment, log, error, cluster) = match result {
                Ok(ran) => (ran.experiment, ran.log, None, Some(Box::new(ran.cluster))),
                Err(aborted) => (e.clone(), aborted.log, Some(aborted.error), aborted.cluster),
            };
            let verdicts = if error.is_none() {
                judge(&experiment, &p.nodes, &log)
            } else {
                Vec::new()
            };
            // A drill from a directory whose [requires] this cluster does
            // not meet (QDevice, quorum options) is skipped, not an error.
            if let Some(RunError::Requires(why)) = &error {
                if skippable(e) {
                    skipped.push(format!("{}: {why}", e.file.display()));
                    break;
                }
            }
            let code = error.as_ref().map(RunError::exit_code);
            let mut result = DrillResult {
                experiment,
                log,
                verdicts,
                error: error.map(|e| e.to_string()),
                wall: started.elapsed(),
                retried: false,
                cluster,
                regressions: Vec::new(),
            };
            // Refusals (exit 2) are not runs; everything else is kept,
            // and compared with the cluster's earlier runs.
            if let Some(recorder) = recorder.as_mut().filter(|_| code != Some(2)) {
                recorder.record(&mut result, progress);
            }
            // Failed while the machine stalled: run it again, if allowed;
            // the disturbed run stays in the reports with its evidence.
            let again = code.is_none() && retries > 0 && !cancel.load(Ordering::Relaxed);
            if let Some(evidence) = result.disturbed().filter(|_| again) {
                retries -= 1;
                progress(&format!(
                    "drill {}: failed while {evidence}: running it again ({retries} retry(ies) left)",
                    e.name
                ));
                result.retried = true;
                runs.push(result);
                continue;
            }
            runs.push(result);
            i += 1;
            if let Some(code) = code {
                all.push(runs);
                return (all, code);
            }
            if cancel.load(Ordering::Relaxed) {
                all.push(runs);
                return (all, 130);
            }
        }
        // Empty when the drill was skipped.
        if !runs.is_empty() {
            all.push(runs);
        }
    }
    (all, 0)
}

/// Prints the summaries, writes the reports, and gives the exit status:
/// one rule (`report::DrillOutcome`, under the operator's pass rate) for
/// all of them.
fn finish(all: &[Vec<DrillResult>], code: u8, reports: Reports, pass_rate: Option<f64>) -> u8 {
    for runs in all {
        println!("{}", report::console::summary_with(runs, pass_rate));
    }
    let mut code = code;
    let page = match reports
        .html
        .map(|_| crate::report::html::render_with(all, pass_rate))
    {
        Some(Err(e)) => {
            eprintln!("{e}");
            code = code.max(3);
            String::new()
        }
        Some(Ok(page)) => page,
        None => String::new(),
    };
    for (path, text) in [
        (reports.junit, report::junit::junit_with(all, pass_rate)),
        (reports.json, report::jsonl::json_lines_with(all, pass_rate)),
        (reports.html, page),
    ] {
        if let Some(path) = path {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                let _ = std::fs::create_dir_all(dir);
            }
            match std::fs::write(path, text) {
                Ok(()) => println!("report: {}", path.display()),
                Err(e) => {
                    eprintln!("cannot write {}: {e}", path.display());
                    code = code.max(3);
                }
            }
        }
    }
    if reports.metrics.is_some() || reports.pushgateway.is_some() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let text = report::prometheus::metrics(reports.cluster, all, pass_rate, now);
        if let Some(path) = reports.metrics {
            match write_whole(path, &text) {
                Ok(()) => println!("metrics: {}", path.display()),
                Err(e) => {
                    eprintln!("cannot write {}: {e}", path.display());
                    code = code.max(3);
                }
            }
        }
        if let Some(url) = reports.pushgateway {
            match crate::commands::metrics::push(url, reports.cluster, &text) {
                Ok(()) => println!(
                    "metrics pushed: {}",
                    crate::commands::metrics::group_url(url, reports.cluster)
                ),
                Err(e) => {
                    eprintln!("cannot push the metrics: {e}");
                    code = code.max(3);
                }
            }
        }
    }
    if code == 0 {
        code = report::exit_status(all, pass_rate);
    }
    code
}

/// Writes a file whole or not at all: a temporary file beside it, renamed
/// over it (a textfile collector never reads half a file).
fn write_whole(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map_or_else(|| "metrics".into(), |n| n.to_string_lossy().into_owned());
    // A leading dot and no .prom suffix: the collector ignores it.
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// The lab a drill needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabShape {
    pub nodes: u8,
    pub links: u8,
    pub qdevice: bool,
    /// `--quorum-option` values.
    pub options: Vec<String>,
}

/// The lab a drill needs: `[requires]`, or the experiment's node count.
pub fn lab_shape(e: &Experiment) -> LabShape {
    let nodes = e.requires.nodes.unwrap_or(e.nodes).max(e.nodes) as u8;
    let links = e.requires.links.unwrap_or(1) as u8;
    let qdevice = e.requires.qdevice.unwrap_or(false);
    let options = e
        .requires
        .quorum
        .iter()
        .map(|(k, v)| match v {
            toml::Value::Boolean(b) => format!("{k}={}", u8::from(*b)),
            toml::Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect();
    LabShape {
        nodes,
        links,
        qdevice,
        options,
    }
}

/// `corodrill demo`: every shipped drill on a lab of its shape (labs of the
/// same shape are reused), reports into `reports/`, labs taken down.
pub fn demo(
    experiments_dir: &Path,
    reports_dir: &Path,
    lab_prefix: &str,
    history: Option<&Path>,
    progress: &dyn Fn(&str),
    cancel: &AtomicBool,
) -> u8 {
    let experiments = match experiment::load(&[experiments_dir.to_path_buf()]) {
        Ok(e) => e,
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            return 2;
        }
    };
    // Each lab is a cluster of its own name in the history.
    let mut recorder = match Recorder::open(history, "", false) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let mut shapes: Vec<(LabShape, Vec<Experiment>)> = Vec::new();
    for e in experiments {
        let shape = lab_shape(&e);
        match shapes.iter_mut().find(|(s, _)| *s == shape) {
            Some((_, list)) => list.push(e),
            None => shapes.push((shape, vec![e])),
        }
    }
    let mut all = Vec::new();
    let mut code = 0;
    for (
        i,
        (
            LabShape {
                nodes,
                links,
                qdevice,
                options,
            },
            list,
        ),
    ) in shapes.into_iter().enumerate()
    {
        let name = format!("{lab_prefix}{i}");
        let spec = match LabSpec::new(&name, nodes, links, qdevice, None, Profile::Fast, &options) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{e}");
                return e.exit_code();
            }
        };
        let _ = lab::down(&name);
        progress(&format!(
            "lab {name}: {nodes} nodes, {links} link(s){}{} for {} drill(s)",
            if qdevice { ", QDevice" } else { "" },
            if options.is_empty() {
                String::new()
            } else {
                format!(", {}", options.join(" "))
            },
            list.len()
        ));
        let up = match lab::up(spec, None, progress) {
            Ok(up) => up,
            Err(e) => {
                eprintln!("corodrill: {e}");
                return e.exit_code();
            }
        };
        let inventory = lab::inventory(&up.lab);
        if let Some(r) = recorder.as_mut() {
            r.cluster = inventory.name.clone();
        }
        let mut planned = Vec::new();
        for e in list {
            match plan::plan(&e, &inventory) {
                Ok(p) => planned.push((e, p)),
                Err(errs) => {
                    for m in errs {
                        eprintln!("{}: {m}", e.file.display());
                    }
                    code = 2;
                }
            }
        }
        let (results, c) = drill_all(
            &planned,
            &inventory,
            Repeat {
                times: 1,
                retry_disturbed: 0,
            },
            &RunOptions::new(progress, cancel),
            &|_| false,
            &mut Vec::new(),
            &mut recorder,
        );
        for runs in &results {
            println!("{}", report::console::summary(runs));
        }
        all.extend(results);
        let _ = lab::down(&name);
        if c != 0 {
            code = c;
            break;
        }
    }
    let junit = reports_dir.join("junit.xml");
    let json = reports_dir.join("events.jsonl");
    let html = reports_dir.join("report.html");
    let _ = std::fs::create_dir_all(reports_dir);
    let page = crate::report::html::render(&all).unwrap_or_else(|e| {
        eprintln!("{e}");
        code = code.max(3);
        String::new()
    });
    let mut written = Vec::new();
    for (path, text) in [
        (&junit, report::junit::junit(&all)),
        (&json, report::jsonl::json_lines(&all)),
        (&html, page),
    ] {
        if std::fs::write(path, text).is_ok() {
            written.push(path.display().to_string());
        }
    }
    println!("reports: {}", written.join(", "));
    let passed = all
        .iter()
        .filter(|r| r.iter().all(DrillResult::passed))
        .count();
    println!("{passed}/{} drills passed", all.len());
    if code == 0 && passed < all.len() {
        code = 1;
    }
    code
}
