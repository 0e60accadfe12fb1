//! The agents' clocks against the controller's: each mapped by the shortest
//! of a few round trips, and one instant agreed for a fault on several
//! nodes, told to each agent on its own clock.

use std::collections::BTreeMap;
use std::time::Duration;

use corodrill_protocol::{Op, Outcome, MAX_APPLY_LEAD_MS};

use crate::cluster::agent::AgentConn;

use super::{mono_ns, RunError};

/// Round trips that map an agent's clock before a fault on several nodes.
pub const CLOCK_ROUND_TRIPS: usize = 5;
/// The least time between agreeing on the instant and the instant itself.
const LEAD_MIN_NS: i64 = 30_000_000;

/// How an agent's monotonic clock maps onto the controller's, from the
/// shortest of a few round trips: controller ns = agent ns + `offset_ns`,
/// wrong by at most half of `round_trip_ns` (the agent read its clock
/// somewhere inside the round trip).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockMapping {
    pub offset_ns: i64,
    pub round_trip_ns: i64,
}

/// The agent's clock mapped afresh by `rounds` round trips of `Clock`.
pub fn clock(
    agent: &AgentConn,
    rounds: usize,
    timeout: Duration,
) -> Result<ClockMapping, RunError> {
    map_clock(agent, &Op::Clock, rounds, timeout)
}

/// The shortest of `rounds` round trips of `op` (one the agent answers with
/// its clock, at once) sets the mapping.
pub(super) fn map_clock(
    agent: &AgentConn,
    op: &Op,
    rounds: usize,
    timeout: Duration,
) -> Result<ClockMapping, RunError> {
    let mut best: Option<ClockMapping> = None;
    for _ in 0..rounds.max(1) {
        let before = mono_ns();
        let outcome = agent.request(op.clone(), timeout)?;
        let after = mono_ns();
        match outcome {
            Outcome::Ok { mono_ns } => {
                let sample = ClockMapping {
                    offset_ns: (before + after) / 2 - mono_ns as i64,
                    round_trip_ns: after - before,
                };
                if best.is_none_or(|b| sample.round_trip_ns < b.round_trip_ns) {
                    best = Some(sample);
                }
            }
            other => {
                return Err(RunError::Unreachable(format!(
                    "{}: {op:?} answered {other:?}",
                    agent.node
                )))
            }
        }
    }
    Ok(best.unwrap_or(ClockMapping {
        offset_ns: 0,
        round_trip_ns: 0,
    }))
}

/// When a fault on several nodes takes effect, on each node's own clock:
/// far enough ahead (the least lead, plus twice the slowest node's round
/// trip) for every request to arrive first, never beyond what the protocol
/// allows. A request that still arrives late takes effect at once, and the
/// agent's reply says when.
pub fn agreed_instant(
    now_ns: i64,
    mappings: &BTreeMap<String, ClockMapping>,
) -> BTreeMap<String, u64> {
    let slowest = mappings
        .values()
        .map(|m| m.round_trip_ns)
        .max()
        .unwrap_or(0);
    let lead = (LEAD_MIN_NS + 2 * slowest).min(MAX_APPLY_LEAD_MS as i64 * 1_000_000 / 2);
    let instant = now_ns + lead;
    mappings
        .iter()
        .filter_map(|(node, m)| Some((node.clone(), u64::try_from(instant - m.offset_ns).ok()?)))
        .collect()
}

/// The controller's monotonic clock, in ns (the one agents are mapped onto).
pub fn now_ns() -> i64 {
    mono_ns()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(offset_ns: i64, round_trip_ns: i64) -> ClockMapping {
        ClockMapping {
            offset_ns,
            round_trip_ns,
        }
    }

    #[test]
    fn one_instant_on_every_clock() {
        // pve2's clock reads 5 s less than ours, pve3's 2 s more.
        let mappings = BTreeMap::from([
            ("pve1".to_string(), mapping(0, 1_000_000)),
            ("pve2".to_string(), mapping(5_000_000_000, 8_000_000)),
            ("pve3".to_string(), mapping(-2_000_000_000, 2_000_000)),
        ]);
        let at = agreed_instant(100_000_000_000, &mappings);
        // Lead: 30 ms and twice the slowest round trip (8 ms).
        let instant = 100_000_000_000 + 30_000_000 + 16_000_000;
        assert_eq!(at["pve1"], instant as u64);
        assert_eq!(at["pve2"] as i64 + 5_000_000_000, instant);
        assert_eq!(at["pve3"] as i64 - 2_000_000_000, instant);
    }

    #[test]
    fn the_lead_stays_within_what_the_agent_accepts() {
        let mappings = BTreeMap::from([("pve1".to_string(), mapping(0, 60_000_000_000))]);
        let at = agreed_instant(0, &mappings);
        assert!(at["pve1"] <= MAX_APPLY_LEAD_MS * 1_000_000 / 2);
        // A clock mapped before its own zero is left untimed.
        let behind = BTreeMap::from([("pve1".to_string(), mapping(10_000_000_000, 0))]);
        assert!(agreed_instant(0, &behind).is_empty());
    }
}
