//! The cluster's edge: how the controller reaches the nodes the inventory
//! names (agent connections, install) and acts on them from outside (power
//! drivers, tools with deadlines), and how it reads corosync's own tools.
//! **Must not** know about experiments, plans or verdicts.

pub mod agent;
pub mod connect;
pub mod corosync;
pub mod install;
pub mod power;
pub mod tool;
