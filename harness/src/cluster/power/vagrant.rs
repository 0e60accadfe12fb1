//! `driver = "vagrant"`: `vagrant halt` and `vagrant up` of the node's VM.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::{PowerDriver, PowerState};

/// A machine of a Vagrant project.
pub(super) struct VagrantPower {
    pub(super) program: PathBuf,
    pub(super) machine: String,
    pub(super) dir: Option<PathBuf>,
    pub(super) timeout: Duration,
}

impl VagrantPower {
    fn vagrant(&self, args: &[&str]) -> Result<String, String> {
        let mut cmd = Command::new(&self.program);
        cmd.args(args).arg(&self.machine);
        if let Some(dir) = &self.dir {
            cmd.current_dir(dir);
        }
        crate::cluster::tool::run(&mut cmd, None, self.timeout)
    }
}

impl PowerDriver for VagrantPower {
    fn driver(&self) -> &'static str {
        "vagrant"
    }
    fn off(&self) -> Result<(), String> {
        self.vagrant(&["halt", "--force"]).map(drop)
    }
    fn on(&self) -> Result<(), String> {
        self.vagrant(&["up", "--no-provision"]).map(drop)
    }
    fn status(&self) -> Result<PowerState, String> {
        // `--machine-readable` lines: timestamp,target,type,data.
        let out = self.vagrant(&["status", "--machine-readable"])?;
        let state = out
            .lines()
            .map(|l| l.split(',').collect::<Vec<_>>())
            .find(|f| f.len() >= 4 && f[2] == "state")
            .map(|f| f[3].to_owned())
            .ok_or_else(|| format!("no state in `vagrant status` output {:?}", out.trim()))?;
        match state.as_str() {
            "running" => Ok(PowerState::On),
            // VirtualBox says poweroff/aborted/saved, libvirt shutoff/shutdown.
            "poweroff" | "aborted" | "saved" | "shutoff" | "shutdown" | "not_created" => {
                Ok(PowerState::Off)
            }
            other => Err(format!("machine state {other:?} is neither on nor off")),
        }
    }
}
