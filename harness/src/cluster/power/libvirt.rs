//! `driver = "libvirt"`: `virsh destroy` and `virsh start` of the node's domain.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::{PowerDriver, PowerState};

/// A libvirt domain.
pub(super) struct LibvirtPower {
    pub(super) program: PathBuf,
    pub(super) domain: String,
    pub(super) uri: Option<String>,
    pub(super) timeout: Duration,
}

impl LibvirtPower {
    fn virsh(&self, verb: &str) -> Result<String, String> {
        let mut cmd = Command::new(&self.program);
        if let Some(uri) = &self.uri {
            cmd.args(["-c", uri]);
        }
        cmd.args([verb, &self.domain]);
        crate::cluster::tool::run(&mut cmd, None, self.timeout)
    }
}

impl PowerDriver for LibvirtPower {
    fn driver(&self) -> &'static str {
        "libvirt"
    }
    fn off(&self) -> Result<(), String> {
        // `destroy` is libvirt's pulled plug; `shutdown` would be a clean one.
        self.virsh("destroy").map(drop)
    }
    fn on(&self) -> Result<(), String> {
        self.virsh("start").map(drop)
    }
    fn status(&self) -> Result<PowerState, String> {
        let out = self.virsh("domstate")?;
        match out.trim() {
            "running" | "paused" | "blocked" | "in shutdown" | "idle" => Ok(PowerState::On),
            "shut off" | "crashed" | "pmsuspended" => Ok(PowerState::Off),
            other => Err(format!("domain state {other:?} is neither on nor off")),
        }
    }
}
