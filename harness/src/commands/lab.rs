//! `corodrill lab`'s own words on the terminal (the table of an up lab,
//! each host's status, Pacemaker's view) and the agents it installs on a
//! lab with ssh once the cluster is whole, as `install-agent` does on a
//! real cluster: the lab itself knows no agents.

use std::time::Duration;

use crate::inventory::Inventory;
use crate::lab::{self, LabError};

/// Puts the agent on every node over ssh, as `corodrill install-agent`
/// does on a real cluster.
pub fn install_agents(inventory: &Inventory, progress: &dyn Fn(&str)) -> Result<(), LabError> {
    let binary = crate::cluster::agent::bundled_agent().ok_or_else(|| {
        LabError::Environment(
            "no corodrill-agent beside this corodrill to install on the nodes (cargo build --workspace)"
                .into(),
        )
    })?;
    progress(&format!(
        "installing {} on every node over ssh",
        binary.display()
    ));
    let results = crate::cluster::install::install_all(inventory, &binary, Duration::from_secs(30));
    let failures: Vec<String> = results
        .into_iter()
        .filter_map(|r| r.err().map(|e| e.to_string()))
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(LabError::Failed(failures.join("; ")))
    }
}

pub fn print_up_table(up: &lab::LabUp) {
    let spec = up.lab.spec();
    let inventory = lab::inventory(&up.lab);
    println!(
        "{:<6} {:<7} {:<34} {:<8} {:<24} {:>5}",
        "node", "node id", "addresses", "quorate", "members", "votes"
    );
    for (node, (name, view)) in inventory.nodes.iter().zip(&up.views) {
        let addresses: Vec<&str> = node.links.values().map(String::as_str).collect();
        println!(
            "{:<6} {:<7} {:<34} {:<8} {:<24} {:>5}",
            name,
            view.node_id,
            addresses.join(","),
            if view.quorate { "yes" } else { "no" },
            view.member_names().join(","),
            format!("{}/{}", view.total_votes, view.expected_votes)
        );
    }
    if spec.qdevice {
        println!("qnetd  -       198.18.0.254                       (QDevice host, ffsplit)");
    }
}

pub fn print_status(lab: &lab::Lab, hosts: &[lab::HostStatus]) {
    println!("lab {} ({})", lab.spec().name, lab.dir.display());
    if let Some(vm) = &lab.spec().vm {
        println!(
            "VMs under QEMU with {} ({} MB each; {}), agent {}",
            vm.accel,
            vm.memory_mb,
            lab::vm::detect_accel().1,
            match &vm.agent {
                lab::vm::AgentInstall::Deb(deb) => format!("from {}", deb.display()),
                lab::vm::AgentInstall::InstallAgent => "copied by install-agent".to_owned(),
            }
        );
    }
    println!(
        "{:<6} {:<9} {:<8} {:<8} {:<24} {:>5}  links",
        "host", "corosync", "quorate", "ring id", "members", "votes"
    );
    for h in hosts {
        let running = if h.running { "running" } else { "down" };
        match &h.quorum {
            Some(q) => {
                let links: Vec<String> = h
                    .links
                    .iter()
                    .map(|l| {
                        format!(
                            "ring{}:{}/{}",
                            l.link,
                            l.connected_peers(),
                            l.remote_peers()
                        )
                    })
                    .collect();
                println!(
                    "{:<6} {:<9} {:<8} {:<8} {:<24} {:>5}  {}",
                    h.host,
                    running,
                    if q.quorate { "yes" } else { "no" },
                    q.ring_id,
                    q.member_names().join(","),
                    format!("{}/{}", q.total_votes, q.expected_votes),
                    links.join(" ")
                );
            }
            None if h.host == "qnetd" => {
                let state = if h.running {
                    "qnetd running"
                } else {
                    "qnetd down"
                };
                println!("{:<6} {state}", h.host);
            }
            None => println!("{:<6} {:<9} -", h.host, running),
        }
    }
    if lab.spec().pacemaker {
        let on = |running: bool| -> Vec<&str> {
            hosts
                .iter()
                .filter(|h| h.pacemakerd == Some(running))
                .map(|h| h.host.as_str())
                .collect()
        };
        let said: Vec<String> = [("running on", on(true)), ("down on", on(false))]
            .into_iter()
            .filter(|(_, hosts)| !hosts.is_empty())
            .map(|(state, hosts)| format!("{state} {}", hosts.join(",")))
            .collect();
        println!("pacemakerd {}", said.join(", "));
        match hosts
            .iter()
            .find_map(|h| Some((&h.host, h.pacemaker.as_ref()?)))
        {
            Some((host, view)) => print_pacemaker(host, view),
            None => println!("pacemaker: no node answers"),
        }
    }
}

/// Where Pacemaker says each resource runs, as `seen_from` sees it.
pub fn print_pacemaker(seen_from: &str, view: &lab::pacemaker::PacemakerView) {
    println!(
        "pacemaker, as {seen_from} sees it: DC {}{}, online {}",
        view.dc.as_deref().unwrap_or("none"),
        if view.quorate { "" } else { " (no quorum)" },
        view.online().join(",")
    );
    if view.resources.is_empty() {
        return;
    }
    println!("{:<16} {:<24} {:<9} node", "resource", "agent", "role");
    for r in &view.resources {
        let nodes = if r.nodes.is_empty() {
            "-".to_owned()
        } else {
            r.nodes.join(",")
        };
        println!(
            "{:<16} {:<24} {:<9} {}{}",
            r.id,
            r.agent,
            r.role,
            nodes,
            if r.failed { " (failed)" } else { "" }
        );
    }
}
