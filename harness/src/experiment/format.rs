//! The experiment file as it is written, field by field: the one source of
//! `corodrill schema experiment`, `corodrill explain` and the generated
//! tables of `docs/experiments.md`. Each doc comment here is a reference
//! entry: what the field means, its unit and default, and for a fault kind
//! what it does on the node and how it is undone.
//!
//! The parser (`faults.rs`, `expects.rs`, `mod.rs`) reads the file with
//! positions and its own checks; `reference::tests` holds it to these types
//! both ways (every field here is accepted, every field accepted is here).

use schemars::JsonSchema;
use serde::Deserialize;

use super::{Invariants, Requires};

/// A corodrill experiment (a drill): faults to apply to a corosync
/// cluster and what each node must then see.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "corodrill experiment")]
pub struct ExperimentFile {
    /// The drill's name, as reports show it. Not empty.
    #[schemars(extend("examples" = ["isolate-one-of-three"]))]
    pub name: String,
    /// What the drill shows, in words (reports and `corodrill plan` print it).
    /// Default: empty.
    #[serde(default)]
    #[schemars(extend("examples" = ["pve3 cut off: the majority keeps quorum"]))]
    pub description: String,
    /// The inventory must have at least this many nodes (1 to 32). Nodes are
    /// named as in the inventory; the shipped drills use `pve1` to `pveN`.
    #[schemars(range(min = 1, max = 32), extend("examples" = [3]))]
    pub nodes: u32,
    /// What the cluster must offer for the drill to apply (`run` refuses,
    /// `demo` skips a drill whose `[requires]` the inventory does not meet).
    pub requires: Option<Requires>,
    /// The faults (`[[fault]]`), at least one.
    #[serde(default)]
    pub fault: Vec<FaultFile>,
    /// The expectations (`[[expect]]`).
    #[serde(default)]
    pub expect: Vec<ExpectFile>,
    /// The always-on checks, and the drills that provoke what they forbid.
    pub invariants: Option<Invariants>,
    /// Resources whose placement every node reports (`[[watch]]`).
    #[serde(default)]
    pub watch: Vec<WatchFile>,
}

/// A duration: a number and a unit, humantime ("500ms", "10s", "2m",
/// "1h 30m"); at most 7 days.
#[derive(Deserialize, JsonSchema)]
#[schemars(
    extend("pattern" = r"^\s*[0-9]+\s*[a-zµ]+(\s*[0-9]+\s*[a-zµ]+)*\s*$"),
    extend("examples" = ["500ms", "10s", "2m"])
)]
pub struct Duration(pub String);

/// A set of nodes: "all", or a list of node names.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum NodeSetFile {
    /// Every node of the inventory.
    All(AllNodes),
    /// These nodes.
    Some(Vec<String>),
}

/// The word "all".
#[derive(Deserialize, JsonSchema)]
pub enum AllNodes {
    #[serde(rename = "all")]
    All,
}

/// The word "predicted": the quorum oracle fills the field in from the
/// faults in force at the anchor.
#[derive(Deserialize, JsonSchema)]
pub enum PredictedWord {
    #[serde(rename = "predicted")]
    Predicted,
}

/// A value, or "predicted".
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
#[schemars(rename = "{T}OrPredicted")]
pub enum OrPredicted<T> {
    Value(T),
    Predicted(PredictedWord),
}

/// The fields every fault has, whatever its kind.
#[derive(Deserialize, JsonSchema)]
pub struct FaultCommon {
    /// The fault's name, which expectations are anchored to (`after = "ID"`
    /// or `"ID.healed"`). Unique in the file; no dots or spaces.
    #[schemars(regex(pattern = r"^[^.\s]+$"))]
    pub id: String,
    /// When the fault is applied, from the start of the drill.
    /// Default: "0s".
    pub at: Option<Duration>,
    /// How long after it was applied the fault is healed. Default: at the
    /// end of the drill, once every expectation has held or its window
    /// (`within` + `hold`) is over.
    pub heal_after: Option<Duration>,
    /// On a real node reached over ssh, the agent refuses a cut, a degrade
    /// or a link-down that would cut the controller's own connection (the
    /// address in `SSH_CONNECTION`) unless this is true. Default: false.
    #[serde(default)]
    pub allow_management_cut: bool,
}

/// A fault (`[[fault]]`): `kind` says which; each kind has its fields
/// besides `id`, `at`, `heal_after` and `allow_management_cut`.
#[derive(Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum FaultFile {
    /// Split the cluster into groups that cannot reach each other.
    ///
    /// On the node: every node drops corosync traffic from and to the
    /// nodes of the other groups (their addresses on the links cut), in
    /// chains of corodrill's own nftables table; with `direction =
    /// "one-way"` only the first group's nodes drop what they send to
    /// the others, and still receive.
    ///
    /// Undone: the chains are deleted. The table is owned by the agent's
    /// `nft` process (the kernel deletes it if the agent dies) and each
    /// peer expires from its set shortly after the lease.
    Partition {
        #[serde(flatten)]
        common: FaultCommon,
        /// The groups, each a list of node names: every node of the
        /// experiment in exactly one, two groups at least.
        #[schemars(extend("examples" = [[["pve1", "pve2"], ["pve3"]]]))]
        groups: Vec<Vec<String>>,
        /// "both" (default): the groups cut from each other both ways.
        /// "one-way": the first group cannot send to the others but still
        /// receives from them (an asymmetric firewall, a half-broken port).
        direction: Option<Direction>,
        /// The corosync link numbers (0 to 7) to cut. Default: every link.
        #[schemars(extend("examples" = [[1]]))]
        links: Option<Vec<LinkNumber>>,
    },
    /// Cut some nodes off from every other node.
    ///
    /// On the node: each named node drops corosync traffic from and to
    /// every other node on the links cut (corodrill's nftables table), as
    /// a partition of these nodes against the rest would.
    ///
    /// Undone: as a partition, the chains deleted.
    Isolate {
        #[serde(flatten)]
        common: FaultCommon,
        /// The nodes to isolate (node names, at least one).
        #[schemars(extend("examples" = [["pve3"]]))]
        nodes: Vec<String>,
        /// The corosync link numbers (0 to 7) to cut. Default: every link.
        #[schemars(extend("examples" = [[0]]))]
        links: Option<Vec<LinkNumber>>,
    },
    /// Take one corosync link's interface down.
    ///
    /// On the node: the interface carrying the node's address on that
    /// link is set down (`ip link set DEV down`; the address stays).
    ///
    /// Undone: the interface is set up again.
    LinkDown {
        #[serde(flatten)]
        common: FaultCommon,
        /// The nodes whose interface goes down (node names).
        #[schemars(extend("examples" = [["pve1"]]))]
        nodes: Vec<String>,
        /// The corosync link number (0 to 7) whose interface goes down.
        #[schemars(extend("examples" = [1]))]
        link: LinkNumber,
    },
    /// Make corosync's traffic lossy, slow or narrow.
    ///
    /// On the node: loss is a random drop of packets to and from the
    /// other nodes (nftables `numgen random`, corodrill's table); delay
    /// and jitter hold each packet the node sends to the other nodes
    /// (netem where the kernel has it, else the agent's own delay line
    /// behind an NFQUEUE rule with `--queue-bypass`, so packets flow
    /// undelayed if the agent dies); a rate is a tbf qdisc on the links'
    /// interfaces. At least one of `loss`, `delay`, `rate`.
    ///
    /// Undone: the rules and qdiscs are removed (journaled before they
    /// take effect, so a restarted agent, the lease or `--rollback`
    /// removes them too).
    Degrade {
        #[serde(flatten)]
        common: FaultCommon,
        /// The nodes whose traffic is degraded (node names).
        #[schemars(extend("examples" = [["pve2"]]))]
        nodes: Vec<String>,
        /// The corosync link numbers (0 to 7) to degrade. Default: every link.
        #[schemars(extend("examples" = [[0]]))]
        links: Option<Vec<LinkNumber>>,
        /// Packets lost, a percentage from 1 to 100: "30%" or 30.
        /// Default: none lost.
        #[schemars(extend("examples" = ["30%"]))]
        loss: Option<Percent>,
        /// Added to every packet the node sends to the others. Default: none.
        #[schemars(extend("examples" = ["40ms"]))]
        delay: Option<Duration>,
        /// Added to `delay` at random, up to this much (needs `delay`).
        /// Default: none.
        #[schemars(extend("examples" = ["10ms"]))]
        jitter: Option<Duration>,
        /// The most the links' interfaces carry: a number and a unit, one
        /// of bit, kbit, mbit, gbit, bps, kbps, mbps, gbps ("1mbit",
        /// "500kbit"). Default: no limit.
        #[schemars(
            regex(pattern = r"^[0-9]+(bit|kbit|mbit|gbit|bps|kbps|mbps|gbps)$"),
            extend("examples" = ["1mbit"])
        )]
        rate: Option<String>,
    },
    /// Kill corosync with SIGKILL, as a crash would.
    ///
    /// On the node: SIGKILL to corosync (found by the node's network
    /// namespace on a lab, never by name alone).
    ///
    /// Undone: corosync (and corosync-qdevice if it ran) started as the
    /// node starts it: systemd on a real node, the lab's own start on a lab.
    Kill {
        #[serde(flatten)]
        common: FaultCommon,
        /// The nodes whose corosync is killed (node names).
        #[schemars(extend("examples" = [["pve1"]]))]
        nodes: Vec<String>,
    },
    /// Stop corosync cleanly: it leaves the membership first.
    ///
    /// On the node: `systemctl stop corosync` on a real node, SIGTERM on
    /// a lab node; waits (up to 20 s) for it to exit.
    ///
    /// Undone: corosync started again, as after `kill`.
    Stop {
        #[serde(flatten)]
        common: FaultCommon,
        /// The nodes whose corosync is stopped (node names).
        #[schemars(extend("examples" = [["pve1"]]))]
        nodes: Vec<String>,
    },
    /// Freeze corosync, as a stalled machine or a long GC pause would.
    ///
    /// On the node: SIGSTOP to corosync.
    ///
    /// Undone: SIGCONT. The agent never waits on a paused corosync.
    Pause {
        #[serde(flatten)]
        common: FaultCommon,
        /// The nodes whose corosync is paused (node names).
        #[schemars(extend("examples" = [["pve1"]]))]
        nodes: Vec<String>,
    },
    /// Move the node's wall clock.
    ///
    /// On the node: a real node's clock is stepped by the offset
    /// (clock_settime); a lab node's daemons run under libfaketime and the
    /// agent rewrites its control file (the host clock is never touched).
    /// With `strobe`, the clock flips between skewed and true every period.
    ///
    /// Undone: the clock is put back from the monotonic clock, so the
    /// time that passed while it was skewed is not lost.
    ClockSkew {
        #[serde(flatten)]
        common: FaultCommon,
        /// The nodes whose clock is skewed (node names).
        #[schemars(extend("examples" = [["pve3"]]))]
        nodes: Vec<String>,
        /// How far the clock moves: a signed duration, "+5m", "-90s",
        /// "300s" (forward without a sign). Not zero; at most 7 days.
        #[schemars(
            regex(pattern = r"^\s*[+-]?\s*[0-9]"),
            extend("examples" = ["+5m"])
        )]
        offset: String,
        /// Flip between skewed and true every this long (at least 100ms).
        /// Default: skewed for the whole fault.
        #[schemars(extend("examples" = ["2s"]))]
        strobe: Option<Duration>,
    },
    /// Pull the node's plug, through the inventory's power driver.
    ///
    /// On the node: the inventory's `power` driver turns it off (its
    /// agent is lost with it, on purpose). `run` first asks every driver
    /// for its state: a missing credential is exit 2, a driver that does
    /// not answer exit 3, before any fault.
    ///
    /// Undone: the driver turns the node on; the drill waits for it to
    /// boot and reconnects to its agent.
    PowerOff {
        #[serde(flatten)]
        common: FaultCommon,
        /// The nodes powered off (node names).
        #[schemars(extend("examples" = [["pve3"]]))]
        nodes: Vec<String>,
    },
    /// An operator's command, and the command that undoes it.
    ///
    /// On the node: `run` with `sh -c`, in a process group of its own,
    /// killed at `timeout`; a non-zero exit fails the apply.
    ///
    /// Undone: `undo` (if given) the same way. corodrill cannot check the
    /// node is back as it was: the undo is yours.
    Command {
        #[serde(flatten)]
        common: FaultCommon,
        /// The nodes that run the command (node names).
        #[schemars(extend("examples" = [["pve1"]]))]
        nodes: Vec<String>,
        /// The command, run with `sh -c` on each node.
        #[schemars(extend("examples" = ["corosync-quorumtool -e 1"]))]
        run: String,
        /// The command that undoes it, run with `sh -c` at the heal.
        /// Default: nothing to undo.
        #[schemars(extend("examples" = ["true"]))]
        undo: Option<String>,
        /// How long `run` and `undo` may each take before the node kills
        /// them (their whole process group). Not zero. Default: "60s".
        #[schemars(extend("examples" = ["30s"]))]
        timeout: Option<Duration>,
    },
}

/// A partition's direction.
#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    Both,
    OneWay,
}

/// A corosync link number, 0 to 7 (`ring0` to `ring7` in the inventory).
#[derive(Deserialize, JsonSchema)]
pub struct LinkNumber(#[schemars(range(max = 7))] pub u8);

/// A percentage from 1 to 100: "30%" or 30.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Percent {
    Number(#[schemars(range(min = 1, max = 100))] u8),
    Text(#[schemars(regex(pattern = r"^\s*[0-9]+\s*%?\s*$"))] String),
}

/// An expectation (`[[expect]]`): what some nodes' views must say after a
/// fault or its heal, by when and for how long. Either on quorum
/// (`quorate`, `members`, `total_votes`) or on a watched resource
/// (`resource` with one of `running_on`, `running = false`, `moved = true`).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectFile {
    /// The expectation's name in reports. Default: "expectation N after ANCHOR".
    #[schemars(extend("examples" = ["majority keeps quorum"]))]
    pub name: Option<String>,
    /// The anchor the timing starts from: a fault's `id` (when it is
    /// applied) or "ID.healed" (when it is healed).
    #[schemars(extend("examples" = ["cut"]))]
    pub after: String,
    /// Whose views count: "all" or a list of node names. Each node is
    /// judged on its own view.
    #[schemars(extend("examples" = [["pve1", "pve2"]]))]
    pub nodes: NodeSetFile,
    /// Whether each node's view is quorate; "predicted" asks the quorum
    /// oracle.
    #[schemars(extend("examples" = [true]))]
    pub quorate: Option<OrPredicted<bool>>,
    /// The membership each node sees, exactly: "all", a list of node names,
    /// or "predicted".
    #[schemars(extend("examples" = [["pve1", "pve2"]]))]
    pub members: Option<OrPredicted<NodeSetFile>>,
    /// The total votes each node's votequorum counts (expected votes as
    /// corosync-quorumtool shows "Total votes").
    #[schemars(extend("examples" = [3]))]
    pub total_votes: Option<u32>,
    /// A watched resource (its `[[watch]]` `resource`): the expectation is
    /// on where it runs, with one of `running_on`, `running`, `moved`.
    #[schemars(extend("examples" = ["svc"]))]
    pub resource: Option<String>,
    /// The resource runs on exactly one node, one of these.
    #[schemars(extend("examples" = [["pve2", "pve3"]]))]
    pub running_on: Option<Vec<String>>,
    /// `false`: the resource runs nowhere.
    #[schemars(extend("const" = false))]
    pub running: Option<bool>,
    /// `true`: the resource runs somewhere, on none of the nodes it ran on
    /// at the anchor.
    #[schemars(extend("const" = true))]
    pub moved: Option<bool>,
    /// The deadline, from the anchor: the state must be reached (or, if it
    /// was already so, kept through the reaction time) by then. At least
    /// 1s; "predicted": the oracle's window. The time it took is the
    /// measurement.
    #[schemars(extend("examples" = ["10s"]))]
    pub within: OrPredicted<Duration>,
    /// How long the state must then last without a break. Default: "0s".
    #[schemars(extend("examples" = ["2s"]))]
    pub hold: Option<Duration>,
}

/// A resource whose placement every node reports (`[[watch]]`).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WatchFile {
    /// The resource: a Pacemaker resource id (a clone's instances merged),
    /// a Proxmox VE HA service id such as "vm:100", or a probe's name.
    /// Watched once per file.
    #[schemars(extend("examples" = ["svc"]))]
    pub resource: String,
    /// Where the views come from. Default: "pacemaker".
    #[schemars(extend("examples" = ["pacemaker"]))]
    pub kind: Option<WatchKindFile>,
    /// How often each node reads its view. Default: "500ms".
    #[schemars(extend("examples" = ["500ms"]))]
    pub interval: Option<Duration>,
    /// The resource runs on several nodes by design: no double-active
    /// check. Default: false.
    #[schemars(extend("examples" = [false]))]
    pub clone: Option<bool>,
    /// `probe` only: the command each node runs with `sh -c`. Exit 0: the
    /// resource answers; the node names it prints say where it runs, no
    /// output means the node that ran it.
    #[schemars(extend("examples" = ["curl -sf http://192.0.2.10/hostname"]))]
    pub command: Option<String>,
    /// `probe` only: the nodes that run the command. Default: every node.
    #[schemars(extend("examples" = [["pve1"]]))]
    pub nodes: Option<Vec<String>>,
    /// `probe` only: a run that takes longer is killed, and the node cannot
    /// say. Default: "5s".
    #[schemars(extend("examples" = ["5s"]))]
    pub timeout: Option<Duration>,
}

/// Where the nodes' views of a watched resource come from.
#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum WatchKindFile {
    /// Pacemaker's `crm_mon --output-as=xml` on each node.
    Pacemaker,
    /// Proxmox VE's HA manager (`ha-manager status`) on each node.
    PveHa,
    /// The operator's `command` on the chosen nodes.
    Probe,
}
