//! A node's view of where each watched Pacemaker resource is active, from
//! two sources (pure): the `crm_mon` poll, which sees every node but only
//! every interval, and this node's Pacemaker alerts, which say to the
//! millisecond when this node started or stopped a resource but nothing of
//! the others.
//!
//! The view sent is the poll's placement on the other nodes and the
//! alerts' word on this node, so that this node's own claim, the one the
//! judge's double-active windows are made of, changes at the time
//! Pacemaker recorded it. The poll stays the fallback and the check:
//! - for a resource no alert has spoken of (alerts not configured, a group
//!   whose members' alerts name the members), the poll says where it runs
//!   on this node too, as before;
//! - a poll that disagrees with the last alert about this node is taken as
//!   not yet caught up (crm_mon reads the CIB, which Pacemaker updates
//!   beside the alert), unless it still disagrees [`GRACE_NS`] later: then
//!   the alert path missed something, the poll's view wins from that poll
//!   on (its time, source `poll`), and the disagreement is reported.
//!
//! Inputs are held [`HOLD_NS`] and applied in time order, so that an alert
//! read a few ms after a poll it precedes still lands before it, and each
//! view sent is whole as of its own time; an alert read later than that is
//! timed by its arrival.

use std::collections::BTreeMap;

use corodrill_protocol::ResourceTimeSource;

/// How long inputs wait to be put in order (ns): alerts reach the agent
/// 10-30 ms after Pacemaker's timestamp in the lab.
pub const HOLD_NS: u64 = 300_000_000;

/// How long a poll may disagree with this node's last alert before it wins
/// (ns): four polls at the default interval.
pub const GRACE_NS: u64 = 2_000_000_000;

/// One view to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub mono_ns: u64,
    pub utc_us: i64,
    pub resource: String,
    /// The nodes it is active on; None when this node cannot say.
    pub active_on: Option<Vec<String>>,
    pub source: ResourceTimeSource,
}

#[derive(Debug)]
enum Input {
    /// Every resource's placement, or Err when crm_mon did not answer.
    Poll(Result<BTreeMap<String, Vec<String>>, ()>),
    Alert {
        resource: String,
        active: bool,
        source: ResourceTimeSource,
    },
}

#[derive(Debug, Default)]
struct Res {
    /// The last poll's view (None: no poll yet; Some(None): cannot say).
    poll: Option<Option<Vec<String>>>,
    /// The last alert's word on this node, and when.
    alert: Option<bool>,
    /// Since when polls have disagreed with that word.
    disagree_since: Option<u64>,
    sent: Option<Option<Vec<String>>>,
}

#[derive(Debug)]
pub struct Merge {
    here: String,
    resources: BTreeMap<String, Res>,
    pending: Vec<(u64, i64, u64, Input)>,
    seq: u64,
    /// The time of the last input applied.
    applied_ns: u64,
    /// Whether a poll has been applied: the first is sent at once (the
    /// controller opens its drills with each node's view), with nothing
    /// before it to put in order.
    polled: bool,
    /// Disagreements the poll won, to be reported.
    pub disagreements: Vec<String>,
}

impl Merge {
    pub fn new(here: &str, resources: &[String]) -> Merge {
        Merge {
            here: here.to_owned(),
            resources: resources
                .iter()
                .map(|r| (r.clone(), Res::default()))
                .collect(),
            pending: Vec::new(),
            seq: 0,
            applied_ns: 0,
            polled: false,
            disagreements: Vec::new(),
        }
    }

    fn push(&mut self, mono_ns: u64, utc_us: i64, input: Input) {
        self.seq += 1;
        self.pending.push((mono_ns, utc_us, self.seq, input));
    }

    /// A poll whose answer came at `mono_ns`: what it shows had happened
    /// by then (a change it shows is never timed before an alert read
    /// after it says it happened).
    pub fn poll(
        &mut self,
        mono_ns: u64,
        utc_us: i64,
        view: Result<BTreeMap<String, Vec<String>>, ()>,
    ) {
        self.push(mono_ns, utc_us, Input::Poll(view));
    }

    /// An alert of this node (`node`, as Pacemaker names it) about
    /// `resource`: `timed` by its own timestamp where that could be mapped,
    /// else, or when it comes too late to be put in order, by `arrival`.
    pub fn alert(
        &mut self,
        node: &str,
        resource: &str,
        active: bool,
        timed: Option<(u64, i64)>,
        arrival: (u64, i64),
    ) {
        if node != self.here || !self.resources.contains_key(resource) {
            return;
        }
        let ((mono, utc), source) = match timed {
            Some(t) if t.0 >= self.applied_ns => (t, ResourceTimeSource::PacemakerAlert),
            _ => (arrival, ResourceTimeSource::AlertArrival),
        };
        let input = Input::Alert {
            resource: resource.to_owned(),
            active,
            source,
        };
        self.push(mono, utc, input);
    }

    /// Applies every input held at least [`HOLD_NS`] by `now_ns`, in time
    /// order, and returns the views that changed.
    pub fn flush(&mut self, now_ns: u64) -> Vec<Change> {
        self.pending.sort_by_key(|(mono, _, seq, _)| (*mono, *seq));
        let first_poll = !self.polled && matches!(self.pending.first(), Some((.., Input::Poll(_))));
        let due = self
            .pending
            .iter()
            .enumerate()
            .take_while(|(i, (mono, ..))| {
                (*i == 0 && first_poll) || mono.saturating_add(HOLD_NS) <= now_ns
            })
            .count();
        let mut changes = Vec::new();
        for (mono, utc, _, input) in self.pending.drain(..due).collect::<Vec<_>>() {
            self.applied_ns = self.applied_ns.max(mono);
            match input {
                Input::Poll(view) => {
                    self.polled = true;
                    let names: Vec<String> = self.resources.keys().cloned().collect();
                    for r in names {
                        let v = view
                            .as_ref()
                            .ok()
                            .map(|m| m.get(&r).cloned().unwrap_or_default());
                        if let Some(res) = self.resources.get_mut(&r) {
                            res.poll = Some(v);
                        }
                        changes.extend(self.view(&r, mono, utc, ResourceTimeSource::Poll));
                    }
                }
                Input::Alert {
                    resource,
                    active,
                    source,
                } => {
                    if let Some(res) = self.resources.get_mut(&resource) {
                        res.alert = Some(active);
                        res.disagree_since = None;
                    }
                    changes.extend(self.view(&resource, mono, utc, source));
                }
            }
        }
        changes
    }

    /// The resource's view after an input at `mono`, if it changed.
    fn view(&mut self, r: &str, mono: u64, utc: i64, source: ResourceTimeSource) -> Option<Change> {
        let here = self.here.clone();
        let res = self.resources.get_mut(r)?;
        let Some(poll) = &res.poll else {
            return None; // nothing of the other nodes yet
        };
        let view = match poll {
            None => None,
            Some(list) => {
                let poll_here = list.contains(&here);
                let here_active = match res.alert {
                    None => poll_here,
                    Some(a) if a == poll_here => {
                        res.disagree_since = None;
                        a
                    }
                    Some(a) if source != ResourceTimeSource::Poll => a,
                    Some(a) => {
                        let since = *res.disagree_since.get_or_insert(mono);
                        if mono.saturating_sub(since) < GRACE_NS {
                            a
                        } else {
                            self.disagreements.push(format!(
                                "{r}: Pacemaker's alerts said {} here, crm_mon has said {} for {:.1} s: crm_mon's view kept",
                                if a { "active" } else { "not active" },
                                if poll_here { "active" } else { "not active" },
                                (mono - since) as f64 / 1e9
                            ));
                            res.alert = None;
                            res.disagree_since = None;
                            poll_here
                        }
                    }
                };
                let mut nodes: Vec<String> = list.iter().filter(|n| **n != here).cloned().collect();
                if here_active {
                    nodes.push(here);
                }
                nodes.sort();
                Some(nodes)
            }
        };
        if res.sent.as_ref() == Some(&view) {
            return None;
        }
        res.sent = Some(view.clone());
        Some(Change {
            mono_ns: mono,
            utc_us: utc,
            resource: r.to_owned(),
            active_on: view,
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ResourceTimeSource::*;

    const MS: u64 = 1_000_000;

    fn placement(on: &[&str]) -> Result<BTreeMap<String, Vec<String>>, ()> {
        Ok(BTreeMap::from([(
            "svc".to_owned(),
            on.iter().map(|n| n.to_string()).collect(),
        )]))
    }

    fn merge() -> Merge {
        Merge::new("pve2", &["svc".to_owned()])
    }

    /// (time in ms, nodes, source) of each change.
    fn seen(changes: Vec<Change>) -> Vec<(u64, Option<Vec<String>>, ResourceTimeSource)> {
        changes
            .into_iter()
            .map(|c| (c.mono_ns / MS, c.active_on, c.source))
            .collect()
    }

    fn on(nodes: &[&str]) -> Option<Vec<String>> {
        Some(nodes.iter().map(|n| n.to_string()).collect())
    }

    #[test]
    fn without_alerts_the_poll_says_it_all() {
        let mut m = merge();
        m.poll(1000 * MS, 0, placement(&["pve1"]));
        assert_eq!(
            seen(m.flush(1000 * MS)),
            [(1000, on(&["pve1"]), Poll)],
            "the first view at once"
        );
        m.poll(1500 * MS, 0, placement(&["pve2"]));
        assert!(m.flush(1700 * MS).is_empty(), "the next held");
        m.poll(2000 * MS, 0, Err(()));
        assert_eq!(
            seen(m.flush(3000 * MS)),
            [(1500, on(&["pve2"]), Poll), (2000, None, Poll)]
        );
    }

    #[test]
    fn this_nodes_start_is_timed_by_its_alert_and_the_poll_adds_the_others() {
        let mut m = merge();
        m.poll(1000 * MS, 0, placement(&["pve1"]));
        assert_eq!(seen(m.flush(1300 * MS)), [(1000, on(&["pve1"]), Poll)]);
        // pve1 stopped at 1.2 s (the poll that ended at 1.5 s shows it
        // gone), pve2 started at 1.6 s, its alert read at 1.62 s; the poll
        // that ended at 1.65 s shows it too, read before the alert.
        m.poll(1500 * MS, 0, placement(&[]));
        m.poll(1650 * MS, 0, placement(&["pve2"]));
        m.alert("pve2", "svc", true, Some((1600 * MS, 7)), (1670 * MS, 9));
        m.poll(2000 * MS, 0, placement(&["pve2"]));
        assert_eq!(
            seen(m.flush(2400 * MS)),
            [(1500, on(&[]), Poll), (1600, on(&["pve2"]), PacemakerAlert)]
        );
        // pve1 starts it too (no alert here: the poll), pve2 stops it.
        m.poll(2500 * MS, 0, placement(&["pve1", "pve2"]));
        m.alert("pve2", "svc", false, Some((2700 * MS, 7)), (2720 * MS, 9));
        m.poll(3000 * MS, 0, placement(&["pve1", "pve2"]));
        assert_eq!(
            seen(m.flush(3400 * MS)),
            [
                (2500, on(&["pve1", "pve2"]), Poll),
                (2700, on(&["pve1"]), PacemakerAlert)
            ]
        );
    }

    #[test]
    fn an_alert_read_after_a_later_poll_still_lands_first() {
        let mut m = merge();
        m.poll(1000 * MS, 0, placement(&["pve2"]));
        m.flush(1300 * MS);
        // pve2 stopped at 1.49 s; the poll at 1.5 s already shows pve3,
        // read before the alert.
        m.poll(1500 * MS, 0, placement(&["pve3"]));
        m.alert("pve2", "svc", false, Some((1490 * MS, 0)), (1560 * MS, 0));
        assert_eq!(
            seen(m.flush(1900 * MS)),
            [(1490, on(&[]), PacemakerAlert), (1500, on(&["pve3"]), Poll)]
        );
    }

    #[test]
    fn a_poll_that_lags_the_alert_is_not_taken_until_it_has_disagreed_for_the_grace() {
        let mut m = merge();
        m.poll(0, 0, placement(&[]));
        m.alert("pve2", "svc", true, Some((100 * MS, 0)), (120 * MS, 0));
        // crm_mon had not yet seen the start at 0.5 s; it has at 1.0 s.
        m.poll(500 * MS, 0, placement(&[]));
        m.poll(1000 * MS, 0, placement(&["pve2"]));
        assert_eq!(
            seen(m.flush(2000 * MS)),
            [(0, on(&[]), Poll), (100, on(&["pve2"]), PacemakerAlert)]
        );
        assert!(m.disagreements.is_empty());
        // A stop whose alert never came: the poll wins once it has
        // disagreed for two seconds, at that poll's time, and says so.
        for t in (1500..=4000).step_by(500) {
            m.poll(t * MS, 0, placement(&[]));
        }
        assert_eq!(seen(m.flush(5000 * MS)), [(3500, on(&[]), Poll)]);
        assert_eq!(m.disagreements.len(), 1, "{:?}", m.disagreements);
        // From then on the poll speaks for this node until an alert does.
        m.poll(4500 * MS, 0, placement(&["pve2"]));
        assert_eq!(seen(m.flush(5000 * MS)), [(4500, on(&["pve2"]), Poll)]);
    }

    #[test]
    fn a_late_alert_is_timed_by_its_arrival_and_others_alerts_are_ignored() {
        let mut m = merge();
        m.poll(0, 0, placement(&["pve2"]));
        m.poll(500 * MS, 0, placement(&["pve2"]));
        m.flush(1000 * MS);
        m.alert("pve1", "svc", true, Some((900 * MS, 0)), (950 * MS, 0));
        m.alert("pve2", "other", true, Some((900 * MS, 0)), (950 * MS, 0));
        // Its own time is before what was applied already (0.5 s).
        m.alert("pve2", "svc", false, Some((400 * MS, 0)), (1100 * MS, 0));
        assert_eq!(seen(m.flush(1500 * MS)), [(1100, on(&[]), AlertArrival)]);
    }

    #[test]
    fn a_node_that_cannot_say_says_so_whatever_its_alerts_said() {
        let mut m = merge();
        m.poll(0, 0, placement(&["pve2"]));
        m.alert("pve2", "svc", true, Some((100 * MS, 0)), (120 * MS, 0));
        m.poll(500 * MS, 0, Err(()));
        assert_eq!(
            seen(m.flush(1000 * MS)),
            [(0, on(&["pve2"]), Poll), (500, None, Poll)]
        );
    }
}
