//! Powering nodes off and on, from the controller: one small trait and one
//! implementation per inventory driver. A `power-off` fault is a driver's
//! `off`, then `status` until it says off; its heal is `on`, then `status`
//! until it says on. Secrets come from the environment and are handed to
//! the tool through its environment (or, for the Proxmox API, sent in the
//! controller's own request), never on a command line.
//! This module knows drivers, not drills.

mod command;
mod ipmi;
mod lab;
mod libvirt;
mod proxmox;
pub mod qmp;
mod vagrant;

#[cfg(test)]
use std::path::Path;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::inventory::{InventoryNode, Power};

use command::CommandPower;
use ipmi::IpmiPower;
use lab::LabPower;
use libvirt::LibvirtPower;
use proxmox::ProxmoxPower;
use qmp::QmpPower;
use vagrant::VagrantPower;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerState {
    On,
    Off,
}

impl std::fmt::Display for PowerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PowerState::On => "on",
            PowerState::Off => "off",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PowerError {
    /// The inventory names a credential that is not in the environment:
    /// invalid input, found before anything is touched.
    #[error("node {node}: power driver {driver}: environment variable {var} is not set")]
    MissingCredential {
        node: String,
        driver: &'static str,
        var: String,
    },
    #[error("node {node}: power driver {driver}: {message}")]
    Failed {
        node: String,
        driver: &'static str,
        message: String,
    },
    #[error(
        "node {node}: power driver {driver}: still {state} {waited:?} after asking for {wanted}"
    )]
    NotReached {
        node: String,
        driver: &'static str,
        state: PowerState,
        wanted: PowerState,
        waited: Duration,
    },
}

impl PowerError {
    /// corodrill's exit status: 2 for bad input, 3 when the cluster could
    /// not be driven.
    pub fn exit_code(&self) -> u8 {
        match self {
            PowerError::MissingCredential { .. } => 2,
            _ => 3,
        }
    }
}

/// What a driver can do to one node. Each call returns once the tool has
/// answered (or its timeout ran out); `status` is how the caller knows the
/// node really changed state.
pub trait PowerDriver: Send + Sync {
    fn driver(&self) -> &'static str;
    fn off(&self) -> Result<(), String>;
    fn on(&self) -> Result<(), String>;
    fn status(&self) -> Result<PowerState, String>;
}

/// Where each driver's tool is found: on `PATH` normally; tests point them
/// at stand-ins that record what they were asked.
#[derive(Debug, Clone)]
pub struct Tools {
    pub vagrant: PathBuf,
    pub virsh: PathBuf,
    pub ipmitool: PathBuf,
    /// How long one call of a tool (or of the Proxmox API) may take.
    pub timeout: Duration,
}

impl Default for Tools {
    fn default() -> Tools {
        Tools {
            vagrant: "vagrant".into(),
            virsh: "virsh".into(),
            ipmitool: "ipmitool".into(),
            timeout: Duration::from_secs(60),
        }
    }
}

/// The node's driver, with its credentials read from the environment now,
/// so that a missing one is an error before any fault is applied.
/// `secrets` looks a variable up: `from_environment` but in tests.
pub fn driver_for(
    node: &InventoryNode,
    tools: &Tools,
    secrets: &dyn Fn(&str) -> Option<String>,
) -> Result<Box<dyn PowerDriver>, PowerError> {
    let secret = |var: &str| {
        secrets(var)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| PowerError::MissingCredential {
                node: node.name.clone(),
                driver: node.power.driver(),
                var: var.to_owned(),
            })
    };
    let timeout = tools.timeout;
    Ok(match &node.power {
        Power::Lab { lab } => Box::new(LabPower {
            lab: lab.clone(),
            node: node.name.clone(),
        }),
        Power::Command { off, on, status } => Box::new(CommandPower {
            off: off.clone(),
            on: on.clone(),
            status: status.clone(),
            timeout,
        }),
        Power::Vagrant { machine, dir } => Box::new(VagrantPower {
            program: tools.vagrant.clone(),
            machine: machine.clone(),
            dir: dir.as_ref().map(PathBuf::from),
            timeout,
        }),
        Power::Libvirt { domain, uri } => Box::new(LibvirtPower {
            program: tools.virsh.clone(),
            domain: domain.clone(),
            uri: uri.clone(),
            timeout,
        }),
        Power::Qmp { socket } => Box::new(QmpPower {
            socket: PathBuf::from(socket),
            timeout,
        }),
        Power::Ipmi {
            host,
            user,
            password_env,
        } => Box::new(IpmiPower {
            program: tools.ipmitool.clone(),
            host: host.clone(),
            user: user.clone(),
            password: secret(password_env)?,
            timeout,
        }),
        Power::Proxmox {
            api,
            node: pve_node,
            vmid,
            token_env,
            cacert,
        } => Box::new(
            ProxmoxPower::new(
                api,
                pve_node,
                *vmid,
                secret(token_env)?,
                cacert.as_deref(),
                timeout,
            )
            .map_err(|message| PowerError::Failed {
                node: node.name.clone(),
                driver: node.power.driver(),
                message,
            })?,
        ),
    })
}

pub fn from_environment(var: &str) -> Option<String> {
    std::env::var(var).ok()
}

/// Asks for `wanted` and polls `status` until the node is there, within
/// `timeout`; `progress` hears about long waits.
pub fn switch(
    node: &str,
    driver: &dyn PowerDriver,
    wanted: PowerState,
    timeout: Duration,
    progress: &dyn Fn(&str),
) -> Result<(), PowerError> {
    let failed = |message: String| PowerError::Failed {
        node: node.to_owned(),
        driver: driver.driver(),
        message,
    };
    match wanted {
        PowerState::Off => driver.off(),
        PowerState::On => driver.on(),
    }
    .map_err(|m| failed(format!("power {wanted}: {m}")))?;
    let started = Instant::now();
    let mut told = Instant::now();
    loop {
        let state = driver
            .status()
            .map_err(|m| failed(format!("power status: {m}")))?;
        if state == wanted {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            return Err(PowerError::NotReached {
                node: node.to_owned(),
                driver: driver.driver(),
                state,
                wanted,
                waited: started.elapsed(),
            });
        }
        if told.elapsed() >= Duration::from_secs(5) {
            told = Instant::now();
            progress(&format!(
                "{node}: waiting for power {wanted} ({:.0}s, {} says {state})",
                started.elapsed().as_secs_f64(),
                driver.driver()
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Everything but RFC 3986's unreserved characters is encoded in a path
/// segment, `.` too (a segment of dots would otherwise be a relative path):
/// a node name with `/`, `?`, `#`, spaces or a newline stays one segment
/// of the request line.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'~');

#[cfg(test)]
mod tests;
