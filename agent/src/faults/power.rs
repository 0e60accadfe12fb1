//! `power-off` of a lab node: every process of the node dies at once (but
//! the agent, which must power it on again) and its links go down, as if the
//! machine lost power. Power-on brings the links up and starts corosync.
//! Real nodes are powered through their power driver on the controller.

use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::{link, Ctx, Undo};
use crate::node::{corosync_answers, run_output, wait_until, NodeKind};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PowerUndo {
    pub interfaces: Vec<String>,
    pub qdevice: bool,
}

pub fn apply(
    ctx: &mut Ctx,
    journal: &mut dyn FnMut(&Undo) -> Result<(), String>,
) -> Result<Undo, String> {
    if matches!(ctx.node.kind, NodeKind::Real) {
        return Err("power-off of a real node goes through its power driver (inventory `power`), not the agent".into());
    }
    let interfaces = up_interfaces()?;
    let undo = PowerUndo {
        interfaces: interfaces.clone(),
        qdevice: ctx.node.qdevice_running(),
    };
    journal(&Undo::PowerOn(undo.clone()))?;
    let own = std::process::id() as i32;
    // The agent's own children (its nft) stay: the controller may still
    // hold faults on this node.
    let victims: Vec<i32> = ctx
        .node
        .processes()
        .into_iter()
        .filter(|&pid| parent(pid) != Some(own))
        .collect();
    for &pid in &victims {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    for interface in &interfaces {
        link::set_link(interface, false)?;
    }
    wait_until(Duration::from_secs(5), || {
        victims.iter().all(|&p| crate::node::is_zombie(p))
    })
    .map_err(|()| "some processes of the node survived SIGKILL".to_string())?;
    Ok(Undo::PowerOn(undo))
}

pub fn rollback(ctx: &mut Ctx, undo: &PowerUndo) -> Result<String, String> {
    for interface in &undo.interfaces {
        link::set_link(interface, true)?;
    }
    ctx.node.start_corosync(undo.qdevice)?;
    let links = link::check_up(&undo.interfaces)?;
    if corosync_answers() {
        Ok(format!("{links}; corosync answering"))
    } else {
        Err(format!("{links}; corosync does not answer"))
    }
}

/// Interfaces other than lo that are up: `2: ring0@if5: <BROADCAST,UP,...>`.
fn up_interfaces() -> Result<Vec<String>, String> {
    let text = run_output(crate::node::command("ip").args(["-o", "link", "show", "up"]))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|name| name.trim().split('@').next().unwrap_or_default().to_owned())
        .filter(|name| !name.is_empty() && name != "lo")
        .collect())
}

fn parent(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
