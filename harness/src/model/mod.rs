//! The cluster's model (pure): what corosync's votequorum and QDevice decide
//! for a partition and how long corosync takes to notice (`oracle`), that
//! model applied to a drill's plan (`predict`), expectations resolved with
//! it (`expectations`), and which nodes Proxmox VE HA would fence
//! (`fencing`, from `pve_ha`'s constants). **Must not** do
//! I/O: `plan` prints it, `run` resolves expectations with it, the judge
//! never sees it.

pub mod expectations;
pub mod fencing;
pub mod oracle;
pub mod predict;
pub mod pve_ha;

#[cfg(test)]
pub(crate) mod tests;
