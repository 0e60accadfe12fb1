//! The event log: everything a drill observed and did, one timeline.
//! `run` writes it; `judge` and the reports only read it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One line of the event log (`--json`), as `run` records it; the report
/// adds `experiment`, `run` and `of` to each line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LogEvent {
    /// Seconds since the drill started, on the controller's monotonic clock
    /// (agents' times are mapped onto it).
    pub t: f64,
    /// UTC, RFC 3339 with microseconds.
    pub ts: String,
    /// The node whose view or action this is; absent for the drill's own
    /// events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(flatten)]
    pub body: LogBody,
}

/// What happened; `kind` says which.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind")]
pub enum LogBody {
    /// The drill starts (t = 0).
    #[serde(rename = "drill.start")]
    DrillStart {
        /// The experiment's `name`.
        experiment: String,
    },
    /// A fault took effect on `node`.
    #[serde(rename = "fault.applied")]
    FaultApplied {
        /// The fault's `id`.
        fault: String,
        /// Its `kind` ("partition", ...).
        fault_kind: String,
    },
    /// A fault was rolled back on `node`.
    #[serde(rename = "fault.healed")]
    FaultHealed {
        /// The fault's `id`.
        fault: String,
        /// Whether the node's read-back found it gone.
        clean: bool,
        /// What the rollback did or found.
        detail: String,
    },
    /// A fault could not be applied on `node` (the drill then ends, exit 3).
    #[serde(rename = "fault.failed")]
    FaultFailed {
        /// The fault's `id`.
        fault: String,
        /// Why.
        error: String,
    },
    /// `node`'s quorum view changed (libquorum's notification, timed by
    /// corosync's own log line for it where there is one: `source`).
    #[serde(rename = "quorum")]
    Quorum {
        /// Whether the node is quorate.
        quorate: bool,
        /// The members the node sees, by name.
        members: Vec<String>,
        /// corosync's ring id of this membership.
        ring_id: String,
        /// votequorum's total votes.
        total_votes: Option<u32>,
        /// votequorum's expected votes.
        expected_votes: Option<u32>,
        /// The votes needed for quorum.
        quorum: Option<u32>,
        /// Where `t` comes from: `corosync-log` (the node's corosync log line
        /// for this view, read on the clock corosync wrote it with) or
        /// `notification` (when libquorum's notification reached the agent, a
        /// few ms later; no hires log line, a clock that stepped, or a votes
        /// change without a new view). Absent for the opening views, which
        /// predate the drill.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<String>,
    },
    /// corosync is not running on `node` (killed, stopped, powered off).
    #[serde(rename = "corosync.down")]
    CorosyncDown {
        /// How the agent knows.
        reason: String,
    },
    /// This node's knet links: (peer, link number, connected).
    #[serde(rename = "links")]
    Links {
        /// `[peer, link number, connected]` for each peer and link.
        links: Vec<(String, u8, bool)>,
    },
    /// Where this node's view says a watched resource is active.
    #[serde(rename = "resource")]
    Resource {
        /// The `[[watch]]` resource.
        resource: String,
        /// The nodes it is active on; null when the node cannot say.
        active_on: Option<Vec<String>>,
        /// Where `t` comes from: `pacemaker-alert` (the timestamp of
        /// Pacemaker's alert for this node's own start, stop or monitor
        /// result: the node's own claim changed then, to the millisecond),
        /// `alert-arrival` (when that alert reached the agent, its
        /// timestamp unusable) or `poll` (when the agent read the node's
        /// view: up to one watch interval late). Absent where the
        /// controller wrote the view itself (a node lost).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<String>,
    },
    /// A node that went down unplanned-for by the schedule (reset by its
    /// watchdog, as the fencing foresight said) answers again.
    #[serde(rename = "node.back")]
    NodeBack {
        /// How it came back.
        detail: String,
    },
    /// Whether `/etc/pve` takes writes on this node (Proxmox VE's pmxcfs
    /// is read-only while the node is inquorate).
    #[serde(rename = "etc_pve")]
    EtcPve {
        /// false while read-only.
        writable: bool,
    },
    /// The machine stalled (corosync's own "not scheduled" warning, the
    /// agent's timer waking late, or corosync's "Token has not been
    /// received" in a ring of nodes no fault touched); `t` is when the stall
    /// began. A failure beside one is the machine's as much as the
    /// cluster's.
    #[serde(rename = "stall")]
    Stall {
        /// "corosync", "agent" or "token".
        source: String,
        /// How long the stall lasted, in milliseconds.
        late_ms: u64,
        /// The evidence (corosync's log line, the timer's lateness).
        detail: String,
    },
    /// A fault's lease ran out on `node` and the agent rolled it back by
    /// itself (the controller stopped renewing it).
    #[serde(rename = "lease.expired")]
    LeaseExpired {
        /// The fault's `id`.
        fault: String,
        /// Whether the read-back found it gone.
        clean: bool,
        /// What the rollback did.
        detail: String,
    },
    /// After the last heal, every node is quorate with every node, in
    /// views newer than the heal.
    #[serde(rename = "cluster.whole")]
    ClusterWhole {},
    /// The cluster did not become whole in time after the last heal.
    #[serde(rename = "cluster.not_whole")]
    ClusterNotWhole {
        /// Each node that is not, and what it sees.
        why: String,
    },
    /// The drill's last event before the verdicts.
    #[serde(rename = "drill.end")]
    DrillEnd {},
    /// An expectation (or invariant) held.
    #[serde(rename = "expect.pass")]
    ExpectPass {
        /// The expectation's name.
        name: String,
        /// Seconds from its anchor to the state reached; null for a kept
        /// state (nothing arrived to be timed).
        measured: Option<f64>,
    },
    /// An expectation (or invariant) failed.
    #[serde(rename = "expect.fail")]
    ExpectFail {
        /// The expectation's name.
        name: String,
        /// What was seen instead, with times.
        message: String,
    },
    /// A measured time outside its usual range in the cluster's history of
    /// this drill (written after the verdicts; docs/history.md has the rule).
    #[serde(rename = "regression")]
    Regression {
        /// The expectation's name.
        name: String,
        /// This run's time, seconds.
        measured: f64,
        /// The limit it went beyond, seconds: max(p95 × 1.25, p95 + 0.5 s).
        limit: f64,
        /// The earlier runs' median time, seconds.
        median: f64,
        /// The earlier runs' 95th percentile, seconds.
        p95: f64,
        /// How many earlier runs the range is drawn from (at most 20).
        runs: usize,
        /// What changed since the last earlier run
        /// (`"totem.token 1000 -> 3000"`); empty when nothing did.
        changed: Vec<String>,
    },
    /// The run failed while the machine stalled (written after the verdicts).
    #[serde(rename = "drill.disturbed")]
    DrillDisturbed {
        /// The stalls beside the failure.
        evidence: String,
    },
}

impl LogEvent {
    pub fn new(t: f64, node: Option<&str>, body: LogBody) -> LogEvent {
        LogEvent {
            t,
            ts: humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string(),
            node: node.map(str::to_owned),
            body,
        }
    }
}

/// A node's quorum state as the log tells it at some moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeState {
    pub quorate: bool,
    /// Empty while corosync is down.
    pub members: Vec<String>,
    pub ring_id: String,
    pub total_votes: Option<u32>,
    pub corosync_up: bool,
}

impl NodeState {
    pub fn down() -> NodeState {
        NodeState {
            quorate: false,
            members: Vec::new(),
            ring_id: String::new(),
            total_votes: None,
            corosync_up: false,
        }
    }

    /// The state an event sets, if it is about quorum.
    pub fn from_event(body: &LogBody) -> Option<NodeState> {
        match body {
            LogBody::Quorum {
                quorate,
                members,
                ring_id,
                total_votes,
                ..
            } => Some(NodeState {
                quorate: *quorate,
                members: members.clone(),
                ring_id: ring_id.clone(),
                total_votes: *total_votes,
                corosync_up: true,
            }),
            LogBody::CorosyncDown { .. } => Some(NodeState::down()),
            _ => None,
        }
    }

    /// Quorate, with exactly these nodes as members (in any order).
    pub fn sees_whole(&self, nodes: &[String]) -> bool {
        let mut want: Vec<&str> = nodes.iter().map(String::as_str).collect();
        let mut have: Vec<&str> = self.members.iter().map(String::as_str).collect();
        want.sort();
        have.sort();
        self.quorate && want == have
    }

    pub fn describe(&self) -> String {
        if !self.corosync_up {
            return "corosync down".into();
        }
        format!(
            "{} members [{}] ring {}{}",
            if self.quorate {
                "quorate,"
            } else {
                "inquorate,"
            },
            self.members.join(", "),
            self.ring_id,
            self.total_votes
                .map(|v| format!(" votes {v}"))
                .unwrap_or_default()
        )
    }
}

/// What keeps `nodes` from being whole as these views tell it (every node
/// quorate with every node as member), a node each; empty when whole. The
/// drill's wait and `corodrill heal`'s check both read it.
pub fn not_whole(
    views: &std::collections::BTreeMap<String, NodeState>,
    nodes: &[String],
) -> Vec<String> {
    nodes
        .iter()
        .filter_map(|n| match views.get(n) {
            Some(s) if s.sees_whole(nodes) => None,
            Some(s) => Some(format!("{n}: {}", s.describe())),
            None => Some(format!("{n}: no quorum report yet")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_whole_names_each_node_that_is_not() {
        let nodes: Vec<String> = ["pve1", "pve2", "pve3"].map(String::from).to_vec();
        let view = |quorate: bool, members: &[&str]| NodeState {
            quorate,
            members: members.iter().map(|m| m.to_string()).collect(),
            ring_id: "1.9".into(),
            total_votes: Some(members.len() as u32),
            corosync_up: true,
        };
        let mut views = std::collections::BTreeMap::new();
        for n in &nodes {
            views.insert(n.clone(), view(true, &["pve3", "pve1", "pve2"]));
        }
        assert!(not_whole(&views, &nodes).is_empty());
        views.insert("pve3".into(), view(false, &["pve3"]));
        views.remove("pve2");
        assert_eq!(
            not_whole(&views, &nodes),
            vec![
                "pve2: no quorum report yet".to_string(),
                "pve3: inquorate, members [pve3] ring 1.9 votes 1".to_string()
            ]
        );
    }

    #[test]
    fn json_lines_shape() {
        let ev = LogEvent {
            t: 1.5,
            ts: "2026-11-25T16:00:00.000000Z".into(),
            node: Some("pve1".into()),
            body: LogBody::Quorum {
                quorate: true,
                members: vec!["pve1".into()],
                ring_id: "1.9".into(),
                total_votes: Some(1),
                expected_votes: Some(3),
                quorum: Some(2),
                source: None,
            },
        };
        let line = serde_json::to_string(&ev).unwrap();
        assert!(line.starts_with(r#"{"t":1.5,"ts":"2026-11-25T16:00:00.000000Z","node":"pve1","kind":"quorum","quorate":true"#), "{line}");
        assert_eq!(serde_json::from_str::<LogEvent>(&line).unwrap(), ev);
    }
}
