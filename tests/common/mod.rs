//! Shared by the end-to-end tests: labs with unique names that are taken
//! down when a test ends, passed or failed, and corosync's own tools run
//! inside a lab node.
#![allow(dead_code)]

pub mod chaos;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

pub const CORODRILL: &str = env!("CARGO_BIN_EXE_corodrill");

pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the lab tests need root (network namespaces, corosync): run them as root, as CI does"
    );
    let agent = std::path::Path::new(CORODRILL).with_file_name("corodrill-agent");
    assert!(
        agent.is_file(),
        "{} is not built: `cargo test` does not build other packages' binaries; \
         run `cargo build --workspace` first (`make test` does)",
        agent.display()
    );
}

/// A name no other test (or concurrent test run) uses, within the 9
/// characters a lab name may have.
pub fn unique_name() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("t{:05x}{n}", std::process::id() & 0xfffff)
}

pub fn corodrill(args: &[&str]) -> Output {
    Command::new(CORODRILL)
        .args(args)
        .output()
        .expect("cannot run corodrill")
}

pub fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A lab that is taken down when the test ends, passed or failed.
pub struct TestLab {
    pub name: String,
}

impl TestLab {
    pub fn up(extra: &[&str]) -> TestLab {
        require_root();
        let lab = TestLab {
            name: unique_name(),
        };
        let mut args = vec!["lab", "up", "--name", &lab.name];
        args.extend_from_slice(extra);
        let out = corodrill(&args);
        assert!(
            out.status.success(),
            "lab up {extra:?} failed: {}",
            text(&out)
        );
        lab
    }

    pub fn netns(&self, host: &str) -> String {
        format!("{}-{host}", self.name)
    }

    /// A corosync tool run with plain `ip netns exec`: corosync's IPC is
    /// reachable from the node's network namespace alone.
    pub fn tool(&self, node: &str, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.netns(node)])
            .args(args)
            .output()
            .expect("cannot run ip netns exec");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn down(&self) -> Output {
        corodrill(&["lab", "down", "--name", &self.name])
    }

    /// A node's corosync links (`ringN`) as `ip -j link show` prints them:
    /// name, administratively up (the `UP` flag), and operational state.
    pub fn rings(&self, node: &str) -> Vec<(String, bool, String)> {
        let json = self.tool(node, &["ip", "-j", "link", "show"]);
        let links: Vec<serde_json::Value> = serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("{node}: ip -j link show: {e}: {json}"));
        links
            .iter()
            .filter_map(|l| {
                let name = l["ifname"].as_str()?;
                let up = l["flags"]
                    .as_array()
                    .is_some_and(|f| f.iter().any(|f| f == "UP"));
                let state = l["operstate"].as_str().unwrap_or_default();
                name.starts_with("ring")
                    .then(|| (name.to_owned(), up, state.to_owned()))
            })
            .collect()
    }
}

impl Drop for TestLab {
    fn drop(&mut self) {
        let _ = self.down();
    }
}

pub fn field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(key)
                .map(|v| v.trim_start_matches(':').trim())
        })
        .unwrap_or_else(|| panic!("no {key:?} in:\n{text}"))
}

/// Node names in quorumtool's membership table.
pub fn members(text: &str) -> Vec<String> {
    text.lines()
        .skip_while(|l| !l.trim_start().starts_with("Nodeid"))
        .skip(1)
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().filter(|w| *w != "(local)").collect();
            (words.len() >= 3 && words[0] != "0").then(|| words[words.len() - 1].to_owned())
        })
        .collect()
}

/// Nothing of the lab is left: no namespace, mount, directory or process.
pub fn assert_nothing_left(name: &str) {
    let prefix = format!("{name}-");
    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let netns = String::from_utf8_lossy(&netns.stdout);
    assert!(
        !netns.lines().any(|l| l.starts_with(&prefix)),
        "namespaces of {name} left:\n{netns}"
    );
    let dir = format!("/var/lib/corodrill/labs/{name}");
    assert!(!std::path::Path::new(&dir).exists(), "{dir} left");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&dir), "mounts of {dir} left");
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(!cmdline.contains(&dir), "process left: {cmdline}");
    }
}

impl TestLab {
    pub fn dir(&self) -> std::path::PathBuf {
        std::path::PathBuf::from(format!("/var/lib/corodrill/labs/{}", self.name))
    }

    pub fn inventory(&self) -> corodrill::inventory::Inventory {
        let text =
            std::fs::read_to_string(self.dir().join("inventory.toml")).expect("no inventory");
        corodrill::inventory::Inventory::from_toml(&text).expect("bad inventory")
    }

    /// Connects to a node's agent with the inventory's own `connect` line.
    pub fn agent(&self, node: &str) -> corodrill::cluster::agent::AgentConn {
        let inventory = self.inventory();
        let n = inventory
            .nodes
            .iter()
            .find(|n| n.name == node)
            .expect("no such node");
        corodrill::cluster::agent::AgentConn::connect(
            node,
            &n.connect,
            std::time::Duration::from_secs(10),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Waits until every node's corosync-quorumtool shows it quorate with
    /// all `nodes` as members.
    pub fn wait_whole(&self, nodes: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let whole = (1..=nodes).all(|i| {
                let s = self.tool(&format!("pve{i}"), &["corosync-quorumtool", "-s"]);
                s.contains("Quorate:          Yes") && members(&s).len() == nodes
            });
            if whole {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "lab {} not whole after 30 s",
                self.name
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

/// Where `scratch(name)` is.
pub fn scratch_path(name: &str) -> PathBuf {
    // Under the build's target/tmp, not the machine's /tmp: what a passed
    // test leaves goes with the build.
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("corodrill-test-{}-{name}", std::process::id()))
}

/// A fresh, empty scratch directory for one test's files.
pub fn scratch(name: &str) -> PathBuf {
    let dir = scratch_path(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// No corodrill table or rate limit left on any node, and the cluster whole.
pub fn lab_clean(lab: &TestLab, nodes: usize) {
    for i in 1..=nodes {
        let node = format!("pve{i}");
        let ruleset = lab.tool(&node, &["nft", "list", "ruleset"]);
        assert!(!ruleset.contains("corodrill"), "{node}: {ruleset}");
        let qdiscs = lab.tool(&node, &["tc", "qdisc", "show"]);
        assert!(
            !qdiscs.contains("tbf") && !qdiscs.contains("netem"),
            "{node}: {qdiscs}"
        );
    }
    lab.wait_whole(nodes);
}

/// The HA configuration of the drills test's fencing foresight, staged on every
/// node, and the 62 s isolate that would get pve3 reset by its watchdog.
/// Returns the drill file and a scratch directory.
pub fn stage_ha(lab: &TestLab) -> (PathBuf, PathBuf) {
    for node in ["pve1", "pve2", "pve3"] {
        let ha = lab.dir().join(node).join("etc/pve/ha");
        std::fs::create_dir_all(&ha).unwrap();
        std::fs::write(ha.join("resources.cfg"), "vm: 100\n\tstate started\n").unwrap();
    }
    let dir = scratch(&format!("{}-fencing", lab.name));
    let file = dir.join("long-cut.toml");
    std::fs::write(
        &file,
        r#"name = "long-cut"
nodes = 3

[[fault]]
id = "cut"
kind = "isolate"
nodes = ["pve3"]
heal_after = "62s"

[[expect]]
name = "pve3 loses quorum"
after = "cut"
nodes = ["pve3"]
quorate = false
within = "10s"
"#,
    )
    .unwrap();
    (file, dir)
}

pub fn unstage_ha(lab: &TestLab) {
    for node in ["pve1", "pve2", "pve3"] {
        std::fs::remove_dir_all(lab.dir().join(node).join("etc")).unwrap();
    }
}
