//! End-to-end tests of the network-namespace lab, run as a user would run
//! `corodrill lab ...`, and checked with corosync's own tools inside the
//! namespaces, independently of corodrill's view.
//!
//! They need root and Debian's corosync packages; without them they fail
//! with the reason, never pass quietly. Each test names its labs uniquely and
//! removes them even when it fails.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn two_three_node_labs_at_once_then_down_leaves_nothing() {
    require_root();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| TestLab::up(&[]));
        let b = s.spawn(|| TestLab::up(&[]));
        (a.join().unwrap(), b.join().unwrap())
    });
    for lab in [&a, &b] {
        for node in ["pve1", "pve2", "pve3"] {
            let status = lab.tool(node, &["corosync-quorumtool", "-s"]);
            assert_eq!(
                field(&status, "Quorate"),
                "Yes",
                "{}/{node}:\n{status}",
                lab.name
            );
            assert_eq!(
                members(&status),
                ["pve1", "pve2", "pve3"],
                "{}/{node}",
                lab.name
            );
            assert_eq!(field(&status, "Total votes"), "3");
        }
    }

    // corodrill's own view agrees, and exec runs inside the node.
    let status = corodrill(&["lab", "status", "--name", &a.name]);
    assert!(status.status.success(), "{}", text(&status));
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert_eq!(stdout.matches("pve1,pve2,pve3").count(), 3, "{stdout}");
    let exec = corodrill(&[
        "lab",
        "exec",
        "--name",
        &a.name,
        "pve2",
        "--",
        "sh",
        "-c",
        "hostname; exit 7",
    ]);
    assert_eq!(exec.status.code(), Some(7), "{}", text(&exec));
    assert_eq!(String::from_utf8_lossy(&exec.stdout).trim(), "pve2");

    // The inventory is there for `corodrill run`.
    let inventory =
        std::fs::read_to_string(format!("/var/lib/corodrill/labs/{}/inventory.toml", a.name))
            .unwrap();
    assert_eq!(inventory.matches("[[node]]").count(), 3, "{inventory}");
    assert!(inventory.contains("driver = \"lab\""), "{inventory}");

    // A name already up is refused before anything is touched.
    let again = corodrill(&["lab", "up", "--name", &a.name]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));

    // Taking one lab down leaves the other whole.
    let down = a.down();
    assert!(down.status.success(), "{}", text(&down));
    assert_nothing_left(&a.name);
    let status = b.tool("pve3", &["corosync-quorumtool", "-s"]);
    assert_eq!(field(&status, "Quorate"), "Yes", "{status}");

    // Down is idempotent.
    let again = a.down();
    assert!(again.status.success(), "{}", text(&again));
    drop(b.down());
    assert_nothing_left(&b.name);
}

#[test]
fn two_nodes_with_qdevice_have_three_votes() {
    let lab = TestLab::up(&["--nodes", "2", "--qdevice"]);
    for node in ["pve1", "pve2"] {
        let status = lab.tool(node, &["corosync-quorumtool", "-s"]);
        assert_eq!(field(&status, "Quorate"), "Yes", "{status}");
        assert_eq!(field(&status, "Total votes"), "3", "{status}");
        assert!(field(&status, "Flags").contains("Qdevice"), "{status}");
    }
    lab.down();
    assert_nothing_left(&lab.name);
}

#[test]
fn two_links_and_two_node_option() {
    let lab = TestLab::up(&[
        "--nodes",
        "2",
        "--links",
        "2",
        "--quorum-option",
        "two_node=1",
    ]);
    for node in ["pve1", "pve2"] {
        let links = lab.tool(node, &["corosync-cfgtool", "-s"]);
        assert!(
            links.contains("LINK ID 0") && links.contains("LINK ID 1"),
            "{links}"
        );
        assert_eq!(links.matches("connected").count(), 2, "{node}:\n{links}");
        let status = lab.tool(node, &["corosync-quorumtool", "-s"]);
        assert!(field(&status, "Flags").contains("2Node"), "{status}");
    }
    lab.down();
    assert_nothing_left(&lab.name);
}

#[test]
fn bad_flags_exit_2_and_touch_nothing() {
    require_root();
    let name = unique_name();
    for args in [
        vec!["--nodes", "0"],
        vec!["--nodes", "33"],
        vec!["--links", "0"],
        vec!["--links", "9"],
        vec!["--quorum-option", "bogus=1"],
        vec!["--quorum-option", "two_node=1"],
        vec!["--token", "x"],
    ] {
        let mut full = vec!["lab", "up", "--name", &name];
        full.extend(args.iter().copied());
        let out = corodrill(&full);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(!out.stderr.is_empty(), "{args:?}: no message");
    }
    for bad_name in ["Lab", "lab-1", "abcdefghij", "x/y", ""] {
        let out = corodrill(&["lab", "up", "--name", bad_name]);
        assert_eq!(out.status.code(), Some(2), "{bad_name:?}: {}", text(&out));
    }
    let out = corodrill(&["lab", "status", "--name", &name]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "status of a lab that is not up: {}",
        text(&out)
    );
    assert_nothing_left(&name);
}

#[test]
fn missing_packages_and_not_root_exit_3() {
    require_root();
    let name = unique_name();
    let out = Command::new(CORODRILL)
        .args(["lab", "up", "--name", &name])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("apt-get install") && stderr.contains("corosync"),
        "{stderr}"
    );

    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            CORODRILL,
            "lab",
            "up",
            "--name",
            &name,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("root"),
        "{}",
        text(&out)
    );
    assert_nothing_left(&name);
}

#[test]
fn down_cleans_up_after_a_killed_lab_up() {
    require_root();
    // Kill `lab up` at several points of its work; each time `lab down`
    // must remove whatever was built.
    for delay_ms in [30u64, 150, 600] {
        let name = unique_name();
        let mut child = Command::new(CORODRILL)
            .args(["lab", "up", "--name", &name, "--nodes", "2", "--qdevice"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        let out = corodrill(&["lab", "down", "--name", &name]);
        assert!(out.status.success(), "after {delay_ms} ms: {}", text(&out));
        assert_nothing_left(&name);
    }
}

#[test]
fn proxmox_profile_runs_with_corosyncs_default_token() {
    let lab = TestLab::up(&["--nodes", "2", "--profile", "proxmox"]);
    let status = lab.tool("pve1", &["corosync-quorumtool", "-s"]);
    assert_eq!(field(&status, "Quorate"), "Yes", "{status}");
    // No totem.token in the file: corosync's 3000 ms default is in force.
    let token = lab.tool(
        "pve1",
        &["corosync-cmapctl", "-g", "runtime.config.totem.token"],
    );
    assert!(token.trim().ends_with("= 3000"), "{token}");
    let coefficient = lab.tool(
        "pve1",
        &["corosync-cmapctl", "-g", "totem.token_coefficient"],
    );
    assert!(coefficient.trim().ends_with("= 125"), "{coefficient}");
    lab.down();
    assert_nothing_left(&lab.name);
}

/// Runs a command inside a lab node, as `corodrill lab exec` does for an
/// operator; returns its stdout.
fn exec(lab: &TestLab, node: &str, command: &[&str]) -> String {
    let mut args = vec!["lab", "exec", "--name", &lab.name, node, "--"];
    args.extend_from_slice(command);
    String::from_utf8_lossy(&corodrill(&args).stdout).into_owned()
}

/// The nodes a resource runs on in `node`'s view, from Pacemaker's own
/// `crm_resource --locate` ("resource svc is running on: pve2", one line
/// per node; "... is NOT running" for none).
fn located(lab: &TestLab, node: &str, resource: &str) -> Vec<String> {
    exec(
        lab,
        node,
        &["crm_resource", "--locate", "--resource", resource],
    )
    .lines()
    .filter_map(|l| l.split_once("is running on:"))
    .map(|(_, on)| on.trim().to_owned())
    .collect()
}

/// Polls `check` every 100 ms until it gives a value or `timeout` passes.
fn poll<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> (T, Duration) {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return (value, start.elapsed());
        }
        assert!(start.elapsed() < timeout, "not within {timeout:?}: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Everything under the machine's own Pacemaker directories.
fn host_pacemaker_files() -> Vec<String> {
    let out = Command::new("find")
        .args(["/var/lib/pacemaker", "/var/log/pacemaker"])
        .output()
        .expect("cannot run find");
    let mut files: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    files.sort();
    files
}

#[test]
fn pacemaker_resource_fails_over_when_its_node_is_powered_off() {
    require_root();
    let host_files = host_pacemaker_files();
    let lab = TestLab::up(&["--pacemaker", "--resource", "svc"]);
    let nodes = ["pve1", "pve2", "pve3"];

    // Started on exactly one node, and every node's Pacemaker says which.
    let mut owner = None;
    for node in nodes {
        let on = located(&lab, node, "svc");
        assert_eq!(on.len(), 1, "{node} sees svc on {on:?}");
        assert_eq!(*owner.get_or_insert(on[0].clone()), on[0], "{node}");
    }
    let owner = owner.unwrap();
    // The bind mounts live only inside the nodes.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(" /var/lib/pacemaker "), "{mounts}");
    assert!(exec(&lab, &owner, &["findmnt", "-n", "/var/lib/pacemaker"])
        .contains(&format!("{}/{owner}/pacemaker/lib", lab.dir().display())));
    // corodrill's status agrees.
    let status = corodrill(&["lab", "status", "--name", &lab.name]);
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(
        stdout.lines().any(|l| l.starts_with("svc ")
            && l.contains("Started")
            && l.trim_end().ends_with(&owner)),
        "{stdout}"
    );

    // Its node loses power: a surviving node's Pacemaker starts it elsewhere.
    let survivor = nodes.iter().find(|n| **n != owner).unwrap();
    let off = corodrill(&["lab", "power", "--name", &lab.name, &owner, "off"]);
    assert!(off.status.success(), "{}", text(&off));
    let (moved_to, took) = poll(
        Duration::from_secs(20),
        "svc moves off the dead node",
        || {
            let on = located(&lab, survivor, "svc");
            (on.len() == 1 && on[0] != owner).then(|| on[0].clone())
        },
    );
    eprintln!("svc moved from {owner} to {moved_to} in {took:.1?}");

    // Power back on: the node rejoins Pacemaker and, the lab placing svc
    // on pve1 (a preference, no stickiness), svc moves back to it and runs
    // on that one node only (a power-off empties /run, where the Dummy
    // agent keeps its state, so the returned node's probe finds it stopped).
    let on = corodrill(&["lab", "power", "--name", &lab.name, &owner, "on"]);
    assert!(on.status.success(), "{}", text(&on));
    let (_, took) = poll(
        Duration::from_secs(45),
        "svc back on its node alone",
        || {
            nodes
                .iter()
                .all(|node| located(&lab, node, "svc") == std::slice::from_ref(&owner))
                .then_some(())
        },
    );
    eprintln!("svc back on {owner} {took:.1?} after power-on (moved to {moved_to} before)");

    let down = lab.down();
    assert!(down.status.success(), "{}", text(&down));
    assert_nothing_left(&lab.name);
    assert_eq!(
        host_pacemaker_files(),
        host_files,
        "the machine's Pacemaker directories changed"
    );
}

#[test]
fn resource_without_pacemaker_is_invalid() {
    require_root();
    let name = unique_name();
    let out = corodrill(&["lab", "up", "--name", &name, "--resource", "svc"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--pacemaker"),
        "{}",
        text(&out)
    );
    let out = corodrill(&[
        "lab",
        "up",
        "--name",
        &name,
        "--pacemaker",
        "--resource",
        "a b",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_nothing_left(&name);
}
