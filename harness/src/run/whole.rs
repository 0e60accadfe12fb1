//! Whether the cluster is whole (every node quorate with every node as
//! member), and waiting until it is. Whole means whole now: only views
//! that came after the last heal count, or corosync's detection window.

use std::time::{Duration, Instant};

use super::{Drill, RunError};

impl<'a> Drill<'a> {
    /// Whether every node sees every node, quorate; or what is missing.
    pub(super) fn whole(&self) -> Result<(), String> {
        let wrong = crate::log::not_whole(&self.states, &self.nodes);
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(wrong.join("; "))
        }
    }

    /// Whole, and known to be so after the last heal: every node's view
    /// came after it (one ring), or corosync has had its time to show a
    /// change since. Views from before a heal may predate the fault's
    /// effect (a cut corosync had not noticed yet when it was healed).
    pub(super) fn whole_now(&self) -> Result<(), String> {
        self.whole()?;
        let Some(healed) = self.healed_at else {
            return Ok(());
        };
        let fresh = self
            .nodes
            .iter()
            .all(|n| self.changed_at.get(n).is_some_and(|&t| t > healed));
        let rings: std::collections::BTreeSet<&str> = self
            .nodes
            .iter()
            .filter_map(|n| self.states.get(n).map(|s| s.ring_id.as_str()))
            .collect();
        let settled = self.now() >= healed + self.settle;
        if (fresh && rings.len() == 1) || settled {
            Ok(())
        } else {
            Err(format!(
                "every node looks whole, but not every view is newer than the heal at t={healed:.1}s: \
                 waiting until t={:.1}s for corosync to show any change",
                healed + self.settle
            ))
        }
    }

    pub(super) fn wait_whole(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = self.now() + timeout.as_secs_f64();
        let mut last_progress = Instant::now();
        loop {
            if self.whole_now().is_ok() {
                return Ok(());
            }
            if self.now() >= deadline {
                return self.whole_now();
            }
            if last_progress.elapsed() >= Duration::from_secs(2) {
                last_progress = Instant::now();
                (self.opts.progress)(&format!(
                    "waiting for the cluster to be whole: {}",
                    self.whole_now().err().unwrap_or_default()
                ));
            }
            // Live views even after a Ctrl-C (the caller honours it):
            // "whole" must be what the nodes say now.
            self.take_in((deadline - self.now()).min(0.1));
            match self.check_renewals() {
                Ok(()) => {}
                // An agent lost now (`corodrill heal` took its node over,
                // say): reach the node again to read its view.
                Err(RunError::AgentLost { node, why }) => {
                    (self.opts.progress)(&format!("{node}: its agent was lost ({why})"));
                    self.reconnect_lost();
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }
}
