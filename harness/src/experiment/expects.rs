//! The `[[expect]]` table: quorum and resource expectations, each read and
//! checked, `"predicted"` fields marked for the model to fill in.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use toml::Table;

use super::durations::Dur;
use super::faults::node_set;
use super::spans::{required, take, Checker};
use super::{Anchor, Expect, Predicted, ResourceExpect, ResourceWant, MIN_WITHIN};
use crate::errors::ErrorCode;

/// Takes `key` out of the table if it says `"predicted"`.
pub(super) fn take_predicted(c: &mut Checker, t: &mut Table, key: &str) -> bool {
    let predicted = t.get(key).is_some_and(|v| v.as_str() == Some("predicted"));
    if predicted {
        c.remove(t, key);
    }
    predicted
}

pub(super) fn expect(
    c: &mut Checker,
    span: &Range<usize>,
    mut t: Table,
    index: usize,
    faults: &[String],
    watched: &[String],
) -> Option<Expect> {
    let resource = resource_expect(c, span, &mut t, watched)?;
    let predicted = Predicted {
        quorate: take_predicted(c, &mut t, "quorate"),
        members: take_predicted(c, &mut t, "members"),
        within: take_predicted(c, &mut t, "within"),
    };
    let name: Option<String> = take(c, span, &mut t, "name").ok()?;
    let after: String = required(c, span, &mut t, "after", "[[expect]]")?;
    let within: Option<Dur> = if predicted.within {
        Some(Dur(Duration::ZERO))
    } else {
        required(c, span, &mut t, "within", "[[expect]]")
    };
    let hold: Option<Dur> = take(c, span, &mut t, "hold").ok()?;
    let quorate: Option<bool> = take(c, span, &mut t, "quorate").ok()?;
    let total_votes: Option<u32> = take(c, span, &mut t, "total_votes").ok()?;
    let nodes = match c.remove(&mut t, "nodes") {
        Some(v) => node_set(c, span, "nodes", v)?,
        None => {
            c.at(
                span.start,
                ErrorCode::MissingField,
                "[[expect]]: missing `nodes` (\"all\" or a list)",
            );
            return None;
        }
    };
    let members = match c.remove(&mut t, "members") {
        Some(v) => Some(node_set(c, span, "members", v)?),
        None => None,
    };
    for key in t.keys() {
        c.at_key(span, key, ErrorCode::UnknownField, format!("unknown field `{key}` in [[expect]] (known: name, after, nodes, quorate, members, total_votes, resource, running_on, running, moved, within, hold)"));
    }
    let (fault, healed) = match after.strip_suffix(".healed") {
        Some(f) => (f.to_owned(), true),
        None => (after.clone(), false),
    };
    if !faults.contains(&fault) {
        let known: Vec<&str> = faults.iter().map(String::as_str).collect();
        c.at_key(
            span,
            "after",
            ErrorCode::UnknownAnchor,
            format!(
                "after = {after:?} names no fault (faults: {})",
                known.join(", ")
            ),
        );
    }
    if resource.is_some() && (quorate.is_some() || members.is_some() || total_votes.is_some()) {
        c.at_key(
            span,
            "resource",
            ErrorCode::MixedExpectation,
            "[[expect]]: an expectation is on a resource or on quorum, not both (write two)",
        );
    }
    if quorate.is_none()
        && members.is_none()
        && total_votes.is_none()
        && resource.is_none()
        && !(predicted.quorate || predicted.members)
    {
        c.at(
            span.start,
            ErrorCode::EmptyExpectation,
            "[[expect]]: says nothing to check (give quorate, members or total_votes)",
        );
    }
    let within = within?.0;
    if within < MIN_WITHIN && !predicted.within {
        c.at_key(
            span,
            "within",
            ErrorCode::WithinTooShort,
            format!(
                "within = {}: shorter than corosync can notice anything (a token timeout plus a consensus round; \
                 at least {} even with a 1 s token)",
                humantime::format_duration(within),
                humantime::format_duration(MIN_WITHIN)
            ),
        );
    }
    Some(Expect {
        name: name.unwrap_or_else(|| format!("expectation {} after {after}", index + 1)),
        after: Anchor { fault, healed },
        nodes,
        quorate,
        members,
        total_votes,
        within,
        hold: hold.map_or(Duration::ZERO, |d| d.0),
        predicted,
        resource,
        per_node: BTreeMap::new(),
        reaction: None,
    })
}

/// `resource` with one of `running_on`, `running = false`, `moved = true`.
/// `Some(None)`: no resource expectation; `None`: an error was reported.
pub(super) fn resource_expect(
    c: &mut Checker,
    span: &Range<usize>,
    t: &mut Table,
    watched: &[String],
) -> Option<Option<ResourceExpect>> {
    let resource: Option<String> = take(c, span, t, "resource").ok()?;
    let running_on: Option<Vec<String>> = take(c, span, t, "running_on").ok()?;
    let running: Option<bool> = take(c, span, t, "running").ok()?;
    let moved: Option<bool> = take(c, span, t, "moved").ok()?;
    let Some(resource) = resource else {
        if running_on.is_some() || running.is_some() || moved.is_some() {
            c.at(
                span.start,
                ErrorCode::BadResourceExpectation,
                "[[expect]]: running_on, running and moved need `resource`",
            );
            return None;
        }
        return Some(None);
    };
    if !watched.contains(&resource) {
        c.at_key(
            span,
            "resource",
            ErrorCode::ResourceNotWatched,
            format!("resource {resource:?} is not watched: add a [[watch]] with resource = {resource:?}"),
        );
    }
    let want = match (running_on, running, moved) {
        (Some(nodes), None, None) if !nodes.is_empty() => ResourceWant::RunningOn(nodes),
        (None, Some(false), None) => ResourceWant::Stopped,
        (None, None, Some(true)) => ResourceWant::Moved,
        _ => {
            c.at_key(
                span,
                "resource",
                ErrorCode::BadResourceExpectation,
                "[[expect]] on a resource: give exactly one of running_on = [nodes], running = false, moved = true",
            );
            return None;
        }
    };
    Some(Some(ResourceExpect { resource, want }))
}
