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
//! `crm_mon --output-as=xml` is read by `corodrill_status::crm_mon`, as in
//! the agent; the rest acts through `host` and the lab's own helpers.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{host, Lab, LabError};

/// The resource agent `--resource` creates: it keeps a state file in the
/// node's /run/resource-agents, so it "runs" on exactly one node.
pub const AGENT: &str = "ocf:pacemaker:Dummy";
pub const AGENT_PATH: &str = "/usr/lib/ocf/resource.d/pacemaker/Dummy";
/// How often Pacemaker checks each resource where it runs.
pub const MONITOR_INTERVAL: &str = "2s";

/// Cluster properties for a lab without fencing, in the CIB every node
/// starts with. With stonith enabled and no fence device, Pacemaker starts
/// no resource at all. `stop` is also Pacemaker's default: a partition
/// without quorum stops its resources. A short recheck interval makes
/// time-based rules (failure-timeout) act in lab time. Controllers that
/// start together hear no DC and wait `dc-deadtime` before they elect one
/// (20 s by default, most of a lab's start-up); the lab's nodes start within
/// a second or two of each other, so 2 s is enough, and it only matters
/// while there is no DC.
pub const PROPERTIES: &[(&str, &str)] = &[
    ("stonith-enabled", "false"),
    ("no-quorum-policy", "stop"),
    ("cluster-recheck-interval", "1min"),
    ("dc-deadtime", "2s"),
];

/// The CIB a node starts with on its first start: the lab's properties and
/// nothing else. Without the digest file beside it Pacemaker 2.1 warns and
/// reads it anyway; from its first change on it keeps the CIB itself.
pub fn seed_cib_xml() -> String {
    let properties: String = PROPERTIES
        .iter()
        .map(|(name, value)| {
            format!(
                "<nvpair id=\"cib-bootstrap-options-{name}\" name=\"{name}\" value=\"{value}\"/>"
            )
        })
        .collect();
    format!(
        "<cib validate-with=\"pacemaker-3.0\" admin_epoch=\"0\" epoch=\"1\" num_updates=\"0\">\
         <configuration><crm_config>\
         <cluster_property_set id=\"cib-bootstrap-options\">{properties}</cluster_property_set>\
         </crm_config><nodes/><resources/><constraints/></configuration>\
         <status/></cib>\n"
    )
}

/// Writes the seed CIB into a node's own Pacemaker directory unless the
/// node already has one (a node powered back on keeps its CIB).
fn seed_cib(lib: &Path) -> Result<(), LabError> {
    let path = lib.join("cib").join("cib.xml");
    if path.exists() {
        return Ok(());
    }
    host::write_file(&path, seed_cib_xml().as_bytes())?;
    let owner =
        |e: nix::Error| LabError::io(format!("giving {} to hacluster", path.display()), e.into());
    let user = nix::unistd::User::from_name("hacluster")
        .map_err(owner)?
        .ok_or_else(|| LabError::Environment("no user hacluster".into()))?;
    nix::unistd::chown(&path, Some(user.uid), Some(user.gid)).map_err(owner)?;
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(|e| LabError::io(format!("making {} private", path.display()), e))
}

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
    seed_cib(&lib)?;
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

/// One node's view of the cluster, from `crm_mon --output-as=xml`, read
/// by the parser the agent's resource watch uses too.
pub type PacemakerView = corodrill_status::crm_mon::ClusterView;

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

/// The alert that tells each node's agent, as it happens, every resource
/// operation Pacemaker records there: the agent's own binary is the alert
/// agent (it writes one line to the recipient, the node's own file under
/// /run that the agent's resource watch follows). Resource alerts only.
/// `agent` is a path the lab made: no escaping needed beyond what XML
/// attributes need, and the lab's paths have none of `<>&"`.
pub fn alert_xml(agent: &str) -> String {
    format!(
        "<alerts><alert id=\"{ALERT_ID}\" path=\"{agent}\">\
         <select><select_resources/></select>\
         <recipient id=\"{ALERT_ID}-recipient\" value=\"{ALERT_RECIPIENT}\"/>\
         </alert></alerts>"
    )
}

/// The alert's id in the CIB and its recipient: the agent's alert file
/// (`corodrill-agent`'s `pacemaker_alert::ALERT_FILE`).
pub const ALERT_ID: &str = "corodrill";
pub const ALERT_RECIPIENT: &str = "/run/corodrill-agent/pacemaker-alerts";

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
    .and_then(|xml| corodrill_status::crm_mon::parse(&xml).ok())
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
/// `cibadmin --create` of `xml` in the CIB's `scope`, run on `node`.
fn cib_create(lab: &Lab, node: &str, scope: &str, xml: &str, what: &str) -> Result<(), LabError> {
    tool(
        lab,
        node,
        "cibadmin",
        &["--create", "--scope", scope, "--xml-text", xml],
        what,
    )
}

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
    // The seed CIB's dc-deadtime: controllers that start together wait
    // that long before they elect a DC.
    progress("waiting for Pacemaker: a DC (after dc-deadtime, 2 s), and every node online");
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
    // Before the resources, so that their first starts are alerted too.
    match crate::cluster::agent::bundled_agent() {
        Some(agent) if !agent.to_string_lossy().contains(['<', '>', '&', '"']) => {
            progress("configuring the Pacemaker alert that times resource events to the event");
            cib_create(
                lab,
                first,
                "configuration",
                &alert_xml(&agent.to_string_lossy()),
                "configuring the corodrill alert",
            )?;
        }
        _ => progress("no agent binary beside corodrill: resource events come from crm_mon alone"),
    }
    for name in &spec.resources {
        progress(&format!(
            "creating resource {name} ({AGENT}, monitor every {MONITOR_INTERVAL})"
        ));
        cib_create(
            lab,
            first,
            "resources",
            &primitive_xml(name),
            &format!("creating resource {name}"),
        )?;
        // Drills need to know where a resource starts: on the first node,
        // back there after a heal (a preference, not a requirement, and
        // no stickiness: Pacemaker fails it over and back).
        cib_create(
            lab,
            first,
            "constraints",
            &prefers_xml(name, first),
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

    #[test]
    fn the_primitive_and_its_place() {
        assert_eq!(
            primitive_xml("svc"),
            "<primitive id=\"svc\" class=\"ocf\" provider=\"pacemaker\" type=\"Dummy\">\
             <operations>\
             <op id=\"svc-monitor-interval-2s\" name=\"monitor\" interval=\"2s\" timeout=\"20s\"/>\
             </operations></primitive>"
        );
        assert_eq!(
            prefers_xml("svc", "pve1"),
            "<rsc_location id=\"svc-prefers-pve1\" rsc=\"svc\" node=\"pve1\" score=\"100\"/>"
        );
    }

    #[test]
    fn the_alert_names_the_agent_and_its_file() {
        assert_eq!(
            alert_xml("/usr/bin/corodrill-agent"),
            "<alerts><alert id=\"corodrill\" path=\"/usr/bin/corodrill-agent\">\
             <select><select_resources/></select>\
             <recipient id=\"corodrill-recipient\" value=\"/run/corodrill-agent/pacemaker-alerts\"/>\
             </alert></alerts>"
        );
    }

    /// Pacemaker's own checker accepts the seed CIB (pacemaker-cli-utils,
    /// which the lab needs anyway).
    #[test]
    fn the_seed_cib_is_valid() {
        let file =
            std::env::temp_dir().join(format!("corodrill-seed-cib-{}.xml", std::process::id()));
        std::fs::write(&file, seed_cib_xml()).unwrap();
        let out = std::process::Command::new("crm_verify")
            .arg("--xml-file")
            .arg(&file)
            .output()
            .expect("crm_verify (Debian package pacemaker-cli-utils) is needed for this test");
        let _ = std::fs::remove_file(&file);
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(seed_cib_xml().contains("name=\"dc-deadtime\" value=\"2s\""));
    }
}
