//! The messages between the corodrill controller and its agents.
//!
//! This crate knows nothing of nftables, corosync or experiments: it only says
//! what travels over the agent's stdin/stdout (one JSON object per line). The
//! full request/response set arrives with the agent; for now it carries the
//! version both sides must agree on.

use serde::{Deserialize, Serialize};

/// Bumped on every incompatible change of the wire format. Controller and
/// agent refuse to talk across different versions.
pub const PROTOCOL_VERSION: u32 = 1;

/// The first line an agent writes: who it is and what it speaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hello {
    pub protocol_version: u32,
    pub agent_version: String,
}

impl Hello {
    pub fn new(agent_version: &str) -> Self {
        Hello {
            protocol_version: PROTOCOL_VERSION,
            agent_version: agent_version.to_owned(),
        }
    }
}
