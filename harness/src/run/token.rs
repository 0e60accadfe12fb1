//! Late tokens: corosync's "Token has not been received" on a node, and
//! whether the drill explains it. It is the machine's doing (the run is
//! disturbed, as by corosync's "not scheduled" warning) only when the drill
//! cannot have had a part in it:
//! - neither the node nor any node of its ring was touched by a fault, and
//! - every node a fault touched is held silent at that moment (paused,
//!   killed, stopped, powered off, cut off from every address), so it
//!   cannot be joining: the ring the agent sends is the last one corosync
//!   began to synchronise, and a membership being formed with a rejoining
//!   node is not in it yet.
//!
//! After a heal, the rejoin and a cluster that never settles again are the
//! drill's to judge: late tokens then are never evidence. A starved machine
//! keeps losing the token in a healthy ring with no "not scheduled"
//! warning, which is why this is evidence of its own.

/// A node a fault touched (drill time).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Touch {
    pub fault: String,
    pub node: String,
    pub from: f64,
    /// When the fault's heal began; None while it holds.
    pub until: Option<f64>,
    /// Whether the fault holds the node silent while it lasts: it can take
    /// no part in its peers' rings.
    pub silences: bool,
}

/// How far a late token's stamp may be off the moment corosync logged it:
/// agents' events are stamped when read, and the clock mapping is not
/// exact.
const STAMP_SLACK: f64 = 1.0;

/// Whether a late token on `node` at drill time `t`, in `ring` (node
/// names), is unexplained by the drill (see the module's rules). In doubt
/// it is explained: a run is only called disturbed on evidence.
pub(super) fn unexplained(node: &str, ring: &[String], t: f64, touched: &[Touch]) -> bool {
    if ring.is_empty() {
        return false;
    }
    let in_ring = |n: &str| n == node || ring.iter().any(|r| r == n);
    // Touched before the late token, within the stamp's slack.
    let before = |touch: &&Touch| touch.from - STAMP_SLACK <= t;
    let silent_now = |n: &str| {
        touched.iter().filter(before).any(|s| {
            s.node == n && s.silences && s.until.is_none_or(|until| t < until - STAMP_SLACK)
        })
    };
    touched
        .iter()
        .filter(before)
        .all(|touch| !in_ring(&touch.node) && silent_now(&touch.node))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    fn touch(node: &str, from: f64, until: Option<f64>, silences: bool) -> Touch {
        Touch {
            fault: "f".into(),
            node: node.into(),
            from,
            until,
            silences,
        }
    }

    #[test]
    fn a_token_lost_among_untouched_nodes_beside_a_silent_one_is_unexplained() {
        // pve2 paused from t=1 to t=8; pve1 and pve3 formed [pve1, pve3],
        // then lost the token between them at t=5.
        let paused = [touch("pve2", 1.0, Some(8.0), true)];
        let survivors = ring(&["pve1", "pve3"]);
        assert!(unexplained("pve1", &survivors, 5.0, &paused));
        // Before that ring formed, the token was lost with pve2 in it.
        let whole = ring(&["pve1", "pve2", "pve3"]);
        assert!(!unexplained("pve1", &whole, 2.0, &paused));
        // pve2 itself, told after its SIGCONT, is its own fault's doing.
        assert!(!unexplained("pve2", &whole, 8.5, &paused));
        // From its heal on, pve2 may be joining the ring it is not yet in:
        // a late token then, even in [pve1, pve3], is the drill's.
        assert!(!unexplained("pve1", &survivors, 7.5, &paused));
        assert!(!unexplained("pve1", &survivors, 600.0, &paused));
    }

    #[test]
    fn a_touched_node_that_still_speaks_explains_every_late_token() {
        // A one-way cut, a degraded link, a skewed clock or a command: the
        // node still sends, and may be in any ring being formed.
        let speaking = [touch("pve3", 1.0, None, false)];
        assert!(!unexplained(
            "pve1",
            &ring(&["pve1", "pve2"]),
            5.0,
            &speaking
        ));
        // A node both paused and, earlier, cut one way is silent now.
        let both = [
            touch("pve3", 1.0, Some(3.0), false),
            touch("pve3", 4.0, None, true),
        ];
        assert!(unexplained("pve1", &ring(&["pve1", "pve2"]), 6.0, &both));
    }

    #[test]
    fn no_fault_yet_or_no_ring_known() {
        let whole = ring(&["pve1", "pve2", "pve3"]);
        // With nothing applied, a late token is the machine's.
        assert!(unexplained("pve1", &whole, 3.0, &[]));
        // A fault applied later does not explain it, beyond the stamp's
        // slack.
        let later = [touch("pve2", 10.0, None, true)];
        assert!(unexplained("pve1", &whole, 3.0, &later));
        assert!(!unexplained("pve1", &whole, 9.5, &later));
        // An agent that has not seen a ring cannot say.
        assert!(!unexplained("pve1", &[], 3.0, &[]));
    }
}
