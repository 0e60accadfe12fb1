//! corodrill, the controller: reads experiments, drives the agents, judges
//! what it saw and reports. See ARCHITECTURE.md for the map.

pub mod cluster;
pub mod commands;
pub mod experiment;
pub mod fuzz;
pub mod inventory;
pub mod judge;
pub mod lab;
pub mod log;
pub mod model;
pub mod plan;
pub mod report;
pub mod run;
