//! `driver = "command"`: the operator's own off, on and status commands.

use std::process::Command;
use std::time::Duration;

use super::{PowerDriver, PowerState};

/// Operator-given shell commands. `status` must print a last word of
/// `on`/`off` (or `running`/`stopped`, `up`/`down`).
pub(super) struct CommandPower {
    pub(super) off: String,
    pub(super) on: String,
    pub(super) status: String,
    pub(super) timeout: Duration,
}

impl PowerDriver for CommandPower {
    fn driver(&self) -> &'static str {
        "command"
    }
    fn off(&self) -> Result<(), String> {
        crate::cluster::tool::run(
            Command::new("sh").args(["-c", &self.off]),
            None,
            self.timeout,
        )
        .map(drop)
    }
    fn on(&self) -> Result<(), String> {
        crate::cluster::tool::run(
            Command::new("sh").args(["-c", &self.on]),
            None,
            self.timeout,
        )
        .map(drop)
    }
    fn status(&self) -> Result<PowerState, String> {
        let out = crate::cluster::tool::run(
            Command::new("sh").args(["-c", &self.status]),
            None,
            self.timeout,
        )?;
        let last = out.split_whitespace().last().unwrap_or_default();
        match last.to_ascii_lowercase().as_str() {
            "on" | "running" | "up" => Ok(PowerState::On),
            "off" | "stopped" | "down" => Ok(PowerState::Off),
            _ => Err(format!(
                "the status command printed {:?}; its last word must be on or off",
                out.trim()
            )),
        }
    }
}
