//! The `[[fault]]` table: each kind's fields read and checked against
//! the cluster's nodes.

use std::collections::BTreeSet;
use std::ops::Range;
use std::time::Duration;

use toml::{Table, Value};

use super::durations::{offset_ms, Dur};
use super::spans::{required, take, Checker};
use super::{FaultKind, FaultSpec, NodeSet};
use crate::errors::ErrorCode;

/// "30%" or 30.
pub(super) fn percent(v: &Value) -> Result<u8, String> {
    let n = match v {
        Value::Integer(i) => *i,
        Value::String(s) => s
            .trim()
            .trim_end_matches('%')
            .trim()
            .parse::<i64>()
            .map_err(|_| format!("loss {s:?}: expected a percentage such as \"30%\""))?,
        other => {
            return Err(format!(
                "loss: expected a percentage such as \"30%\", found {}",
                other.type_str()
            ))
        }
    };
    if (1..=100).contains(&n) {
        Ok(n as u8)
    } else {
        Err(format!("loss {n}%: expected 1% to 100%"))
    }
}

pub(crate) const FAULT_KINDS: &str =
    "partition, isolate, link-down, degrade, kill, stop, pause, clock-skew, power-off, command";

pub(super) fn fault(
    c: &mut Checker,
    span: &Range<usize>,
    mut t: Table,
    nodes: usize,
) -> Option<FaultSpec> {
    let id: Option<String> = required(c, span, &mut t, "id", "[[fault]]");
    let kind: Option<String> = required(c, span, &mut t, "kind", "[[fault]]");
    let at: Option<Dur> = take(c, span, &mut t, "at").ok()?;
    let heal_after: Option<Dur> = take(c, span, &mut t, "heal_after").ok()?;
    let allow_management_cut: Option<bool> = take(c, span, &mut t, "allow_management_cut").ok()?;
    let (id, kind) = (id?, kind?);
    if id.is_empty() || id.contains('.') || id.chars().any(char::is_whitespace) {
        c.at_key(
            span,
            "id",
            ErrorCode::BadFaultId,
            format!("fault id {id:?}: no dots or spaces (\"{id}.healed\" must be unambiguous)"),
        );
    }
    let nodes_of = |c: &mut Checker, t: &mut Table| -> Option<Vec<String>> {
        let list: Vec<String> = required(c, span, t, "nodes", &format!("fault {id:?}"))?;
        if list.is_empty() {
            c.at_key(
                span,
                "nodes",
                ErrorCode::EmptyNodes,
                format!("fault {id:?}: `nodes` is empty"),
            );
            return None;
        }
        Some(list)
    };
    let links_of = |c: &mut Checker, t: &mut Table| -> Result<Option<Vec<u8>>, ()> {
        let links: Option<Vec<u8>> = take(c, span, t, "links")?;
        if let Some(l) = &links {
            if l.is_empty() || l.iter().any(|&n| n > 7) {
                c.at_key(
                    span,
                    "links",
                    ErrorCode::BadLink,
                    format!("fault {id:?}: links are corosync link numbers 0 to 7"),
                );
                return Err(());
            }
        }
        Ok(links)
    };
    let kind = match kind.as_str() {
        "partition" => {
            let groups: Vec<Vec<String>> =
                required(c, span, &mut t, "groups", &format!("fault {id:?}"))?;
            let direction: Option<String> = take(c, span, &mut t, "direction").ok()?;
            let one_way = match direction.as_deref() {
                None | Some("both") => false,
                Some("one-way") => true,
                Some(other) => {
                    c.at_key(
                        span,
                        "direction",
                        ErrorCode::BadDirection,
                        format!("direction {other:?}: expected \"both\" or \"one-way\""),
                    );
                    return None;
                }
            };
            check_groups(c, span, &id, &groups, nodes);
            FaultKind::Partition {
                groups,
                links: links_of(c, &mut t).ok()?,
                one_way,
            }
        }
        "isolate" => FaultKind::Isolate {
            nodes: nodes_of(c, &mut t)?,
            links: links_of(c, &mut t).ok()?,
        },
        "link-down" => {
            let link: u8 = required(c, span, &mut t, "link", &format!("fault {id:?}"))?;
            if link > 7 {
                c.at_key(
                    span,
                    "link",
                    ErrorCode::BadLink,
                    format!("link {link}: corosync links are numbered 0 to 7"),
                );
            }
            FaultKind::LinkDown {
                nodes: nodes_of(c, &mut t)?,
                link,
            }
        }
        "degrade" => {
            let nodes = nodes_of(c, &mut t)?;
            let links = links_of(c, &mut t).ok()?;
            let loss = match c.remove(&mut t, "loss") {
                None => None,
                Some(v) => match percent(&v) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        c.at_key(span, "loss", ErrorCode::BadLoss, e);
                        return None;
                    }
                },
            };
            let delay: Option<Dur> = take(c, span, &mut t, "delay").ok()?;
            let jitter: Option<Dur> = take(c, span, &mut t, "jitter").ok()?;
            let rate: Option<String> = take(c, span, &mut t, "rate").ok()?;
            if loss.is_none() && delay.is_none() && rate.is_none() {
                c.at(
                    span.start,
                    ErrorCode::EmptyDegrade,
                    format!("fault {id:?}: a degrade needs at least one of loss, delay, rate"),
                );
            }
            if jitter.is_some() && delay.is_none() {
                c.at_key(
                    span,
                    "jitter",
                    ErrorCode::JitterWithoutDelay,
                    format!("fault {id:?}: jitter needs a delay"),
                );
            }
            FaultKind::Degrade {
                nodes,
                links,
                loss_percent: loss,
                delay: delay.map(|d| d.0),
                jitter: jitter.map(|d| d.0),
                rate,
            }
        }
        "kill" => FaultKind::Kill {
            nodes: nodes_of(c, &mut t)?,
        },
        "stop" => FaultKind::Stop {
            nodes: nodes_of(c, &mut t)?,
        },
        "pause" => FaultKind::Pause {
            nodes: nodes_of(c, &mut t)?,
        },
        "power-off" => FaultKind::PowerOff {
            nodes: nodes_of(c, &mut t)?,
        },
        "clock-skew" => {
            let nodes = nodes_of(c, &mut t)?;
            let offset: String = required(c, span, &mut t, "offset", &format!("fault {id:?}"))?;
            let strobe: Option<Dur> = take(c, span, &mut t, "strobe").ok()?;
            let offset_ms = match offset_ms(&offset) {
                Ok(0) => {
                    c.at_key(
                        span,
                        "offset",
                        ErrorCode::BadDuration,
                        "offset is zero: nothing to skew",
                    );
                    return None;
                }
                Ok(ms) => ms,
                Err(e) => {
                    c.at_key(span, "offset", ErrorCode::BadDuration, e);
                    return None;
                }
            };
            FaultKind::ClockSkew {
                nodes,
                offset_ms,
                strobe: strobe.map(|d| d.0),
            }
        }
        "command" => {
            let nodes = nodes_of(c, &mut t)?;
            let run = required(c, span, &mut t, "run", &format!("fault {id:?}"))?;
            let undo = take(c, span, &mut t, "undo").ok()?;
            let timeout: Option<Dur> = take(c, span, &mut t, "timeout").ok()?;
            if timeout.as_ref().is_some_and(|d| d.0.is_zero()) {
                c.at_key(
                    span,
                    "timeout",
                    ErrorCode::BadDuration,
                    format!("fault {id:?}: a timeout of zero would kill the command at once"),
                );
            }
            FaultKind::Command {
                nodes,
                run,
                undo,
                timeout: timeout.map(|d| d.0),
            }
        }
        other => {
            c.at_key(
                span,
                "kind",
                ErrorCode::UnknownFaultKind,
                format!("unknown fault kind {other:?} (known: {FAULT_KINDS})"),
            );
            return None;
        }
    };
    for key in t.keys() {
        c.at_key(
            span,
            key,
            ErrorCode::UnknownField,
            format!("unknown field `{key}` for a {} fault", kind.name()),
        );
    }
    Some(FaultSpec {
        id,
        at: at.map_or(Duration::ZERO, |d| d.0),
        heal_after: heal_after.map(|d| d.0),
        allow_management_cut: allow_management_cut.unwrap_or(false),
        kind,
    })
}

/// Every node in exactly one group, two groups at least, and as many nodes
/// as the experiment says.
pub(super) fn check_groups(
    c: &mut Checker,
    span: &Range<usize>,
    id: &str,
    groups: &[Vec<String>],
    nodes: usize,
) {
    if groups.len() < 2 || groups.iter().any(Vec::is_empty) {
        c.at_key(
            span,
            "groups",
            ErrorCode::BadPartition,
            format!("fault {id:?}: a partition needs two or more non-empty groups"),
        );
        return;
    }
    let mut seen = BTreeSet::new();
    for n in groups.iter().flatten() {
        if !seen.insert(n.as_str()) {
            c.at_key(
                span,
                "groups",
                ErrorCode::BadPartition,
                format!("fault {id:?}: node {n:?} is in two groups"),
            );
        }
    }
    if seen.len() < nodes {
        c.at_key(
            span,
            "groups",
            ErrorCode::BadPartition,
            format!(
                "fault {id:?}: the groups name {} node(s) but the experiment has {nodes}: every node must be in a group",
                seen.len()
            ),
        );
    }
}

pub(super) fn node_set(
    c: &mut Checker,
    span: &Range<usize>,
    key: &str,
    v: Value,
) -> Option<NodeSet> {
    match v {
        Value::String(s) if s == "all" => Some(NodeSet::All),
        Value::Array(_) => c.typed::<Vec<String>>(span, key, v).map(NodeSet::Some),
        _ => {
            c.at_key(
                span,
                key,
                ErrorCode::WrongType,
                format!("`{key}`: expected \"all\" or a list of node names"),
            );
            None
        }
    }
}
