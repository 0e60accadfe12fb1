//! One expectation judged against the log: its anchor, its window, the
//! moment it was met (reached after the anchor, or kept past the reaction
//! time), and whether its hold was cut short.

use crate::experiment::{Expect, Experiment};
use crate::log::{LogBody, LogEvent};

use super::timeline::{check_at, holds_at, Timeline};
use super::{anchor_time, Verdict, STAMP_SLACK};

/// Why a state kept since a fault's start proves nothing in this run: the
/// fault was rolled back (the drill ended it, or its lease ran out) before
/// the cluster had had the time to react to it. None when it lasted, or
/// when the file itself makes the fault shorter than the reaction time:
/// whether the cluster rides out a blip is a question of its own, judged
/// through the reaction time like any other.
pub(super) fn cut_short(
    experiment: &Experiment,
    e: &Expect,
    log: &[&LogEvent],
    anchor: f64,
    reaction: f64,
) -> Option<String> {
    if e.after.healed {
        return None;
    }
    let planned = experiment
        .faults
        .iter()
        .find(|f| f.id == e.after.fault)
        .and_then(|f| f.heal_after);
    if planned.is_some_and(|p| p.as_secs_f64() < reaction) {
        return None;
    }
    let healed = log
        .iter()
        .filter(|ev| ev.t >= anchor)
        .filter_map(|ev| match &ev.body {
            LogBody::FaultHealed { fault, .. } | LogBody::LeaseExpired { fault, .. }
                if *fault == e.after.fault =>
            {
                Some(ev.t)
            }
            _ => None,
        })
        .reduce(f64::min)?;
    (healed + STAMP_SLACK < anchor + reaction).then(|| {
        format!(
            "{} was rolled back at t={healed:.3}s, {:.3}s after it, before the cluster's reaction time \
             ({reaction:.3}s) had passed: a state kept that long proves nothing (give within, or \
             heal_after, at least the reaction time)",
            e.after,
            healed - anchor
        )
    })
}

/// How long after the anchor the expectation must hold, in words:
/// "the 2s hold", or "the reaction time (5.037s) + the 2s hold".
pub(super) fn hold_words(e: &Expect, reaction: Option<f64>) -> String {
    let hold = format!("the {} hold", humantime::format_duration(e.hold));
    match reaction {
        Some(r) if e.hold.is_zero() => format!("the reaction time ({r:.3}s)"),
        Some(r) => format!("the reaction time ({r:.3}s) + {hold}"),
        None => hold,
    }
}

/// An expectation after a fault (or a heal) is met by a state the cluster
/// *reaches* within the window and keeps for `hold`, measured from the
/// anchor. A state that was already there at the anchor is *unchanged*,
/// not reached: it is evidence only if it still holds once the cluster
/// has had the time to react (the expectation's reaction time, from the
/// model) and for `hold` after that, however short `within` is. Nodes
/// count one by one: in "pve1, pve2 quorate" where pve2 changed but pve1
/// was quorate all along, pve1's part must hold through the reaction
/// time too. Without a reaction time (no model of the cluster) a kept
/// state never passes.
pub(super) fn judge_expect(
    experiment: &Experiment,
    e: &Expect,
    nodes: &[String],
    log: &[&LogEvent],
    timeline: &Timeline,
) -> Verdict {
    let fail = |message: String| Verdict {
        name: e.name.clone(),
        invariant: false,
        passed: false,
        measured: None,
        kept: false,
        message,
    };
    let Some(anchor) = anchor_time(e, log.iter().copied()) else {
        return fail(format!("{} never happened in this run", e.after));
    };
    let within = e.within.as_secs_f64();
    let hold = e.hold.as_secs_f64();
    let deadline = anchor + within;
    let reaction = e.reaction.as_ref().map(|r| r.time.as_secs_f64());
    let targets = e.nodes.resolve(nodes);
    // Nothing after this can decide the verdict: the last start is the
    // deadline, and the longest stretch a start needs is the reaction
    // time and the hold. (Drills poll this several times a second with
    // the whole log: the rest is not worth judging.)
    let horizon = deadline.max(anchor + reaction.unwrap_or(0.0)) + hold;
    let points: Vec<f64> = std::iter::once(anchor)
        .chain(timeline.change_times(anchor, horizon))
        .collect();
    let checks: Vec<Vec<Result<(), String>>> = points
        .iter()
        .map(|&t| check_at(e, &targets, nodes, timeline, t, anchor))
        .collect();
    let ok: Vec<bool> = checks.iter().map(|c| c.iter().all(Result::is_ok)).collect();
    // Per node: so at the anchor and unbroken until this moment (infinity:
    // to the end), or None when not so at the anchor.
    let kept_until: Vec<Option<f64>> = (0..targets.len())
        .map(|k| {
            checks[0][k].is_ok().then(|| {
                points
                    .iter()
                    .zip(&checks)
                    .skip(1)
                    .find(|(_, c)| c[k].is_err())
                    .map_or(f64::INFINITY, |(t, _)| *t)
            })
        })
        .collect();
    let mut broken: Vec<String> = Vec::new();
    let mut note = |why: String| {
        if !broken.contains(&why) {
            broken.push(why);
        }
    };
    for i in 0..points.len() {
        let start = points[i];
        if start > deadline {
            break;
        }
        // Only where it becomes true: later moments of the same stretch
        // are not arrivals.
        if !ok[i] || (i > 0 && ok[i - 1]) {
            continue;
        }
        let kept: Vec<&str> = targets
            .iter()
            .zip(&kept_until)
            .filter(|(_, u)| u.is_some_and(|u| u > start))
            .map(|(n, _)| *n)
            .collect();
        let since = if i == 0 {
            format!("already so at {} (t={anchor:.3}s)", e.after)
        } else if kept.is_empty() {
            format!("true from t={start:.3}s")
        } else {
            format!(
                "true from t={start:.3}s, with {} so since {} (t={anchor:.3}s)",
                kept.join(", "),
                e.after
            )
        };
        let until = if kept.is_empty() {
            start + hold
        } else {
            let Some(r) = reaction else {
                note(format!(
                    "{since}: a state already there at the fault counts only once the cluster \
                     has had the time to react, and this run has no model of the cluster to say \
                     how long that is"
                ));
                continue;
            };
            if let Some(why) = cut_short(experiment, e, log, anchor, r) {
                note(format!("{since}, but {why}"));
                continue;
            }
            (anchor + r).max(start) + hold
        };
        let what = hold_words(e, (!kept.is_empty()).then_some(reaction).flatten());
        let breach = (i + 1..points.len())
            .find(|&j| !ok[j])
            .filter(|&j| points[j] <= until);
        match breach {
            None if timeline.end + 1e-9 >= until => {
                let held = if hold > 0.0 {
                    format!(", held {}", humantime::format_duration(e.hold))
                } else {
                    String::new()
                };
                let basis = e.reaction.as_ref().map_or("", |r| r.basis.as_str());
                let (measured, message) = if i == 0 {
                    (
                        None,
                        format!(
                            "{}: kept, not reached: already so at {} (t={anchor:.3}s) and still so \
                             through {what}, to t={until:.3}s (reaction time: {basis})",
                            e.describe(nodes),
                            e.after
                        ),
                    )
                } else if kept.is_empty() {
                    (
                        Some(start - anchor),
                        format!(
                            "{} reached in {:.3}s (within {}){held}",
                            e.describe(nodes),
                            start - anchor,
                            humantime::format_duration(e.within)
                        ),
                    )
                } else {
                    (
                        Some(start - anchor),
                        format!(
                            "{} reached in {:.3}s (within {}){held}; {} already so at {}, kept \
                             through {what}, to t={until:.3}s (reaction time: {basis})",
                            e.describe(nodes),
                            start - anchor,
                            humantime::format_duration(e.within),
                            kept.join(", "),
                            e.after
                        ),
                    )
                };
                return Verdict {
                    name: e.name.clone(),
                    invariant: false,
                    passed: true,
                    measured,
                    kept: i == 0,
                    message,
                };
            }
            None => {
                note(format!(
                    "{since}, but the drill ended at t={:.3}s, before {what} had passed (t={until:.3}s)",
                    timeline.end
                ));
                break;
            }
            Some(j) => {
                let t = points[j];
                let why = checks[j]
                    .iter()
                    .filter_map(|r| r.as_ref().err())
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ");
                note(if i == 0 {
                    format!(
                        "{since}, but at t={t:.3}s ({:.3}s after {}, before {what} had passed) {why}",
                        t - anchor,
                        e.after
                    )
                } else {
                    format!(
                        "{since}, but at t={t:.3}s ({:.3}s later, before {what} had passed) {why}",
                        t - start
                    )
                });
            }
        }
    }
    let at_deadline = holds_at(e, nodes, timeline, deadline, anchor);
    // Too slow is not never: say when it did become true, if it did (not
    // so at the deadline, so the first moment it is so is an arrival).
    let late = at_deadline
        .is_err()
        .then(|| {
            timeline
                .change_times(deadline, timeline.end)
                .find(|&t| holds_at(e, nodes, timeline, t, anchor).is_ok())
        })
        .flatten()
        .map(|t| {
            format!(
                "; it was true from t={t:.3}s, {:.3}s after {}",
                t - anchor,
                e.after
            )
        })
        .unwrap_or_default();
    let observed = at_deadline
        .err()
        .unwrap_or_else(|| "as expected, but see why it does not count".into());
    fail(format!(
        "expected {} within {} of {} (t={anchor:.3}s, deadline t={deadline:.3}s); observed at the deadline: {observed}{}",
        e.describe(nodes),
        humantime::format_duration(e.within),
        e.after,
        broken.iter().map(|b| format!("; {b}")).collect::<String>()
    ) + &late)
}
