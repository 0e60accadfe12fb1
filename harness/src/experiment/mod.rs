//! Experiment files (TOML): parsed and validated into an `Experiment`, with
//! every error located as `file:line:column: message`, all errors of a file
//! at once. Pure: reads text, returns data; knows nothing of agents or labs.
//!
//! Here the experiment's data and the file read as a whole; `spans` (TOML
//! with positions), `durations`, `faults` and `expects` (each table read
//! and checked), and `generated` (the files corodrill writes itself).

pub mod durations;
mod expects;
mod faults;
pub mod format;
pub mod generated;
pub mod spans;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use toml::{Spanned, Table, Value};

use crate::errors::ErrorCode;
use durations::Dur;
use expects::expect;
use faults::fault;
#[cfg(test)]
pub(crate) use faults::FAULT_KINDS;
use spans::{diag, entry_span, take, Checker};

/// One problem in an experiment file, at a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// Its name in the reference (`corodrill explain unknown-field`).
    pub code: ErrorCode,
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {} {}",
            self.file.display(),
            self.line,
            self.column,
            self.message,
            self.code.hint()
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Experiment {
    pub file: PathBuf,
    pub name: String,
    pub description: String,
    /// The inventory must have at least this many nodes.
    pub nodes: usize,
    pub requires: Requires,
    pub faults: Vec<FaultSpec>,
    pub expects: Vec<Expect>,
    pub invariants: Invariants,
    /// Resources whose placement the agents watch (`[[watch]]`).
    pub watches: Vec<WatchSpec>,
}

/// A resource to watch: where each node's view says it runs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchSpec {
    pub resource: String,
    #[serde(default)]
    pub kind: WatchKind,
    /// How often each node reads its view (taken out of the table first,
    /// so that its errors name the field).
    #[serde(skip_deserializing, default = "half_a_second")]
    pub interval: Duration,
    /// A clone runs on several nodes by design: no double-active check.
    #[serde(default)]
    pub clone: bool,
    /// `probe`: the command each node runs (`sh -c`). Exit 0: the resource
    /// answers; the node names it prints say where it runs, no output
    /// means the node that ran it.
    pub command: Option<String>,
    /// `probe`: the nodes that run the command (default: every node).
    pub nodes: Option<Vec<String>>,
    /// `probe`: a run that takes longer is killed, and the node cannot say.
    #[serde(skip_deserializing, default = "five_seconds")]
    pub timeout: Duration,
}

/// Where the nodes' views of a watched resource come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WatchKind {
    /// Pacemaker's status (`crm_mon`) on each node.
    #[default]
    Pacemaker,
    /// Proxmox VE's HA manager (`ha-manager status`) on each node; the
    /// resource is a service id such as `vm:100`.
    PveHa,
    /// An operator's command on chosen nodes.
    Probe,
}

impl WatchSpec {
    /// Whether `node` reads a view of this resource.
    pub fn watched_on(&self, node: &str) -> bool {
        self.nodes
            .as_ref()
            .is_none_or(|list| list.iter().any(|n| n == node))
    }
}

fn half_a_second() -> Duration {
    Duration::from_millis(500)
}

fn five_seconds() -> Duration {
    Duration::from_secs(5)
}

/// What an expectation on a resource wants each listed node's view to say.
#[derive(Debug, Clone, PartialEq)]
pub enum ResourceWant {
    /// Active on exactly one node, one of these.
    RunningOn(Vec<String>),
    /// Active nowhere.
    Stopped,
    /// Active somewhere, on none of the nodes it was on at the anchor.
    Moved,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResourceExpect {
    pub resource: String,
    pub want: ResourceWant,
}

/// What the cluster must offer for the drill to apply (`[requires]`):
/// `run` refuses a drill whose inventory or running corosync does not meet
/// it, `demo` and a directory given to `run` skip it.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Requires {
    /// At least this many nodes in the inventory. Default: any number.
    #[schemars(extend("examples" = [3]))]
    pub nodes: Option<usize>,
    /// At least this many corosync links (`ring0` up to `ringN-1`) on
    /// every node. Default: any.
    #[schemars(extend("examples" = [2]))]
    pub links: Option<usize>,
    /// true: the cluster must have a QDevice; false: it must not.
    /// Default: either.
    #[schemars(extend("examples" = [true]))]
    pub qdevice: Option<bool>,
    /// votequorum keys as corosync.conf's `quorum` section writes them
    /// (`two_node`, `wait_for_all`, `auto_tie_breaker`, `expected_votes`,
    /// ...) and the values the running cluster must have (`two_node = 1`).
    #[serde(default)]
    #[schemars(
        with = "BTreeMap<String, serde_json::Value>",
        extend("examples" = [{"two_node": 1}])
    )]
    pub quorum: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FaultSpec {
    pub id: String,
    pub at: Duration,
    pub heal_after: Option<Duration>,
    /// On real nodes the agent refuses to cut the controller's own connection
    /// unless this is set.
    pub allow_management_cut: bool,
    pub kind: FaultKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    Partition {
        groups: Vec<Vec<String>>,
        links: Option<Vec<u8>>,
        one_way: bool,
    },
    Isolate {
        nodes: Vec<String>,
        links: Option<Vec<u8>>,
    },
    LinkDown {
        nodes: Vec<String>,
        link: u8,
    },
    Degrade {
        nodes: Vec<String>,
        links: Option<Vec<u8>>,
        loss_percent: Option<u8>,
        delay: Option<Duration>,
        jitter: Option<Duration>,
        rate: Option<String>,
    },
    Kill {
        nodes: Vec<String>,
    },
    Stop {
        nodes: Vec<String>,
    },
    Pause {
        nodes: Vec<String>,
    },
    ClockSkew {
        nodes: Vec<String>,
        offset_ms: i64,
        strobe: Option<Duration>,
    },
    PowerOff {
        nodes: Vec<String>,
    },
    Command {
        nodes: Vec<String>,
        run: String,
        undo: Option<String>,
        /// How long `run` and `undo` may each take before the node kills
        /// them (the agent's default, 60 s, when absent).
        timeout: Option<Duration>,
    },
}

impl FaultKind {
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::Partition { .. } => "partition",
            FaultKind::Isolate { .. } => "isolate",
            FaultKind::LinkDown { .. } => "link-down",
            FaultKind::Degrade { .. } => "degrade",
            FaultKind::Kill { .. } => "kill",
            FaultKind::Stop { .. } => "stop",
            FaultKind::Pause { .. } => "pause",
            FaultKind::ClockSkew { .. } => "clock-skew",
            FaultKind::PowerOff { .. } => "power-off",
            FaultKind::Command { .. } => "command",
        }
    }

    /// Every node the fault names.
    pub fn named_nodes(&self) -> Vec<&str> {
        match self {
            FaultKind::Partition { groups, .. } => {
                groups.iter().flatten().map(String::as_str).collect()
            }
            FaultKind::Isolate { nodes, .. }
            | FaultKind::LinkDown { nodes, .. }
            | FaultKind::Degrade { nodes, .. }
            | FaultKind::Kill { nodes }
            | FaultKind::Stop { nodes }
            | FaultKind::Pause { nodes }
            | FaultKind::ClockSkew { nodes, .. }
            | FaultKind::PowerOff { nodes }
            | FaultKind::Command { nodes, .. } => nodes.iter().map(String::as_str).collect(),
        }
    }
}

/// A set of nodes: every node of the inventory, or these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeSet {
    All,
    Some(Vec<String>),
}

impl NodeSet {
    /// The nodes meant, out of `all` (the inventory's).
    pub fn resolve<'a>(&'a self, all: &'a [String]) -> Vec<&'a str> {
        match self {
            NodeSet::All => all.iter().map(String::as_str).collect(),
            NodeSet::Some(list) => list.iter().map(String::as_str).collect(),
        }
    }
}

impl Expect {
    /// What the expectation wants, in words: "pve1, pve2 quorate, members
    /// [pve1, pve2]" or "pve2, pve3 to see svc running on one of [pve2, pve3]";
    /// nodes that are to see different things are listed group by group
    /// ("pve1, pve2 quorate, members [pve1, pve2]; pve3 not quorate, members
    /// [pve3]").
    pub fn describe(&self, nodes: &[String]) -> String {
        if let Some(r) = &self.resource {
            let who = self.nodes.resolve(nodes).join(", ");
            let want = match &r.want {
                ResourceWant::RunningOn(set) => format!("running on one of [{}]", set.join(", ")),
                ResourceWant::Stopped => "stopped".to_owned(),
                ResourceWant::Moved => "moved off the node(s) it was on".to_owned(),
            };
            return format!("{who} to see {} {want}", r.resource);
        }
        // Nodes grouped by what they are to see, in the order named.
        let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
        for node in self.nodes.resolve(nodes) {
            let (quorate, members) = self.want_of(node);
            let mut parts = Vec::new();
            if let Some(q) = quorate {
                parts.push(if q { "quorate" } else { "not quorate" }.to_owned());
            }
            if let Some(m) = members {
                parts.push(format!("members [{}]", m.resolve(nodes).join(", ")));
            }
            if let Some(v) = self.total_votes {
                parts.push(format!("{v} votes"));
            }
            let want = parts.join(", ");
            match groups.iter_mut().find(|(w, _)| *w == want) {
                Some((_, who)) => who.push(node),
                None => groups.push((want, vec![node])),
            }
        }
        groups
            .iter()
            .map(|(want, who)| format!("{} {want}", who.join(", ")))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// What `node` is to see of quorum and membership: its own prediction
    /// where the nodes differ (`per_node`), else the expectation's.
    pub fn want_of(&self, node: &str) -> (Option<bool>, Option<&NodeSet>) {
        match self.per_node.get(node) {
            Some(w) => (
                w.quorate.or(self.quorate),
                w.members.as_ref().or(self.members.as_ref()),
            ),
            None => (self.quorate, self.members.as_ref()),
        }
    }
}

/// One node's own share of an expectation whose nodes are predicted to see
/// different things (a `"predicted"` expectation across a split): what
/// the model says this node sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeWant {
    pub quorate: Option<bool>,
    pub members: Option<NodeSet>,
}

/// How long after an expectation's anchor the cluster may take to react
/// to it, from the cluster's model (`model::expectations::resolve` sets it
/// once the cluster's timing is known). A state that was already there at the
/// anchor is evidence only if it still holds after this, and `hold` more:
/// until then corosync (or a resource manager) may simply not have
/// reacted yet.
#[derive(Debug, Clone, PartialEq)]
pub struct Reaction {
    pub time: Duration,
    /// What it is made of, for verdicts: "detection 3.630s (token 1650 ms
    /// + consensus 1980 ms), a quarter more and 0.5s for the notification".
    pub basis: String,
}

/// What an expectation is timed from: a fault's start or its heal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub fault: String,
    pub healed: bool,
}

impl std::fmt::Display for Anchor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.healed {
            write!(f, "{}.healed", self.fault)
        } else {
            write!(f, "{}", self.fault)
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Expect {
    pub name: String,
    pub after: Anchor,
    pub nodes: NodeSet,
    pub quorate: Option<bool>,
    pub members: Option<NodeSet>,
    pub total_votes: Option<u32>,
    pub within: Duration,
    pub hold: Duration,
    /// Fields the file left to the oracle (`"predicted"`), filled in by
    /// `model::expectations::resolve` once the cluster's configuration is
    /// known.
    pub predicted: Predicted,
    /// An expectation on a watched resource instead of quorum.
    pub resource: Option<ResourceExpect>,
    /// Per node, where `"predicted"` fields differ between the nodes
    /// named (set by `model::expectations::resolve`): each node is judged
    /// against its own prediction.
    pub per_node: BTreeMap<String, NodeWant>,
    /// How long the cluster may take to react to the anchor; None until
    /// `model::expectations::resolve` has read the cluster's model, and then
    /// a state already there at the anchor never passes.
    pub reaction: Option<Reaction>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Predicted {
    pub quorate: bool,
    pub members: bool,
    pub within: bool,
}

impl Predicted {
    pub fn any(&self) -> bool {
        self.quorate || self.members || self.within
    }
}

/// What the always-on invariants expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SplitBrain {
    /// At no moment two quorate nodes, each outside the other's membership.
    #[default]
    Forbid,
    /// The drill provokes a split-brain on purpose: it passes only if
    /// corodrill catches it.
    Expect,
    /// Whether it happens depends on timing the drill does not control:
    /// report it, never fail on it.
    Report,
}

/// The always-on checks (`[invariants]`), and the drills that provoke what
/// they forbid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Invariants {
    /// Split-brain: two quorate nodes at one moment, each outside the
    /// other's membership. "forbid" (default): the drill fails;
    /// "expect": the drill provokes one and passes only if it is seen;
    /// "report": reported, never failed on.
    #[serde(default)]
    #[schemars(extend("examples" = ["expect"]))]
    pub split_brain: SplitBrain,
    /// Every fault rolled back and the cluster whole again (every node
    /// quorate with every node) at the end; false for a drill that leaves
    /// it otherwise on purpose. Default: true.
    #[serde(default = "yes")]
    #[schemars(extend("examples" = [true]))]
    pub whole_at_end: bool,
    /// Judge every node after every change of faults against the quorum
    /// oracle, as `run --oracle` does (random drills' reproductions say it).
    /// Default: false.
    #[serde(default)]
    #[schemars(extend("examples" = [true]))]
    pub oracle: bool,
    /// A watched resource (not a clone) active on two nodes at once:
    /// "forbid" (default), "expect" (provoked on purpose, no fencing) or
    /// "report" (timing decides). Overlaps shorter than the watch interval
    /// are not counted, unless every start and stop that bounds them was
    /// timed by Pacemaker's own alerts (`source = "pacemaker-alert"`):
    /// those count however short.
    #[serde(default)]
    #[schemars(extend("examples" = ["report"]))]
    pub double_active: SplitBrain,
}

fn yes() -> bool {
    true
}

impl Default for Invariants {
    fn default() -> Self {
        Invariants {
            split_brain: SplitBrain::Forbid,
            whole_at_end: true,
            oracle: false,
            double_active: SplitBrain::Forbid,
        }
    }
}

/// Shortest `within` that makes sense: corosync needs at least a token
/// timeout and a consensus round to see any change.
pub const MIN_WITHIN: Duration = Duration::from_secs(1);

/// Reads every experiment in the paths (files, or directories of `*.toml`
/// files, sorted); returns them all, or every error of every file.
pub fn load(paths: &[PathBuf]) -> Result<Vec<Experiment>, Vec<Diagnostic>> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        if path.is_dir() {
            match std::fs::read_dir(path) {
                Ok(dir) => {
                    let mut found: Vec<PathBuf> = dir
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                        .collect();
                    found.sort();
                    files.extend(found);
                }
                Err(e) => errors.push(diag(
                    path,
                    1,
                    1,
                    ErrorCode::CannotRead,
                    format!("cannot read directory: {e}"),
                )),
            }
        } else {
            files.push(path.clone());
        }
    }
    let mut experiments = Vec::new();
    for file in files {
        match std::fs::read_to_string(&file) {
            Ok(text) => match parse(&file, &text) {
                Ok(e) => experiments.push(e),
                Err(mut errs) => errors.append(&mut errs),
            },
            Err(e) => errors.push(diag(
                &file,
                1,
                1,
                ErrorCode::CannotRead,
                format!("cannot read: {e}"),
            )),
        }
    }
    if errors.is_empty() {
        Ok(experiments)
    } else {
        Err(errors)
    }
}

/// The file as far as TOML and the top-level keys go; entries are checked
/// one by one so that all their errors are reported.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExperiment {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    nodes: Spanned<i64>,
    requires: Option<Spanned<Value>>,
    #[serde(default)]
    fault: Vec<Spanned<Table>>,
    #[serde(default)]
    expect: Vec<Spanned<Table>>,
    invariants: Option<Spanned<Value>>,
    #[serde(default)]
    watch: Vec<Spanned<Table>>,
}

pub fn parse(file: &Path, text: &str) -> Result<Experiment, Vec<Diagnostic>> {
    parse_recording(file, text).0
}

/// `parse`, and every key the parser asked each table for ("fault.id",
/// "expect.within"): the keys it knows, held to the reference by
/// `reference`'s tests.
pub(crate) fn parse_recording(
    file: &Path,
    text: &str,
) -> (Result<Experiment, Vec<Diagnostic>>, BTreeSet<String>) {
    let mut c = Checker {
        file,
        text,
        errors: Vec::new(),
        asked: BTreeSet::new(),
        table: "",
    };
    let result = parse_with(&mut c, file, text);
    (result, c.asked)
}

fn parse_with(c: &mut Checker, file: &Path, text: &str) -> Result<Experiment, Vec<Diagnostic>> {
    let raw: RawExperiment = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let offset = e.span().map_or(0, |s| s.start);
            let message = e.message().trim().to_owned();
            // Not TOML at all, or TOML with a wrong key or value.
            let code = if text.parse::<Table>().is_err() {
                ErrorCode::TomlSyntax
            } else {
                ErrorCode::of_deserialize(&message)
            };
            c.at(offset, code, message);
            return Err(std::mem::take(&mut c.errors));
        }
    };
    let nodes = *raw.nodes.get_ref();
    if !(1..=32).contains(&nodes) {
        c.at(
            raw.nodes.span().start,
            ErrorCode::NodeCount,
            format!("nodes = {nodes}: a corosync cluster has 1 to 32 nodes"),
        );
    }
    let nodes = nodes.clamp(1, 32) as usize;
    if raw.name.get_ref().trim().is_empty() {
        c.at(raw.name.span().start, ErrorCode::EmptyName, "name is empty");
    }
    let requires = match raw.requires {
        Some(r) => {
            let span = r.span();
            c.typed::<Requires>(&span, "requires", r.into_inner())
                .unwrap_or_default()
        }
        None => Requires::default(),
    };
    let invariants = match raw.invariants {
        Some(i) => {
            let span = i.span();
            c.typed::<Invariants>(&span, "invariants", i.into_inner())
                .unwrap_or_default()
        }
        None => Invariants::default(),
    };

    // Ids of every fault written, valid or not: an expectation naming a
    // fault that has errors of its own is not a second error.
    let written_ids: Vec<String> = raw
        .fault
        .iter()
        .filter_map(|f| f.get_ref().get("id")?.as_str().map(str::to_owned))
        .collect();
    let mut faults = Vec::new();
    let mut ids = BTreeSet::new();
    c.table = "fault";
    for entry in raw.fault {
        let span = entry_span(text, entry.span());
        if let Some(f) = fault(c, &span, entry.into_inner(), nodes) {
            if !ids.insert(f.id.clone()) {
                c.at_key(
                    &span,
                    "id",
                    ErrorCode::DuplicateFaultId,
                    format!("fault id {:?} is used twice", f.id),
                );
            }
            faults.push(f);
        }
    }
    if faults.is_empty() && c.errors.is_empty() {
        c.at(0, ErrorCode::NoFault, "the experiment has no [[fault]]");
    }
    let raw_watched: Vec<String> = raw
        .watch
        .iter()
        .filter_map(|w| w.get_ref().get("resource")?.as_str().map(str::to_owned))
        .collect();
    let mut watches: Vec<WatchSpec> = Vec::new();
    c.table = "watch";
    for entry in raw.watch {
        let span = entry_span(text, entry.span());
        let mut t = entry.into_inner();
        let (Ok(interval), Ok(timeout)) = (
            take::<Dur>(c, &span, &mut t, "interval"),
            take::<Dur>(c, &span, &mut t, "timeout"),
        ) else {
            continue;
        };
        if let Some(mut w) = c.typed::<WatchSpec>(&span, "watch", Value::Table(t)) {
            if let Some(Dur(d)) = interval {
                w.interval = d;
            }
            if let Some(Dur(d)) = timeout {
                w.timeout = d;
            }
            let probe = w.kind == WatchKind::Probe;
            if probe && w.command.as_deref().is_none_or(|c| c.trim().is_empty()) {
                c.at(
                    span.start,
                    ErrorCode::ProbeNeedsCommand,
                    format!(
                        "[[watch]] resource {:?}: kind = \"probe\" needs command = \"...\" (run with sh -c on each node)",
                        w.resource
                    ),
                );
            } else if !probe && w.command.is_some() {
                c.at_key(
                    &span,
                    "command",
                    ErrorCode::ProbeOnlyField,
                    "command is for kind = \"probe\" only".to_owned(),
                );
            } else if !probe && w.nodes.is_some() {
                c.at_key(
                    &span,
                    "nodes",
                    ErrorCode::ProbeOnlyField,
                    "nodes is for kind = \"probe\" only: every node reports its resource manager's view".to_owned(),
                );
            } else if watches.iter().any(|x| x.resource == w.resource) {
                c.at_key(
                    &span,
                    "resource",
                    ErrorCode::DuplicateWatch,
                    format!("resource {:?} is watched twice", w.resource),
                );
            } else {
                watches.push(w);
            }
        }
    }
    // Every resource written in a [[watch]], valid or not: an expectation
    // on one whose watch has errors of its own is not a second error.
    let watched: Vec<String> = raw_watched;
    let mut expects = Vec::new();
    c.table = "expect";
    for (i, entry) in raw.expect.into_iter().enumerate() {
        let span = entry_span(text, entry.span());
        if let Some(e) = expect(c, &span, entry.into_inner(), i, &written_ids, &watched) {
            expects.push(e);
        }
    }
    if c.errors.is_empty() {
        return Ok(Experiment {
            file: file.to_owned(),
            name: raw.name.into_inner(),
            description: raw.description,
            nodes,
            requires,
            faults,
            expects,
            invariants,
            watches,
        });
    }
    c.errors.sort_by_key(|d| (d.line, d.column));
    Err(std::mem::take(&mut c.errors))
}

#[cfg(test)]
mod tests;
