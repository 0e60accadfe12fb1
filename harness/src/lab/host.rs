//! The lab's effects on the machine: namespaces, bridges, veths, mounts and
//! processes. Everything here acts inside the lab's own namespaces or its own
//! directory; nothing is added to the host's network namespace.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

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

/// A lab host's /run is a tmpfs of its own (each corosync takes a pid lock
/// there) named `RUN_SOURCE`, so that `reset_run` can tell it is the node's,
/// with the directories its daemons expect.
const RUN_SOURCE: &str = "corodrill";
const RUN_DIRS: &str = "mkdir -p /run/corosync-qdevice /run/corosync-qnetd /run/sshd";

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
            "mount -t tmpfs -o mode=0755 {RUN_SOURCE} /run && {RUN_DIRS} && \
             hostname {hostname} && mount --bind {} /etc/hosts",
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

    /// Replaces the host's /run with an empty one, as a power cycle does:
    /// whatever its daemons left there (Pacemaker's resource agents keep
    /// their state in /run/resource-agents) must not survive a power-off.
    /// Only for a host with no process left in it.
    pub fn reset_run(&self, host: &str) -> Result<(), LabError> {
        // Emptied in place rather than remounted: between an unmount and
        // a new mount the node would see the machine's own /run. The guard
        // makes sure it is the node's tmpfs that is emptied, and -xdev that
        // nothing mounted below it is entered.
        let script = format!(
            "[ \"$(findmnt -n -o SOURCE --mountpoint /run)\" = {RUN_SOURCE} ] && \
             find /run -xdev -mindepth 1 -delete && {RUN_DIRS}"
        );
        run(
            self.command("sh")?.args(["-c", &script]),
            &format!("emptying /run on {host}"),
        )?;
        Ok(())
    }

    /// Pacemaker's directories on this host: `lib` and `log` (directories
    /// of the lab) bind-mounted over /var/lib/pacemaker and
    /// /var/log/pacemaker inside the host's own mount namespace only (it is
    /// private: nothing propagates to the machine's), and /run/crm, all
    /// owned as Debian's package owns them. Safe to repeat: a directory
    /// already mounted there is left as it is.
    pub fn mount_pacemaker_dirs(&self, host: &str, lib: &Path, log: &Path) -> Result<(), LabError> {
        // Paths go in as arguments, never into the script's text.
        const SCRIPT: &str = r#"set -e
lib=$1 log=$2
mkdir -p "$lib/cib" "$lib/pengine" "$lib/blackbox" "$lib/cores" "$log/bundles" /run/crm
chmod 0755 "$lib"
chown hacluster:haclient "$lib/cib" "$lib/pengine" "$lib/blackbox" "$lib/cores" "$log" "$log/bundles" /run/crm
chmod 0750 "$lib/cib" "$lib/pengine" "$lib/blackbox" "$lib/cores" /run/crm
chmod 0770 "$log" "$log/bundles"
same() { [ "$(stat -c %d:%i "$1")" = "$(stat -c %d:%i "$2")" ]; }
same "$lib" /var/lib/pacemaker || mount --bind "$lib" /var/lib/pacemaker
same "$log" /var/log/pacemaker || mount --bind "$log" /var/log/pacemaker
"#;
        run(
            self.command("sh")?
                .args(["-c", SCRIPT, "sh"])
                .arg(lib)
                .arg(log),
            &format!("preparing Pacemaker's directories on {host}"),
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

/// The start time of each of `pids` that is running, to hand to
/// `remove_shm_leftovers` once they are dead.
pub fn with_start_times(pids: &[i32]) -> Vec<(i32, u64)> {
    pids.iter()
        .filter_map(|&pid| Some((pid, proc_start_time(pid)?.0)))
        .collect()
}

/// Removes what the given processes, now dead, left in the machine's
/// /dev/shm, which lab hosts share with it: libqb keeps IPC rings
/// (`qb-SERVER-CLIENT-...` directories) and blackboxes
/// (`qb-NAME-PID-blackbox-*`, 8 MiB for each corosync) there, libfaketime its
/// shared clock (`faketime_shm_PID`, `sem.faketime_sem_PID`); a SIGKILLed
/// daemon never removes them. An entry goes only if its name carries one of
/// the pids *and* it was written after that process started: pids wrap
/// around, and an older process's leftovers are not the lab's to remove.
/// `procs` are (pid, start time) as `with_start_times` gives them.
/// Returns how many entries were removed.
pub fn remove_shm_leftovers(procs: &[(i32, u64)]) -> usize {
    if procs.is_empty() {
        return 0;
    }
    let Ok(dir) = std::fs::read_dir("/dev/shm") else {
        return 0;
    };
    let started: Vec<(i32, Option<SystemTime>)> = procs
        .iter()
        .map(|&(pid, ticks)| (pid, started_at(ticks)))
        .collect();
    let mut removed = 0;
    for entry in dir.filter_map(|e| e.ok()) {
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let owners = shm_owner_pids(&name);
        let Ok(modified) = entry.metadata().and_then(|m| m.modified()) else {
            continue;
        };
        // Two seconds of slack: the start time is known to 10 ms, the
        // boot time it is counted from only to the second.
        let ours = started.iter().any(|(pid, start)| {
            owners.contains(pid) && start.is_some_and(|s| modified + Duration::from_secs(2) >= s)
        });
        if !ours {
            continue;
        }
        let path = entry.path();
        let gone = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        if gone.is_ok() {
            removed += 1;
        }
    }
    removed
}

/// /proc/PID/stat counts in USER_HZ, which is 100 on Linux's architectures.
const USER_HZ: f64 = 100.0;

/// When a process started, on the wall clock, from its start time in
/// clock ticks since boot.
fn started_at(start_ticks: u64) -> Option<SystemTime> {
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let age = (uptime - start_ticks as f64 / USER_HZ).max(0.0);
    // /proc/uptime is text: "inf" parses, and from_secs_f64 would panic.
    SystemTime::now().checked_sub(Duration::try_from_secs_f64(age).ok()?)
}

/// The pids a /dev/shm entry belongs to, from libqb's and libfaketime's
/// naming; none for a name of anything else.
fn shm_owner_pids(name: &str) -> Vec<i32> {
    let pid = |s: &str| s.parse::<i32>().ok().filter(|&p| p > 0);
    if let Some(p) = name
        .strip_prefix("faketime_shm_")
        .or_else(|| name.strip_prefix("sem.faketime_sem_"))
    {
        return pid(p).into_iter().collect();
    }
    let Some(rest) = name.strip_prefix("qb-") else {
        return Vec::new();
    };
    // qb-NAME-PID-blackbox-data / -header (NAME may hold dashes).
    if let Some(head) = rest
        .strip_suffix("-blackbox-data")
        .or_else(|| rest.strip_suffix("-blackbox-header"))
    {
        return head.rsplit('-').next().and_then(pid).into_iter().collect();
    }
    // qb-SERVERPID-CLIENTPID-CONNECTION-RANDOM: an IPC connection's rings.
    let parts: Vec<&str> = rest.split('-').collect();
    if parts.len() == 4 && parts[2].chars().all(|c| c.is_ascii_digit()) {
        if let (Some(server), Some(client)) = (pid(parts[0]), pid(parts[1])) {
            return vec![server, client];
        }
    }
    Vec::new()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_start_time_on_the_wall_clock() {
        let (start, _) = proc_start_time(std::process::id() as i32).unwrap();
        let at = started_at(start).unwrap();
        let age = SystemTime::now().duration_since(at).unwrap_or_default();
        // This test process started moments ago.
        assert!(age < Duration::from_secs(600), "{age:?}");
    }

    #[test]
    fn shm_names_and_their_pids() {
        assert_eq!(shm_owner_pids("faketime_shm_1002"), [1002]);
        assert_eq!(shm_owner_pids("sem.faketime_sem_77"), [77]);
        assert_eq!(shm_owner_pids("qb-corosync-9974-blackbox-data"), [9974]);
        assert_eq!(
            shm_owner_pids("qb-pacemaker-based-12-blackbox-header"),
            [12]
        );
        assert_eq!(shm_owner_pids("qb-10077-10390-33-A9gh8S"), [10077, 10390]);
        for other in [
            "qb-corosync-x-blackbox-data",
            "qb-10077-10390-A9gh8S",
            "qb-a-b-33-c",
            "faketime_shm_",
            "pulse-shm-123",
            "sem.other_1",
        ] {
            assert!(shm_owner_pids(other).is_empty(), "{other}");
        }
    }
}
