//! The node the agent runs on: how to find and start its corosync, where its
//! clock control is, what its kernel can do. A lab node is told apart by
//! `--lab-node DIR` (the node's directory in the lab); everything else is a
//! real node run by systemd.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use corodrill_protocol::{Capabilities, ClockMethod};

#[derive(Debug, Clone)]
pub enum NodeKind {
    /// A node of the network-namespace lab: its files live in this directory.
    Lab {
        dir: PathBuf,
    },
    Real,
}

#[derive(Debug, Clone)]
pub struct Node {
    pub kind: NodeKind,
    pub state_dir: PathBuf,
    /// (device, inode) of this process's network namespace: the node's
    /// processes are those that share it.
    netns: (u64, u64),
}

impl Node {
    pub fn new(lab_node: Option<PathBuf>, state_dir: Option<PathBuf>) -> std::io::Result<Node> {
        let kind = match lab_node {
            Some(dir) => NodeKind::Lab { dir },
            None => NodeKind::Real,
        };
        let state_dir = state_dir.unwrap_or_else(|| match &kind {
            NodeKind::Lab { dir } => dir.join("agent"),
            NodeKind::Real => PathBuf::from("/var/lib/corodrill-agent"),
        });
        let m = std::fs::metadata("/proc/self/ns/net")?;
        Ok(Node {
            kind,
            state_dir,
            netns: (m.dev(), m.ino()),
        })
    }

    /// Where a Proxmox VE file (`/etc/pve/...`) is on this node. A lab
    /// node keeps its own under its directory: the lab has no pmxcfs, and
    /// tests stage an HA configuration there.
    pub fn pve_file(&self, path: &str) -> PathBuf {
        match &self.kind {
            NodeKind::Lab { dir } => dir.join(path.trim_start_matches('/')),
            NodeKind::Real => PathBuf::from(path),
        }
    }

    /// The corosync.conf this node's corosync reads: the lab node's own,
    /// or /etc/corosync's.
    pub fn corosync_conf(&self) -> PathBuf {
        match &self.kind {
            NodeKind::Lab { dir } => dir.join("corosync.conf"),
            NodeKind::Real => PathBuf::from("/etc/corosync/corosync.conf"),
        }
    }

    /// The SHA-256 (hex) of [`Node::corosync_conf`], None if unreadable.
    pub fn corosync_conf_sha256(&self) -> Option<String> {
        use sha2::Digest;
        let bytes = std::fs::read(self.corosync_conf()).ok()?;
        Some(
            sha2::Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        )
    }

    pub fn hostname(&self) -> String {
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "unknown".into())
    }

    pub fn capabilities(&self) -> Capabilities {
        Capabilities {
            netem: netem_available(),
            clock: match self.kind {
                NodeKind::Lab { .. } => ClockMethod::Libfaketime,
                NodeKind::Real => ClockMethod::ClockSettime,
            },
            corosync_version: corosync_version(),
        }
    }

    /// Pids of this node's processes with this name: same network namespace
    /// as the agent, never by name alone (lab nodes share one pid namespace).
    pub fn processes_named(&self, name: &str) -> Vec<i32> {
        self.processes()
            .into_iter()
            .filter(|&pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|comm| comm.trim_end() == name)
            })
            .collect()
    }

    /// Every process of this node but the agent itself.
    pub fn processes(&self) -> Vec<i32> {
        let own = std::process::id() as i32;
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|&pid| pid != own)
            .filter(|pid| {
                std::fs::metadata(format!("/proc/{pid}/ns/net"))
                    .is_ok_and(|m| (m.dev(), m.ino()) == self.netns)
            })
            .filter(|&pid| !is_zombie(pid))
            .collect()
    }

    pub fn corosync_pid(&self) -> Option<i32> {
        self.processes_named("corosync").into_iter().next()
    }

    pub fn qdevice_running(&self) -> bool {
        !self.processes_named("corosync-qdevi").is_empty()
    }

    /// Starts corosync (and corosync-qdevice when `qdevice`), as this node
    /// starts it, and waits until corosync answers on its IPC.
    pub fn start_corosync(&self, qdevice: bool) -> Result<(), String> {
        if self.corosync_pid().is_none() {
            match &self.kind {
                NodeKind::Lab { dir } => self.spawn_lab_daemon(
                    dir,
                    "corosync",
                    &["-f", "-c", &path(&dir.join("corosync.conf"))],
                )?,
                NodeKind::Real => run_ok(command("systemctl").args(["start", "corosync"]))?,
            }
        }
        wait_until(Duration::from_secs(15), corosync_answers)
            .map_err(|()| "corosync started but does not answer after 15 s".to_string())?;
        if qdevice && !self.qdevice_running() {
            match &self.kind {
                NodeKind::Lab { dir } => self.spawn_lab_daemon(dir, "corosync-qdevice", &["-f"])?,
                NodeKind::Real => run_ok(command("systemctl").args(["start", "corosync-qdevice"]))?,
            }
        }
        Ok(())
    }

    /// A lab daemon exactly as `lab up` starts it: under libfaketime with the
    /// node's control file, in a session of its own, output to the node's dir.
    fn spawn_lab_daemon(&self, dir: &Path, program: &str, args: &[&str]) -> Result<(), String> {
        let preload = [
            "/usr/lib/x86_64-linux-gnu",
            "/usr/lib/aarch64-linux-gnu",
            "/usr/lib64",
            "/usr/lib",
        ]
        .iter()
        .map(|d| Path::new(d).join("faketime/libfaketime.so.1"))
        .find(|p| p.is_file())
        .ok_or("libfaketime is missing (Debian package libfaketime)")?;
        let log = std::fs::File::create(dir.join(format!("{program}.out")))
            .map_err(|e| format!("cannot write {program}.out: {e}"))?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = command(program);
        cmd.args(args)
            .env("LD_PRELOAD", &preload)
            .env("FAKETIME_TIMESTAMP_FILE", dir.join("faketime"))
            .env("FAKETIME_NO_CACHE", "1")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        // The daemon must outlive the agent and not share its session.
        spawn_detached(&mut cmd, program)
    }

    /// The libfaketime control file of a lab node.
    pub fn faketime_file(&self) -> Option<PathBuf> {
        match &self.kind {
            NodeKind::Lab { dir } => Some(dir.join("faketime")),
            NodeKind::Real => None,
        }
    }
}

/// A command for the node. The agent blocks SIGTERM, SIGINT and SIGHUP in
/// all its threads (one thread takes them with sigwait), and a child
/// inherits the mask across exec: without this reset, a corosync started by
/// the agent could never be stopped with SIGTERM.
pub fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    // SAFETY: pthread_sigmask is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::signal::SigSet::empty().thread_set_mask()?;
            Ok(())
        });
    }
    cmd
}

/// Starts a process in a session of its own, meant to outlive the agent
/// (a daemon, the agent's guard): the signals and hang-ups that end the
/// agent's session do not reach it. Reaped here if it ends first.
pub fn spawn_detached(cmd: &mut Command, what: &str) -> Result<(), String> {
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()?;
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {what}: {e}"))?;
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    Ok(())
}

pub fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 2..].starts_with('Z')))
        .unwrap_or(true)
}

/// corosync's IPC answers (quorumtool exits 0 quorate, 2 inquorate, 1 when
/// it cannot reach corosync).
pub fn corosync_answers() -> bool {
    // A corosync that is paused or still starting may never answer: ask
    // with a deadline (a rollback waits on this).
    run_within(
        command("corosync-quorumtool").arg("-s"),
        Duration::from_secs(2),
    )
    .is_ok_and(|f| f.status.code() != Some(1))
}

pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> Result<(), ()> {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn run_ok(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{:?} {:?}: {} {}",
            cmd.get_program(),
            cmd.get_args().collect::<Vec<_>>(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

pub fn run_output(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{:?}: {} {}",
            cmd.get_program(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// What a command run with a deadline left.
pub struct Finished {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a command in a process group of its own and waits at most `limit`:
/// a tool that asks a paused corosync, or an operator's command that hangs,
/// must not hold the agent. Past the limit the whole group is killed (a
/// shell's children too) and this is an error. Output is read on threads so
/// that a chatty command cannot fill its pipe and stall.
pub fn run_within(cmd: &mut Command, limit: Duration) -> Result<Finished, String> {
    use std::io::Read;
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let read = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut p) = pipe {
                let _ = p.by_ref().take(1024 * 1024).read_to_string(&mut text);
            }
            text
        })
    };
    let out = read(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = read(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let group = nix::unistd::Pid::from_raw(child.id() as i32);
    running_groups().insert(child.id() as i32);
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if Instant::now() >= deadline => {
                break Err(format!("{program} did not finish within {limit:?}: killed"))
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => break Err(format!("waiting for {program}: {e}")),
        }
    };
    // What the group left running would hold the pipes open: it goes too.
    let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    let _ = child.wait();
    running_groups().remove(&(child.id() as i32));
    let status = status?;
    Ok(Finished {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// The process groups `run_within` has running now.
fn running_groups() -> std::sync::MutexGuard<'static, std::collections::BTreeSet<i32>> {
    static RUNNING: std::sync::Mutex<std::collections::BTreeSet<i32>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    RUNNING.lock().unwrap_or_else(|p| p.into_inner())
}

/// Kills every command `run_within` has running (with its children): on
/// every way out of the agent, nothing it started keeps running.
pub fn kill_running() {
    for pgid in running_groups().iter() {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(*pgid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Like `run_output`, with a deadline (for tools that ask corosync).
pub fn run_output_within(cmd: &mut Command, limit: Duration) -> Result<String, String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let f = run_within(cmd, limit)?;
    if f.status.success() {
        Ok(f.stdout)
    } else {
        Err(format!("{program}: {} {}", f.status, f.stderr.trim()))
    }
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// sch_netem is loaded, built in, or available as a module of this kernel.
fn netem_available() -> bool {
    if Path::new("/sys/module/sch_netem").exists() {
        return true;
    }
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    ["modules.dep", "modules.builtin"].iter().any(|f| {
        std::fs::read_to_string(format!("/lib/modules/{release}/{f}"))
            .is_ok_and(|text| text.contains("sch_netem.ko"))
    })
}

fn corosync_version() -> Option<String> {
    let out = command("corosync")
        .arg("-v")
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "Corosync Cluster Engine, version '3.1.7'"
    text.split('\'').nth(1).map(str::to_owned)
}

/// Removes what a dead process left in /dev/shm: libqb's blackbox and IPC
/// files named with its pid, libfaketime's segment and semaphore.
pub fn remove_shm_of(pid: i32) {
    if std::path::Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid) {
        return;
    }
    let Ok(dir) = std::fs::read_dir("/dev/shm") else {
        return;
    };
    let ours = |name: &str| {
        name.starts_with(&format!("qb-corosync-{pid}-blackbox-"))
            || name.starts_with(&format!("qb-{pid}-"))
            || name == format!("faketime_shm_{pid}")
            || name == format!("sem.faketime_sem_{pid}")
    };
    for entry in dir.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if ours(&name) {
            let path = entry.path();
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }
}
