//! Bringing a lab up: its hosts' namespaces, links and daemons built and
//! started as booting would start them (corosync, then corosync-qdevice,
//! sshd), and the wait until every node is quorate with every node as
//! member, a daemon that died named with its last lines.

use std::path::Path;
use std::time::{Duration, Instant};

use super::host::{self, LabProcess};
use super::spec::{node_address, qnetd_address, QNETD};
use super::{
    conf, dead_daemon, libfaketime, pacemaker, path_str, spec, ssh, wait_for, Lab, LabError,
};
use crate::cluster::corosync::QuorumStatus;

pub(super) fn build(lab: &mut Lab, progress: &dyn Fn(&str)) -> Result<(), LabError> {
    let spec = lab.spec().clone();
    host::make_private_mount(&lab.dir)?;
    host::create_dir(&lab.dir.join("ns"))?;
    let authkey = lab.dir.join("authkey");
    host::write_authkey(&authkey)?;

    progress(&format!(
        "building lab {}: {} nodes, {} link(s){}",
        spec.name,
        spec.nodes,
        spec.links,
        if spec.qdevice { ", QDevice" } else { "" }
    ));
    let switch = spec.switch_netns();
    host::add_netns(&switch)?;
    let mut switch_script = String::new();
    for link in 0..spec.links {
        switch_script.push_str(&format!(
            "link add br{link} type bridge\nlink set br{link} up\n"
        ));
    }
    let hosts = lab.hosts();
    for h in &hosts {
        let netns = spec.netns(h);
        host::add_netns(&netns)?;
        // The QDevice host only needs link 0: qdevice traffic is TCP to it.
        let links = if h == QNETD { 1 } else { spec.links };
        for link in 0..links {
            switch_script.push_str(&format!(
                "link add {h}l{link} type veth peer name ring{link} netns {netns}\n\
                 link set {h}l{link} master br{link} up\n"
            ));
        }
    }
    host::ip_batch(&switch, &switch_script, "wiring the lab's switch")?;

    let hosts_file = lab.dir.join("hosts");
    let mut hosts_text = String::from("127.0.0.1 localhost\n::1 localhost\n");
    for (i, node) in spec.node_names().enumerate() {
        hosts_text.push_str(&format!("{} {node}\n", node_address(i as u8 + 1, 0)));
    }
    if spec.qdevice {
        hosts_text.push_str(&format!("{} {QNETD}\n", qnetd_address()));
    }
    host::write_file(&hosts_file, hosts_text.as_bytes())?;
    for (i, h) in hosts.iter().enumerate() {
        let mut script = String::new();
        if h == QNETD {
            script.push_str(&format!(
                "addr add {}/{} dev ring0\nlink set ring0 up\n",
                qnetd_address(),
                spec::PREFIX_LEN
            ));
        } else {
            if spec.ssh {
                // sshd listens on the node's loopback.
                script.push_str("link set lo up\n");
            }
            for link in 0..spec.links {
                script.push_str(&format!(
                    "addr add {}/{} dev ring{link}\nlink set ring{link} up\n",
                    node_address(i as u8 + 1, link),
                    spec::PREFIX_LEN
                ));
            }
        }
        host::ip_batch(&spec.netns(h), &script, &format!("addressing {h}"))?;
        host::create_dir(&lab.host_dir(h).join("state"))?;
        lab.namespaces(h).create(h, &hosts_file)?;
    }

    let faketime =
        libfaketime().ok_or_else(|| LabError::Environment("libfaketime disappeared".into()))?;
    if spec.qdevice {
        let dir = lab.host_dir(QNETD);
        let process = host::spawn_daemon(
            &lab.namespaces(QNETD),
            QNETD,
            "corosync-qnetd",
            &["-f", "-s", "off"],
            &[],
            &dir.join("qnetd.log"),
        )?;
        lab.record.processes.push(process);
        lab.save()?;
    }
    for node in spec.node_names() {
        let dir = lab.host_dir(&node);
        let conf = conf::corosync_conf(
            &spec,
            &conf::NodePaths {
                authkey: &authkey,
                logfile: &dir.join("corosync.log"),
                state_dir: &dir.join("state"),
            },
            false,
        );
        host::write_file(&dir.join("corosync.conf"), conf.as_bytes())?;
        // The node's clock offset for libfaketime: the clock-skew fault
        // rewrites this file; corosync keeps its timers on the monotonic clock.
        host::write_file(&dir.join("faketime"), b"+0s\n")?;
        start_node(lab, &node, &faketime)?;
    }
    if spec.qdevice {
        for node in spec.node_names() {
            start_node_qdevice(lab, &node, &faketime)?;
        }
    }
    if spec.ssh {
        ssh::prepare(&lab.dir)?;
        for node in spec.node_names() {
            start_node_sshd(lab, &node)?;
        }
    }
    if spec.pacemaker {
        progress("starting Pacemaker on every node");
        for node in spec.node_names() {
            pacemaker::start(lab, &node)?;
        }
    }
    Ok(())
}

/// Starts a node's daemons as booting it would: corosync, then (once
/// corosync answers) corosync-qdevice if the lab has a QDevice.
pub(super) fn start_node(lab: &mut Lab, node: &str, faketime: &Path) -> Result<(), LabError> {
    let conf_path = lab.host_dir(node).join("corosync.conf");
    let process = start_node_daemon(
        lab,
        node,
        "corosync",
        &["-f", "-c", &path_str(&conf_path)],
        faketime,
    )?;
    lab.record.processes.push(process);
    lab.save()
}

pub(super) fn start_node_qdevice(
    lab: &mut Lab,
    node: &str,
    faketime: &Path,
) -> Result<(), LabError> {
    // corosync-qdevice talks to corosync over IPC: start it once the
    // node's corosync answers.
    wait_for(
        Duration::from_secs(20),
        &format!("corosync on {node} to answer"),
        || lab.quorum(node).is_some(),
    )?;
    let process = start_node_daemon(lab, node, "corosync-qdevice", &["-f"], faketime)?;
    lab.record.processes.push(process);
    lab.save()
}

pub(super) fn start_node_sshd(lab: &mut Lab, node: &str) -> Result<(), LabError> {
    let config = path_str(&ssh::config_path(&lab.dir));
    let process = host::spawn_daemon(
        &lab.namespaces(node),
        node,
        ssh::SSHD,
        &["-D", "-e", "-f", &config],
        &[],
        &lab.host_dir(node).join("sshd.out"),
    )?;
    lab.record.processes.push(process);
    lab.save()?;
    // Connections are refused until it listens: wait for that here, not
    // in every caller.
    let netns = lab.spec().netns(node);
    let out = lab.host_dir(node).join("sshd.out");
    wait_for(
        Duration::from_secs(10),
        &format!("sshd on {node} to listen"),
        || ssh::listening(&netns),
    )
    .map_err(|e| {
        let said = std::fs::read_to_string(&out).unwrap_or_default();
        LabError::Failed(format!("{e}; sshd said: {}", said.trim()))
    })
}

/// Starts one of a node's daemons under libfaketime at offset zero.
pub(super) fn start_node_daemon(
    lab: &Lab,
    node: &str,
    program: &str,
    args: &[&str],
    faketime: &Path,
) -> Result<LabProcess, LabError> {
    let dir = lab.host_dir(node);
    let preload = path_str(faketime);
    let control = path_str(&dir.join("faketime"));
    host::spawn_daemon(
        &lab.namespaces(node),
        node,
        program,
        args,
        &[
            ("LD_PRELOAD", preload.as_str()),
            ("FAKETIME_TIMESTAMP_FILE", control.as_str()),
            ("FAKETIME_NO_CACHE", "1"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
        &dir.join(format!("{program}.out")),
    )
}

/// Polls every node's own view until the cluster is whole, saying what it
/// waits for; fails early if a daemon the lab started has died.
pub(super) fn wait_until_whole(
    lab: &Lab,
    started: Instant,
    progress: &dyn Fn(&str),
) -> Result<Vec<(String, QuorumStatus)>, LabError> {
    let spec = lab.spec();
    // corosync's join takes a few tokens; Proxmox's 3 s token and many nodes take longer.
    let token = Duration::from_millis(u64::from(spec.token_ms.unwrap_or(3000)));
    let timeout =
        Duration::from_secs(20) + token * 10 + Duration::from_millis(500) * u32::from(spec.nodes);
    let deadline = Instant::now() + timeout;
    let mut last_report = Instant::now();
    let nodes: Vec<String> = spec.node_names().collect();
    // Nodes known whole, in order. Asking one node at a time until it is
    // whole keeps the polling from competing with corosync for the CPU (a
    // round of 16 quorumtool processes every 50 ms slowed a 16-node join).
    let mut confirmed = 0;
    loop {
        while confirmed < nodes.len() && lab.whole_view(&lab.quorum(&nodes[confirmed])) {
            confirmed += 1;
        }
        if confirmed == nodes.len() {
            // Re-read every node: one of them may have seen a new membership since.
            let views: Vec<Option<QuorumStatus>> = nodes.iter().map(|n| lab.quorum(n)).collect();
            if views.iter().all(|v| lab.whole_view(v)) {
                return Ok(nodes.into_iter().zip(views.into_iter().flatten()).collect());
            }
            confirmed = 0;
        }
        if let Some(err) = dead_daemon(lab) {
            return Err(err);
        }
        if Instant::now() >= deadline {
            return Err(LabError::Failed(format!(
                "the cluster did not form within {timeout:?}: {confirmed}/{} nodes quorate with every node as member",
                nodes.len()
            )));
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            last_report = Instant::now();
            progress(&format!(
                "waiting for quorum: {confirmed}/{} nodes quorate with every node as member ({:.1}s)",
                nodes.len(),
                started.elapsed().as_secs_f64()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
