//! `clock-skew`: the node's wall clock jumps by an offset, and back on heal;
//! with a strobe it flips between skewed and true every period.
//!
//! A lab node never touches the host clock (CLOCK_REALTIME is not
//! namespaced): its daemons run under libfaketime, and the agent rewrites the
//! node's control file. A real node's clock is stepped with clock_settime
//! and put back from the monotonic clock, so the time that passed while it
//! was skewed is not lost.

use std::path::PathBuf;

use nix::time::{clock_gettime, clock_settime, ClockId};
use serde::{Deserialize, Serialize};

use super::{Ctx, Undo};

/// A year: anything larger is a typo, not a drill.
const MAX_OFFSET_MS: i64 = 366 * 24 * 3600 * 1000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum ClockTarget {
    Libfaketime {
        file: PathBuf,
    },
    /// The true time is `real_ns + (monotonic now - mono_ns)`, valid while
    /// the node has not rebooted.
    Settime {
        real_ns: i64,
        mono_ns: i64,
        boot_id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockUndo {
    pub target: ClockTarget,
    pub offset_ms: i64,
    pub strobe_ms: Option<u64>,
    /// Whether the offset is in force now (a strobe flips it).
    pub skewed: bool,
    /// Monotonic time of the last flip.
    pub flipped_mono_ns: i64,
}

pub fn apply(
    ctx: &mut Ctx,
    offset_ms: i64,
    strobe_ms: Option<u64>,
    journal: &mut dyn FnMut(&Undo) -> Result<(), String>,
) -> Result<Undo, String> {
    if offset_ms == 0 || offset_ms.abs() > MAX_OFFSET_MS {
        return Err(format!(
            "clock offset {offset_ms} ms: expected a non-zero offset of at most a year"
        ));
    }
    if strobe_ms.is_some_and(|s| s < 100) {
        return Err("a clock strobe period under 100 ms is not a drill".into());
    }
    let target = match ctx.node.faketime_file() {
        Some(file) => ClockTarget::Libfaketime { file },
        None => ClockTarget::Settime {
            real_ns: now_ns(ClockId::CLOCK_REALTIME)?,
            mono_ns: now_ns(ClockId::CLOCK_MONOTONIC)?,
            boot_id: boot_id(),
        },
    };
    let mut undo = ClockUndo {
        target,
        offset_ms,
        strobe_ms,
        skewed: true,
        flipped_mono_ns: now_ns(ClockId::CLOCK_MONOTONIC)?,
    };
    journal(&Undo::Clock(undo.clone()))?;
    set(&undo.target, offset_ms)?;
    undo.skewed = true;
    Ok(Undo::Clock(undo))
}

/// Flips a strobing skew when its period has passed; returns the new state
/// to journal, or None when nothing changed.
pub fn strobe(undo: &ClockUndo) -> Result<Option<ClockUndo>, String> {
    let Some(period) = undo.strobe_ms else {
        return Ok(None);
    };
    let now = now_ns(ClockId::CLOCK_MONOTONIC)?;
    if now - undo.flipped_mono_ns
        < i64::try_from(period).unwrap_or(i64::MAX / 2_000_000) * 1_000_000
    {
        return Ok(None);
    }
    let mut next = undo.clone();
    next.skewed = !undo.skewed;
    next.flipped_mono_ns = now;
    set(&next.target, if next.skewed { next.offset_ms } else { 0 })?;
    Ok(Some(next))
}

pub fn rollback(_ctx: &mut Ctx, undo: &ClockUndo) -> Result<String, String> {
    set(&undo.target, 0)?;
    check(&undo.target)
}

/// Puts the node's clock at true time + `offset_ms`.
fn set(target: &ClockTarget, offset_ms: i64) -> Result<(), String> {
    match target {
        ClockTarget::Libfaketime { file } => std::fs::write(file, faketime_offset(offset_ms))
            .map_err(|e| format!("cannot write {}: {e}", file.display())),
        ClockTarget::Settime { .. } => {
            let truth = true_time_ns(target)?;
            let want = truth + offset_ms * 1_000_000;
            let spec = nix::sys::time::TimeSpec::new(
                want.div_euclid(1_000_000_000),
                want.rem_euclid(1_000_000_000),
            );
            clock_settime(ClockId::CLOCK_REALTIME, spec).map_err(|e| format!("clock_settime: {e}"))
        }
    }
}

fn check(target: &ClockTarget) -> Result<String, String> {
    match target {
        ClockTarget::Libfaketime { file } => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            if text.trim() == "+0s" {
                Ok(format!("{} holds +0s", file.display()))
            } else {
                Err(format!("{} holds {:?}", file.display(), text.trim()))
            }
        }
        ClockTarget::Settime { .. } => {
            let error_ms = (now_ns(ClockId::CLOCK_REALTIME)? - true_time_ns(target)?) as f64 / 1e6;
            if error_ms.abs() <= 5.0 {
                Ok(format!("clock within {error_ms:.2} ms of true time"))
            } else {
                Err(format!("clock off by {error_ms:.1} ms"))
            }
        }
    }
}

fn true_time_ns(target: &ClockTarget) -> Result<i64, String> {
    match target {
        ClockTarget::Settime {
            real_ns,
            mono_ns,
            boot_id: boot,
        } => {
            if *boot != boot_id() {
                return Err(
                    "the node rebooted since the skew: its clock is the boot's own now".into(),
                );
            }
            Ok(real_ns + (now_ns(ClockId::CLOCK_MONOTONIC)? - mono_ns))
        }
        ClockTarget::Libfaketime { .. } => now_ns(ClockId::CLOCK_REALTIME),
    }
}

/// libfaketime's relative offset syntax: "+300s", "-1.500s".
pub fn faketime_offset(offset_ms: i64) -> String {
    let sign = if offset_ms < 0 { '-' } else { '+' };
    let ms = offset_ms.unsigned_abs();
    if ms.is_multiple_of(1000) {
        format!("{sign}{}s\n", ms / 1000)
    } else {
        format!("{sign}{}.{:03}s\n", ms / 1000, ms % 1000)
    }
}

fn now_ns(clock: ClockId) -> Result<i64, String> {
    let t = clock_gettime(clock).map_err(|e| format!("clock_gettime: {e}"))?;
    Ok(t.tv_sec() * 1_000_000_000 + t.tv_nsec())
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faketime_syntax() {
        assert_eq!(faketime_offset(300_000), "+300s\n");
        assert_eq!(faketime_offset(-90_000), "-90s\n");
        assert_eq!(faketime_offset(1_500), "+1.500s\n");
        assert_eq!(faketime_offset(0), "+0s\n");
    }
}
