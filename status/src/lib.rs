//! Parsers of what cluster tools print about a node's view of the cluster,
//! shared by the controller (the lab's `status` and start-up) and the agent
//! (resource watches), so both read a tool's output the same way. Pure: text
//! in, data out; running the tools is the callers' job.

pub mod crm_mon;
pub mod ha_manager;
