//! corodrill, the controller: reads experiments, drives the agents, judges
//! what it saw and reports. See ARCHITECTURE.md for the map.
//!
//! The modules in the order a drill goes through them: `experiment` and
//! `inventory` (the inputs), `plan`, `model` (what the cluster should do),
//! `run` (the only stage that acts, through `cluster`), `log`, `judge`,
//! `report`; `commands` wires them, `lab` is the cluster corodrill builds
//! itself.

// Inputs.
pub mod experiment;
pub mod inventory;

// Deciding what to do and what should happen.
pub mod model;
pub mod plan;

// Doing it, and the edge it acts through.
pub mod cluster;
pub mod lab;
pub mod run;

// What was seen, and what it means.
pub mod judge;
pub mod log;
pub mod report;

// The runs kept, compared with each other (an edge that commands call).
pub mod history;

// The errors a user meets, each with its name and reference entry.
pub mod errors;

// The formats' reference (schemas, `explain`), generated from the inputs' types.
pub mod reference;

// The operator's commands, and the fuzz targets' entries.
pub mod commands;
pub mod fuzz;
