//! The quorum model: a pure function of corosync's quorum configuration and
//! a partition of the cluster that says which side is quorate, as
//! votequorum (and a net QDevice) would decide once the membership has
//! settled. It answers the seed's question, "how many nodes can you lose,
//! and what happens on a partition?", for the operator's own configuration.
//!
//! Modelled (votequorum(5), corosync-qdevice(8)): votes per node, expected
//! votes and their override, quorum = max(expected, total) / 2 + 1,
//! `two_node`, `auto_tie_breaker` (lowest, highest, a node list), and a
//! QDevice with `ffsplit` (the bigger side wins, a tie goes to the side with
//! the lowest node id) or `lms` (the QDevice gives N-1 votes to a side that
//! reaches qnetd). `last_man_standing` is a walk over a drill's changes
//! (`predict::lms_expected`) using `with_expected`; `wait_for_all` only
//! matters before the cluster was first whole, which every drill waits
//! for, so it changes no prediction. Timing: `Timing` below.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TieBreaker {
    Lowest,
    Highest,
    /// The first node of this list present in a side wins.
    List(Vec<u32>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QDeviceAlgorithm {
    FfSplit,
    Lms,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumConfig {
    /// (node id, name, votes), in nodelist order.
    pub nodes: Vec<(u32, String, u32)>,
    /// `quorum.expected_votes`, or an operator's `corosync-quorumtool -e`.
    pub expected_votes: Option<u32>,
    pub two_node: bool,
    pub auto_tie_breaker: Option<TieBreaker>,
    pub qdevice: Option<QDeviceAlgorithm>,
    /// `last_man_standing`, with its window in milliseconds: a quorate
    /// partition's expected votes drop to the votes it has once the window
    /// has passed (`predict.rs` walks a drill's changes for it).
    pub last_man_standing: Option<u32>,
}

impl QuorumConfig {
    /// From corosync's quorum settings as the agent reports them (cmap
    /// keys without the `quorum.` prefix) and the nodes, one vote each.
    pub fn from_cmap(nodes: Vec<(u32, String)>, cmap: &BTreeMap<String, String>) -> QuorumConfig {
        let flag = |k: &str| cmap.get(k).is_some_and(|v| v != "0");
        let auto_tie_breaker = flag("auto_tie_breaker").then(|| {
            match cmap.get("auto_tie_breaker_node").map(String::as_str) {
                Some("highest") => TieBreaker::Highest,
                Some(list) if list != "lowest" => TieBreaker::List(
                    list.split_whitespace()
                        .filter_map(|n| n.parse().ok())
                        .collect(),
                ),
                _ => TieBreaker::Lowest,
            }
        });
        let qdevice = cmap.get("device.model").map(|_| {
            match cmap.get("device.net.algorithm").map(String::as_str) {
                Some("lms") => QDeviceAlgorithm::Lms,
                _ => QDeviceAlgorithm::FfSplit,
            }
        });
        QuorumConfig {
            nodes: nodes.into_iter().map(|(id, name)| (id, name, 1)).collect(),
            expected_votes: cmap.get("expected_votes").and_then(|v| v.parse().ok()),
            two_node: flag("two_node"),
            auto_tie_breaker,
            qdevice,
            last_man_standing: flag("last_man_standing").then(|| {
                cmap.get("last_man_standing_window")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(10_000)
            }),
        }
    }

    /// This configuration with expected votes set (an override, or
    /// last_man_standing's recalculation).
    pub fn with_expected(&self, expected: u32) -> QuorumConfig {
        QuorumConfig {
            expected_votes: Some(expected),
            ..self.clone()
        }
    }

    /// Node ids of these node names (unknown names are skipped).
    pub fn ids_of(&self, names: &[String]) -> Vec<u32> {
        self.nodes
            .iter()
            .filter(|n| names.contains(&n.1))
            .map(|n| n.0)
            .collect()
    }

    /// The votes of these nodes, by name.
    pub fn votes_of_names(&self, names: &[String]) -> u32 {
        self.nodes
            .iter()
            .filter(|n| names.contains(&n.1))
            .map(|n| n.2)
            .sum()
    }

    fn node_votes(&self) -> u32 {
        self.nodes.iter().map(|n| n.2).sum()
    }

    /// The QDevice's votes: 1 for ffsplit, N-1 for lms.
    fn qdevice_votes(&self) -> u32 {
        match self.qdevice {
            None => 0,
            Some(QDeviceAlgorithm::FfSplit) => 1,
            Some(QDeviceAlgorithm::Lms) => (self.nodes.len() as u32).saturating_sub(1),
        }
    }

    pub fn expected(&self) -> u32 {
        self.expected_votes
            .unwrap_or(self.node_votes() + self.qdevice_votes())
    }

    /// The votes a side needs (two_node: one).
    pub fn quorum(&self, total: u32) -> u32 {
        if self.two_node && self.nodes.len() == 2 && self.qdevice.is_none() {
            return 1;
        }
        self.expected().max(total) / 2 + 1
    }

    fn votes_of(&self, side: &[u32]) -> u32 {
        self.nodes
            .iter()
            .filter(|n| side.contains(&n.0))
            .map(|n| n.2)
            .sum()
    }

    fn breaks_tie(&self, tb: &TieBreaker, side: &[u32], sides: &[Vec<u32>]) -> bool {
        let all = || sides.iter().flatten().copied();
        match tb {
            TieBreaker::Lowest => all().min().is_some_and(|m| side.contains(&m)),
            TieBreaker::Highest => all().max().is_some_and(|m| side.contains(&m)),
            TieBreaker::List(list) => list
                .iter()
                .find(|n| all().any(|m| m == **n))
                .is_some_and(|n| side.contains(n)),
        }
    }

    /// Which sides of a partition are quorate once the membership settles.
    /// `reaches_qnetd[i]`: side `i` can reach the QDevice host.
    pub fn outcome(&self, sides: &[Vec<u32>], reaches_qnetd: &[bool]) -> Vec<bool> {
        let votes: Vec<u32> = sides.iter().map(|s| self.votes_of(s)).collect();
        // The QDevice's votes go to at most one side that reaches qnetd: the
        // bigger one, on a tie the one with the lowest node id (qnetd's
        // default tie-breaker, for ffsplit and lms alike).
        let qdevice_side: Option<usize> = self.qdevice.and_then(|_| {
            (0..sides.len())
                .filter(|&i| reaches_qnetd.get(i).copied().unwrap_or(false) && !sides[i].is_empty())
                .max_by_key(|&i| {
                    (
                        sides[i].len(),
                        std::cmp::Reverse(sides[i].iter().min().copied().unwrap_or(u32::MAX)),
                    )
                })
        });
        sides
            .iter()
            .enumerate()
            .map(|(i, side)| {
                if side.is_empty() {
                    return false;
                }
                let total = votes[i]
                    + if qdevice_side == Some(i) {
                        self.qdevice_votes()
                    } else {
                        0
                    };
                let quorum = self.quorum(total);
                if total >= quorum {
                    return true;
                }
                // auto_tie_breaker: an exact half wins if it holds the tie-breaker node.
                match &self.auto_tie_breaker {
                    Some(tb) if self.qdevice.is_none() && 2 * total == self.expected() => {
                        self.breaks_tie(tb, side, sides)
                    }
                    _ => false,
                }
            })
            .collect()
    }
}

/// corosync's failure-detection timing: the effective token (corosync adds
/// `token_coefficient` per node beyond two) and the consensus timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub token_ms: u32,
    pub consensus_ms: u32,
}

impl Timing {
    /// From the values corosync runs with (cmap `runtime.config.totem.*`).
    pub fn from_runtime(cmap: &BTreeMap<String, String>) -> Option<Timing> {
        let get = |k: &str| cmap.get(k)?.parse().ok();
        Some(Timing {
            token_ms: get("totem.token")?,
            consensus_ms: get("totem.consensus")?,
        })
    }

    /// From a corosync.conf's totem section, as corosync computes it:
    /// token (default 3000) + (nodes - 2) * token_coefficient (default 650)
    /// above two nodes; consensus defaults to 1.2 * token.
    pub fn from_totem(totem: &BTreeMap<String, String>, nodes: usize) -> Timing {
        let get =
            |k: &str, default: u32| totem.get(k).and_then(|v| v.parse().ok()).unwrap_or(default);
        let base = get("token", 3000);
        let coefficient = get("token_coefficient", 650);
        let token_ms = base + coefficient * (nodes.saturating_sub(2) as u32);
        let consensus_ms = totem
            .get("consensus")
            .and_then(|v| v.parse().ok())
            .unwrap_or(token_ms + token_ms / 5);
        Timing {
            token_ms,
            consensus_ms,
        }
    }

    /// When the rest of the cluster notices a node gone (cut off, killed,
    /// paused) and a cut-off side loses quorum: a token timeout, then the
    /// consensus round. Measured on the lab within 10 % below this.
    pub fn detection(&self) -> std::time::Duration {
        std::time::Duration::from_millis(u64::from(self.token_ms + self.consensus_ms))
    }
}

/// One row of the plan: a way the cluster can split, and who keeps quorum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub sides: Vec<Vec<String>>,
    pub quorate: Vec<bool>,
}

/// The seed's table for this configuration: for each number of nodes lost
/// (the rest together, reaching the QDevice), whether the rest is quorate;
/// and for each way of splitting the nodes in two (by size, lowest ids on
/// the first side), which side keeps quorum.
pub fn plan_table(cfg: &QuorumConfig) -> (Vec<(usize, bool)>, Vec<Split>) {
    let ids: Vec<u32> = cfg.nodes.iter().map(|n| n.0).collect();
    let name = |id: u32| {
        cfg.nodes
            .iter()
            .find(|n| n.0 == id)
            .map_or(id.to_string(), |n| n.1.clone())
    };
    let n = ids.len();
    // Losing the highest-numbered nodes: without a tie-breaker every
    // choice of k nodes gives the same votes, and with one this is the
    // case the lowest-id rule favours least... so also check the other end.
    let losses = (1..n)
        .map(|k| {
            let keep_low: Vec<u32> = ids[..n - k].to_vec();
            let keep_high: Vec<u32> = ids[k..].to_vec();
            let ok = |keep: Vec<u32>| cfg.outcome(&[keep], &[true])[0];
            (k, ok(keep_low) && ok(keep_high))
        })
        .collect();
    let splits = (1..=n / 2)
        .map(|a| {
            let sides = vec![ids[..a].to_vec(), ids[a..].to_vec()];
            let quorate = cfg.outcome(&sides, &[true, true]);
            Split {
                sides: sides
                    .iter()
                    .map(|s| s.iter().map(|&i| name(i)).collect())
                    .collect(),
                quorate,
            }
        })
        .collect();
    (losses, splits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(n: u32) -> QuorumConfig {
        QuorumConfig {
            nodes: (1..=n).map(|i| (i, format!("pve{i}"), 1)).collect(),
            expected_votes: None,
            two_node: false,
            auto_tie_breaker: None,
            qdevice: None,
            last_man_standing: None,
        }
    }

    #[test]
    fn plain_votequorum_majorities() {
        let c = cfg(3);
        assert_eq!(c.quorum(3), 2);
        assert_eq!(
            c.outcome(&[vec![1, 2], vec![3]], &[true, true]),
            [true, false]
        );
        let c = cfg(5);
        assert_eq!(
            c.outcome(&[vec![1, 2, 3], vec![4, 5]], &[true, true]),
            [true, false]
        );
        // Four nodes split 2|2: nobody.
        assert_eq!(
            cfg(4).outcome(&[vec![1, 2], vec![3, 4]], &[true, true]),
            [false, false]
        );
    }

    #[test]
    fn two_nodes_freeze_without_qdevice_and_two_node() {
        let c = cfg(2);
        assert_eq!(
            c.outcome(&[vec![1], vec![2]], &[true, true]),
            [false, false]
        );
        let mut two = cfg(2);
        two.two_node = true;
        // Both sides keep quorum: fencing has to decide (the seed's warning).
        assert_eq!(
            two.outcome(&[vec![1], vec![2]], &[true, true]),
            [true, true]
        );
    }

    #[test]
    fn expected_votes_override_makes_a_lone_node_quorate() {
        let mut c = cfg(2);
        c.expected_votes = Some(1);
        assert_eq!(c.outcome(&[vec![1], vec![2]], &[true, true]), [true, true]);
    }

    #[test]
    fn qdevice_ffsplit_bigger_side_then_lowest_id() {
        let mut c = cfg(2);
        c.qdevice = Some(QDeviceAlgorithm::FfSplit);
        assert_eq!(c.expected(), 3);
        assert_eq!(c.outcome(&[vec![1], vec![2]], &[true, true]), [true, false]);
        // The side that cannot reach qnetd cannot win.
        assert_eq!(
            c.outcome(&[vec![1], vec![2]], &[false, true]),
            [false, true]
        );
        let mut c4 = cfg(4);
        c4.qdevice = Some(QDeviceAlgorithm::FfSplit);
        assert_eq!(
            c4.outcome(&[vec![1, 2], vec![3, 4]], &[true, true]),
            [true, false]
        );
    }

    #[test]
    fn qdevice_lms_lets_the_last_node_stand() {
        let mut c = cfg(3);
        c.qdevice = Some(QDeviceAlgorithm::Lms);
        assert_eq!(c.expected(), 5);
        assert_eq!(
            c.outcome(&[vec![1], vec![2], vec![3]], &[true, false, false]),
            [true, false, false]
        );
    }

    #[test]
    fn auto_tie_breaker_on_an_even_split() {
        let mut c = cfg(4);
        c.auto_tie_breaker = Some(TieBreaker::Lowest);
        assert_eq!(
            c.outcome(&[vec![1, 2], vec![3, 4]], &[true, true]),
            [true, false]
        );
        c.auto_tie_breaker = Some(TieBreaker::Highest);
        assert_eq!(
            c.outcome(&[vec![1, 2], vec![3, 4]], &[true, true]),
            [false, true]
        );
        c.auto_tie_breaker = Some(TieBreaker::List(vec![3, 1]));
        assert_eq!(
            c.outcome(&[vec![1, 2], vec![3, 4]], &[true, true]),
            [false, true]
        );
        // Not a tie: the majority rule alone.
        assert_eq!(
            c.outcome(&[vec![1], vec![2, 3, 4]], &[true, true]),
            [false, true]
        );
    }

    #[test]
    fn timing_from_totem_as_corosync_computes_it() {
        let mut totem = BTreeMap::new();
        totem.insert("token".to_string(), "1000".to_string());
        // 3 nodes, token 1000: 1650 ms effective, 1980 ms consensus; the lab
        // measured 3.4-3.6 s from a cut to the majority's new membership.
        let t = Timing::from_totem(&totem, 3);
        assert_eq!((t.token_ms, t.consensus_ms), (1650, 1980));
        assert_eq!(t.detection().as_millis(), 3630);
        // Two nodes: no coefficient (measured 2.0-2.2 s).
        assert_eq!(Timing::from_totem(&totem, 2).detection().as_millis(), 2200);
        // Proxmox VE: token unset (3000), coefficient 125.
        let mut pve = BTreeMap::new();
        pve.insert("token_coefficient".to_string(), "125".to_string());
        assert_eq!(Timing::from_totem(&pve, 3).token_ms, 3125);
    }

    #[test]
    fn plan_table_answers_how_many_nodes_can_be_lost() {
        let (losses, splits) = plan_table(&cfg(5));
        assert_eq!(losses, [(1, true), (2, true), (3, false), (4, false)]);
        assert_eq!(splits.len(), 2);
        assert_eq!(splits[1].sides[0], ["pve1", "pve2"]);
        assert_eq!(splits[1].quorate, [false, true]);
        let mut q = cfg(2);
        q.qdevice = Some(QDeviceAlgorithm::FfSplit);
        let (losses, _) = plan_table(&q);
        assert_eq!(losses, [(1, true)]);
    }
}
