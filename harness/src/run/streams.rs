//! An agent's streams: its quorum and resource watches started (the
//! offset that maps its clock onto the controller's measured on the way),
//! and its events handed to the drill's collector. For agents connected at
//! the start and reconnected later alike.

use std::sync::mpsc::Sender;
use std::time::Duration;

use corodrill_protocol::{Event, Op, Outcome, ResourceSource, ResourceWatch};

use crate::cluster::agent::AgentConn;
use crate::experiment::{WatchKind, WatchSpec};

use super::clock::map_clock;
use super::RunError;

/// Hands an agent's events to the drill's collector.
pub(super) fn forward_events(agent: &mut AgentConn, tx: &Sender<(String, Event)>) {
    let rx = agent.take_events();
    let tx = tx.clone();
    let node = agent.node.clone();
    std::thread::spawn(move || {
        for ev in rx {
            if tx.send((node.clone(), ev)).is_err() {
                break;
            }
        }
    });
}
/// Round trips of `Watch` whose shortest one sets the clock offset.
const OFFSET_ROUND_TRIPS: usize = 4;

/// Starts the agent's quorum stream; returns the offset that maps the
/// agent's monotonic clock onto ours (the reply's agent time against the
/// round trip's midpoint here). The first `Watch` starts the agent's watches
/// before it reads its clock, a lopsided round trip (4.5 ms off in the
/// drills bench); a repeated one is answered at once: the shortest of a few
/// round trips sets the offset.
pub(super) fn watch(agent: &mut AgentConn, timeout: Duration) -> Result<i64, RunError> {
    Ok(map_clock(agent, &Op::Watch, OFFSET_ROUND_TRIPS, timeout)?.offset_ns)
}

/// Starts the agent's resource stream, if the experiment watches any.
pub(super) fn watch_resources(
    agent: &mut AgentConn,
    watches: &[WatchSpec],
    timeout: Duration,
) -> Result<(), RunError> {
    let Some(op) = watch_op(watches, &agent.node) else {
        return Ok(());
    };
    match agent.request(op, timeout)? {
        Outcome::Ok { .. } => Ok(()),
        other => Err(RunError::Unreachable(format!(
            "{}: watching resources answered {other:?}",
            agent.node
        ))),
    }
}
/// What `node`'s agent watches of the experiment's resources, if anything.
fn watch_op(watches: &[WatchSpec], node: &str) -> Option<Op> {
    let watches: Vec<ResourceWatch> = watches
        .iter()
        .filter(|w| w.watched_on(node))
        .map(|w| ResourceWatch {
            resource: w.resource.clone(),
            interval_ms: w.interval.as_millis() as u64,
            source: match w.kind {
                WatchKind::Pacemaker => ResourceSource::Pacemaker,
                WatchKind::PveHa => ResourceSource::PveHa,
                WatchKind::Probe => ResourceSource::Probe {
                    command: w.command.clone().unwrap_or_default(),
                    timeout_ms: w.timeout.as_millis() as u64,
                },
            },
        })
        .collect();
    (!watches.is_empty()).then(|| Op::WatchResources {
        node: node.to_owned(),
        watches,
    })
}
