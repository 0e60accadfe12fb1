//! The operator's commands, each wiring the pipeline for one job: `run`,
//! `check` and `demo` (`drills`); `status`, `heal`, `preflight`, `plan` and
//! `install-agent` (`install`) on any inventory outside a drill; `mutate`;
//! `drill --random` (`random`); and `lab`'s output and agent install. They
//! call the stages; no stage calls them.

pub mod drills;
pub mod heal;
pub mod history;
pub mod install;
pub mod lab;
pub mod metrics;
pub mod mutate;
pub mod plan;
pub mod preflight;
pub mod random;
pub mod status;

use std::path::Path;

use crate::inventory::Inventory;

/// The inventory, or its error printed and exit status 2.
fn inventory_or_report(path: &Path) -> Result<Inventory, u8> {
    crate::inventory::load(path).map_err(|e| {
        eprintln!("{e}");
        2
    })
}
