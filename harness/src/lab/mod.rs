//! The embedded default cluster: real corosync nodes in network namespaces on
//! this machine (README, "The lab").
//!
//! Layout of a lab named `NAME`:
//! - network namespaces `NAME-sw` (one bridge `brL` per corosync link),
//!   `NAME-pve1`..`NAME-pveN`, and `NAME-qnetd` with `--qdevice`; each host
//!   has a veth `ringL` per link whose peer `<host>lL` sits on bridge `brL`;
//! - a directory `<root>/NAME` (a private mount of itself) holding the lab's
//!   record `lab.toml`, the authkey, the mount and UTS namespace files in
//!   `ns/`, one directory per host (corosync.conf, logs, state, the
//!   libfaketime control file, and with `--pacemaker` Pacemaker's
//!   `pacemaker/lib` and `pacemaker/log`) and the inventory.
//!
//! A VM lab (`lab up --vm`, `vm/`) has the same record, directory and
//! switch namespace, with QEMU VMs in place of the node namespaces.
//!
//! This module must not know about experiments, agents or faults: it builds a
//! cluster, reports on it, and throws it away.

mod build;
pub mod conf;
mod environment;
pub mod host;
pub mod pacemaker;
pub mod spec;
pub mod ssh;
pub mod vm;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cluster::corosync::{parse_link_status, parse_quorum_status, LinkStatus, QuorumStatus};
use crate::inventory::{Inventory, InventoryNode, Power};
use host::{HostNamespaces, LabProcess};
use spec::{node_address, QNETD};

pub use spec::{LabSpec, Profile};

use build::{build, start_node, start_node_qdevice, start_node_sshd, wait_until_whole};
use environment::{check_environment, libfaketime};

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// Bad flags or a name already taken: exit 2, nothing touched.
    #[error("{0}")]
    InvalidInput(String),
    /// This machine cannot run a lab (not root, a package missing): exit 3.
    #[error("{0}")]
    Environment(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Failed(String),
}

impl LabError {
    pub fn invalid(msg: impl Into<String>) -> LabError {
        LabError::InvalidInput(msg.into())
    }
    pub fn io(context: impl Into<String>, source: std::io::Error) -> LabError {
        LabError::Io {
            context: context.into(),
            source,
        }
    }
    /// corodrill's exit statuses: 2 invalid input, 3 could not be carried out.
    pub fn exit_code(&self) -> u8 {
        match self {
            LabError::InvalidInput(_) => 2,
            _ => 3,
        }
    }
}

/// Where labs live. Not under /run: every lab host mounts its own tmpfs on
/// /run, and the lab's files must stay visible from inside it.
pub fn lab_root() -> PathBuf {
    std::env::var_os("CORODRILL_LAB_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/corodrill/labs"))
}

const LIBFAKETIME: &str = "faketime/libfaketime.so.1";

/// How long a node's corosync or Pacemaker tool may take to answer
/// (`tool_output`); they answer in well under a second when they can.
const TOOL_TIMEOUT: Duration = Duration::from_secs(10);

/// What a lab records about itself, written before anything is built and
/// after every process it starts, so that `lab down` can always clean up.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabRecord {
    pub spec: LabSpec,
    pub processes: Vec<LabProcess>,
}

pub struct Lab {
    pub dir: PathBuf,
    pub record: LabRecord,
}

impl Lab {
    fn new(spec: LabSpec) -> Lab {
        Lab {
            dir: lab_root().join(&spec.name),
            record: LabRecord {
                spec,
                processes: Vec::new(),
            },
        }
    }

    /// Opens the record of a lab that is up (or half up).
    pub fn open(name: &str) -> Result<Lab, LabError> {
        let dir = lab_root().join(name);
        let path = dir.join("lab.toml");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                LabError::invalid(format!("no lab named {name:?} (no {})", path.display()))
            } else {
                LabError::io(format!("reading {}", path.display()), e)
            }
        })?;
        let record = toml::from_str(&text)
            .map_err(|e| LabError::Failed(format!("{}: {e}", path.display())))?;
        Ok(Lab { dir, record })
    }

    pub fn spec(&self) -> &LabSpec {
        &self.record.spec
    }

    /// Every host of the lab: the nodes, then the QDevice host if any.
    pub fn hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = self.spec().node_names().collect();
        if self.spec().qdevice {
            hosts.push(QNETD.to_owned());
        }
        hosts
    }

    pub fn namespaces(&self, host: &str) -> HostNamespaces {
        HostNamespaces {
            net: host::netns_path(&self.spec().netns(host)),
            mnt: self.dir.join("ns").join(format!("{host}.mnt")),
            uts: self.dir.join("ns").join(format!("{host}.uts")),
        }
    }

    pub fn host_dir(&self, host: &str) -> PathBuf {
        self.dir.join(host)
    }

    pub fn inventory_path(&self) -> PathBuf {
        self.dir.join("inventory.toml")
    }

    fn save(&self) -> Result<(), LabError> {
        let text = toml::to_string(&self.record)
            .map_err(|e| LabError::Failed(format!("cannot write the lab record: {e}")))?;
        let tmp = self.dir.join("lab.toml.tmp");
        host::write_file(&tmp, text.as_bytes())?;
        std::fs::rename(&tmp, self.dir.join("lab.toml")).map_err(|e| {
            LabError::io(
                format!("writing {}", self.dir.join("lab.toml").display()),
                e,
            )
        })
    }

    /// Runs one of corosync's or Pacemaker's tools inside a host and returns
    /// what it printed (stdout, whatever its exit status: quorumtool exits
    /// non-zero when inquorate), or an error past `TOOL_TIMEOUT`.
    pub fn tool_output(
        &self,
        host: &str,
        program: &str,
        args: &[&str],
    ) -> Result<String, LabError> {
        if self.spec().vm.is_some() {
            return vm::tool_output(self, host, program, args, TOOL_TIMEOUT);
        }
        let mut cmd = self.namespaces(host).foreground_command(program)?;
        cmd.args(args);
        // A paused corosync never answers its tools: bounded, so that `lab
        // status` and the lab's waits go on. Whatever the exit status, the
        // output is the answer (corosync-quorumtool exits 2 without quorum).
        crate::cluster::tool::run_within(&mut cmd, None, TOOL_TIMEOUT)
            .map(|f| f.stdout)
            .map_err(|e| LabError::Failed(format!("{host}: {e}")))
    }

    /// The node's view, None while corosync does not answer. Output the
    /// parser cannot read is no view either, and is said, with the node.
    pub fn quorum(&self, node: &str) -> Option<QuorumStatus> {
        let text = self
            .tool_output(node, "corosync-quorumtool", &["-s", "-p"])
            .ok()?;
        parse_quorum_status(&text).unwrap_or_else(|e| {
            tracing::warn!("{node}: {e}");
            None
        })
    }

    pub fn links(&self, node: &str) -> Vec<LinkStatus> {
        let Ok(text) = self.tool_output(node, "corosync-cfgtool", &["-s"]) else {
            return Vec::new();
        };
        parse_link_status(&text).unwrap_or_else(|e| {
            tracing::warn!("{node}: {e}");
            Vec::new()
        })
    }

    /// Whether `program` runs inside the host's network namespace. Found by
    /// namespace, then name: faults restart corosync, so the pid the lab
    /// recorded at start-up may no longer be it.
    fn running(&self, host: &str, program: &str) -> bool {
        if self.spec().vm.is_some() {
            return vm::running(self, host, program);
        }
        host::processes_in(&[self.namespaces(host).net.as_path()])
            .into_iter()
            .any(|pid| host::process_name(pid).as_deref() == Some(program))
    }

    /// Whether one node sees the cluster whole: quorate, every node a
    /// member, all votes in (the QDevice's too).
    pub fn whole_view(&self, view: &Option<QuorumStatus>) -> bool {
        let nodes = usize::from(self.spec().nodes);
        let votes = u32::from(self.spec().nodes) + u32::from(self.spec().qdevice);
        view.as_ref()
            .is_some_and(|q| q.quorate && q.nodes().count() == nodes && q.total_votes == votes)
    }
}

/// What `lab up` reports back: each node's view once the cluster is whole.
pub struct LabUp {
    pub lab: Lab,
    pub views: Vec<(String, QuorumStatus)>,
    /// With `--pacemaker`: a node and its view once every resource runs.
    pub pacemaker: Option<(String, pacemaker::PacemakerView)>,
    pub inventory_path: PathBuf,
    pub elapsed: Duration,
}

/// Builds the lab and waits until the cluster is whole. On any failure, it
/// tears down what it built before returning the error.
pub fn up(
    spec: LabSpec,
    inventory_out: Option<&Path>,
    progress: &dyn Fn(&str),
) -> Result<LabUp, LabError> {
    up_then(spec, inventory_out, progress, &|_| Ok(()))
}

/// What runs on a lab once its cluster is whole, before its inventory is
/// written (`lab up --ssh` puts the agents on the nodes): the lab builds a
/// cluster and knows nothing of what the caller puts on it.
pub type Ready<'a> = &'a dyn Fn(&Inventory) -> Result<(), LabError>;

/// [`up`], with `ready` run on the whole cluster; its failure tears the lab
/// down like any other.
pub fn up_then(
    spec: LabSpec,
    inventory_out: Option<&Path>,
    progress: &dyn Fn(&str),
    ready: Ready,
) -> Result<LabUp, LabError> {
    if spec.vm.is_some() {
        vm::validate(&spec)?;
        if !nix::unistd::geteuid().is_root() {
            return Err(LabError::Environment(
                "the VM lab needs root (it creates a network namespace and tap devices): run as root".into(),
            ));
        }
        vm::check_environment()?;
    } else {
        check_environment(&spec)?;
    }
    let mut lab = Lab::new(spec);
    if lab.dir.join("lab.toml").exists() {
        return Err(LabError::invalid(format!(
            "a lab named {:?} is already up (corodrill lab down --name {} removes it)",
            lab.spec().name,
            lab.spec().name
        )));
    }
    if let Some(taken) = lab
        .hosts()
        .iter()
        .map(|h| lab.spec().netns(h))
        .chain([lab.spec().switch_netns()])
        .find(|ns| host::netns_exists(ns))
    {
        return Err(LabError::invalid(format!(
            "network namespace {taken} already exists: pick another --name"
        )));
    }
    let started = Instant::now();
    host::create_dir(&lab.dir)?;
    lab.save()?;
    let built = if lab.spec().vm.is_some() {
        vm::build(&mut lab, progress)
    } else {
        build(&mut lab, progress)
    };
    let result = built.and_then(|()| {
        let views = wait_until_whole(&lab, started, progress)?;
        let pacemaker = if lab.spec().pacemaker {
            Some(pacemaker::settle(&lab, started, progress)?)
        } else {
            None
        };
        ready(&inventory(&lab))?;
        let inventory_path = inventory_out
            .map(Path::to_path_buf)
            .unwrap_or_else(|| lab.inventory_path());
        host::write_file(&inventory_path, inventory(&lab).to_toml().as_bytes())?;
        Ok((views, pacemaker, inventory_path))
    });
    match result {
        Ok((views, pacemaker, inventory_path)) => Ok(LabUp {
            lab,
            views,
            pacemaker,
            inventory_path,
            elapsed: started.elapsed(),
        }),
        Err(err) => {
            progress(&format!(
                "lab up failed, tearing down what was built: {err}"
            ));
            let _ = down(&lab.record.spec.name);
            Err(err)
        }
    }
}

/// The file whose presence says a lab node is powered off.
fn power_off_marker(lab: &Lab, node: &str) -> PathBuf {
    lab.host_dir(node).join("powered-off")
}

fn open_node(name: &str, node: &str) -> Result<Lab, LabError> {
    let lab = Lab::open(name)?;
    if !lab.spec().node_names().any(|n| n == node) {
        return Err(LabError::invalid(format!(
            "lab {name} has no node {node:?} (nodes: {})",
            lab.spec().node_names().collect::<Vec<_>>().join(", ")
        )));
    }
    Ok(lab)
}

/// Pulls a lab node's plug: every process inside its namespaces dies at
/// once (its agent too) and its links go down.
pub fn power_off(name: &str, node: &str) -> Result<(), LabError> {
    let lab = open_node(name, node)?;
    if lab.spec().vm.is_some() {
        return vm::power_off(&lab, node);
    }
    let ns = lab.namespaces(node);
    // Marked first: a status asked meanwhile must not say "on".
    host::write_file(&power_off_marker(&lab, node), b"")?;
    let pids = host::processes_in(&[ns.net.as_path()]);
    let procs = host::with_start_times(&pids);
    let survivors = host::kill_and_wait(&pids, Duration::from_secs(10));
    if !survivors.is_empty() {
        return Err(LabError::Failed(format!(
            "processes {survivors:?} of {node} did not die after SIGKILL"
        )));
    }
    host::remove_shm_leftovers(&procs);
    let script: String = (0..lab.spec().links)
        .map(|l| format!("link set ring{l} down\n"))
        .collect();
    host::ip_batch(
        &lab.spec().netns(node),
        &script,
        &format!("taking {node}'s links down"),
    )?;
    // What was in its memory is gone: a Dummy resource's state file in
    // /run would otherwise make Pacemaker find the resource still running
    // there when the node comes back.
    ns.reset_run(node)
}

/// Powers a lab node on: links up, then its daemons start as at boot.
pub fn power_on(name: &str, node: &str) -> Result<(), LabError> {
    let mut lab = open_node(name, node)?;
    if lab.spec().vm.is_some() {
        return vm::power_on(&lab, node);
    }
    let script: String = (0..lab.spec().links)
        .map(|l| format!("link set ring{l} up\n"))
        .collect();
    host::ip_batch(
        &lab.spec().netns(node),
        &script,
        &format!("bringing {node}'s links up"),
    )?;
    let faketime =
        libfaketime().ok_or_else(|| LabError::Environment("libfaketime disappeared".into()))?;
    if !lab.running(node, "corosync") {
        start_node(&mut lab, node, &faketime)?;
    }
    if lab.spec().qdevice && !lab.running(node, "corosync-qdevice") {
        start_node_qdevice(&mut lab, node, &faketime)?;
    }
    if lab.spec().ssh && !lab.running(node, "sshd") {
        start_node_sshd(&mut lab, node)?;
    }
    if lab.spec().pacemaker && !lab.running(node, "pacemakerd") {
        pacemaker::start(&mut lab, node)?;
    }
    let marker = power_off_marker(&lab, node);
    if marker.exists() {
        std::fs::remove_file(&marker)
            .map_err(|e| LabError::io(format!("removing {}", marker.display()), e))?;
    }
    Ok(())
}

/// Whether a lab node is powered on.
pub fn power_status(name: &str, node: &str) -> Result<bool, LabError> {
    let lab = open_node(name, node)?;
    if lab.spec().vm.is_some() {
        return vm::power_status(&lab, node);
    }
    Ok(!power_off_marker(&lab, node).exists())
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn wait_for(timeout: Duration, what: &str, mut done: impl FnMut() -> bool) -> Result<(), LabError> {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() >= deadline {
            return Err(LabError::Failed(format!(
                "timed out after {timeout:?} waiting for {what}"
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// While a lab comes up: the first daemon it started that has exited, as
/// an error carrying the last lines it wrote.
fn dead_daemon(lab: &Lab) -> Option<LabError> {
    let dead = lab.record.processes.iter().find(|p| !p.is_alive())?;
    let log = lab
        .host_dir(&dead.host)
        .join(format!("{}.out", dead.program));
    let tail = std::fs::read_to_string(&log).unwrap_or_default();
    Some(LabError::Failed(format!(
        "{} on {} exited while the lab was coming up: {}",
        dead.program,
        dead.host,
        tail.lines().rev().take(3).collect::<Vec<_>>().join(" / ")
    )))
}

/// The inventory `corodrill run` uses for this lab: each node's agent is
/// started inside the node's namespaces by `nsenter`, or, in a lab with
/// ssh, by the node's sshd from its own copy of the agent.
pub fn inventory(lab: &Lab) -> Inventory {
    if lab.spec().vm.is_some() {
        return vm_inventory(lab);
    }
    let agent = crate::cluster::agent::bundled_agent()
        .map(|p| path_str(&p))
        .unwrap_or_else(|| "corodrill-agent".to_owned());
    let spec = lab.spec();
    let nodes = spec
        .node_names()
        .enumerate()
        .map(|(i, name)| {
            let node_dir = lab.host_dir(&name);
            let connect = if spec.ssh {
                ssh::connect(&lab.dir, &spec.netns(&name), &node_dir)
            } else {
                format!(
                    "{} {agent} --stdio --lab-node {}",
                    lab.namespaces(&name).nsenter_prefix(),
                    node_dir.display()
                )
            };
            InventoryNode {
                connect,
                links: (0..spec.links)
                    .map(|l| (format!("ring{l}"), node_address(i as u8 + 1, l).to_string()))
                    .collect(),
                power: Power::Lab {
                    lab: spec.name.clone(),
                },
                name,
            }
        })
        .collect();
    Inventory {
        name: spec.name.clone(),
        nodes,
    }
}

/// A VM lab's inventory: ssh to each VM's agent over the management
/// network, power through each VM's QMP socket.
fn vm_inventory(lab: &Lab) -> Inventory {
    let spec = lab.spec();
    let nodes = spec
        .node_names()
        .enumerate()
        .map(|(i, name)| {
            let id = i as u8 + 1;
            InventoryNode {
                connect: vm::connect(lab, id).unwrap_or_else(|e| format!("false # {e}")),
                links: (0..spec.links)
                    .map(|l| (format!("ring{l}"), node_address(id, l).to_string()))
                    .collect(),
                power: Power::Qmp {
                    socket: path_str(&vm::qmp_socket(lab, &name)),
                },
                name,
            }
        })
        .collect();
    Inventory {
        name: spec.name.clone(),
        nodes,
    }
}

/// One host's state for `lab status`.
pub struct HostStatus {
    pub host: String,
    pub running: bool,
    pub quorum: Option<QuorumStatus>,
    pub links: Vec<LinkStatus>,
    /// In a Pacemaker lab, whether pacemakerd runs on this node.
    pub pacemakerd: Option<bool>,
    /// In a Pacemaker lab, the cluster as this node's Pacemaker sees it:
    /// read from one node only, the first that answers (one whose
    /// partition has quorum, if any does).
    pub pacemaker: Option<pacemaker::PacemakerView>,
}

pub fn status(name: &str) -> Result<(Lab, Vec<HostStatus>), LabError> {
    let lab = Lab::open(name)?;
    let mut hosts = lab
        .hosts()
        .into_iter()
        .map(|h| {
            if h == QNETD {
                return HostStatus {
                    running: lab.running(&h, "corosync-qnetd"),
                    host: h,
                    quorum: None,
                    links: Vec::new(),
                    pacemakerd: None,
                    pacemaker: None,
                };
            }
            let running = lab.running(&h, "corosync");
            HostStatus {
                quorum: running.then(|| lab.quorum(&h)).flatten(),
                links: if running { lab.links(&h) } else { Vec::new() },
                pacemakerd: lab.spec().pacemaker.then(|| lab.running(&h, "pacemakerd")),
                pacemaker: None,
                running,
                host: h,
            }
        })
        .collect::<Vec<_>>();
    if lab.spec().pacemaker {
        if let Some((node, view)) = pacemaker::cluster_view(&lab) {
            if let Some(h) = hosts.iter_mut().find(|h| h.host == node) {
                h.pacemaker = Some(view);
            }
        }
    }
    Ok((lab, hosts))
}

/// What `lab down` removed.
#[derive(Debug, Default)]
pub struct Removed {
    pub processes: usize,
    pub namespaces: Vec<String>,
    pub dir: Option<PathBuf>,
}

impl Removed {
    pub fn is_empty(&self) -> bool {
        self.processes == 0 && self.namespaces.is_empty() && self.dir.is_none()
    }
}

/// Removes a lab, whole or half-built: its processes (those it recorded, and
/// any other process inside its namespaces), namespaces, mounts and files.
/// Removing a lab that is not there is not an error.
pub fn down(name: &str) -> Result<Removed, LabError> {
    spec::LabSpec::new(name, 1, 1, false, None, Profile::Fast, &[])?;
    let dir = lab_root().join(name);
    let lab = Lab::open(name).ok();
    let mut removed = Removed::default();

    // The namespaces to empty and delete: those the record names, and any
    // left by a lab whose record was lost (same naming scheme).
    let mut netns: Vec<String> = match &lab {
        Some(lab) => lab
            .hosts()
            .iter()
            .map(|h| lab.spec().netns(h))
            .chain([lab.spec().switch_netns()])
            .collect(),
        None => Vec::new(),
    };
    for ns in host::list_netns() {
        if is_lab_netns(name, &ns) && !netns.contains(&ns) {
            netns.push(ns);
        }
    }
    let mut ns_files: Vec<PathBuf> = netns
        .iter()
        .map(|n| host::netns_path(n))
        .filter(|p| p.exists())
        .collect();
    if let Ok(entries) = std::fs::read_dir(dir.join("ns")) {
        ns_files.extend(entries.filter_map(|e| e.ok()).map(|e| e.path()));
    }

    let mut pids: Vec<i32> = lab
        .iter()
        .flat_map(|l| l.record.processes.iter())
        .filter(|p| p.is_alive())
        .map(|p| p.pid)
        .collect();
    let file_refs: Vec<&Path> = ns_files.iter().map(PathBuf::as_path).collect();
    for pid in host::processes_in(&file_refs) {
        if !pids.contains(&pid) {
            pids.push(pid);
        }
    }
    let procs = host::with_start_times(&pids);
    let survivors = host::kill_and_wait(&pids, Duration::from_secs(10));
    removed.processes = pids.len() - survivors.len();
    let dead: Vec<(i32, u64)> = procs
        .into_iter()
        .filter(|(p, _)| !survivors.contains(p))
        .collect();
    host::remove_shm_leftovers(&dead);
    if !survivors.is_empty() {
        return Err(LabError::Failed(format!(
            "processes {survivors:?} of lab {name} did not die after SIGKILL"
        )));
    }

    if let Ok(entries) = std::fs::read_dir(dir.join("ns")) {
        for entry in entries.filter_map(|e| e.ok()) {
            host::unmount(&entry.path());
        }
    }
    for ns in &netns {
        if host::netns_exists(ns) {
            host::delete_netns(ns)?;
            removed.namespaces.push(ns.clone());
        }
    }
    if dir.exists() {
        host::unmount(&dir);
        std::fs::remove_dir_all(&dir)
            .map_err(|e| LabError::io(format!("removing {}", dir.display()), e))?;
        removed.dir = Some(dir);
    }
    Ok(removed)
}

/// `NAME-sw`, `NAME-qnetd`, `NAME-pve<digits>`.
fn is_lab_netns(lab: &str, netns: &str) -> bool {
    let Some(host) = netns.strip_prefix(lab).and_then(|r| r.strip_prefix('-')) else {
        return false;
    };
    host == "sw"
        || host == QNETD
        || host
            .strip_prefix("pve")
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

/// Names of every lab with a directory under the lab root.
pub fn list() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(lab_root())
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Runs a command inside a lab host's namespaces, attached to the caller's
/// terminal; returns its exit status.
pub fn exec(name: &str, host: &str, argv: &[String]) -> Result<std::process::ExitStatus, LabError> {
    let lab = Lab::open(name)?;
    if !lab.hosts().iter().any(|h| h == host) {
        return Err(LabError::invalid(format!(
            "lab {name} has no host {host:?} (hosts: {})",
            lab.hosts().join(", ")
        )));
    }
    let Some((program, args)) = argv.split_first() else {
        return Err(LabError::invalid("lab exec: no command given after --"));
    };
    if lab.spec().vm.is_some() {
        return vm::exec(&lab, host, argv);
    }
    let mut cmd: Command = lab.namespaces(host).foreground_command(program)?;
    cmd.args(args)
        .status()
        .map_err(|e| LabError::io(format!("running {program} on {host}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_netns_names() {
        assert!(is_lab_netns("t1", "t1-pve12"));
        assert!(is_lab_netns("t1", "t1-sw"));
        assert!(is_lab_netns("t1", "t1-qnetd"));
        assert!(!is_lab_netns("t1", "t10-pve1"));
        assert!(!is_lab_netns("t1", "t1-pve"));
        assert!(!is_lab_netns("t1", "t1-pvex"));
        assert!(!is_lab_netns("t1", "other"));
    }
}
