//! The lab's effects on the machine: namespaces, bridges, veths, mounts and
//! processes. Everything here acts inside the lab's own namespaces or its own
//! directory; nothing is added to the host's network namespace.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::LabError;

/// Runs a command to completion; its stderr becomes the error on failure.
pub fn run(cmd: &mut Command, what: &str) -> Result<String, LabError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| LabError::io(format!("{what}: cannot run {:?}", cmd.get_program()), e))?;
    if !out.status.success() {
        return Err(LabError::Failed(format!(
            "{what}: {} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Feeds `ip -n NETNS -batch -` one script: one process for many changes.
pub fn ip_batch(netns: &str, script: &str, what: &str) -> Result<(), LabError> {
    let mut child = Command::new("ip")
        .args(["-n", netns, "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| LabError::io(format!("{what}: cannot run ip"), e))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| LabError::io(format!("{what}: writing to ip -batch"), e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| LabError::io(format!("{what}: waiting for ip"), e))?;
    if !out.status.success() {
        return Err(LabError::Failed(format!(
            "{what}: ip -batch: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

pub fn netns_path(netns: &str) -> PathBuf {
    Path::new("/run/netns").join(netns)
}

pub fn netns_exists(netns: &str) -> bool {
    netns_path(netns).exists()
}

pub fn add_netns(netns: &str) -> Result<(), LabError> {
    run(
        Command::new("ip").args(["netns", "add", netns]),
        "creating network namespace",
    )?;
    run(
        Command::new("ip").args(["-n", netns, "link", "set", "lo", "up"]),
        "bringing lo up",
    )?;
    Ok(())
}

/// Deletes a network namespace; a missing one is already deleted.
pub fn delete_netns(netns: &str) -> Result<(), LabError> {
    if !netns_exists(netns) {
        return Ok(());
    }
    run(
        Command::new("ip").args(["netns", "delete", netns]),
        "deleting network namespace",
    )?;
    Ok(())
}

pub fn list_netns() -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Bind-mounts `dir` onto itself with private propagation. Namespace files
/// can only be bind-mounted (by `unshare --mount=FILE`) onto a private mount.
pub fn make_private_mount(dir: &Path) -> Result<(), LabError> {
    mount(Some(dir), dir, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .map_err(|e| LabError::io(format!("bind-mounting {}", dir.display()), e.into()))?;
    mount(
        None::<&str>,
        dir,
        None::<&str>,
        MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| {
        LabError::io(
            format!("making {} a private mount", dir.display()),
            e.into(),
        )
    })?;
    Ok(())
}

/// Detaches whatever is mounted on `path`; nothing mounted is fine.
pub fn unmount(path: &Path) {
    while umount2(path, MntFlags::MNT_DETACH).is_ok() {}
}

/// The three namespaces of a lab host: network (from `ip netns`), and a
/// mount and a UTS namespace kept alive by files in the lab's directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostNamespaces {
    pub net: PathBuf,
    pub mnt: PathBuf,
    pub uts: PathBuf,
}

impl HostNamespaces {
    /// Makes the mount namespace (a tmpfs on /run, holding the run
    /// directories corosync and its tools lock and listen in, and sshd's
    /// privilege-separation directory) and the UTS
    /// namespace (hostname = the host's name).
    pub fn create(&self, hostname: &str, hosts_file: &Path) -> Result<(), LabError> {
        for file in [&self.mnt, &self.uts] {
            File::create(file)
                .map_err(|e| LabError::io(format!("creating {}", file.display()), e))?;
        }
        // The lab's /etc/hosts names every node, as Proxmox VE's does.
        let script = format!(
            "mount -t tmpfs -o mode=0755 corodrill /run && \
             mkdir -p /run/corosync-qdevice /run/corosync-qnetd /run/sshd && hostname {hostname} && \
             mount --bind {} /etc/hosts",
            hosts_file.display()
        );
        run(
            Command::new("unshare")
                .arg(format!("--mount={}", self.mnt.display()))
                .arg(format!("--uts={}", self.uts.display()))
                .args(["--propagation", "private", "sh", "-c", &script]),
            &format!("creating the mount and UTS namespaces of {hostname}"),
        )?;
        Ok(())
    }

    /// A command that runs inside all three namespaces, in a session of its
    /// own (so a Ctrl-C at the terminal that ran `lab up` does not reach it).
    pub fn command(&self, program: &str) -> Result<Command, LabError> {
        self.command_in(program, true)
    }

    /// Same, in the caller's session: for `lab exec`, whose command belongs
    /// to the caller's terminal.
    pub fn foreground_command(&self, program: &str) -> Result<Command, LabError> {
        self.command_in(program, false)
    }

    fn command_in(&self, program: &str, new_session: bool) -> Result<Command, LabError> {
        let open = |p: &Path| {
            File::open(p).map_err(|e| LabError::io(format!("opening {}", p.display()), e))
        };
        let (net, mnt, uts) = (open(&self.net)?, open(&self.mnt)?, open(&self.uts)?);
        let mut cmd = Command::new(program);
        // SAFETY: between fork and exec this only makes async-signal-safe
        // system calls (setns, setsid) on descriptors opened before the fork.
        unsafe {
            cmd.pre_exec(move || {
                setns(&net, CloneFlags::CLONE_NEWNET)?;
                setns(&mnt, CloneFlags::CLONE_NEWNS)?;
                setns(&uts, CloneFlags::CLONE_NEWUTS)?;
                if new_session {
                    nix::unistd::setsid()?;
                }
                Ok(())
            });
        }
        Ok(cmd)
    }

    /// The shell command that enters these namespaces: what the inventory's
    /// `connect` runs.
    pub fn nsenter_prefix(&self) -> String {
        format!(
            "nsenter --net={} --mount={} --uts={} --",
            self.net.display(),
            self.mnt.display(),
            self.uts.display()
        )
    }
}

/// A process the lab started, identified by pid *and* start time so that a
/// recycled pid is never mistaken for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabProcess {
    pub host: String,
    pub program: String,
    pub pid: i32,
    pub start_time: u64,
}

impl LabProcess {
    pub fn is_alive(&self) -> bool {
        proc_start_time(self.pid).is_some_and(|(start, zombie)| start == self.start_time && !zombie)
    }
}

/// Starts a long-lived daemon inside a host's namespaces, its output in `log`.
pub fn spawn_daemon(
    ns: &HostNamespaces,
    host: &str,
    program: &str,
    args: &[&str],
    envs: &[(&str, &str)],
    log: &Path,
) -> Result<LabProcess, LabError> {
    let out =
        File::create(log).map_err(|e| LabError::io(format!("creating {}", log.display()), e))?;
    let err = out
        .try_clone()
        .map_err(|e| LabError::io(format!("opening {}", log.display()), e))?;
    let child = ns
        .command(program)?
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| LabError::io(format!("starting {program} on {host}"), e))?;
    let pid = child.id() as i32;
    let start_time = proc_start_time(pid).map(|(s, _)| s).unwrap_or(0);
    Ok(LabProcess {
        host: host.to_owned(),
        program: program.to_owned(),
        pid,
        start_time,
    })
}

/// (start time in clock ticks since boot, is a zombie) from /proc/PID/stat.
pub fn proc_start_time(pid: i32) -> Option<(u64, bool)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields
    // after it are counted from the last ')'.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let state = *fields.first()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((start, state == "Z"))
}

/// The kernel's name of a process (`comm`, at most 15 bytes).
pub fn process_name(pid: i32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim_end().to_owned())
}

/// Pids of every process whose network or mount namespace is one of `files`
/// (compared by device and inode, never by process name).
pub fn processes_in(files: &[&Path]) -> Vec<i32> {
    let wanted: Vec<(u64, u64)> = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| (m.dev(), m.ino()))
        .collect();
    if wanted.is_empty() {
        return Vec::new();
    }
    let Ok(proc_dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let own = std::process::id() as i32;
    proc_dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != own)
        .filter(|pid| {
            ["net", "mnt"].iter().any(|ns| {
                std::fs::metadata(format!("/proc/{pid}/ns/{ns}"))
                    .is_ok_and(|m| wanted.contains(&(m.dev(), m.ino())))
            })
        })
        .collect()
}

/// SIGKILLs the given pids and waits (up to `timeout`) until they are gone,
/// reaping those that are our own children. The lab is thrown away, so
/// nothing needs a graceful exit.
pub fn kill_and_wait(pids: &[i32], timeout: Duration) -> Vec<i32> {
    for &pid in pids {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let deadline = Instant::now() + timeout;
    loop {
        let alive: Vec<i32> = pids
            .iter()
            .copied()
            .filter(|&pid| {
                let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
                proc_start_time(pid).is_some_and(|(_, zombie)| !zombie)
            })
            .collect();
        if alive.is_empty() || Instant::now() >= deadline {
            return alive;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn write_file(path: &Path, contents: &[u8]) -> Result<(), LabError> {
    std::fs::write(path, contents)
        .map_err(|e| LabError::io(format!("writing {}", path.display()), e))
}

pub fn create_dir(path: &Path) -> Result<(), LabError> {
    std::fs::create_dir_all(path)
        .map_err(|e| LabError::io(format!("creating {}", path.display()), e))
}

/// 256 random bytes, as `corosync-keygen` makes, readable by root only.
pub fn write_authkey(path: &Path) -> Result<(), LabError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut key = [0u8; 256];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut key))
        .map_err(|e| LabError::io("reading /dev/urandom", e))?;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o400)
        .open(path)
        .and_then(|mut f| f.write_all(&key))
        .map_err(|e| LabError::io(format!("writing {}", path.display()), e))
}

/// Finds a program on PATH, as `Command` will when it starts it (root's PATH
/// includes /usr/sbin, where corosync lives).
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}
