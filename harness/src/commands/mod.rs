//! The operator's commands, each wiring the pipeline for one job: `run`,
//! `check` and `demo` (`drills`), `status`, `heal`, `preflight`, `plan` and
//! `install-agent` on any inventory outside a drill (`ops`), `mutate`,
//! `drill --random`, and `lab`'s output and agent install. They call the
//! stages; no stage calls them.

pub mod drills;
pub mod lab;
pub mod mutate;
pub mod ops;
pub mod random;
