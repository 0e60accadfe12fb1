//! `driver = "ipmi"`: `ipmitool chassis power` over lanplus, the password
//! passed by environment (`-E`), never on the command line.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::{PowerDriver, PowerState};

/// A BMC over IPMI (lanplus). The password travels in ipmitool's
/// environment (`-E` reads `IPMI_PASSWORD`).
pub(super) struct IpmiPower {
    pub(super) program: PathBuf,
    pub(super) host: String,
    pub(super) user: String,
    pub(super) password: String,
    pub(super) timeout: Duration,
}

impl IpmiPower {
    fn chassis_power(&self, verb: &str) -> Result<String, String> {
        let mut cmd = Command::new(&self.program);
        cmd.args(["-I", "lanplus", "-H", &self.host, "-U", &self.user, "-E"])
            .args(["chassis", "power", verb])
            .env("IPMI_PASSWORD", &self.password);
        crate::cluster::tool::run(&mut cmd, None, self.timeout)
    }
}

impl PowerDriver for IpmiPower {
    fn driver(&self) -> &'static str {
        "ipmi"
    }
    fn off(&self) -> Result<(), String> {
        self.chassis_power("off").map(drop)
    }
    fn on(&self) -> Result<(), String> {
        self.chassis_power("on").map(drop)
    }
    fn status(&self) -> Result<PowerState, String> {
        // "Chassis Power is on"
        let out = self.chassis_power("status")?;
        match out.split_whitespace().last() {
            Some("on") => Ok(PowerState::On),
            Some("off") => Ok(PowerState::Off),
            _ => Err(format!("unexpected answer {:?}", out.trim())),
        }
    }
}
