//! What is due when (pure): the plan's applies and heals in the order the
//! drill carries them out, and how long the drill waits before the next.
//! The drill's loop only asks these and acts, so the order is tested here
//! without a cluster.

use std::time::Duration;

use crate::plan::{Plan, PlannedFault};

/// One thing the drill does to the cluster at a planned time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Step<'p> {
    Apply(&'p PlannedFault),
    Heal(&'p PlannedFault),
}

impl Step<'_> {
    /// What the drill says it is waiting for.
    pub(super) fn describe(&self, at: Duration) -> String {
        match self {
            Step::Apply(f) => format!("apply {} at t={:.1}s", f.id, at.as_secs_f64()),
            Step::Heal(f) => format!("heal {} at t={:.1}s", f.id, at.as_secs_f64()),
        }
    }
}

/// Every apply and every planned heal, by drill time. A fault healed at the
/// end of the drill has no heal step: the end heals it.
pub(super) fn steps(plan: &Plan) -> Vec<(Duration, Step<'_>)> {
    let mut steps: Vec<(Duration, Step)> = Vec::new();
    for f in &plan.faults {
        steps.push((f.at, Step::Apply(f)));
        if let Some(h) = f.heal_at {
            steps.push((h, Step::Heal(f)));
        }
    }
    // Stable: at equal times, applies and heals keep the file's order.
    steps.sort_by_key(|(t, _)| *t);
    steps
}

/// Until when the drill takes in events before it looks at the clock again
/// (drill seconds), or `None` once a step at `at` is due. A wait wakes at
/// least every second so that long waits can say what they wait for.
pub(super) fn wait_until(now: f64, at: Duration) -> Option<f64> {
    let at = at.as_secs_f64();
    (now < at).then(|| (now + 1.0).min(at))
}

/// How far past its due time a step may finish before what follows moves.
/// Applies and heals take milliseconds; a power-on waits for a boot (half a
/// minute or more on a VM).
pub(super) const OVERRUN: f64 = 1.0;

/// The drill's delay after a step planned at `planned` (drill seconds) ends
/// at `now`, with the drill already `slip` seconds behind its plan. A step
/// that ran long moves every later step and the drill's end by as much, so
/// that the windows counted from what really happened (a power-on's
/// `healed`, minutes late) are still watched whole, never cut short by a
/// plan drawn for a faster machine.
pub(super) fn slip_after(slip: f64, planned: Duration, now: f64) -> f64 {
    let overrun = now - (planned.as_secs_f64() + slip);
    if overrun > OVERRUN {
        slip + overrun
    } else {
        slip
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(id: &str, at: u64, heal_at: Option<u64>) -> PlannedFault {
        PlannedFault {
            id: id.into(),
            kind: "kill",
            at: Duration::from_secs(at),
            heal_at: heal_at.map(Duration::from_secs),
            allow_management_cut: false,
            actions: Vec::new(),
            power_off: Vec::new(),
        }
    }

    fn plan(faults: Vec<PlannedFault>) -> Plan {
        Plan {
            nodes: vec!["pve1".into(), "pve2".into(), "pve3".into()],
            faults,
            end: Duration::from_secs(60),
            after_end: Duration::from_secs(10),
        }
    }

    fn names(steps: &[(Duration, Step)]) -> Vec<String> {
        steps
            .iter()
            .map(|(at, s)| match s {
                Step::Apply(f) => format!("apply {}@{}", f.id, at.as_secs()),
                Step::Heal(f) => format!("heal {}@{}", f.id, at.as_secs()),
            })
            .collect()
    }

    #[test]
    fn a_step_that_runs_long_moves_what_follows() {
        let at = Duration::from_secs(8);
        // Milliseconds late: the plan stands.
        assert_eq!(slip_after(0.0, at, 8.05), 0.0);
        // A power-on that waited 50 s for a boot: 50 s behind from now on.
        let slip = slip_after(0.0, at, 58.0);
        assert!((slip - 50.0).abs() < 1e-9, "{slip}");
        // The next step, due at its planned time plus that, ran on time.
        assert_eq!(slip_after(slip, Duration::from_secs(10), 60.2), slip);
        // Another long one adds to it.
        let more = slip_after(slip, Duration::from_secs(10), 70.0);
        assert!((more - 60.0).abs() < 1e-9, "{more}");
    }

    #[test]
    fn steps_come_in_time_order_whatever_the_file_order() {
        let p = plan(vec![
            fault("late", 30, Some(40)),
            fault("early", 5, Some(35)),
        ]);
        assert_eq!(
            names(&steps(&p)),
            [
                "apply early@5",
                "apply late@30",
                "heal early@35",
                "heal late@40"
            ]
        );
    }

    #[test]
    fn at_equal_times_the_file_order_holds() {
        // A heal and an apply at the same moment: the file's order, so a
        // drill that heals one fault as the next starts does so in order.
        let p = plan(vec![
            fault("a", 0, Some(10)),
            fault("b", 10, Some(20)),
            fault("c", 10, None),
        ]);
        assert_eq!(
            names(&steps(&p)),
            [
                "apply a@0",
                "heal a@10",
                "apply b@10",
                "apply c@10",
                "heal b@20"
            ]
        );
    }

    #[test]
    fn a_fault_held_to_the_end_has_no_heal_step() {
        let p = plan(vec![fault("f", 3, None)]);
        assert_eq!(names(&steps(&p)), ["apply f@3"]);
        assert!(steps(&plan(Vec::new())).is_empty());
    }

    #[test]
    fn waits_wake_every_second_and_stop_when_due() {
        let at = Duration::from_millis(2500);
        assert_eq!(wait_until(0.0, at), Some(1.0));
        assert_eq!(wait_until(2.0, at), Some(2.5));
        assert_eq!(wait_until(2.5, at), None);
        assert_eq!(wait_until(7.0, at), None);
        assert_eq!(wait_until(0.0, Duration::ZERO), None);
    }

    #[test]
    fn each_step_says_what_it_waits_for() {
        let f = fault("cut", 4, Some(9));
        assert_eq!(
            Step::Apply(&f).describe(Duration::from_millis(4250)),
            "apply cut at t=4.2s"
        );
        assert_eq!(
            Step::Heal(&f).describe(Duration::from_secs(9)),
            "heal cut at t=9.0s"
        );
    }
}
