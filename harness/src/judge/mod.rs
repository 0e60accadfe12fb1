//! The judge: a pure function from an experiment and its event log to
//! verdicts. It never talks to an agent; unit tests drive it with
//! hand-written logs. An expectation is met by a state reached after its
//! anchor, or by one already there that outlasts the cluster's reaction
//! time (`judge_expect`): never by a state corosync has not yet had the
//! time to change.
//!
//! Here the verdicts and the drill's judgement as a whole; `timeline` (each
//! node's state over the log), `expectations`, and the invariants
//! `split_brain`, `double_active` and `whole` (at the end).

mod double_active;
mod expectations;
mod split_brain;
mod timeline;
mod whole;

use crate::experiment::{Expect, Experiment};
use crate::log::{LogBody, LogEvent};

use double_active::double_active;
use expectations::judge_expect;
use split_brain::split_brain;
use timeline::{holds_at, Timeline};
use whole::whole_at_end;

#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub name: String,
    pub invariant: bool,
    pub passed: bool,
    /// The measured time (seconds): how long the expected state took to
    /// arrive. None when nothing arrived: a state kept from before the
    /// anchor (`kept`), or a failure.
    pub measured: Option<f64>,
    /// The expected state was already there at the anchor and still held
    /// once the cluster had had time to react, and for `hold` after that:
    /// kept, not reached, so there is no time to measure.
    pub kept: bool,
    /// For a failure: expected, observed and when. For a pass: what was seen.
    pub message: String,
}

/// Judges every expectation and the always-on invariants.
pub fn judge(experiment: &Experiment, nodes: &[String], log: &[LogEvent]) -> Vec<Verdict> {
    let mut log: Vec<&LogEvent> = log.iter().collect();
    log.sort_by(|a, b| a.t.total_cmp(&b.t));
    let timeline = Timeline::new(&log);
    let mut verdicts: Vec<Verdict> = experiment
        .expects
        .iter()
        .map(|e| judge_expect(experiment, e, nodes, &log, &timeline))
        .collect();
    verdicts.push(split_brain(experiment.invariants.split_brain, &timeline));
    for w in experiment.watches.iter().filter(|w| !w.clone) {
        verdicts.push(double_active(
            &w.resource,
            w.interval.as_secs_f64(),
            experiment.invariants.double_active,
            &timeline,
        ));
    }
    if experiment.invariants.whole_at_end {
        verdicts.push(whole_at_end(experiment, nodes, &log, &timeline));
    }
    verdicts
}

/// Whether every expectation has already passed by `now`: a drill may stop
/// waiting then (a pass cannot be undone by later events). A state kept
/// from before its anchor passes only once it has held through the
/// reaction time and `hold`, so the drill waits that long for it.
pub fn expectations_met(
    experiment: &Experiment,
    nodes: &[String],
    log: &[LogEvent],
    now: f64,
) -> bool {
    let mut log: Vec<&LogEvent> = log.iter().collect();
    log.sort_by(|a, b| a.t.total_cmp(&b.t));
    let mut timeline = Timeline::new(&log);
    timeline.end = timeline.end.max(now);
    // The first open one is enough to keep waiting.
    experiment
        .expects
        .iter()
        .all(|e| judge_expect(experiment, e, nodes, &log, &timeline).passed)
}

/// The expectations not (yet) met by the log up to `now`, by name: what a
/// long wait is waiting for.
pub fn open_expectations<'e>(
    experiment: &'e Experiment,
    nodes: &[String],
    log: &[LogEvent],
    now: f64,
) -> Vec<&'e str> {
    let mut log: Vec<&LogEvent> = log.iter().collect();
    log.sort_by(|a, b| a.t.total_cmp(&b.t));
    let mut timeline = Timeline::new(&log);
    timeline.end = timeline.end.max(now);
    experiment
        .expects
        .iter()
        .filter(|e| !judge_expect(experiment, e, nodes, &log, &timeline).passed)
        .map(|e| e.name.as_str())
        .collect()
}

/// The first moment after `from` at which `e` no longer holds (some node
/// it names sees something else), or None when it holds to the end of
/// the log: how long the state that met an expectation lasted (`mutate`
/// asks for a `hold` past it).
pub fn holds_until(e: &Expect, nodes: &[String], log: &[LogEvent], from: f64) -> Option<f64> {
    let mut log: Vec<&LogEvent> = log.iter().collect();
    log.sort_by(|a, b| a.t.total_cmp(&b.t));
    let timeline = Timeline::new(&log);
    let anchor = anchor_time(e, log.iter().copied())?;
    let end = timeline
        .change_times(from, timeline.end)
        .find(|&t| holds_at(e, nodes, &timeline, t, anchor).is_err());
    end
}

/// Apply and heal events are stamped as each agent answers, milliseconds
/// apart: a heal this close to the end of the reaction time is on time.
const STAMP_SLACK: f64 = 0.1;

/// When the anchor happened: the first node's fault taking effect, or the
/// last node's heal.
pub fn anchor_time<'a>(e: &Expect, log: impl IntoIterator<Item = &'a LogEvent>) -> Option<f64> {
    let times = log.into_iter().filter_map(|ev| match &ev.body {
        LogBody::FaultApplied { fault, .. } if !e.after.healed && *fault == e.after.fault => {
            Some(ev.t)
        }
        LogBody::FaultHealed { fault, .. } | LogBody::LeaseExpired { fault, .. }
            if e.after.healed && *fault == e.after.fault =>
        {
            Some(ev.t)
        }
        _ => None,
    });
    if e.after.healed {
        times.reduce(f64::max)
    } else {
        times.reduce(f64::min)
    }
}

#[cfg(test)]
mod tests;
