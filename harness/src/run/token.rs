//! Late tokens: corosync's "Token has not been received" on a node, and
//! whether the drill explains it. A token lost in a ring where some node is
//! faulted (cut, paused, killed, powered off, degraded) is the fault at
//! work. Lost in a ring of nodes no fault touched, it is the machine's: the
//! run is disturbed, as by corosync's "not scheduled" warning. A starved
//! machine can do this with no such warning, which is why it is its own
//! evidence.

/// One node one fault touched, over drill time.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Touch {
    pub fault: String,
    pub node: String,
    pub from: f64,
    /// When the fault was healed; None while it holds.
    pub until: Option<f64>,
}

/// How much earlier than its fault a late token may be stamped and still
/// be the fault's: agents' events are stamped when read, and the clock
/// mapping is not exact.
const STAMP_SLACK: f64 = 1.0;

/// Whether a late token on `node` at drill time `t`, in `ring` (node
/// names), is unexplained: the ring is known and neither `node` nor any
/// node of the ring was touched by a fault from shortly before `t` to
/// `after_heal` seconds after its heal (corosync's rings take that long to
/// settle again). In doubt it is explained: a run is only called disturbed
/// on evidence.
pub(super) fn unexplained(
    node: &str,
    ring: &[String],
    t: f64,
    touched: &[Touch],
    after_heal: f64,
) -> bool {
    if ring.is_empty() {
        return false;
    }
    !touched.iter().any(|touch| {
        (touch.node == node || ring.contains(&touch.node))
            && touch.from - STAMP_SLACK <= t
            && touch.until.is_none_or(|until| t <= until + after_heal)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    fn touch(node: &str, from: f64, until: Option<f64>) -> Touch {
        Touch {
            fault: "f".into(),
            node: node.into(),
            from,
            until,
        }
    }

    #[test]
    fn a_token_lost_among_untouched_nodes_is_unexplained() {
        // pve2 paused from t=1 to t=8; pve1 and pve3 formed [pve1, pve3],
        // then lost the token between them at t=5.
        let paused = [touch("pve2", 1.0, Some(8.0))];
        assert!(unexplained(
            "pve1",
            &ring(&["pve1", "pve3"]),
            5.0,
            &paused,
            5.0
        ));
        // Before that ring formed, the token was lost with pve2 in it.
        assert!(!unexplained(
            "pve1",
            &ring(&["pve1", "pve2", "pve3"]),
            2.0,
            &paused,
            5.0
        ));
        // pve2 itself, told after its SIGCONT, is its own fault's doing.
        assert!(!unexplained(
            "pve2",
            &ring(&["pve1", "pve2", "pve3"]),
            8.5,
            &paused,
            5.0
        ));
    }

    #[test]
    fn a_heal_explains_late_tokens_for_a_while() {
        let cut = [touch("pve3", 1.0, Some(10.0))];
        let whole = ring(&["pve1", "pve2", "pve3"]);
        assert!(!unexplained("pve1", &whole, 14.0, &cut, 5.0));
        assert!(unexplained("pve1", &whole, 16.0, &cut, 5.0));
        // A fault still holding explains every late token of its rings.
        let held = [touch("pve3", 1.0, None)];
        assert!(!unexplained("pve1", &whole, 600.0, &held, 5.0));
    }

    #[test]
    fn no_fault_yet_or_no_ring_known() {
        let whole = ring(&["pve1", "pve2", "pve3"]);
        // With nothing applied, a late token is the machine's.
        assert!(unexplained("pve1", &whole, 3.0, &[], 5.0));
        // A fault applied later does not explain it, beyond the stamp's
        // slack.
        let later = [touch("pve2", 10.0, None)];
        assert!(unexplained("pve1", &whole, 3.0, &later, 5.0));
        assert!(!unexplained("pve1", &whole, 9.5, &later, 5.0));
        // An agent that has not seen a ring cannot say.
        assert!(!unexplained("pve1", &[], 3.0, &[], 5.0));
    }
}
