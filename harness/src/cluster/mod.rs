//! The cluster's edge: what the controller knows of the nodes it drills
//! (the inventory), how it reaches them (agent connections, install) and
//! acts on them from outside (power drivers, tools with deadlines), and how
//! it reads corosync's own tools. **Must not** know about experiments,
//! plans or verdicts.

pub mod agent;
pub mod connect;
pub mod corosync;
pub mod install;
pub mod inventory;
pub mod power;
pub mod tool;
