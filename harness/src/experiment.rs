//! Experiment files (TOML): parsed and validated into an `Experiment`, with
//! every error located as `file:line:column: message`, all errors of a file
//! at once. Pure: reads text, returns data; knows nothing of agents or labs.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use toml::{Spanned, Table, Value};

/// One problem in an experiment file, at a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
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

/// The longest duration or clock offset an experiment may write: longer
/// than any drill, and short enough that adding a few of them (a fault's
/// `at` and `heal_after`, an expectation's anchor, `within` and `hold`)
/// never overflows. humantime reads "18446744073709551615s" as it is.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// A duration written in an experiment ("500ms", "10s", "2m"), at most
/// `MAX_DURATION`; `Checker::typed` puts the file, line and field in
/// front of its errors. Read with humantime itself rather than
/// humantime-serde, whose error drops humantime's reason ("unknown time
/// unit", "number is too large").
fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    use serde::de::Error;
    let text = String::deserialize(d)?;
    let value = humantime::parse_duration(text.trim()).map_err(|e| {
        D::Error::custom(format!(
            "invalid duration {text:?} ({e}); write it like \"500ms\", \"10s\", \"2m\""
        ))
    })?;
    within_cap(&text, value).map_err(D::Error::custom)
}

/// `value` (written `text`), or why it is too long.
fn within_cap(text: &str, value: Duration) -> Result<Duration, String> {
    if value > MAX_DURATION {
        Err(format!(
            "{text:?} is longer than {}, the most corodrill takes",
            humantime::format_duration(MAX_DURATION)
        ))
    } else {
        Ok(value)
    }
}

/// A command-line duration (`--lease`, `--duration`): humantime, at most
/// `MAX_DURATION` (deadlines are `Instant::now()` plus it).
pub fn parse_flag_duration(text: &str) -> Result<Duration, String> {
    let value = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    within_cap(text, value)
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

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requires {
    pub nodes: Option<usize>,
    pub links: Option<usize>,
    pub qdevice: Option<bool>,
    /// votequorum keys (two_node, wait_for_all, ...) and the values they must have.
    #[serde(default)]
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
/// to it, from the cluster's model (`predict::resolve` sets it once the
/// cluster's timing is known). A state that was already there at the
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
    /// `predict::resolve` once the cluster's configuration is known.
    pub predicted: Predicted,
    /// An expectation on a watched resource instead of quorum.
    pub resource: Option<ResourceExpect>,
    /// Per node, where `"predicted"` fields differ between the nodes
    /// named (set by `predict::resolve`): each node is judged against its
    /// own prediction.
    pub per_node: BTreeMap<String, NodeWant>,
    /// How long the cluster may take to react to the anchor; None until
    /// `predict::resolve` has read the cluster's model, and then a state
    /// already there at the anchor never passes.
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

/// Takes `key` out of the table if it says `"predicted"`.
fn take_predicted(t: &mut Table, key: &str) -> bool {
    let predicted = t.get(key).is_some_and(|v| v.as_str() == Some("predicted"));
    if predicted {
        t.remove(key);
    }
    predicted
}

/// What the always-on invariants expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invariants {
    #[serde(default)]
    pub split_brain: SplitBrain,
    /// Every fault rolled back and the cluster whole again at the end.
    #[serde(default = "yes")]
    pub whole_at_end: bool,
    /// Judge every node after every change of faults against the quorum
    /// oracle, as `run --oracle` does (random drills' reproductions say it).
    #[serde(default)]
    pub oracle: bool,
    /// A watched resource (not a clone) active on two nodes at once:
    /// forbidden, or provoked on purpose (no fencing) and expected.
    #[serde(default)]
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
                Err(e) => errors.push(diag(path, 1, 1, format!("cannot read directory: {e}"))),
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
            Err(e) => errors.push(diag(&file, 1, 1, format!("cannot read: {e}"))),
        }
    }
    if errors.is_empty() {
        Ok(experiments)
    } else {
        Err(errors)
    }
}

fn diag(file: &Path, line: usize, column: usize, message: String) -> Diagnostic {
    Diagnostic {
        file: file.to_owned(),
        line,
        column,
        message,
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

/// Collects diagnostics against one file's text.
struct Checker<'a> {
    file: &'a Path,
    text: &'a str,
    errors: Vec<Diagnostic>,
}

/// 1-based line and column of a byte offset in `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

impl Checker<'_> {
    fn at(&mut self, offset: usize, message: impl Into<String>) {
        let (line, column) = line_column(self.text, offset);
        self.errors
            .push(diag(self.file, line, column, message.into()));
    }

    /// Points at `key = ...` inside `span` (an entry), or at the entry.
    fn at_key(&mut self, span: &Range<usize>, key: &str, message: impl Into<String>) {
        let offset = find_key(self.text, span, key).unwrap_or(span.start);
        self.at(offset, message);
    }

    /// Deserializes `value`, reporting a failure at `key` in `span`.
    fn typed<T: DeserializeOwned>(
        &mut self,
        span: &Range<usize>,
        key: &str,
        value: Value,
    ) -> Option<T> {
        match T::deserialize(value) {
            Ok(v) => Some(v),
            Err(e) => {
                let message = e.to_string().trim().to_owned();
                // toml says which field a bad value is in on a line of its
                // own ("...\nin `kind`"): report it where that field is.
                let (message, field) = match message.rsplit_once("\nin `") {
                    Some((m, f)) => (
                        m.trim().to_owned(),
                        Some(f.trim_end_matches('`').to_owned()),
                    ),
                    None => (message, None),
                };
                // An unknown field is reported where that field is written.
                let culprit = message
                    .split('`')
                    .nth(1)
                    .filter(|_| message.starts_with("unknown field"))
                    .map(str::to_owned)
                    .or(field)
                    .unwrap_or_else(|| key.to_owned());
                self.at_key(span, &culprit, format!("{key}: {message}"));
                None
            }
        }
    }
}

/// toml gives an `[[array]]` entry the span of its header: the entry runs
/// from there to the next header (a line starting with `[`) or the end.
fn entry_span(text: &str, header: Range<usize>) -> Range<usize> {
    let body = header.end.min(text.len());
    let end = text[body..]
        .match_indices('\n')
        .map(|(i, _)| body + i + 1)
        .find(|&line| {
            text[line..]
                .trim_start_matches([' ', '\t'])
                .starts_with('[')
        })
        .unwrap_or(text.len());
    header.start..end
}

/// The offset of `key` written as a key (`key =` or `key=`) in `span`.
fn find_key(text: &str, span: &Range<usize>, key: &str) -> Option<usize> {
    let region = text.get(span.clone())?;
    let mut from = 0;
    while let Some(i) = region[from..].find(key) {
        let start = from + i;
        let before_ok = start == 0
            || region[..start].ends_with(|c: char| c.is_whitespace() || c == '{' || c == ',');
        let after = region[start + key.len()..].trim_start_matches([' ', '\t']);
        if before_ok && after.starts_with('=') {
            return Some(span.start + start);
        }
        from = start + key.len();
    }
    None
}

pub fn parse(file: &Path, text: &str) -> Result<Experiment, Vec<Diagnostic>> {
    let mut c = Checker {
        file,
        text,
        errors: Vec::new(),
    };
    let raw: RawExperiment = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let offset = e.span().map_or(0, |s| s.start);
            c.at(offset, e.message().trim().to_owned());
            return Err(c.errors);
        }
    };
    let nodes = *raw.nodes.get_ref();
    if !(1..=32).contains(&nodes) {
        c.at(
            raw.nodes.span().start,
            format!("nodes = {nodes}: a corosync cluster has 1 to 32 nodes"),
        );
    }
    let nodes = nodes.clamp(1, 32) as usize;
    if raw.name.get_ref().trim().is_empty() {
        c.at(raw.name.span().start, "name is empty");
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
    for entry in raw.fault {
        let span = entry_span(text, entry.span());
        if let Some(f) = fault(&mut c, &span, entry.into_inner(), nodes) {
            if !ids.insert(f.id.clone()) {
                c.at_key(&span, "id", format!("fault id {:?} is used twice", f.id));
            }
            faults.push(f);
        }
    }
    if faults.is_empty() && c.errors.is_empty() {
        c.at(0, "the experiment has no [[fault]]");
    }
    let raw_watched: Vec<String> = raw
        .watch
        .iter()
        .filter_map(|w| w.get_ref().get("resource")?.as_str().map(str::to_owned))
        .collect();
    let mut watches: Vec<WatchSpec> = Vec::new();
    for entry in raw.watch {
        let span = entry_span(text, entry.span());
        let mut t = entry.into_inner();
        let (Ok(interval), Ok(timeout)) = (
            take::<Dur>(&mut c, &span, &mut t, "interval"),
            take::<Dur>(&mut c, &span, &mut t, "timeout"),
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
                    format!(
                        "[[watch]] resource {:?}: kind = \"probe\" needs command = \"...\" (run with sh -c on each node)",
                        w.resource
                    ),
                );
            } else if !probe && w.command.is_some() {
                c.at_key(
                    &span,
                    "command",
                    "command is for kind = \"probe\" only".to_owned(),
                );
            } else if !probe && w.nodes.is_some() {
                c.at_key(
                    &span,
                    "nodes",
                    "nodes is for kind = \"probe\" only: every node reports its resource manager's view".to_owned(),
                );
            } else if watches.iter().any(|x| x.resource == w.resource) {
                c.at_key(
                    &span,
                    "resource",
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
    for (i, entry) in raw.expect.into_iter().enumerate() {
        let span = entry_span(text, entry.span());
        if let Some(e) = expect(&mut c, &span, entry.into_inner(), i, &written_ids, &watched) {
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
    Err(c.errors)
}

/// Takes `key` out of `table` as a T, reporting what is wrong with it.
fn take<T: DeserializeOwned>(
    c: &mut Checker,
    span: &Range<usize>,
    table: &mut Table,
    key: &str,
) -> Result<Option<T>, ()> {
    match table.remove(key) {
        None => Ok(None),
        Some(v) => c.typed(span, key, v).map(Some).ok_or(()),
    }
}

fn required<T: DeserializeOwned>(
    c: &mut Checker,
    span: &Range<usize>,
    table: &mut Table,
    key: &str,
    what: &str,
) -> Option<T> {
    match take(c, span, table, key) {
        Ok(Some(v)) => Some(v),
        Ok(None) => {
            c.at(span.start, format!("{what}: missing `{key}`"));
            None
        }
        Err(()) => None,
    }
}

/// A duration field of a fault or an expectation (see `duration`).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(transparent)]
struct Dur(#[serde(deserialize_with = "duration")] Duration);

/// "+5m", "-90s", "300s": a signed humantime offset in milliseconds.
fn offset_ms(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (sign, rest) = match s.strip_prefix('-') {
        Some(r) => (-1, r),
        None => (1, s.strip_prefix('+').unwrap_or(s)),
    };
    let d = humantime::parse_duration(rest)
        .map_err(|e| format!("invalid offset {s:?} ({e}); write it like \"+5m\" or \"-90s\""))?;
    let d = within_cap(s, d).map_err(|e| format!("offset {e}"))?;
    // At most a week of milliseconds: fits an i64 with room to spare.
    Ok(sign * d.as_millis() as i64)
}

/// "30%" or 30.
fn percent(v: &Value) -> Result<u8, String> {
    let n = match v {
        Value::Integer(i) => *i,
        Value::String(s) => s
            .trim()
            .trim_end_matches('%')
            .trim()
            .parse::<i64>()
            .map_err(|_| format!("loss {s:?}: expected a percentage such as \"30%\""))?,
        other => {
            return Err(format!(
                "loss: expected a percentage such as \"30%\", found {}",
                other.type_str()
            ))
        }
    };
    if (1..=100).contains(&n) {
        Ok(n as u8)
    } else {
        Err(format!("loss {n}%: expected 1% to 100%"))
    }
}

const FAULT_KINDS: &str =
    "partition, isolate, link-down, degrade, kill, stop, pause, clock-skew, power-off, command";

fn fault(c: &mut Checker, span: &Range<usize>, mut t: Table, nodes: usize) -> Option<FaultSpec> {
    let id: Option<String> = required(c, span, &mut t, "id", "[[fault]]");
    let kind: Option<String> = required(c, span, &mut t, "kind", "[[fault]]");
    let at: Option<Dur> = take(c, span, &mut t, "at").ok()?;
    let heal_after: Option<Dur> = take(c, span, &mut t, "heal_after").ok()?;
    let allow_management_cut: Option<bool> = take(c, span, &mut t, "allow_management_cut").ok()?;
    let (id, kind) = (id?, kind?);
    if id.is_empty() || id.contains('.') || id.chars().any(char::is_whitespace) {
        c.at_key(
            span,
            "id",
            format!("fault id {id:?}: no dots or spaces (\"{id}.healed\" must be unambiguous)"),
        );
    }
    let nodes_of = |c: &mut Checker, t: &mut Table| -> Option<Vec<String>> {
        let list: Vec<String> = required(c, span, t, "nodes", &format!("fault {id:?}"))?;
        if list.is_empty() {
            c.at_key(span, "nodes", format!("fault {id:?}: `nodes` is empty"));
            return None;
        }
        Some(list)
    };
    let links_of = |c: &mut Checker, t: &mut Table| -> Result<Option<Vec<u8>>, ()> {
        let links: Option<Vec<u8>> = take(c, span, t, "links")?;
        if let Some(l) = &links {
            if l.is_empty() || l.iter().any(|&n| n > 7) {
                c.at_key(
                    span,
                    "links",
                    format!("fault {id:?}: links are corosync link numbers 0 to 7"),
                );
                return Err(());
            }
        }
        Ok(links)
    };
    let kind = match kind.as_str() {
        "partition" => {
            let groups: Vec<Vec<String>> =
                required(c, span, &mut t, "groups", &format!("fault {id:?}"))?;
            let direction: Option<String> = take(c, span, &mut t, "direction").ok()?;
            let one_way = match direction.as_deref() {
                None | Some("both") => false,
                Some("one-way") => true,
                Some(other) => {
                    c.at_key(
                        span,
                        "direction",
                        format!("direction {other:?}: expected \"both\" or \"one-way\""),
                    );
                    return None;
                }
            };
            check_groups(c, span, &id, &groups, nodes);
            FaultKind::Partition {
                groups,
                links: links_of(c, &mut t).ok()?,
                one_way,
            }
        }
        "isolate" => FaultKind::Isolate {
            nodes: nodes_of(c, &mut t)?,
            links: links_of(c, &mut t).ok()?,
        },
        "link-down" => {
            let link: u8 = required(c, span, &mut t, "link", &format!("fault {id:?}"))?;
            if link > 7 {
                c.at_key(
                    span,
                    "link",
                    format!("link {link}: corosync links are numbered 0 to 7"),
                );
            }
            FaultKind::LinkDown {
                nodes: nodes_of(c, &mut t)?,
                link,
            }
        }
        "degrade" => {
            let nodes = nodes_of(c, &mut t)?;
            let links = links_of(c, &mut t).ok()?;
            let loss = match t.remove("loss") {
                None => None,
                Some(v) => match percent(&v) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        c.at_key(span, "loss", e);
                        return None;
                    }
                },
            };
            let delay: Option<Dur> = take(c, span, &mut t, "delay").ok()?;
            let jitter: Option<Dur> = take(c, span, &mut t, "jitter").ok()?;
            let rate: Option<String> = take(c, span, &mut t, "rate").ok()?;
            if loss.is_none() && delay.is_none() && rate.is_none() {
                c.at(
                    span.start,
                    format!("fault {id:?}: a degrade needs at least one of loss, delay, rate"),
                );
            }
            if jitter.is_some() && delay.is_none() {
                c.at_key(
                    span,
                    "jitter",
                    format!("fault {id:?}: jitter needs a delay"),
                );
            }
            FaultKind::Degrade {
                nodes,
                links,
                loss_percent: loss,
                delay: delay.map(|d| d.0),
                jitter: jitter.map(|d| d.0),
                rate,
            }
        }
        "kill" => FaultKind::Kill {
            nodes: nodes_of(c, &mut t)?,
        },
        "stop" => FaultKind::Stop {
            nodes: nodes_of(c, &mut t)?,
        },
        "pause" => FaultKind::Pause {
            nodes: nodes_of(c, &mut t)?,
        },
        "power-off" => FaultKind::PowerOff {
            nodes: nodes_of(c, &mut t)?,
        },
        "clock-skew" => {
            let nodes = nodes_of(c, &mut t)?;
            let offset: String = required(c, span, &mut t, "offset", &format!("fault {id:?}"))?;
            let strobe: Option<Dur> = take(c, span, &mut t, "strobe").ok()?;
            let offset_ms = match offset_ms(&offset) {
                Ok(0) => {
                    c.at_key(span, "offset", "offset is zero: nothing to skew");
                    return None;
                }
                Ok(ms) => ms,
                Err(e) => {
                    c.at_key(span, "offset", e);
                    return None;
                }
            };
            FaultKind::ClockSkew {
                nodes,
                offset_ms,
                strobe: strobe.map(|d| d.0),
            }
        }
        "command" => {
            let nodes = nodes_of(c, &mut t)?;
            let run = required(c, span, &mut t, "run", &format!("fault {id:?}"))?;
            let undo = take(c, span, &mut t, "undo").ok()?;
            let timeout: Option<Dur> = take(c, span, &mut t, "timeout").ok()?;
            if timeout.as_ref().is_some_and(|d| d.0.is_zero()) {
                c.at_key(
                    span,
                    "timeout",
                    format!("fault {id:?}: a timeout of zero would kill the command at once"),
                );
            }
            FaultKind::Command {
                nodes,
                run,
                undo,
                timeout: timeout.map(|d| d.0),
            }
        }
        other => {
            c.at_key(
                span,
                "kind",
                format!("unknown fault kind {other:?} (known: {FAULT_KINDS})"),
            );
            return None;
        }
    };
    for key in t.keys() {
        c.at_key(
            span,
            key,
            format!("unknown field `{key}` for a {} fault", kind.name()),
        );
    }
    Some(FaultSpec {
        id,
        at: at.map_or(Duration::ZERO, |d| d.0),
        heal_after: heal_after.map(|d| d.0),
        allow_management_cut: allow_management_cut.unwrap_or(false),
        kind,
    })
}

/// Every node in exactly one group, two groups at least, and as many nodes
/// as the experiment says.
fn check_groups(
    c: &mut Checker,
    span: &Range<usize>,
    id: &str,
    groups: &[Vec<String>],
    nodes: usize,
) {
    if groups.len() < 2 || groups.iter().any(Vec::is_empty) {
        c.at_key(
            span,
            "groups",
            format!("fault {id:?}: a partition needs two or more non-empty groups"),
        );
        return;
    }
    let mut seen = BTreeSet::new();
    for n in groups.iter().flatten() {
        if !seen.insert(n.as_str()) {
            c.at_key(
                span,
                "groups",
                format!("fault {id:?}: node {n:?} is in two groups"),
            );
        }
    }
    if seen.len() < nodes {
        c.at_key(
            span,
            "groups",
            format!(
                "fault {id:?}: the groups name {} node(s) but the experiment has {nodes}: every node must be in a group",
                seen.len()
            ),
        );
    }
}

fn node_set(c: &mut Checker, span: &Range<usize>, key: &str, v: Value) -> Option<NodeSet> {
    match v {
        Value::String(s) if s == "all" => Some(NodeSet::All),
        Value::Array(_) => c.typed::<Vec<String>>(span, key, v).map(NodeSet::Some),
        _ => {
            c.at_key(
                span,
                key,
                format!("`{key}`: expected \"all\" or a list of node names"),
            );
            None
        }
    }
}

fn expect(
    c: &mut Checker,
    span: &Range<usize>,
    mut t: Table,
    index: usize,
    faults: &[String],
    watched: &[String],
) -> Option<Expect> {
    let resource = resource_expect(c, span, &mut t, watched)?;
    let predicted = Predicted {
        quorate: take_predicted(&mut t, "quorate"),
        members: take_predicted(&mut t, "members"),
        within: take_predicted(&mut t, "within"),
    };
    let name: Option<String> = take(c, span, &mut t, "name").ok()?;
    let after: String = required(c, span, &mut t, "after", "[[expect]]")?;
    let within: Option<Dur> = if predicted.within {
        Some(Dur(Duration::ZERO))
    } else {
        required(c, span, &mut t, "within", "[[expect]]")
    };
    let hold: Option<Dur> = take(c, span, &mut t, "hold").ok()?;
    let quorate: Option<bool> = take(c, span, &mut t, "quorate").ok()?;
    let total_votes: Option<u32> = take(c, span, &mut t, "total_votes").ok()?;
    let nodes = match t.remove("nodes") {
        Some(v) => node_set(c, span, "nodes", v)?,
        None => {
            c.at(
                span.start,
                "[[expect]]: missing `nodes` (\"all\" or a list)",
            );
            return None;
        }
    };
    let members = match t.remove("members") {
        Some(v) => Some(node_set(c, span, "members", v)?),
        None => None,
    };
    for key in t.keys() {
        c.at_key(span, key, format!("unknown field `{key}` in [[expect]] (known: name, after, nodes, quorate, members, total_votes, resource, running_on, running, moved, within, hold)"));
    }
    let (fault, healed) = match after.strip_suffix(".healed") {
        Some(f) => (f.to_owned(), true),
        None => (after.clone(), false),
    };
    if !faults.contains(&fault) {
        let known: Vec<&str> = faults.iter().map(String::as_str).collect();
        c.at_key(
            span,
            "after",
            format!(
                "after = {after:?} names no fault (faults: {})",
                known.join(", ")
            ),
        );
    }
    if resource.is_some() && (quorate.is_some() || members.is_some() || total_votes.is_some()) {
        c.at_key(
            span,
            "resource",
            "[[expect]]: an expectation is on a resource or on quorum, not both (write two)",
        );
    }
    if quorate.is_none()
        && members.is_none()
        && total_votes.is_none()
        && resource.is_none()
        && !(predicted.quorate || predicted.members)
    {
        c.at(
            span.start,
            "[[expect]]: says nothing to check (give quorate, members or total_votes)",
        );
    }
    let within = within?.0;
    if within < MIN_WITHIN && !predicted.within {
        c.at_key(
            span,
            "within",
            format!(
                "within = {}: shorter than corosync can notice anything (a token timeout plus a consensus round; \
                 at least {} even with a 1 s token)",
                humantime::format_duration(within),
                humantime::format_duration(MIN_WITHIN)
            ),
        );
    }
    Some(Expect {
        name: name.unwrap_or_else(|| format!("expectation {} after {after}", index + 1)),
        after: Anchor { fault, healed },
        nodes,
        quorate,
        members,
        total_votes,
        within,
        hold: hold.map_or(Duration::ZERO, |d| d.0),
        predicted,
        resource,
        per_node: BTreeMap::new(),
        reaction: None,
    })
}

/// `resource` with one of `running_on`, `running = false`, `moved = true`.
/// `Some(None)`: no resource expectation; `None`: an error was reported.
fn resource_expect(
    c: &mut Checker,
    span: &Range<usize>,
    t: &mut Table,
    watched: &[String],
) -> Option<Option<ResourceExpect>> {
    let resource: Option<String> = take(c, span, t, "resource").ok()?;
    let running_on: Option<Vec<String>> = take(c, span, t, "running_on").ok()?;
    let running: Option<bool> = take(c, span, t, "running").ok()?;
    let moved: Option<bool> = take(c, span, t, "moved").ok()?;
    let Some(resource) = resource else {
        if running_on.is_some() || running.is_some() || moved.is_some() {
            c.at(
                span.start,
                "[[expect]]: running_on, running and moved need `resource`",
            );
            return None;
        }
        return Some(None);
    };
    if !watched.contains(&resource) {
        c.at_key(
            span,
            "resource",
            format!("resource {resource:?} is not watched: add a [[watch]] with resource = {resource:?}"),
        );
    }
    let want = match (running_on, running, moved) {
        (Some(nodes), None, None) if !nodes.is_empty() => ResourceWant::RunningOn(nodes),
        (None, Some(false), None) => ResourceWant::Stopped,
        (None, None, Some(true)) => ResourceWant::Moved,
        _ => {
            c.at_key(
                span,
                "resource",
                "[[expect]] on a resource: give exactly one of running_on = [nodes], running = false, moved = true",
            );
            return None;
        }
    };
    Some(Some(ResourceExpect { resource, want }))
}

#[cfg(test)]
mod tests {
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
            errs[0].starts_with(
                "x.toml:11:1: heal_after: \"18446744073709551615s\" is longer than 7days"
            ),
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
            errs.iter().any(
                |e| e.contains("every node must be in a group") && e.starts_with("x.toml:9:1:")
            ),
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
}
