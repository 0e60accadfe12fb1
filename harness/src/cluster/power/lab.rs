//! `driver = "lab"`: a lab node powered off and on by the lab itself.

use super::{PowerDriver, PowerState};

/// A node of the network-namespace lab on this machine.
pub(super) struct LabPower {
    pub(super) lab: String,
    pub(super) node: String,
}

impl PowerDriver for LabPower {
    fn driver(&self) -> &'static str {
        "lab"
    }
    fn off(&self) -> Result<(), String> {
        crate::lab::power_off(&self.lab, &self.node).map_err(|e| e.to_string())
    }
    fn on(&self) -> Result<(), String> {
        crate::lab::power_on(&self.lab, &self.node).map_err(|e| e.to_string())
    }
    fn status(&self) -> Result<PowerState, String> {
        match crate::lab::power_status(&self.lab, &self.node) {
            Ok(true) => Ok(PowerState::On),
            Ok(false) => Ok(PowerState::Off),
            Err(e) => Err(e.to_string()),
        }
    }
}
