//! Chaos rounds: a drill that holds every kind of fault an agent applies,
//! and something that dies, hangs or runs beside it at a random moment.
//! Each round checks that the faults were in place until that moment, and
//! that afterwards no node keeps any of them and the cluster is whole.
//! Shared by the chaos test (a few rounds in CI) and the chaos bench (100
//! rounds of each case, with the times).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{TestLab, CORODRILL};

/// What is done to the drill while its faults are in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// (a) SIGKILL of the controller.
    KillController,
    /// (b) SIGKILL of pve1's agent.
    KillAgent,
    /// (c) SIGSTOP of the controller (its leases run out), then SIGKILL.
    StopController,
    /// (d) `corodrill heal` while pve1's corosync is paused by the drill.
    HealPaused,
    /// (e) `corodrill status` and `preflight` beside the running drill.
    Beside,
    /// (f) pve2's ssh connection dropped (its sshd session killed).
    DropSsh,
    /// (g) SIGINT of the controller.
    Interrupt,
}

pub const CASES: [Case; 7] = [
    Case::KillController,
    Case::KillAgent,
    Case::StopController,
    Case::HealPaused,
    Case::Beside,
    Case::DropSsh,
    Case::Interrupt,
];

/// The drill's name, as `heal` must say it.
pub const DRILL: &str = "chaos-every-fault";

/// A drill on pve1..pve3 holding every fault kind an agent applies, each
/// for `hold`; pve3 is cut off and its link taken down, pve1's link is
/// degraded and its corosync paused, pve2's clock is five minutes ahead
/// and an operator command has left a marker file.
pub fn every_fault_drill(dir: &Path, hold: Duration) -> PathBuf {
    let s = hold.as_secs();
    let marker = marker(dir);
    let m = marker.display();
    let text = format!(
        r#"name = "{DRILL}"
nodes = 3

[[fault]]
id = "split"
kind = "partition"
groups = [["pve1", "pve2"], ["pve3"]]
heal_after = "{s}s"

[[fault]]
id = "slow"
kind = "degrade"
nodes = ["pve1"]
delay = "30ms"
rate = "10mbit"
heal_after = "{s}s"

[[fault]]
id = "skew"
kind = "clock-skew"
nodes = ["pve2"]
offset = "+5m"
heal_after = "{s}s"

[[fault]]
id = "down"
kind = "link-down"
nodes = ["pve3"]
link = 0
heal_after = "{s}s"

[[fault]]
id = "freeze"
kind = "pause"
nodes = ["pve1"]
at = "500ms"
heal_after = "{s}s"

[[fault]]
id = "mark"
kind = "command"
nodes = ["pve2"]
run = "touch {m}"
undo = "rm -f {m}"
heal_after = "{s}s"

[[expect]]
name = "whole after the heal"
after = "split.healed"
nodes = "all"
quorate = true
members = "all"
within = "60s"
"#
    );
    let file = dir.join("every-fault.toml");
    std::fs::write(&file, text).expect("cannot write the chaos drill");
    file
}

fn marker(dir: &Path) -> PathBuf {
    dir.join("command-ran")
}

/// `corodrill run` of the drill, in the background, its output to a file.
pub fn start_drill(lab: &TestLab, drill: &Path, out: &Path, json: &Path) -> Child {
    let log = std::fs::File::create(out).expect("cannot create the drill's log");
    let err = log.try_clone().expect("cannot clone a file handle");
    Command::new(CORODRILL)
        .arg("run")
        .arg(drill)
        .arg("--inventory")
        .arg(lab.dir().join("inventory.toml"))
        .arg("--json")
        .arg(json)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .spawn()
        .expect("cannot run corodrill")
}

/// The processes in a lab node's network namespace: (pid, comm, state, cmdline).
pub fn node_processes(lab: &TestLab, node: &str) -> Vec<(i32, String, char, String)> {
    use std::os::unix::fs::MetadataExt;
    let Ok(ns) = std::fs::metadata(format!("/run/netns/{}", lab.netns(node))) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let same = std::fs::metadata(format!("/proc/{pid}/ns/net"))
            .is_ok_and(|m| (m.dev(), m.ino()) == (ns.dev(), ns.ino()));
        if !same {
            continue;
        }
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rfind(')')
            .and_then(|i| stat[i + 2..].chars().next())
            .unwrap_or('?');
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        found.push((pid, comm.trim_end().to_owned(), state, cmdline));
    }
    found
}

/// The agent serving the controller on `node` (not its guard).
pub fn agent_pid(lab: &TestLab, node: &str) -> Option<i32> {
    node_processes(lab, node)
        .into_iter()
        .find(|(_, comm, state, cmd)| {
            comm == "corodrill-agent" && cmd.contains("--stdio") && *state != 'Z'
        })
        .map(|(pid, ..)| pid)
}

fn parent(pid: i32) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .and_then(|p| p.trim().parse().ok())
}

/// The sshd session process that serves `node`'s agent.
pub fn sshd_session(lab: &TestLab, node: &str) -> Option<i32> {
    let mut pid = agent_pid(lab, node)?;
    for _ in 0..4 {
        pid = parent(pid)?;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim_end() == "sshd" {
            return Some(pid);
        }
    }
    None
}

fn faketime(lab: &TestLab, node: &str) -> String {
    std::fs::read_to_string(lab.dir().join(node).join("faketime"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Which of the drill's faults are not (or not yet) in place.
pub fn faults_missing(lab: &TestLab, dir: &Path) -> Vec<String> {
    let mut missing = Vec::new();
    for node in ["pve1", "pve2", "pve3"] {
        if !lab
            .tool(node, &["nft", "list", "tables"])
            .contains("corodrill")
        {
            missing.push(format!("{node}: the cut (no corodrill table)"));
        }
    }
    if !lab.tool("pve1", &["tc", "qdisc", "show"]).contains("tbf") {
        missing.push("pve1: the rate limit (no tbf qdisc)".into());
    }
    if !lab
        .tool("pve1", &["iptables-legacy", "-t", "mangle", "-S"])
        .contains("NFQUEUE")
    {
        missing.push("pve1: the delay line (no NFQUEUE rule)".into());
    }
    let paused = node_processes(lab, "pve1")
        .iter()
        .any(|(_, comm, state, _)| comm == "corosync" && *state == 'T');
    if !paused {
        missing.push("pve1: the pause (corosync not stopped)".into());
    }
    if faketime(lab, "pve2") != "+300s" {
        missing.push(format!(
            "pve2: the clock skew (faketime {})",
            faketime(lab, "pve2")
        ));
    }
    if !marker(dir).exists() {
        missing.push("pve2: the command's marker".into());
    }
    if lab
        .rings("pve3")
        .iter()
        .any(|(ring, _, state)| ring == "ring0" && state == "UP")
    {
        missing.push("pve3: the link-down (ring0 is up)".into());
    }
    missing
}

/// Everything of any fault, or of corodrill, still on the lab's nodes.
pub fn leftovers(lab: &TestLab, dir: &Path) -> Vec<String> {
    left_on(lab, dir, true)
}

/// What is left of the faults on one node.
fn faults_left_on(lab: &TestLab, dir: &Path, node: &str) -> Vec<String> {
    let prefix = format!("{node}:");
    faults_left(lab, dir)
        .into_iter()
        .filter(|l| l.starts_with(&prefix))
        .collect()
}

/// What is left of the faults alone (agents may rightly still run).
pub fn faults_left(lab: &TestLab, dir: &Path) -> Vec<String> {
    left_on(lab, dir, false)
}

fn left_on(lab: &TestLab, dir: &Path, agents_too: bool) -> Vec<String> {
    let mut left = Vec::new();
    for node in ["pve1", "pve2", "pve3"] {
        let tables = lab.tool(node, &["nft", "list", "tables"]);
        if tables.contains("corodrill") {
            left.push(format!("{node}: nft {}", tables.trim()));
        }
        let qdiscs = lab.tool(node, &["tc", "qdisc", "show"]);
        for kind in ["tbf", "htb", "netem", "ingress"] {
            if qdiscs.contains(&format!("qdisc {kind}")) {
                left.push(format!("{node}: qdisc {kind}"));
            }
        }
        let rules = lab.tool(node, &["iptables-legacy", "-t", "mangle", "-S"]);
        if rules.contains("NFQUEUE") || rules.contains("CORODRILL") {
            left.push(format!("{node}: iptables {}", rules.trim()));
        }
        for (ring, _, state) in lab.rings(node) {
            if state != "UP" {
                left.push(format!("{node}: link down: {ring} ({state})"));
            }
        }
        let offset = faketime(lab, node);
        if offset != "+0s" && !offset.is_empty() {
            left.push(format!("{node}: clock offset {offset}"));
        }
        for (pid, comm, state, cmd) in node_processes(lab, node) {
            if state == 'T' {
                left.push(format!("{node}: {comm} ({pid}) stopped"));
            }
            if agents_too && comm == "corodrill-agent" && state != 'Z' {
                left.push(format!("{node}: agent process {pid}: {cmd}"));
            }
        }
    }
    for entry in std::fs::read_dir("/dev/shm")
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        // A corosync blackbox whose process is gone (a lab's live corosyncs keep theirs).
        if let Some(pid) = name
            .strip_prefix("qb-corosync-")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<i32>().ok())
        {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                left.push(format!("/dev/shm/{name}"));
            }
        }
    }
    if marker(dir).exists() {
        left.push("pve2: the command's marker (its undo did not run)".into());
    }
    left
}

/// Waits until nothing is left; how long that took. Panics naming what is
/// left at `within`.
pub fn wait_clean(lab: &TestLab, dir: &Path, within: Duration, what: &str) -> Duration {
    wait_until_none(within, what, || leftovers(lab, dir))
}

/// Waits until `left()` is empty; how long that took.
fn wait_until_none(within: Duration, what: &str, left: impl Fn() -> Vec<String>) -> Duration {
    let started = Instant::now();
    loop {
        let left = left();
        if left.is_empty() {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{what}: {:?} later, still left:\n  {}",
            started.elapsed(),
            left.join("\n  ")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_faults(lab: &TestLab, dir: &Path, log: &Path) {
    let started = Instant::now();
    loop {
        let missing = faults_missing(lab, dir);
        if missing.is_empty() {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "the drill's faults never were all in place: {}\n{}",
            missing.join("; "),
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_exit(child: &mut Child, within: Duration) -> Option<i32> {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status.code().unwrap_or(-1));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(pid: i32, s: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), s);
}

/// What one round measured.
#[derive(Debug, Clone, Copy)]
pub struct Round {
    pub case: Case,
    /// From the death (or the heal, or the interrupt) until no node kept any
    /// fault; for `Beside`, how long status and preflight took.
    pub to_clean: Duration,
    /// For `Interrupt`: from SIGINT until the controller exited.
    pub to_exit: Option<Duration>,
}

/// One round of `case` on `lab` (3 nodes; `DropSsh` needs `--ssh`), the
/// chaos striking `delay` after every fault is in place.
pub fn round(lab: &TestLab, dir: &Path, case: Case, delay: Duration) -> Round {
    use nix::sys::signal::Signal;
    let _ = std::fs::remove_file(marker(dir));
    let hold = if case == Case::Beside {
        Duration::from_secs(30)
    } else {
        Duration::from_secs(60)
    };
    let drill = every_fault_drill(dir, hold);
    let log = dir.join("drill.log");
    let mut controller = start_drill(lab, &drill, &log, &dir.join("events.jsonl"));
    let pid = controller.id() as i32;
    let show = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_faults(lab, dir, &log);
    std::thread::sleep(delay);
    let missing = faults_missing(lab, dir);
    assert!(
        missing.is_empty(),
        "{case:?}: faults gone before the chaos: {}\n{}",
        missing.join("; "),
        show()
    );
    let struck = Instant::now();
    let mut to_exit = None;
    let to_clean = match case {
        Case::KillController => {
            signal(pid, Signal::SIGKILL);
            let _ = controller.wait();
            wait_clean(
                lab,
                dir,
                Duration::from_secs(15),
                "after SIGKILL of the controller",
            )
        }
        Case::KillAgent => {
            let agent = agent_pid(lab, "pve1").expect("no agent on pve1");
            signal(agent, Signal::SIGKILL);
            // pve1's faults go by its guard, the controller not involved.
            let took = wait_until_none(
                Duration::from_secs(11),
                "pve1 after SIGKILL of its agent",
                || faults_left_on(lab, dir, "pve1"),
            );
            let code = wait_exit(&mut controller, Duration::from_secs(120));
            wait_clean(
                lab,
                dir,
                Duration::from_secs(15),
                "after SIGKILL of an agent",
            );
            assert_eq!(code, Some(3), "{case:?}: exit status\n{}", show());
            assert!(show().contains("pve1: its agent was lost"), "{}", show());
            took
        }
        Case::StopController => {
            signal(pid, Signal::SIGSTOP);
            // The agents' leases (10 s) run out while it hangs.
            let took = wait_until_none(
                Duration::from_secs(20),
                "with the controller stopped",
                || faults_left(lab, dir),
            );
            signal(pid, Signal::SIGKILL);
            signal(pid, Signal::SIGCONT);
            let _ = controller.wait();
            wait_clean(
                lab,
                dir,
                Duration::from_secs(15),
                "after SIGKILL of the stopped controller",
            );
            took
        }
        Case::HealPaused => {
            let heal = Command::new(CORODRILL)
                .arg("heal")
                .arg("--inventory")
                .arg(lab.dir().join("inventory.toml"))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("cannot run corodrill heal");
            // The faults go while heal still checks the cluster whole.
            let took = wait_until_none(Duration::from_secs(15), "after corodrill heal", || {
                faults_left(lab, dir)
            });
            let heal = heal.wait_with_output().expect("corodrill heal");
            wait_clean(lab, dir, Duration::from_secs(15), "after corodrill heal");
            let said = super::text(&heal);
            assert_eq!(heal.status.code(), Some(0), "{said}");
            assert!(
                said.contains(DRILL),
                "heal did not say whose faults it ended:\n{said}"
            );
            assert!(said.contains("freeze (pause)"), "{said}");
            let code = wait_exit(&mut controller, Duration::from_secs(120));
            assert_eq!(code, Some(3), "the drill after a heal\n{}", show());
            took
        }
        Case::Beside => {
            let inventory = lab.dir().join("inventory.toml").display().to_string();
            let mut took = Duration::ZERO;
            for command in ["status", "preflight"] {
                let started = Instant::now();
                let out = super::corodrill(&[command, "--inventory", &inventory]);
                took += started.elapsed();
                let missing = faults_missing(lab, dir);
                assert!(
                    missing.is_empty(),
                    "{command} beside a drill undid its faults ({:.1}s after the drill's faults were in place): {}\n{}",
                    (struck.elapsed() + delay).as_secs_f64(),
                    missing.join("; "),
                    super::text(&out)
                );
                if command == "status" {
                    // It observed every node (what each shows depends on
                    // whether corosync has noticed the faults yet).
                    let said = super::text(&out);
                    for node in ["pve1", "pve2", "pve3"] {
                        assert!(said.lines().any(|l| l.starts_with(node)), "{said}");
                    }
                }
            }
            let code = wait_exit(&mut controller, Duration::from_secs(180));
            assert_eq!(code, Some(0), "the drill beside status\n{}", show());
            wait_clean(lab, dir, Duration::from_secs(15), "after the drill");
            took
        }
        Case::DropSsh => {
            let session = sshd_session(lab, "pve2").expect("pve2's agent is not under sshd");
            signal(session, Signal::SIGKILL);
            let took = wait_until_none(Duration::from_secs(11), "pve2 after its ssh drop", || {
                faults_left_on(lab, dir, "pve2")
            });
            let code = wait_exit(&mut controller, Duration::from_secs(120));
            wait_clean(lab, dir, Duration::from_secs(15), "after the ssh drop");
            assert_eq!(code, Some(3), "{case:?}: exit status\n{}", show());
            assert!(show().contains("pve2: its agent was lost"), "{}", show());
            took
        }
        Case::Interrupt => {
            signal(pid, Signal::SIGINT);
            let code = wait_exit(&mut controller, Duration::from_secs(60));
            to_exit = Some(struck.elapsed());
            if std::env::var_os("CORODRILL_CHAOS_VERBOSE").is_some() {
                eprintln!("{}", show());
                eprintln!(
                    "{}",
                    std::fs::read_to_string(dir.join("events.jsonl")).unwrap_or_default()
                );
            }
            assert_eq!(code, Some(130), "{case:?}: exit status\n{}", show());
            // The controller said whole from live views: corosync agrees now.
            assert!(!show().contains("not whole"), "after Ctrl-C:\n{}", show());
            wait_clean(lab, dir, Duration::from_secs(1), "after Ctrl-C")
        }
    };
    // Every case ends with the cluster whole again, by corosync's own tools.
    lab.wait_whole(3);
    Round {
        case,
        to_clean,
        to_exit,
    }
}
