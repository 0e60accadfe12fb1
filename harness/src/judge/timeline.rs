//! Every node's state over the log, in time order, and whether an
//! expectation's quorum or resource part holds at a moment.

use std::collections::BTreeMap;

use crate::experiment::{Expect, ResourceExpect, ResourceWant};
use crate::log::{LogBody, LogEvent, NodeState};

/// The `source` of a resource event timed by Pacemaker's own record (its
/// alert) of this node's start or stop, not by a poll.
pub(super) const PACEMAKER_ALERT: &str = "pacemaker-alert";

/// (time, node, resource, where the node's view says it is active,
/// whether the time is the resource manager's own record of it)
pub(super) type ResourceView = (f64, String, String, Option<Vec<String>>, bool);

/// Every node's state after each quorum-changing event, in time order.
pub(super) struct Timeline {
    /// (time, node, state it entered)
    pub(super) changes: Vec<(f64, String, NodeState)>,
    pub(super) resources: Vec<ResourceView>,
    pub(super) end: f64,
}

impl Timeline {
    pub(super) fn new(log: &[&LogEvent]) -> Timeline {
        let changes = log
            .iter()
            .filter_map(|e| Some((e.t, e.node.clone()?, NodeState::from_event(&e.body)?)))
            .collect();
        let resources = log
            .iter()
            .filter_map(|e| match &e.body {
                LogBody::Resource {
                    resource,
                    active_on,
                    source,
                } => Some((
                    e.t,
                    e.node.clone()?,
                    resource.clone(),
                    active_on.clone(),
                    source.as_deref() == Some(PACEMAKER_ALERT),
                )),
                _ => None,
            })
            .collect();
        Timeline {
            changes,
            resources,
            end: log.last().map_or(0.0, |e| e.t),
        }
    }

    /// Each node's view of `resource` at time `t` (after the events at `t`).
    pub(super) fn views_at(&self, resource: &str, t: f64) -> BTreeMap<&str, &Option<Vec<String>>> {
        let mut views = BTreeMap::new();
        for (at, node, r, view, _) in &self.resources {
            if *at > t {
                break;
            }
            if r == resource {
                views.insert(node.as_str(), view);
            }
        }
        views
    }

    /// Every node's state at time `t` (after the events at `t`).
    pub(super) fn states_at(&self, t: f64) -> BTreeMap<&str, &NodeState> {
        let mut states = BTreeMap::new();
        for (at, node, state) in &self.changes {
            if *at > t {
                break;
            }
            states.insert(node.as_str(), state);
        }
        states
    }

    /// The moments when some node's state or view changed, in (from, to],
    /// in time order.
    pub(super) fn change_times(&self, from: f64, to: f64) -> impl Iterator<Item = f64> + '_ {
        let mut times: Vec<f64> = self
            .changes
            .iter()
            .map(|c| c.0)
            .chain(self.resources.iter().map(|r| r.0))
            .filter(move |&t| t > from && t <= to)
            .collect();
        times.sort_by(f64::total_cmp);
        times.dedup();
        times.into_iter()
    }
}

/// Each of `targets` (the expectation's nodes): whether its part of the
/// expectation holds at `t` (`anchor`: when its window opened); Err says
/// what it sees instead.
pub(super) fn check_at(
    e: &Expect,
    targets: &[&str],
    nodes: &[String],
    timeline: &Timeline,
    t: f64,
    anchor: f64,
) -> Vec<Result<(), String>> {
    match &e.resource {
        None => {
            let states = timeline.states_at(t);
            targets
                .iter()
                .map(|node| quorum_holds(e, nodes, node, &states))
                .collect()
        }
        Some(r) => {
            let views = timeline.views_at(&r.resource, t);
            let before = timeline.views_at(&r.resource, anchor);
            targets
                .iter()
                .map(|node| resource_holds(r, node, &views, &before))
                .collect()
        }
    }
}

/// Whether the whole expectation holds at `t`; Err says what does not.
pub(super) fn holds_at(
    e: &Expect,
    nodes: &[String],
    timeline: &Timeline,
    t: f64,
    anchor: f64,
) -> Result<(), String> {
    let targets = e.nodes.resolve(nodes);
    let wrong: Vec<String> = check_at(e, &targets, nodes, timeline, t, anchor)
        .into_iter()
        .filter_map(Result::err)
        .collect();
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("; "))
    }
}

/// Whether `node`'s view of the resource is what the expectation wants
/// (`before`: the views at the anchor, for `moved`).
pub(super) fn resource_holds(
    r: &ResourceExpect,
    node: &str,
    views: &BTreeMap<&str, &Option<Vec<String>>>,
    before: &BTreeMap<&str, &Option<Vec<String>>>,
) -> Result<(), String> {
    let view = match views.get(node) {
        None => return Err(format!("{node}: no view of {} yet", r.resource)),
        Some(None) => return Err(format!("{node}: cannot say (no answer from its watcher)")),
        Some(Some(v)) => v,
    };
    let ok = match &r.want {
        ResourceWant::RunningOn(set) => view.len() == 1 && set.contains(&view[0]),
        ResourceWant::Stopped => view.is_empty(),
        ResourceWant::Moved => {
            let was: Vec<&String> = before
                .get(node)
                .and_then(|v| v.as_ref())
                .map(|v| v.iter().collect())
                .unwrap_or_default();
            !view.is_empty() && view.iter().all(|n| !was.contains(&n))
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{node} sees {} {}",
            r.resource,
            if view.is_empty() {
                "stopped".to_owned()
            } else {
                format!("on {}", view.join(", "))
            }
        ))
    }
}

/// Whether `node`'s quorum state is what the expectation wants of it (its
/// own prediction where the nodes differ); Err says what it is.
pub(super) fn quorum_holds(
    e: &Expect,
    nodes: &[String],
    node: &str,
    states: &BTreeMap<&str, &NodeState>,
) -> Result<(), String> {
    let Some(state) = states.get(node) else {
        return Err(format!("{node}: nothing observed"));
    };
    let (quorate, members) = e.want_of(node);
    let mut ok = quorate.is_none_or(|q| state.quorate == q);
    if let Some(members) = members {
        let mut want: Vec<&str> = members.resolve(nodes);
        let mut have: Vec<&str> = state.members.iter().map(String::as_str).collect();
        want.sort();
        have.sort();
        ok &= want == have;
    }
    ok &= e.total_votes.is_none_or(|v| state.total_votes == Some(v));
    if ok {
        Ok(())
    } else {
        Err(format!("{node}: {}", state.describe()))
    }
}
