//! Late tokens: corosync's "Token has not been received" on a node, and
//! whether the drill explains it. A token lost in a ring with a node some
//! fault of the drill has touched (cut, paused, killed, powered off,
//! degraded), however long ago, may be that fault's doing: its heal, the
//! rejoin after it, a cluster that never settled again, which is what a
//! drill is there to find. Lost in a ring of nodes no fault has touched, it
//! is the machine's: the run is disturbed, as by corosync's "not
//! scheduled" warning. A starved machine does this with no such warning,
//! which is why it is evidence of its own.

/// A node a fault touched, from when (drill time).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Touch {
    pub node: String,
    pub from: f64,
}

/// How much earlier than its fault a late token may be stamped and still
/// be the fault's: agents' events are stamped when read, and the clock
/// mapping is not exact.
const STAMP_SLACK: f64 = 1.0;

/// Whether a late token on `node` at drill time `t`, in `ring` (node
/// names), is unexplained: the ring is known, and no fault touched `node`
/// or any node of the ring before `t`. In doubt it is explained: a run is
/// only called disturbed on evidence.
pub(super) fn unexplained(node: &str, ring: &[String], t: f64, touched: &[Touch]) -> bool {
    if ring.is_empty() {
        return false;
    }
    !touched.iter().any(|touch| {
        (touch.node == node || ring.contains(&touch.node)) && touch.from - STAMP_SLACK <= t
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    fn touch(node: &str, from: f64) -> Touch {
        Touch {
            node: node.into(),
            from,
        }
    }

    #[test]
    fn a_token_lost_among_untouched_nodes_is_unexplained() {
        // pve2 paused at t=1; pve1 and pve3 formed [pve1, pve3], then lost
        // the token between them at t=5.
        let paused = [touch("pve2", 1.0)];
        assert!(unexplained("pve1", &ring(&["pve1", "pve3"]), 5.0, &paused));
        // Before that ring formed, the token was lost with pve2 in it.
        let whole = ring(&["pve1", "pve2", "pve3"]);
        assert!(!unexplained("pve1", &whole, 2.0, &paused));
        // pve2 itself, told after its SIGCONT, is its own fault's doing.
        assert!(!unexplained("pve2", &whole, 8.5, &paused));
        // So is every late token of a ring with pve2, long after its heal:
        // a cluster that does not settle again is for the drill to judge.
        assert!(!unexplained("pve1", &whole, 600.0, &paused));
    }

    #[test]
    fn no_fault_yet_or_no_ring_known() {
        let whole = ring(&["pve1", "pve2", "pve3"]);
        // With nothing applied, a late token is the machine's.
        assert!(unexplained("pve1", &whole, 3.0, &[]));
        // A fault applied later does not explain it, beyond the stamp's
        // slack.
        let later = [touch("pve2", 10.0)];
        assert!(unexplained("pve1", &whole, 3.0, &later));
        assert!(!unexplained("pve1", &whole, 9.5, &later));
        // An agent that has not seen a ring cannot say.
        assert!(!unexplained("pve1", &[], 3.0, &[]));
    }
}
