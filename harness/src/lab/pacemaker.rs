//! Pacemaker on the lab's nodes (`lab up --pacemaker`): Debian's Pacemaker
//! 2.1 runs on every node inside the node's namespaces, beside its
//! corosync, configured for a lab without fencing, with `ocf:pacemaker:Dummy`
//! resources (`--resource NAME`) to watch fail over.
//!
//! What each node needs, as verified on Debian 12 (issue 9): the node's
//! private mount namespace with its own tmpfs /run holding /run/crm, and
//! per-node directories bind-mounted over /var/lib/pacemaker (cib, pengine,
//! blackbox, cores) and /var/log/pacemaker, all owned by hacluster, so that
//! nothing of a node reaches the machine's own directories. Pacemaker takes
//! the node names from the nodelist's `name:` in corosync.conf. Its client
//! tools (crm_mon, cibadmin, crm_attribute) reach it from inside the node.
//!
//! The parsing of `crm_mon --output-as=xml` is pure; the rest acts through
//! `host` and the lab's own helpers.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{host, Lab, LabError};

/// The resource agent `--resource` creates: it keeps a state file in the
/// node's /run/resource-agents, so it "runs" on exactly one node.
pub const AGENT: &str = "ocf:pacemaker:Dummy";
pub const AGENT_PATH: &str = "/usr/lib/ocf/resource.d/pacemaker/Dummy";
/// How often Pacemaker checks each resource where it runs.
pub const MONITOR_INTERVAL: &str = "2s";

/// Cluster properties for a lab without fencing. With stonith enabled and
/// no fence device, Pacemaker starts no resource at all. `stop` is also
/// Pacemaker's default: a partition without quorum stops its resources. A
/// short recheck interval makes time-based rules (failure-timeout) act in
/// lab time.
pub const PROPERTIES: &[(&str, &str)] = &[
    ("stonith-enabled", "false"),
    ("no-quorum-policy", "stop"),
    ("cluster-recheck-interval", "1min"),
];

/// The machine's directories Pacemaker writes to, each covered on every
/// node by a directory of the lab (Debian's package creates both).
pub const STATE_DIR: &str = "/var/lib/pacemaker";
pub const LOG_DIR: &str = "/var/log/pacemaker";

/// What Pacemaker needs on this machine besides its programs.
pub fn check_environment(spec: &super::LabSpec) -> Result<(), LabError> {
    let mut missing = Vec::new();
    for dir in [STATE_DIR, LOG_DIR] {
        if !Path::new(dir).is_dir() {
            missing.push(format!("{dir} (Debian package pacemaker)"));
        }
    }
    if !matches!(nix::unistd::User::from_name("hacluster"), Ok(Some(_))) {
        missing.push("the user hacluster (Debian package pacemaker-common)".into());
    }
    if !matches!(nix::unistd::Group::from_name("haclient"), Ok(Some(_))) {
        missing.push("the group haclient (Debian package pacemaker-common)".into());
    }
    if !spec.resources.is_empty() && !Path::new(AGENT_PATH).is_file() {
        missing.push(format!(
            "{AGENT_PATH} (Debian package pacemaker-resource-agents)"
        ));
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(LabError::Environment(format!(
        "--pacemaker: missing {}; install with: apt-get install pacemaker pacemaker-cli-utils \
         pacemaker-resource-agents (scripts/install-deps does, with service starts denied)",
        missing.join(", ")
    )))
}

/// The node's own directories that stand in for /var/lib/pacemaker and
/// /var/log/pacemaker.
fn node_dirs(lab: &Lab, node: &str) -> (PathBuf, PathBuf) {
    let dir = lab.host_dir(node).join("pacemaker");
    (dir.join("lib"), dir.join("log"))
}

/// Where to look when Pacemaker on a node misbehaves.
pub fn log_path(lab: &Lab, node: &str) -> PathBuf {
    node_dirs(lab, node).1.join("pacemaker.log")
}

/// Starts pacemakerd on a node, as its unit does at boot: once corosync
/// answers, with its directories in place. pacemakerd 2.1 never forks
/// into the background (its `--foreground` is accepted and ignored), so it
/// stays the recorded process; it starts and watches the other daemons.
///
/// Not under libfaketime, unlike corosync: most of Pacemaker's daemons drop
/// to hacluster, cannot open the root-only semaphore libfaketime 0.9.10
/// shares from their parent, and then exit 1 in about one start of 40 (5 of
/// 200 measured; pacemakerd respawns them, but not forever). So a
/// clock-skew fault moves corosync's clock on the node, not Pacemaker's.
pub(super) fn start(lab: &mut Lab, node: &str) -> Result<(), LabError> {
    super::wait_for(
        Duration::from_secs(20),
        &format!("corosync on {node} to answer"),
        || lab.quorum(node).is_some(),
    )?;
    let (lib, log) = node_dirs(lab, node);
    let ns = lab.namespaces(node);
    ns.mount_pacemaker_dirs(node, &lib, &log)?;
    let process = host::spawn_daemon(
        &ns,
        node,
        "pacemakerd",
        &[],
        // Its log goes to the node's /var/log/pacemaker (the default
        // file), not to the machine's syslog.
        &[("PCMK_logfacility", "none")],
        &lab.host_dir(node).join("pacemakerd.out"),
    )?;
    lab.record.processes.push(process);
    lab.save()
}

/// One node's view of the cluster, from `crm_mon --output-as=xml`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PacemakerView {
    /// The Designated Controller, if this node knows one.
    pub dc: Option<String>,
    /// Whether this node's partition has quorum (as the DC reports it).
    pub quorate: bool,
    /// Every node Pacemaker knows, and whether it is online.
    pub nodes: Vec<(String, bool)>,
    pub resources: Vec<ResourceState>,
}

/// Where a resource is, in one node's view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceState {
    pub id: String,
    /// `class:provider:type`, e.g. `ocf:pacemaker:Dummy`.
    pub agent: String,
    /// `Started`, `Stopped`, ...
    pub role: String,
    pub active: bool,
    pub failed: bool,
    /// The nodes it is active on (more than one: active twice, or a clone).
    pub nodes: Vec<String>,
}

impl PacemakerView {
    pub fn online(&self) -> Vec<&str> {
        self.nodes
            .iter()
            .filter(|(_, online)| *online)
            .map(|(n, _)| n.as_str())
            .collect()
    }

    pub fn resource(&self, id: &str) -> Option<&ResourceState> {
        self.resources.iter().find(|r| r.id == id)
    }

    /// The one node a resource is started on, if it is started on exactly one.
    pub fn started_on(&self, id: &str) -> Option<&str> {
        self.resource(id)
            .filter(|r| r.active && !r.failed && r.role == "Started" && r.nodes.len() == 1)
            .map(|r| r.nodes[0].as_str())
    }
}

/// Reads `crm_mon --one-shot --output-as=xml`. `None` when it is not a
/// status (crm_mon could not connect: its XML then holds only an error).
///
/// Only what `lab` needs is read: `<current_dc>` in the summary, the
/// `<node>` elements directly under `<nodes>`, and each `<resource>` under
/// `<resources>` (at any depth: groups and clones hold theirs) with its
/// `<node>` children. `<node>` elements elsewhere (node attributes, node
/// history) are not nodes of the membership and are skipped.
pub fn parse_crm_mon(xml: &str) -> Option<PacemakerView> {
    let mut view = PacemakerView::default();
    let mut saw_summary = false;
    let mut stack: Vec<String> = Vec::new();
    // Index into view.resources of the <resource> being read.
    let mut current: Option<usize> = None;
    for tag in xml_tags(xml)? {
        match tag.kind {
            TagKind::Close => {
                if stack.last().map(String::as_str) == Some(tag.name) {
                    stack.pop();
                }
                if tag.name == "resource" {
                    current = None;
                }
                continue;
            }
            TagKind::Open | TagKind::Empty => {}
        }
        let parent = stack.last().map(String::as_str);
        let in_resources = stack.iter().any(|s| s == "resources");
        match (tag.name, parent) {
            ("summary", _) => saw_summary = true,
            ("current_dc", Some("summary")) => {
                if tag.attr("present") == Some("true") {
                    view.dc = tag.attr("name").map(str::to_owned);
                }
                view.quorate = tag.attr("with_quorum") == Some("true");
            }
            ("node", Some("nodes")) => {
                if let Some(name) = tag.attr("name") {
                    view.nodes
                        .push((name.to_owned(), tag.attr("online") == Some("true")));
                }
            }
            ("resource", _) if in_resources => {
                let id = tag.attr("id").unwrap_or_default().to_owned();
                let active = tag.attr("active") == Some("true");
                let failed = tag.attr("failed") == Some("true");
                // A clone's instances share their id: one entry for all.
                let index = match view.resources.iter().position(|r| r.id == id) {
                    Some(i) => {
                        let r = &mut view.resources[i];
                        r.active |= active;
                        r.failed |= failed;
                        i
                    }
                    None => {
                        view.resources.push(ResourceState {
                            id,
                            agent: tag.attr("resource_agent").unwrap_or_default().to_owned(),
                            role: tag.attr("role").unwrap_or_default().to_owned(),
                            active,
                            failed,
                            nodes: Vec::new(),
                        });
                        view.resources.len() - 1
                    }
                };
                if tag.kind == TagKind::Open {
                    current = Some(index);
                }
            }
            ("node", Some("resource")) => {
                if let (Some(i), Some(name)) = (current, tag.attr("name")) {
                    let nodes = &mut view.resources[i].nodes;
                    if !nodes.iter().any(|n| n == name) {
                        nodes.push(name.to_owned());
                    }
                }
            }
            _ => {}
        }
        if tag.kind == TagKind::Open {
            stack.push(tag.name.to_owned());
        }
    }
    saw_summary.then_some(view)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TagKind {
    Open,
    Close,
    Empty,
}

#[derive(Debug)]
struct Tag<'a> {
    name: &'a str,
    kind: TagKind,
    attrs: Vec<(&'a str, String)>,
}

impl Tag<'_> {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The tags of an XML document, in order, with their attributes unescaped;
/// text, comments, processing instructions and declarations are skipped.
/// `None` if the document is cut off or malformed where a tag is read.
/// Enough for crm_mon's output, which is machine-written, not for XML at
/// large (no DTD entities, no namespaces).
fn xml_tags(xml: &str) -> Option<Vec<Tag<'_>>> {
    let mut tags = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find('<') {
        rest = &rest[start..];
        let skipped = [
            ("<!--", "-->"),
            ("<![CDATA[", "]]>"),
            ("<?", "?>"),
            ("<!", ">"),
        ]
        .iter()
        .find(|(open, _)| rest.starts_with(open));
        if let Some((_, close)) = skipped {
            let end = rest.find(close)?;
            rest = &rest[end + close.len()..];
            continue;
        }
        if let Some(after) = rest.strip_prefix("</") {
            let end = after.find('>')?;
            tags.push(Tag {
                name: after[..end].trim(),
                kind: TagKind::Close,
                attrs: Vec::new(),
            });
            rest = &after[end + 1..];
            continue;
        }
        let body = &rest[1..];
        let name_end = body.find(|c: char| c.is_whitespace() || c == '/' || c == '>')?;
        let name = &body[..name_end];
        if name.is_empty() {
            return None;
        }
        let mut attrs = Vec::new();
        let mut r = &body[name_end..];
        let kind = loop {
            r = r.trim_start();
            if let Some(after) = r.strip_prefix("/>") {
                r = after;
                break TagKind::Empty;
            }
            if let Some(after) = r.strip_prefix('>') {
                r = after;
                break TagKind::Open;
            }
            let eq = r.find('=')?;
            let key = r[..eq].trim();
            if key.is_empty() || key.contains(|c: char| c.is_whitespace() || c == '>') {
                return None;
            }
            let value_start = r[eq + 1..].trim_start();
            let quote = value_start
                .chars()
                .next()
                .filter(|c| *c == '"' || *c == '\'')?;
            let value_body = &value_start[1..];
            let end = value_body.find(quote)?;
            attrs.push((key, unescape(&value_body[..end])));
            r = &value_body[end + 1..];
        };
        tags.push(Tag { name, kind, attrs });
        rest = r;
    }
    Some(tags)
}

/// XML's five predefined entities and character references.
fn unescape(value: &str) -> String {
    if !value.contains('&') {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest.find(';') else {
            break;
        };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The CIB primitive `--resource NAME` creates: Pacemaker's Dummy agent,
/// monitored every `MONITOR_INTERVAL`. NAME was checked by `LabSpec`
/// (letters, digits, `_`, `-`, `.`), so it needs no escaping.
pub fn primitive_xml(name: &str) -> String {
    format!(
        "<primitive id=\"{name}\" class=\"ocf\" provider=\"pacemaker\" type=\"Dummy\">\
         <operations>\
         <op id=\"{name}-monitor-interval-{MONITOR_INTERVAL}\" name=\"monitor\" \
         interval=\"{MONITOR_INTERVAL}\" timeout=\"20s\"/>\
         </operations>\
         </primitive>"
    )
}

/// A location preference for `node` (score 100).
pub fn prefers_xml(name: &str, node: &str) -> String {
    format!(
        "<rsc_location id=\"{name}-prefers-{node}\" rsc=\"{name}\" node=\"{node}\" score=\"100\"/>"
    )
}

/// This node's view, or `None` if its Pacemaker does not answer.
pub fn view(lab: &Lab, node: &str) -> Option<PacemakerView> {
    lab.tool_output(
        node,
        "crm_mon",
        &["--one-shot", "--inactive", "--output-as=xml"],
    )
    .ok()
    .and_then(|xml| parse_crm_mon(&xml))
}

/// The view of the first node that answers, preferring one whose
/// partition has quorum (an inquorate node's view may be stale): what
/// `lab status` shows.
pub fn cluster_view(lab: &Lab) -> Option<(String, PacemakerView)> {
    let mut fallback = None;
    for node in lab.spec().node_names() {
        if let Some(view) = view(lab, &node) {
            if view.quorate {
                return Some((node, view));
            }
            fallback.get_or_insert((node, view));
        }
    }
    fallback
}

/// Runs one of Pacemaker's tools on a node; a non-zero exit is an error
/// that carries what the tool said.
fn tool(lab: &Lab, node: &str, program: &str, args: &[&str], what: &str) -> Result<(), LabError> {
    host::run(lab.namespaces(node).command(program)?.args(args), what)?;
    Ok(())
}

/// After corosync is whole: waits for Pacemaker to elect a DC with every
/// node online, sets the lab's cluster properties, creates the resources
/// and waits until each is started on one node, in every node's view.
/// Returns the first node and its view at that moment.
pub fn settle(
    lab: &Lab,
    started: Instant,
    progress: &dyn Fn(&str),
) -> Result<(String, PacemakerView), LabError> {
    let spec = lab.spec();
    let nodes: Vec<String> = spec.node_names().collect();
    // Controllers that start together hear no DC and wait dc-deadtime
    // (20 s, a cluster property nobody could have set yet) before they
    // elect one: most of a Pacemaker lab's start-up.
    progress("waiting for Pacemaker: a DC (after dc-deadtime, 20 s), and every node online");
    let timeout = Duration::from_secs(60) + Duration::from_secs(2) * u32::from(spec.nodes);
    wait_for_views(lab, started, timeout, progress, |view| {
        let online = view.online();
        let ready = view.dc.is_some() && nodes.iter().all(|n| online.contains(&n.as_str()));
        let state = format!(
            "DC {}, {}/{} nodes online",
            view.dc.as_deref().unwrap_or("not elected"),
            online.len(),
            nodes.len()
        );
        (ready, state)
    })?;

    let first = &nodes[0];
    progress(&format!(
        "setting cluster properties for a lab without fencing: {}",
        PROPERTIES
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    for (name, value) in PROPERTIES {
        tool(
            lab,
            first,
            "crm_attribute",
            &["--type", "crm_config", "--name", name, "--update", value],
            &format!("setting the cluster property {name}={value}"),
        )?;
    }
    for name in &spec.resources {
        progress(&format!(
            "creating resource {name} ({AGENT}, monitor every {MONITOR_INTERVAL})"
        ));
        tool(
            lab,
            first,
            "cibadmin",
            &[
                "--create",
                "--scope",
                "resources",
                "--xml-text",
                &primitive_xml(name),
            ],
            &format!("creating resource {name}"),
        )?;
        // Drills need to know where a resource starts: on the first node,
        // back there after a heal (a preference, not a requirement, and
        // no stickiness: Pacemaker fails it over and back).
        tool(
            lab,
            first,
            "cibadmin",
            &[
                "--create",
                "--scope",
                "constraints",
                "--xml-text",
                &prefers_xml(name, first),
            ],
            &format!("placing resource {name} on {first}"),
        )?;
    }
    if spec.resources.is_empty() {
        return view(lab, first)
            .map(|v| (first.clone(), v))
            .ok_or_else(|| LabError::Failed(format!("Pacemaker on {first} stopped answering")));
    }

    progress(&format!(
        "waiting for {} to start",
        spec.resources.join(", ")
    ));
    let mut agreed: Option<Vec<Option<String>>> = None;
    let mut first_view = None;
    wait_for_views(lab, started, Duration::from_secs(30), progress, |view| {
        let placement: Vec<Option<String>> = spec
            .resources
            .iter()
            .map(|r| view.started_on(r).map(str::to_owned))
            .collect();
        // Every node's view must say the same: a node whose CIB lags
        // behind would not yet.
        let same = agreed.as_ref().is_none_or(|a| *a == placement);
        let ready = placement.iter().all(Option::is_some) && same;
        let state = spec
            .resources
            .iter()
            .zip(&placement)
            .map(|(r, on)| match (on, view.resource(r)) {
                (Some(node), _) => format!("{r} started on {node}"),
                (None, Some(state)) if state.nodes.len() > 1 => {
                    format!("{r} active on {}", state.nodes.join(" and "))
                }
                (None, Some(state)) => format!("{r} {}", state.role.to_lowercase()),
                (None, None) => format!("{r} not yet known"),
            })
            .collect::<Vec<_>>()
            .join(", ");
        if ready {
            agreed = Some(placement);
            first_view.get_or_insert_with(|| view.clone());
        } else {
            agreed = None;
            first_view = None;
        }
        (ready, state)
    })?;
    Ok((first.clone(), first_view.unwrap_or_default()))
}

/// Polls each node's view in turn until every node's satisfies `ready`
/// (asking one node at a time until it does, then confirming all, as
/// `wait_until_whole` does for corosync), saying every second what it
/// waits for; fails early if a daemon the lab started has died.
fn wait_for_views(
    lab: &Lab,
    started: Instant,
    timeout: Duration,
    progress: &dyn Fn(&str),
    mut ready: impl FnMut(&PacemakerView) -> (bool, String),
) -> Result<(), LabError> {
    let nodes: Vec<String> = lab.spec().node_names().collect();
    let deadline = Instant::now() + timeout;
    let mut last_report = Instant::now();
    let mut confirmed = 0;
    let mut state = String::from("Pacemaker not answering yet");
    loop {
        while confirmed < nodes.len() {
            let Some(view) = view(lab, &nodes[confirmed]) else {
                state = format!("Pacemaker on {} not answering yet", nodes[confirmed]);
                break;
            };
            let (ok, said) = ready(&view);
            state = format!("{said} as {} sees it", nodes[confirmed]);
            if !ok {
                confirmed = 0;
                break;
            }
            confirmed += 1;
        }
        if confirmed == nodes.len() {
            return Ok(());
        }
        if let Some(err) = super::dead_daemon(lab) {
            return Err(err);
        }
        if Instant::now() >= deadline {
            return Err(LabError::Failed(format!(
                "Pacemaker did not settle within {timeout:?}: {state} (logs: {})",
                log_path(lab, &nodes[0]).display()
            )));
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            last_report = Instant::now();
            progress(&format!(
                "waiting for Pacemaker: {state} ({:.1}s)",
                started.elapsed().as_secs_f64()
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of Pacemaker 2.1.5's `crm_mon --one-shot --inactive
    /// --output-as=xml`, trimmed, with every place a `<node>` appears.
    const CRM_MON: &str = r#"<?xml version="1.0"?>
<pacemaker-result api-version="2.25" request="crm_mon --one-shot --inactive --output-as=xml">
  <pacemakerd sys_from="pacemakerd" state="running" last_updated="2026-11-25 19:38:53Z"/>
  <summary>
    <stack type="corosync"/>
    <current_dc present="true" version="2.1.5-a3f44794f94" name="pve1" id="1" with_quorum="true" mixed_version="false"/>
    <last_change time="Wed Nov 25 19:38:32 2026" user="root" client="cibadmin" origin="pve1"/>
    <nodes_configured number="3"/>
    <resources_configured number="3" disabled="0" blocked="0"/>
    <cluster_options stonith-enabled="false" symmetric-cluster="true" no-quorum-policy="stop" maintenance-mode="false"/>
  </summary>
  <nodes>
    <node name="pve1" id="1" online="true" standby="false" is_dc="true" resources_running="1" type="member"/>
    <node name="pve2" id="2" online="true" standby="false" is_dc="false" resources_running="1" type="member"/>
    <node name="pve3" id="3" online="false" standby="false" is_dc="false" resources_running="0" type="member"/>
  </nodes>
  <resources>
    <resource id="svc" resource_agent="ocf:pacemaker:Dummy" role="Started" active="true" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="1">
      <node name="pve2" id="2" cached="true"/>
    </resource>
    <resource id="idle" resource_agent="ocf:pacemaker:Dummy" role="Stopped" active="false" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="0"/>
    <resource id="twice" resource_agent="ocf:pacemaker:Dummy" role="Started" active="true" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="2">
      <node name="pve1" id="1" cached="true"/>
      <node name="pve2" id="2" cached="true"/>
    </resource>
  </resources>
  <node_attributes>
    <node name="pve1"/>
    <node name="pve9"/>
  </node_attributes>
  <node_history>
    <node name="pve9">
      <resource_history id="svc" orphan="false" migration-threshold="1000000">
        <operation_history call="7" task="monitor" rc="0" rc_text="ok"/>
      </resource_history>
    </node>
  </node_history>
  <status code="0" message="OK"/>
</pacemaker-result>
"#;

    #[test]
    fn reads_dc_nodes_and_where_resources_run() {
        let v = parse_crm_mon(CRM_MON).unwrap();
        assert_eq!(v.dc.as_deref(), Some("pve1"));
        assert!(v.quorate);
        assert_eq!(
            v.nodes,
            [
                ("pve1".to_owned(), true),
                ("pve2".to_owned(), true),
                ("pve3".to_owned(), false)
            ]
        );
        assert_eq!(v.online(), ["pve1", "pve2"]);
        assert_eq!(v.resources.len(), 3);
        assert_eq!(v.started_on("svc"), Some("pve2"));
        assert_eq!(v.resource("svc").unwrap().agent, AGENT);
        assert_eq!(v.started_on("idle"), None);
        assert!(v.resource("idle").unwrap().nodes.is_empty());
        assert_eq!(v.resource("twice").unwrap().nodes, ["pve1", "pve2"]);
        assert_eq!(
            v.started_on("twice"),
            None,
            "active on two nodes is not started on one"
        );
        assert_eq!(v.started_on("absent"), None);
    }

    #[test]
    fn no_dc_and_a_clone() {
        let xml = r#"<pacemaker-result><summary>
            <current_dc present="false" with_quorum="false"/></summary>
            <nodes><node name="pve1" online="true"/></nodes>
            <resources><clone id="c-clone" multi_state="false">
              <resource id="c" resource_agent="ocf:pacemaker:Dummy" role="Started" active="true" failed="false"><node name="pve1"/></resource>
              <resource id="c" resource_agent="ocf:pacemaker:Dummy" role="Started" active="true" failed="false"><node name="pve2"/></resource>
            </clone></resources></pacemaker-result>"#;
        let v = parse_crm_mon(xml).unwrap();
        assert_eq!(v.dc, None);
        assert!(!v.quorate);
        assert_eq!(v.resource("c").unwrap().nodes, ["pve1", "pve2"]);
    }

    #[test]
    fn an_error_is_no_view() {
        // What crm_mon prints when Pacemaker is not running on the node.
        let xml = r#"<pacemaker-result api-version="2.25" request="crm_mon --output-as=xml">
  <status code="102" message="Not connected">
    <errors>
      <error>crm_mon: Error: cluster is not available on this node</error>
    </errors>
  </status>
</pacemaker-result>"#;
        assert_eq!(parse_crm_mon(xml), None);
        assert_eq!(parse_crm_mon(""), None);
        assert_eq!(parse_crm_mon("<pacemaker-result><summary"), None);
    }

    #[test]
    fn tags_attributes_and_escapes() {
        let tags = xml_tags(
            "<?xml version='1.0'?><!-- a <comment> --><a x='1 > 0' y=\"&lt;&amp;&quot;&#65;&#x42;&bogus;\"><b/></a >",
        )
        .unwrap();
        let shape: Vec<(&str, TagKind)> = tags.iter().map(|t| (t.name, t.kind)).collect();
        assert_eq!(
            shape,
            [
                ("a", TagKind::Open),
                ("b", TagKind::Empty),
                ("a", TagKind::Close)
            ]
        );
        assert_eq!(tags[0].attr("x"), Some("1 > 0"));
        assert_eq!(tags[0].attr("y"), Some("<&\"AB&bogus;"));
        assert!(xml_tags("<a x=\"unterminated></a>").is_none());
        assert!(xml_tags("<a x></a>").is_none());
    }

    #[test]
    fn the_primitive() {
        let xml = primitive_xml("svc");
        let tags = xml_tags(&xml).unwrap();
        assert_eq!(tags[0].attr("id"), Some("svc"));
        assert_eq!(tags[0].attr("type"), Some("Dummy"));
        assert_eq!(tags[2].name, "op");
        assert_eq!(tags[2].attr("interval"), Some("2s"));
        assert_eq!(tags[2].attr("id"), Some("svc-monitor-interval-2s"));
    }
}
