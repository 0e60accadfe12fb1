//! The VM lab (`lab up --vm`): every node a Debian 12 VM under QEMU, booted
//! from the image `image.rs` builds and caches, reached over real ssh, with
//! corosync started by systemd and the agent installed as an operator
//! installs it (the .deb, or `install-agent`). Real clocks, real reboots,
//! real NICs: the paths a namespace node cannot take. With `--qdevice` the
//! QDevice host `qnetd` is a VM of the same image too, on the management
//! network and link 0 only, running corosync-qnetd; the nodes run
//! corosync-qdevice.
//!
//! Everything lives inside the lab's switch namespace and directory: the
//! bridges (a management network for ssh, one bridge per corosync link),
//! the VMs' tap devices, the QEMU processes (so `lab down` finds and kills
//! them by namespace, as it does a namespace lab's daemons), each VM's
//! copy-on-write disk, console log and QMP socket. Nothing is added to the
//! host's own network namespace; the controller's ssh runs inside the
//! switch namespace.

pub mod image;
pub mod vagrant_box;

use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::host::{self, LabProcess};
use super::spec::{node_address, qnetd_address, LabSpec, PREFIX_LEN, QNETD};
use super::{conf, Lab, LabError};
use crate::cluster::power::qmp;

/// The management network: ssh from the controller, never a corosync link,
/// so that cutting a link never cuts the controller off. Node `pveN` is
/// `.N`; the switch namespace (where ssh runs) is `.253`.
pub fn mgmt_address(node_id: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 250, node_id)
}
pub const SWITCH_MGMT: Ipv4Addr = Ipv4Addr::new(198, 18, 250, 253);

/// How long a VM may take from QEMU's start to sshd answering: three TCG
/// guests booting at once took about 70 s on 2 cores.
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);
/// A node that has not answered ssh yet gets a fresh QEMU when it is this
/// far into its boot (twice the slowest boot of three nodes together seen so far)...
const BOOT_RESTART_AFTER: Duration = Duration::from_secs(150);
/// ...or when its console has printed nothing for this long: a booting
/// guest prints all the way to its login prompt, and a hung one stops.
/// `CORODRILL_VM_BOOT_SILENCE` (seconds) says otherwise.
fn boot_silence_limit() -> Duration {
    std::env::var("CORODRILL_VM_BOOT_SILENCE")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(60))
}
/// One ssh command on a booted node (dpkg -i included).
const SSH_TIMEOUT: Duration = Duration::from_secs(60);

/// How QEMU runs the guests' code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// Hardware virtualization: /dev/kvm and a CPU with vmx or svm.
    Kvm,
    /// QEMU's own translator: slower (boot about 70 s for three nodes on 2
    /// cores) and at times frozen for seconds while it translates new code.
    Tcg,
}

impl std::fmt::Display for Accel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        })
    }
}

/// KVM where this machine can run it, TCG otherwise, and why. /dev/kvm
/// alone is not enough: where the CPU shows no vmx or svm (a nested guest
/// without nested virtualization), KVM guests hang.
pub fn detect_accel() -> (Accel, String) {
    if !Path::new("/dev/kvm").exists() {
        return (Accel::Tcg, "no /dev/kvm".into());
    }
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let virt = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .flat_map(|l| l.split_whitespace())
        .any(|f| f == "vmx" || f == "svm");
    if virt {
        (Accel::Kvm, "/dev/kvm and a CPU with vmx/svm".into())
    } else {
        (
            Accel::Tcg,
            "/dev/kvm is there but the CPU shows no vmx/svm".into(),
        )
    }
}

/// How the agent gets onto the nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgentInstall {
    /// The corodrill-agent .deb, installed with `dpkg -i` while the node
    /// is configured: its dependencies, its rollback unit, as an operator
    /// installs it. The agent is /usr/bin/corodrill-agent.
    Deb(PathBuf),
    /// `corodrill install-agent` over ssh once the cluster is whole: the
    /// binary beside this corodrill copied to /usr/local/bin.
    InstallAgent,
}

/// What a VM lab adds to a lab's spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmSpec {
    pub accel: Accel,
    pub memory_mb: u32,
    #[serde(default = "default_cpus")]
    pub cpus: u8,
    pub agent: AgentInstall,
    /// The image the VMs boot, once `lab up` has it.
    #[serde(default)]
    pub image: Option<PathBuf>,
}

fn default_cpus() -> u8 {
    2
}

impl VmSpec {
    pub fn new(agent: AgentInstall, accel: Option<Accel>) -> VmSpec {
        VmSpec {
            accel: accel.unwrap_or_else(|| detect_accel().0),
            memory_mb: 512,
            cpus: default_cpus(),
            agent,
            image: None,
        }
    }

    pub fn agent_path(&self) -> &'static str {
        match self.agent {
            AgentInstall::Deb(_) => "/usr/bin/corodrill-agent",
            AgentInstall::InstallAgent => crate::cluster::install::DEFAULT_AGENT_PATH,
        }
    }
}

/// What a VM lab cannot do (yet), said before anything is built.
pub fn validate(spec: &LabSpec) -> Result<(), LabError> {
    let refuse = |what: &str| {
        Err(LabError::invalid(format!(
            "--vm: {what} is not supported in a VM lab"
        )))
    };
    if spec.pacemaker {
        return refuse("--pacemaker");
    }
    if !(2..=5).contains(&spec.nodes) {
        return Err(LabError::invalid(format!(
            "--nodes {}: a VM lab has 2 to 5 nodes (each takes about 700 MB and a share of the CPU)",
            spec.nodes
        )));
    }
    if let Some(VmSpec {
        agent: AgentInstall::Deb(deb),
        ..
    }) = &spec.vm
    {
        if !deb.is_file() {
            return Err(LabError::invalid(format!(
                "--agent-deb {}: no such file (packaging/check builds it)",
                deb.display()
            )));
        }
    }
    Ok(())
}

/// The machine's tools a VM lab needs, named with their packages.
pub fn check_environment() -> Result<(), LabError> {
    let mut needed: Vec<(&str, &str)> = image::TOOLS.to_vec();
    needed.extend([("ip", "iproute2"), ("nsenter", "util-linux")]);
    let missing: Vec<&(&str, &str)> = needed
        .iter()
        .filter(|(program, _)| host::which(program).is_none())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let packages: std::collections::BTreeSet<&str> = missing.iter().map(|(_, p)| *p).collect();
    Err(LabError::Environment(format!(
        "the VM lab needs {}; install with: apt-get install {} (or scripts/install-deps --vm)",
        missing
            .iter()
            .map(|(program, _)| *program)
            .collect::<Vec<_>>()
            .join(", "),
        packages.into_iter().collect::<Vec<_>>().join(" ")
    )))
}

fn vm_spec(lab: &Lab) -> Result<&VmSpec, LabError> {
    lab.spec()
        .vm
        .as_ref()
        .ok_or_else(|| LabError::Failed(format!("lab {} is not a VM lab", lab.spec().name)))
}

fn image_of(lab: &Lab) -> Result<image::Image, LabError> {
    vm_spec(lab)?
        .image
        .clone()
        .map(|dir| image::Image { dir })
        .ok_or_else(|| LabError::Failed("the VM lab has no image yet".into()))
}

pub fn qmp_socket(lab: &Lab, node: &str) -> PathBuf {
    lab.host_dir(node).join("qmp.sock")
}

/// The QDevice host's number on the management network (`.254`), apart
/// from every node's.
const QNETD_ID: u8 = 254;

/// A host's number: `pveN` is N, the QDevice host `QNETD_ID`.
fn node_id(lab: &Lab, node: &str) -> Result<u8, LabError> {
    if node == QNETD && lab.spec().qdevice {
        return Ok(QNETD_ID);
    }
    lab.spec()
        .node_names()
        .position(|n| n == node)
        .map(|i| i as u8 + 1)
        .ok_or_else(|| LabError::invalid(format!("lab {} has no node {node:?}", lab.spec().name)))
}

/// The ssh command line, inside the switch namespace, that reaches a node
/// as root with the image's key; `command` follows it.
fn ssh_words(lab: &Lab, node_id: u8) -> Result<Vec<String>, LabError> {
    let image = image_of(lab)?;
    Ok(vec![
        "nsenter".into(),
        format!(
            "--net={}",
            host::netns_path(&lab.spec().switch_netns()).display()
        ),
        "--".into(),
        "ssh".into(),
        "-F".into(),
        "none".into(),
        "-i".into(),
        image.key().display().to_string(),
        "-o".into(),
        format!("UserKnownHostsFile={}", image.known_hosts().display()),
        "-o".into(),
        "StrictHostKeyChecking=yes".into(),
        "-o".into(),
        "BatchMode=yes".into(),
        "-o".into(),
        "LogLevel=ERROR".into(),
        // sshd re-executes itself for every connection: in a TCG guest on
        // a loaded machine its banner took more than 5 s.
        "-o".into(),
        "ConnectTimeout=30".into(),
        "-o".into(),
        "ServerAliveInterval=5".into(),
        format!("root@{}", mgmt_address(node_id)),
    ])
}

/// A host's corosync links with its address on each: every link for a
/// node, link 0 only for the QDevice host (qdevice talks TCP to it there).
fn host_links(lab: &Lab, host: &str) -> Result<Vec<(u8, Ipv4Addr)>, LabError> {
    let id = node_id(lab, host)?;
    Ok(if id == QNETD_ID {
        vec![(0, qnetd_address())]
    } else {
        (0..lab.spec().links)
            .map(|link| (link, node_address(id, link)))
            .collect()
    })
}

/// The inventory's connect command for a node: ssh to its agent.
pub fn connect(lab: &Lab, node_id: u8) -> Result<String, LabError> {
    let mut words = ssh_words(lab, node_id)?;
    words.push(vm_spec(lab)?.agent_path().into());
    words.push("--stdio".into());
    shlex::try_join(words.iter().map(String::as_str))
        .map_err(|e| LabError::Failed(format!("quoting the connect command: {e}")))
}

/// Runs a shell command on a node over ssh, with `stdin`; its stdout, or
/// an error with its stderr when it fails.
/// ssh to a node as root, ready for its remote command.
fn ssh_command(lab: &Lab, node: &str) -> Result<Command, LabError> {
    let words = ssh_words(lab, node_id(lab, node)?)?;
    let mut cmd = Command::new(&words[0]);
    cmd.args(&words[1..]);
    Ok(cmd)
}

pub fn ssh_run(
    lab: &Lab,
    node: &str,
    script: &str,
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<String, LabError> {
    let mut cmd = ssh_command(lab, node)?;
    cmd.arg(script);
    let done = crate::cluster::tool::run_within(&mut cmd, stdin, timeout)
        .map_err(|e| LabError::Failed(format!("{node}: {e}")))?;
    if !done.status.success() {
        return Err(LabError::Failed(format!(
            "{node}: `{script}` {}: {}",
            done.status,
            done.stderr.trim()
        )));
    }
    Ok(done.stdout)
}

/// One of corosync's tools on a node, over ssh: its stdout whatever its
/// exit status (corosync-quorumtool exits 2 without quorum), or an error
/// when ssh itself fails (the node is down, or booting).
pub fn tool_output(
    lab: &Lab,
    node: &str,
    program: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<String, LabError> {
    let remote = shlex::try_join(std::iter::once(program).chain(args.iter().copied()))
        .map_err(|e| LabError::Failed(format!("quoting {program}: {e}")))?;
    let mut cmd = ssh_command(lab, node)?;
    cmd.arg(remote);
    let done = crate::cluster::tool::run_within(&mut cmd, None, timeout)
        .map_err(|e| LabError::Failed(format!("{node}: {e}")))?;
    // ssh's own failures exit 255.
    if done.status.code() == Some(255) {
        return Err(LabError::Failed(format!(
            "{node}: ssh: {}",
            done.stderr.trim()
        )));
    }
    Ok(done.stdout)
}

/// Whether a program runs on a node (`pidof` over ssh).
pub fn running(lab: &Lab, node: &str, program: &str) -> bool {
    ssh_run(
        lab,
        node,
        &format!("pidof -q {program}"),
        None,
        Duration::from_secs(10),
    )
    .is_ok()
}

/// Builds the VM lab: image, switch, disks, VMs; then configures corosync
/// on every node over ssh and starts it. The caller waits for quorum.
pub(super) fn build(lab: &mut Lab, progress: &dyn Fn(&str)) -> Result<(), LabError> {
    let (image, _built) = image::ensure(progress)?;
    if let Some(vm) = lab.record.spec.vm.as_mut() {
        vm.image = Some(image.dir.clone());
    }
    lab.save()?;
    let spec = lab.spec().clone();
    let vm = vm_spec(lab)?.clone();
    progress(&format!(
        "building VM lab {}: {} Debian 12 VMs{}, {} link(s), {} MB each, {} ({})",
        spec.name,
        spec.nodes,
        if spec.qdevice {
            " and the QDevice host qnetd"
        } else {
            ""
        },
        spec.links,
        vm.memory_mb,
        vm.accel,
        detect_accel().1
    ));

    let switch = spec.switch_netns();
    host::add_netns(&switch)?;
    let mut script = format!(
        "link set lo up\nlink add brm type bridge\nlink set brm up\naddr add {SWITCH_MGMT}/{PREFIX_LEN} dev brm\n"
    );
    for link in 0..spec.links {
        script.push_str(&format!(
            "link add br{link} type bridge\nlink set br{link} up\n"
        ));
    }
    for node in lab.hosts() {
        script.push_str(&format!(
            "tuntap add dev {node}m mode tap\nlink set {node}m master brm up\n"
        ));
        for (link, _) in host_links(lab, &node)? {
            script.push_str(&format!(
                "tuntap add dev {node}r{link} mode tap\nlink set {node}r{link} master br{link} up\n"
            ));
        }
    }
    host::ip_batch(&switch, &script, "wiring the VM lab's switch")?;

    let started = Instant::now();
    for node in lab.hosts() {
        let id = node_id(lab, &node)?;
        let dir = lab.host_dir(&node);
        host::create_dir(&dir)?;
        let disk = dir.join("disk.qcow2");
        host::run(
            Command::new("qemu-img")
                .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
                .arg(image.base())
                .arg(&disk),
            &format!("making {node}'s disk"),
        )?;
        let process = start_qemu(lab, &image, &vm, &node, id)?;
        lab.record.processes.push(process);
        lab.save()?;
    }
    wait_for_ssh(lab, &image, &vm, started, progress)?;
    configure_nodes(lab, &vm, progress)
}

/// QEMU for one node, in the switch namespace, in a session of its own.
fn start_qemu(
    lab: &Lab,
    image: &image::Image,
    vm: &VmSpec,
    node: &str,
    id: u8,
) -> Result<LabProcess, LabError> {
    let spec = lab.spec();
    let dir = lab.host_dir(node);
    let links = host_links(lab, node)?;
    let mut nets = vec![format!("eth0:{}/{PREFIX_LEN}", mgmt_address(id))];
    for (link, address) in &links {
        nets.push(format!("eth{}:{address}/{PREFIX_LEN}", link + 1));
    }
    let cmdline = format!(
        "root=/dev/vda rw console=ttyS0 net.ifnames=0 mitigations=off systemd.hostname={node} corodrill.net={}",
        nets.join(",")
    );
    let accel = match vm.accel {
        Accel::Kvm => "kvm".to_owned(),
        // A larger translation cache than QEMU's default costs memory
        // (about 1.7 GB resident per guest with the default, 700 MB with
        // 256 MB).
        Accel::Tcg => "tcg,tb-size=256".to_owned(),
    };
    let mut args: Vec<String> = vec![
        "-name".into(),
        node.into(),
        "-nodefaults".into(),
        "-no-user-config".into(),
        "-accel".into(),
        accel,
        "-m".into(),
        vm.memory_mb.to_string(),
        // Two CPUs, as every real node has at least: corosync runs at
        // realtime priority, and on one emulated CPU its busy moments
        // (a rejoin) starved the kernel's softirqs and the agent for ~1 s
        // at a time, until the kernel's RT throttling let them run.
        "-smp".into(),
        vm.cpus.to_string(),
        "-kernel".into(),
        image.kernel().display().to_string(),
        "-initrd".into(),
        image.initrd().display().to_string(),
        "-append".into(),
        cmdline,
        "-drive".into(),
        format!(
            "file={},if=virtio,format=qcow2",
            dir.join("disk.qcow2").display()
        ),
        "-serial".into(),
        format!("file:{}", dir.join("console.log").display()),
        "-display".into(),
        "none".into(),
        "-monitor".into(),
        "none".into(),
        "-qmp".into(),
        format!(
            "unix:{},server=on,wait=off",
            qmp_socket(lab, node).display()
        ),
    ];
    if vm.accel == Accel::Kvm {
        args.extend(["-cpu".into(), "host".into()]);
    }
    // Entropy from the host, as real hypervisors give: without it the
    // guest's random pool waits for its own jitter at boot.
    args.extend(["-device".into(), "virtio-rng-pci".into()]);
    let mut taps = vec![(format!("{node}m"), format!("52:54:00:fa:00:{id:02x}"))];
    for (link, _) in &links {
        taps.push((
            format!("{node}r{link}"),
            format!("52:54:00:{link:02x}:00:{id:02x}"),
        ));
    }
    for (i, (tap, mac)) in taps.iter().enumerate() {
        args.push("-netdev".into());
        args.push(format!("tap,id=n{i},ifname={tap},script=no,downscript=no"));
        args.push("-device".into());
        args.push(format!("virtio-net-pci,netdev=n{i},mac={mac}"));
    }
    let log = dir.join("qemu.out");
    let out = std::fs::File::create(&log)
        .map_err(|e| LabError::io(format!("creating {}", log.display()), e))?;
    let err = out
        .try_clone()
        .map_err(|e| LabError::io(format!("opening {}", log.display()), e))?;
    let netns = std::fs::File::open(host::netns_path(&spec.switch_netns()))
        .map_err(|e| LabError::io("opening the switch namespace", e))?;
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(&args).stdin(Stdio::null()).stdout(out).stderr(err);
    // SAFETY: between fork and exec only async-signal-safe system calls
    // (setns, setsid) on a descriptor opened before the fork.
    unsafe {
        cmd.pre_exec(move || {
            nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET)?;
            nix::unistd::setsid()?;
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| LabError::io(format!("starting QEMU for {node}"), e))?;
    let pid = child.id() as i32;
    Ok(LabProcess {
        host: node.to_owned(),
        program: "qemu".into(),
        pid,
        start_time: host::proc_start_time(pid).map(|(s, _)| s).unwrap_or(0),
    })
}

/// Waits until every node's sshd answers, saying how many have booted. A
/// node still silent at `BOOT_RESTART_AFTER`, or whose console has printed
/// nothing for `boot_silence_limit()`, gets a fresh QEMU once
/// (`restart_qemu`): a TCG guest has hung at boot (one of three, the others
/// up in 71 s; a CI run), and one guest boots again in about 40 s. The error names what the node's
/// console and ssh said last, since tearing the lab down removes its files.
fn wait_for_ssh(
    lab: &mut Lab,
    image: &image::Image,
    vm: &VmSpec,
    started: Instant,
    progress: &dyn Fn(&str),
) -> Result<(), LabError> {
    let nodes: Vec<String> = lab.hosts();
    let mut up: Vec<bool> = vec![false; nodes.len()];
    let mut restarted: Vec<bool> = vec![false; nodes.len()];
    let mut last_error: Vec<String> = vec![String::new(); nodes.len()];
    let mut told = Instant::now();
    let silence_limit = boot_silence_limit();
    // Each node's console: its length, and since when it has had it.
    let mut console: Vec<(u64, Instant)> = vec![(0, Instant::now()); nodes.len()];
    loop {
        for (i, node) in nodes.iter().enumerate() {
            if !up[i] {
                match ssh_run(lab, node, "true", None, Duration::from_secs(8)) {
                    Ok(_) => up[i] = true,
                    Err(e) => last_error[i] = e.to_string(),
                }
            }
        }
        let booted = up.iter().filter(|u| **u).count();
        if booted == nodes.len() {
            progress(&format!(
                "every VM booted ({:.0} s)",
                started.elapsed().as_secs_f64()
            ));
            return Ok(());
        }
        if let Some(err) = super::dead_daemon(lab) {
            return Err(err);
        }
        let late = || nodes.iter().enumerate().filter(|(i, _)| !up[*i]);
        if started.elapsed() >= BOOT_TIMEOUT {
            let said: Vec<String> = late()
                .map(|(i, node)| {
                    format!(
                        "{node}: ssh said: {}\n{node}'s console ended:\n{}",
                        last_error[i],
                        console_tail(lab, node)
                    )
                })
                .collect();
            let names: Vec<&str> = late().map(|(_, n)| n.as_str()).collect();
            return Err(LabError::Failed(format!(
                "{} did not answer ssh within {BOOT_TIMEOUT:?}{}\n{}",
                names.join(", "),
                if restarted.iter().any(|r| *r) {
                    ", its QEMU started again once on the way"
                } else {
                    ""
                },
                said.join("\n")
            )));
        }
        for (i, node) in nodes.iter().enumerate() {
            let len = std::fs::metadata(lab.host_dir(node).join("console.log"))
                .map(|m| m.len())
                .unwrap_or(0);
            if len != console[i].0 {
                console[i] = (len, Instant::now());
            }
        }
        let stuck: Vec<(usize, String)> = late()
            .filter(|(i, _)| {
                !restarted[*i]
                    && (started.elapsed() >= BOOT_RESTART_AFTER
                        || console[*i].1.elapsed() >= silence_limit)
            })
            .map(|(i, n)| (i, n.clone()))
            .collect();
        for (i, node) in stuck {
            restarted[i] = true;
            progress(&format!(
                "{node} has not answered ssh in {:.0} s (its console silent for {:.0} s): starting its QEMU again, once (its console ended:\n{})",
                started.elapsed().as_secs_f64(),
                console[i].1.elapsed().as_secs_f64(),
                console_tail(lab, &node)
            ));
            restart_qemu(lab, image, vm, &node)?;
            console[i] = (0, Instant::now());
        }
        if told.elapsed() >= Duration::from_secs(5) {
            told = Instant::now();
            progress(&format!(
                "booting: {booted}/{} VMs answer ssh ({:.0} s)",
                nodes.len(),
                started.elapsed().as_secs_f64()
            ));
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// A fresh QEMU for a node hung in its boot, on the same disk: a reset
/// through QMP was not enough (a CI run's guest, frozen as QEMU started it,
/// printed nothing for 270 s after a QMP reset and `cont`).
fn restart_qemu(
    lab: &mut Lab,
    image: &image::Image,
    vm: &VmSpec,
    node: &str,
) -> Result<(), LabError> {
    let id = node_id(lab, node)?;
    let old: Vec<i32> = lab
        .record
        .processes
        .iter()
        .filter(|p| p.host == node && p.program == "qemu")
        .map(|p| p.pid)
        .collect();
    let left = host::kill_and_wait(&old, Duration::from_secs(10));
    if !left.is_empty() {
        return Err(LabError::Failed(format!(
            "{node}: its QEMU (pid {left:?}) did not exit on SIGKILL"
        )));
    }
    lab.record
        .processes
        .retain(|p| !(p.host == node && p.program == "qemu"));
    let process = start_qemu(lab, image, vm, node, id)?;
    lab.record.processes.push(process);
    lab.save()
}

/// The last lines of a node's serial console, or why there are none.
fn console_tail(lab: &Lab, node: &str) -> String {
    let path = lab.host_dir(node).join("console.log");
    match std::fs::read(&path) {
        Ok(bytes) => last_lines(&String::from_utf8_lossy(&bytes), 12),
        Err(e) => format!("  ({}: {e})", path.display()),
    }
}

/// The last `n` non-empty lines of a console, indented, without the
/// terminal's colour and line-erase sequences.
fn last_lines(console: &str, n: usize) -> String {
    let mut lines: Vec<String> = console
        .lines()
        .map(strip_escapes)
        .filter(|l| !l.trim().is_empty())
        .collect();
    let skip = lines.len().saturating_sub(n);
    lines.drain(..skip);
    lines
        .iter()
        .map(|l| format!("  {}", l.trim_end()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A line without ANSI CSI sequences (`ESC [ ... letter`) and carriage
/// returns.
fn strip_escapes(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for c in chars.by_ref() {
                        if c.is_ascii_alphabetic() {
                            break;
                        }
                    }
                }
            }
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// corosync's configuration and key on every node, the agent's .deb if the
/// lab installs it so, then corosync started. The image enables corosync
/// on the condition that the key is there, so from now on it also starts at
/// every boot, as on a real node (`systemctl enable` itself takes about 40 s
/// of a TCG guest: Debian's sysv-install runs perl).
fn configure_nodes(lab: &Lab, vm: &VmSpec, progress: &dyn Fn(&str)) -> Result<(), LabError> {
    let spec = lab.spec();
    let authkey_path = lab.dir.join("authkey");
    host::write_authkey(&authkey_path)?;
    let authkey = std::fs::read(&authkey_path)
        .map_err(|e| LabError::io(format!("reading {}", authkey_path.display()), e))?;
    let conf = conf::corosync_conf(
        spec,
        &conf::NodePaths {
            authkey: Path::new("/etc/corosync/authkey"),
            logfile: Path::new("/var/log/corosync/corosync.log"),
            state_dir: Path::new("/var/lib/corosync"),
        },
        // Each VM has CPUs of its own: corosync's default, as on a real node.
        true,
    );
    let deb = match &vm.agent {
        AgentInstall::Deb(path) => Some(
            std::fs::read(path)
                .map_err(|e| LabError::io(format!("reading {}", path.display()), e))?,
        ),
        AgentInstall::InstallAgent => None,
    };
    if deb.is_some() {
        progress("installing the corodrill-agent .deb on every node (dpkg -i)");
    }
    let nodes: Vec<String> = spec.node_names().collect();
    let results: Vec<Result<(), LabError>> = std::thread::scope(|s| {
        let handles: Vec<_> = nodes
            .iter()
            .map(|node| {
                let (authkey, conf, deb) = (&authkey, &conf, &deb);
                s.spawn(move || {
                    ssh_run(
                        lab,
                        node,
                        "umask 077 && cat > /etc/corosync/authkey",
                        Some(authkey),
                        SSH_TIMEOUT,
                    )?;
                    ssh_run(
                        lab,
                        node,
                        "cat > /etc/corosync/corosync.conf",
                        Some(conf.as_bytes()),
                        SSH_TIMEOUT,
                    )?;
                    if let Some(deb) = deb {
                        ssh_run(
                            lab,
                            node,
                            "cat > /root/corodrill-agent.deb && dpkg -i /root/corodrill-agent.deb >/dev/null && rm /root/corodrill-agent.deb",
                            Some(deb),
                            SSH_TIMEOUT,
                        )?;
                    }
                    ssh_run(lab, node, "systemctl start corosync", None, SSH_TIMEOUT)?;
                    if spec.qdevice {
                        // qdevice keeps trying qnetd until it answers.
                        ssh_run(lab, node, &enable_and_start("corosync-qdevice"), None, SSH_TIMEOUT)?;
                    }
                    Ok(())
                })
            })
            .chain(spec.qdevice.then(|| {
                s.spawn(|| {
                    // TLS off, as the nodes' corosync.conf says (and the
                    // network-namespace lab): no certificates to hand out.
                    let script = format!(
                        "sed -i 's/^COROSYNC_QNETD_OPTIONS=.*/COROSYNC_QNETD_OPTIONS=\"-s off\"/' /etc/default/corosync-qnetd && {}",
                        enable_and_start("corosync-qnetd")
                    );
                    ssh_run(lab, QNETD, &script, None, SSH_TIMEOUT).map(drop)
                })
            }))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(LabError::Failed("a configuring thread panicked".into()))
                })
            })
            .collect()
    });
    results.into_iter().collect()
}

/// A shell command that enables a unit the image left disabled, as
/// `systemctl enable` would (the symlink: `systemctl enable` of a unit with
/// a SysV script runs Debian's perl sysv-install, about 40 s of a TCG
/// guest), so that it also starts at boot; then starts it.
fn enable_and_start(unit: &str) -> String {
    format!(
        "ln -sf /lib/systemd/system/{unit}.service /etc/systemd/system/multi-user.target.wants/{unit}.service && systemctl daemon-reload && systemctl start {unit}"
    )
}

/// `lab exec` on a VM: the command over ssh, on a terminal if there is one.
pub fn exec(lab: &Lab, node: &str, argv: &[String]) -> Result<std::process::ExitStatus, LabError> {
    let remote = shlex::try_join(argv.iter().map(String::as_str))
        .map_err(|e| LabError::invalid(format!("lab exec: {e}")))?;
    let mut cmd = ssh_command(lab, node)?;
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        cmd.arg("-t");
    }
    cmd.arg(remote)
        .status()
        .map_err(|e| LabError::io(format!("running ssh to {node}"), e))
}

/// `lab power NODE off` on a VM: the QMP driver's pulled plug.
pub fn power_off(lab: &Lab, node: &str) -> Result<(), LabError> {
    let mut qmp = open_qmp(lab, node)?;
    qmp::off(&mut qmp).map_err(|e| LabError::Failed(format!("{node}: {e}")))
}

pub fn power_on(lab: &Lab, node: &str) -> Result<(), LabError> {
    let mut qmp = open_qmp(lab, node)?;
    qmp::on(&mut qmp).map_err(|e| LabError::Failed(format!("{node}: {e}")))
}

pub fn power_status(lab: &Lab, node: &str) -> Result<bool, LabError> {
    let mut qmp = open_qmp(lab, node)?;
    let state = qmp
        .run_state()
        .map_err(|e| LabError::Failed(format!("{node}: {e}")))?;
    Ok(qmp::power_state(&state) == crate::cluster::power::PowerState::On)
}

fn open_qmp(lab: &Lab, node: &str) -> Result<qmp::Qmp, LabError> {
    node_id(lab, node)?;
    qmp::Qmp::connect(&qmp_socket(lab, node), Duration::from_secs(10))
        .map_err(|e| LabError::Failed(format!("{node}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn management_addresses_are_apart_from_the_links() {
        for link in 0..crate::lab::spec::MAX_LINKS {
            assert_ne!(node_address(1, link), mgmt_address(1));
        }
        assert_ne!(SWITCH_MGMT, mgmt_address(5));
    }

    #[test]
    fn a_console_tail_is_its_last_lines_without_colours() {
        let console = "one\n\n\u{1b}[0;32m  OK  \u{1b}[0m] Started \u{1b}[0;1;39msshd\u{1b}[0m.\r\n\u{1b}[Kthree\n";
        assert_eq!(last_lines(console, 2), "    OK  ] Started sshd.\n  three");
        assert_eq!(
            last_lines(console, 9),
            "  one\n    OK  ] Started sshd.\n  three"
        );
        assert_eq!(last_lines("", 3), "");
    }
}
