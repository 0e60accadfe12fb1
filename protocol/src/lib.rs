//! The messages between the corodrill controller and its agents.
//!
//! One JSON object per line over the agent's stdin (requests) and stdout
//! (the hello, replies and events). This crate knows nothing of nftables,
//! corosync or experiments: faults are described concretely (addresses,
//! signals, offsets) so that the agent needs no knowledge of the cluster's
//! layout or of the drill.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Bumped on every incompatible change of the wire format. Controller and
/// agent refuse to talk across different versions.
pub const PROTOCOL_VERSION: u32 = 5;

/// The furthest ahead an `Apply` may be timed: a controller that asks for
/// more has a wrong clock mapping, and the node would hold a journaled fault
/// that has not taken effect for that long.
pub const MAX_APPLY_LEAD_MS: u64 = 10_000;

/// What the controller sends: a request id (echoed in the reply) and the op.
/// (`deny_unknown_fields` does not combine with `flatten`; the faults inside
/// with fields deny them.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub id: u64,
    #[serde(flatten)]
    pub op: Op,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Apply a fault. It is journaled (fsynced) before it takes effect and
    /// rolled back by the agent itself if the lease is not renewed in time.
    Apply {
        fault_id: String,
        fault: Fault,
        lease_ms: u64,
        /// On a real node the agent refuses a fault that would cut the
        /// controller's own connection unless the experiment allows it.
        #[serde(default)]
        allow_management_cut: bool,
        /// The drill the fault belongs to, journaled with it so that
        /// `corodrill heal` can say whose faults it ended.
        #[serde(default)]
        drill: Option<String>,
        /// When the fault is to take effect, on the agent's monotonic clock:
        /// one fault on several nodes takes effect on all of them at one
        /// instant, however long each request took to arrive. The agent
        /// journals the fault first, then waits; a time already past takes
        /// effect at once (the reply's time says when it did), one more than
        /// [`MAX_APPLY_LEAD_MS`] ahead is refused. None: at once.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at_mono_ns: Option<u64>,
    },
    /// Answered at once with the agent's monotonic time: round trips of
    /// this map the agent's clock onto the controller's.
    Clock,
    /// Renew the lease of every applied fault for another `lease_ms`.
    Renew { lease_ms: u64 },
    /// Roll one fault back; healing a fault that is not applied is not an error.
    Heal { fault_id: String },
    /// Roll every applied fault back.
    HealAll,
    /// Start streaming quorum events (the current state first).
    Watch,
    /// Start streaming where this node's view says each resource is active,
    /// the current view first. `node` is this node's name in the
    /// inventory (a probe that prints nothing speaks for it).
    WatchResources {
        node: String,
        watches: Vec<ResourceWatch>,
    },
    /// Roll everything back and exit.
    Shutdown,
    /// The operator's red button, sent to an observer: make the agent that
    /// owns this node's faults roll them back (SIGTERM; SIGKILL after
    /// `grace_ms`, its guard then rolls back), take ownership, roll back
    /// whatever is left. Answered with `Healed`; the reports name the
    /// drill whose faults were ended.
    TakeOver { grace_ms: u64 },
    /// Read-only checks before clustering or drilling ("Before You Cluster").
    Preflight { peers: Vec<Peer> },
}

/// One resource to watch on a node, and how its view is read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceWatch {
    pub resource: String,
    pub interval_ms: u64,
    pub source: ResourceSource,
}

/// Where a node's view of a resource comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ResourceSource {
    /// `crm_mon --output-as=xml` on the node.
    Pacemaker,
    /// `ha-manager status` on the node (Proxmox VE's HA manager); the
    /// resource is a service id such as `vm:100`.
    PveHa,
    /// An operator's command, run with `sh -c` on the node: exit 0 means
    /// the resource answers; the words it prints name the nodes it runs
    /// on, and no output means this node. Killed after `timeout_ms`.
    Probe { command: String, timeout_ms: u64 },
}

/// Another node as corosync knows it: its name and its link addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    pub name: String,
    /// By link number: `addresses[0]` is ring0.
    pub addresses: Vec<IpAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Pass,
    Warn,
    Fail,
}

/// One preflight check on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub status: CheckStatus,
    pub detail: String,
    /// The fix, in one line, when the check does not pass.
    pub fix: Option<String>,
}

/// Which way a cut drops traffic, seen from the node the agent runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Both,
    /// This node receives nothing from the peers (they cannot send to it).
    Inbound,
    /// This node cannot send to the peers.
    Outbound,
}

/// A fault as the agent applies it on its own node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Fault {
    /// Drop corosync traffic (UDP 5405-5412) to and/or from these peer
    /// addresses: partition, isolate and one-way cuts are all this.
    Cut {
        peers: Vec<IpAddr>,
        direction: Direction,
    },
    /// Take down the interface that holds this local address.
    LinkDown { address: IpAddr },
    /// Degrade corosync traffic with these peers (loss) and on the
    /// interfaces that hold these local addresses (rate, delay, jitter).
    Degrade {
        peers: Vec<IpAddr>,
        addresses: Vec<IpAddr>,
        #[serde(default)]
        loss_percent: Option<u8>,
        #[serde(default)]
        delay_ms: Option<u32>,
        #[serde(default)]
        jitter_ms: Option<u32>,
        /// tc rate, for example "1mbit".
        #[serde(default)]
        rate: Option<String>,
    },
    /// SIGKILL corosync; heal starts it again.
    Kill,
    /// Stop corosync cleanly (SIGTERM, wait); heal starts it again.
    Stop,
    /// SIGSTOP corosync; heal sends SIGCONT.
    Pause,
    /// Move the node's clock by `offset_ms`; with `strobe_ms`, flip between
    /// the offset and none every `strobe_ms`.
    ClockSkew {
        offset_ms: i64,
        #[serde(default)]
        strobe_ms: Option<u64>,
    },
    /// An operator command, and the command that undoes it.
    Command {
        run: String,
        #[serde(default)]
        undo: Option<String>,
        /// How long `run` (and later `undo`) may take before its process
        /// group is killed; the agent's default when absent.
        #[serde(default)]
        timeout_ms: Option<u64>,
    },
}

impl Fault {
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Cut { .. } => "cut",
            Fault::LinkDown { .. } => "link-down",
            Fault::Degrade { .. } => "degrade",
            Fault::Kill => "kill",
            Fault::Stop => "stop",
            Fault::Pause => "pause",
            Fault::ClockSkew { .. } => "clock-skew",
            Fault::Command { .. } => "command",
        }
    }
}

/// How the agent can move this node's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockMethod {
    /// A lab node: its daemons run under libfaketime with a control file.
    Libfaketime,
    /// A real node: clock_settime, put back from the monotonic clock on heal.
    ClockSettime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// The kernel has sch_netem (delay and jitter come from netem).
    pub netem: bool,
    pub clock: ClockMethod,
    /// `corosync -v`, or None if corosync is not installed.
    pub corosync_version: Option<String>,
}

/// The agent's first line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol_version: u32,
    pub agent_version: String,
    /// The node's hostname.
    pub node: String,
    /// corosync's node id for this node, if corosync answers.
    pub node_id: Option<u32>,
    pub capabilities: Capabilities,
    /// The agent's real-time clock when it said hello, microseconds since
    /// the Unix epoch: the controller's measure of the node's clock offset.
    #[serde(default)]
    pub utc_us: i64,
    /// corosync's quorum settings on this node as cmap has them
    /// (`quorum.two_node`, `quorum.device.model`, ...), empty if corosync
    /// does not answer.
    #[serde(default)]
    pub quorum_config: std::collections::BTreeMap<String, String>,
    /// The SHA-256 of the corosync.conf this node's corosync reads (hex),
    /// if the agent can read it: the history tells a changed configuration
    /// by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corosync_conf_sha256: Option<String>,
    /// Faults a previous agent journaled and this one rolled back at start.
    pub recovered: Vec<RollbackReport>,
    /// Proxmox VE HA services configured on the cluster, as this node's
    /// `/etc/pve/ha/resources.cfg` lists them (`vm:100`); empty elsewhere.
    /// With any, a long enough loss of quorum gets nodes reset by their
    /// watchdog.
    #[serde(default)]
    pub ha_services: Vec<String>,
    /// Whether this agent owns the node's faults or only observes, because
    /// another agent (a drill running now) holds them.
    #[serde(default)]
    pub role: Role,
}

/// One agent per node owns its faults (it holds a lock on the journal);
/// any other agent started meanwhile observes: it watches, reads and
/// checks, and refuses to apply or roll back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Role {
    #[default]
    Owner,
    Observer {
        /// The owning agent's pid on the node, if it could be read.
        owner_pid: Option<i32>,
        /// The faults the owner holds now, as its journal has them.
        held: Vec<HeldFault>,
    },
}

/// A fault in an agent's journal, as another agent reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldFault {
    pub fault_id: String,
    pub kind: String,
    pub drill: Option<String>,
}

/// What the agent found after rolling a fault back. A state it could not
/// read counts as not rolled back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackReport {
    pub fault_id: String,
    pub kind: String,
    pub clean: bool,
    /// What was checked, or what was found left.
    pub detail: String,
}

/// As `corodrill heal` and `corodrill-agent --rollback` print it:
/// "rolled back cut (cut): table gone".
impl std::fmt::Display for RollbackReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} ({}): {}",
            if self.clean {
                "rolled back"
            } else {
                "NOT rolled back"
            },
            self.fault_id,
            self.kind,
            self.detail
        )
    }
}

/// What the agent writes: the hello, replies and events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    Hello(Hello),
    Reply(Reply),
    Event(Event),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub id: u64,
    #[serde(flatten)]
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Ok {
        /// When the change took effect, on the agent's monotonic clock.
        mono_ns: u64,
    },
    Healed {
        mono_ns: u64,
        reports: Vec<RollbackReport>,
    },
    Error {
        message: String,
    },
    Checks {
        checks: Vec<Check>,
    },
}

/// Something the agent observed, stamped with its monotonic clock (which
/// fault-injected wall-clock skew does not move) and UTC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub mono_ns: u64,
    /// Microseconds since the Unix epoch, from the agent's real-time clock.
    pub utc_us: i64,
    #[serde(flatten)]
    pub body: EventBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub node_id: u32,
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventBody {
    /// This node's view of quorum changed (or is reported for the first time).
    Quorum {
        quorate: bool,
        ring_id: String,
        members: Vec<Member>,
        expected_votes: Option<u32>,
        total_votes: Option<u32>,
        quorum: Option<u32>,
        qdevice: Option<bool>,
        /// Where the event's times come from: corosync's own log line for
        /// this transition, or the notification's arrival. Absent from
        /// agents that predate it (taken as the notification).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<TimeSource>,
    },
    /// corosync does not answer on this node (killed, stopped, powered off).
    CorosyncDown { reason: String },
    /// This node's knet links to its peers changed (or are reported for the
    /// first time), as corosync's stats map has them.
    Links { links: Vec<LinkState> },
    /// A fault's lease ran out and the agent rolled it back by itself.
    LeaseExpired { reports: Vec<RollbackReport> },
    /// The machine, not the cluster, stalled: corosync said it was not
    /// scheduled for `late_ms` (its own warning, from its log), or the
    /// agent's own 10 ms timer woke `late_ms` late. Stamped when seen; the
    /// stall ended then.
    Stall {
        source: StallSource,
        late_ms: u64,
        detail: String,
    },
    /// corosync on this node has had no totem token for `late_ms` ("Token
    /// has not been received in N ms", from its log), and the last
    /// membership it began to synchronise ("Sync members") was `ring`
    /// (node ids; empty if the agent has not seen one). A membership being
    /// formed is not in it yet. Stamped when seen. The controller tells
    /// whether the drill explains it.
    TokenLate {
        late_ms: u64,
        ring: Vec<u32>,
        detail: String,
    },
    /// Where this node's view (Pacemaker's status on this node) says a
    /// watched resource is active, when that changes; `None` when this
    /// node cannot say (Pacemaker not answering here).
    Resource {
        resource: String,
        active_on: Option<Vec<String>>,
        /// Where the event's time comes from: a Pacemaker alert's own
        /// timestamp for this node's start or stop, the alert's arrival,
        /// or the read of the node's view. Absent from agents that predate
        /// it (taken as the poll).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<ResourceTimeSource>,
    },
    /// Whether Proxmox VE's cluster file system at `/etc/pve` takes writes
    /// on this node (pmxcfs turns it read-only while the node is
    /// inquorate), when that changes; sent by the `pve-ha` watcher.
    EtcPve { writable: bool },
}

/// Where a quorum event's time was taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimeSource {
    /// corosync's own log line for the transition (its `Members[N]` line),
    /// mapped onto the agent's monotonic clock.
    CorosyncLog,
    /// When libquorum's notification reached the agent: a few ms after
    /// corosync's own record, ~20 ms for a restarted corosync's first view.
    Notification,
}

impl TimeSource {
    pub fn as_str(self) -> &'static str {
        match self {
            TimeSource::CorosyncLog => "corosync-log",
            TimeSource::Notification => "notification",
        }
    }
}

/// Where a resource event's time was taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResourceTimeSource {
    /// The timestamp of the Pacemaker alert for this node's own start,
    /// stop or monitor result (`CRM_alert_timestamp_epoch`/`_usec`), mapped
    /// onto the agent's monotonic clock: the moment Pacemaker recorded it.
    PacemakerAlert,
    /// When such an alert reached the agent, its own timestamp not usable
    /// (a clock step around it, too old, or later than the agent's clock).
    AlertArrival,
    /// When the agent read the node's view (`crm_mon`, `ha-manager
    /// status`, a probe): up to one watch interval after the change.
    Poll,
}

impl ResourceTimeSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceTimeSource::PacemakerAlert => "pacemaker-alert",
            ResourceTimeSource::AlertArrival => "alert-arrival",
            ResourceTimeSource::Poll => "poll",
        }
    }

    /// Whether the time is the resource manager's own record of the
    /// change, not when the agent happened to see it.
    pub fn is_exact(self) -> bool {
        matches!(self, ResourceTimeSource::PacemakerAlert)
    }
}

/// Who saw a stall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StallSource {
    /// corosync's "main process was not scheduled for N ms" warning.
    Corosync,
    /// The agent's own timer.
    Agent,
}

/// One knet link from this node to a peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkState {
    pub node_id: u32,
    pub link: u8,
    pub connected: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("malformed message: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error(
        "protocol version mismatch: the agent speaks {agent}, this controller {controller}; \
         install the same corodrill version on both sides"
    )]
    VersionMismatch { agent: u32, controller: u32 },
    #[error("a message longer than {max} bytes: not an agent's line (is something else printing on its stdout?)")]
    TooLong { max: usize },
}

impl Hello {
    /// The controller's check of an agent's hello.
    pub fn check_version(&self) -> Result<(), ProtocolError> {
        if self.protocol_version != PROTOCOL_VERSION {
            return Err(ProtocolError::VersionMismatch {
                agent: self.protocol_version,
                controller: PROTOCOL_VERSION,
            });
        }
        Ok(())
    }
}

/// One message as a line (no newline).
pub fn to_line<T: Serialize>(msg: &T) -> String {
    // These types serialize to JSON without fail (no maps with non-string keys).
    serde_json::to_string(msg)
        .unwrap_or_else(|e| format!("{{\"type\":\"unserializable\",\"error\":\"{e}\"}}"))
}

pub fn parse_request(line: &str) -> Result<Request, ProtocolError> {
    Ok(serde_json::from_str(line)?)
}

pub fn parse_message(line: &str) -> Result<Message, ProtocolError> {
    Ok(serde_json::from_str(line)?)
}

/// The entry of the `protocol` fuzz target (`fuzz/`): any bytes as the
/// lines an agent reads (requests) and the controller reads (messages),
/// each decoded one written again. Must not panic.
pub fn fuzz_entry(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for line in text.lines() {
        if let Ok(request) = parse_request(line) {
            let _ = to_line(&request);
        }
        if let Ok(message) = parse_message(line) {
            if let Message::Hello(hello) = &message {
                let _ = hello.check_version();
            }
            let _ = to_line(&message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every seed of the protocol fuzz target decodes without a panic.
    #[test]
    fn fuzz_corpus_replays() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/protocol");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("a corpus entry").path();
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if std::panic::catch_unwind(|| fuzz_entry(&data)).is_err() {
                panic!("{}: panicked", path.display());
            }
            seen += 1;
        }
        assert!(seen > 0, "{} is empty", dir.display());
    }

    #[test]
    fn requests_round_trip() {
        let req = Request {
            id: 7,
            op: Op::Apply {
                fault_id: "cut".into(),
                fault: Fault::Cut {
                    peers: vec!["198.18.0.2".parse().unwrap()],
                    direction: Direction::Both,
                },
                lease_ms: 5000,
                allow_management_cut: false,
                drill: None,
                at_mono_ns: Some(12_345_678_901),
            },
        };
        let line = to_line(&req);
        assert!(line.contains("\"op\":\"apply\""), "{line}");
        assert!(line.contains("\"kind\":\"cut\""), "{line}");
        assert_eq!(parse_request(&line).unwrap(), req);
        assert!(parse_request(
            r#"{"id":1,"op":"apply","fault_id":"x","fault":{"kind":"bogus"},"lease_ms":1}"#
        )
        .is_err());
        assert_eq!(
            parse_request(r#"{"id":2,"op":"heal_all"}"#).unwrap().op,
            Op::HealAll
        );
        assert_eq!(
            parse_request(r#"{"id":3,"op":"clock"}"#).unwrap().op,
            Op::Clock
        );
        // Untimed, the field is left out and read back as None.
        let untimed =
            r#"{"id":4,"op":"apply","fault_id":"x","fault":{"kind":"kill"},"lease_ms":1}"#;
        match parse_request(untimed).unwrap().op {
            Op::Apply { at_mono_ns, .. } => assert_eq!(at_mono_ns, None),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn resource_watches_travel_with_their_source() {
        let op = Op::WatchResources {
            node: "pve2".into(),
            watches: vec![ResourceWatch {
                resource: "vip".into(),
                interval_ms: 500,
                source: ResourceSource::Probe {
                    command: "curl -sf http://192.0.2.10/".into(),
                    timeout_ms: 2000,
                },
            }],
        };
        let line = serde_json::to_string(&op).unwrap();
        assert!(line.contains(r#""kind":"probe""#), "{line}");
        assert_eq!(serde_json::from_str::<Op>(&line).unwrap(), op);
    }

    #[test]
    fn version_mismatch_is_explained() {
        let hello = Hello {
            protocol_version: PROTOCOL_VERSION + 1,
            agent_version: "9.9.9".into(),
            node: "pve1".into(),
            node_id: Some(1),
            capabilities: Capabilities {
                netem: false,
                clock: ClockMethod::Libfaketime,
                corosync_version: None,
            },
            utc_us: 0,
            quorum_config: Default::default(),
            corosync_conf_sha256: None,
            recovered: vec![],
            ha_services: vec![],
            role: Role::Observer {
                owner_pid: Some(42),
                held: vec![],
            },
        };
        let err = hello.check_version().unwrap_err().to_string();
        assert!(err.contains("version mismatch"), "{err}");
        let line = to_line(&Message::Hello(hello.clone()));
        assert_eq!(parse_message(&line).unwrap(), Message::Hello(hello));
    }

    #[test]
    fn events_carry_their_kind() {
        let ev = Message::Event(Event {
            mono_ns: 1,
            utc_us: 2,
            body: EventBody::CorosyncDown {
                reason: "no answer".into(),
            },
        });
        let line = to_line(&ev);
        assert!(
            line.contains("\"type\":\"event\"") && line.contains("\"kind\":\"corosync_down\""),
            "{line}"
        );
        assert_eq!(parse_message(&line).unwrap(), ev);
    }
}
