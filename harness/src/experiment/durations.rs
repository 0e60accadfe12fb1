//! Durations as experiments write them ("500ms", "10s", "+5m"): read
//! with humantime, capped so that sums of them never overflow.

use std::time::Duration;

use serde::Deserialize;

/// The longest duration or clock offset an experiment may write: longer
/// than any drill, and short enough that adding a few of them (a fault's
/// `at` and `heal_after`, an expectation's anchor, `within` and `hold`)
/// never overflows. humantime reads "18446744073709551615s" as it is.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// A duration written in an experiment ("500ms", "10s", "2m"), at most
/// `MAX_DURATION`; `Checker::typed` puts the file, line and field in
/// front of its errors. Read with humantime itself rather than
/// humantime-serde, whose error drops humantime's reason ("unknown time
/// unit", "number is too large").
pub(super) fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    use serde::de::Error;
    let text = String::deserialize(d)?;
    let value = humantime::parse_duration(text.trim()).map_err(|e| {
        D::Error::custom(format!(
            "invalid duration {text:?} ({e}); write it like \"500ms\", \"10s\", \"2m\""
        ))
    })?;
    within_cap(&text, value).map_err(D::Error::custom)
}

/// `value` (written `text`), or why it is too long.
pub(super) fn within_cap(text: &str, value: Duration) -> Result<Duration, String> {
    if value > MAX_DURATION {
        Err(format!(
            "{text:?} is longer than {}, the most corodrill takes",
            humantime::format_duration(MAX_DURATION)
        ))
    } else {
        Ok(value)
    }
}

/// A command-line duration (`--lease`, `--duration`): humantime, at most
/// `MAX_DURATION` (deadlines are `Instant::now()` plus it).
pub fn parse_flag_duration(text: &str) -> Result<Duration, String> {
    let value = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    within_cap(text, value)
}

/// A duration field of a fault or an expectation (see `duration`).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(transparent)]
pub(super) struct Dur(#[serde(deserialize_with = "duration")] pub(super) Duration);

/// "+5m", "-90s", "300s": a signed humantime offset in milliseconds.
pub(super) fn offset_ms(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (sign, rest) = match s.strip_prefix('-') {
        Some(r) => (-1, r),
        None => (1, s.strip_prefix('+').unwrap_or(s)),
    };
    let d = humantime::parse_duration(rest)
        .map_err(|e| format!("invalid offset {s:?} ({e}); write it like \"+5m\" or \"-90s\""))?;
    let d = within_cap(s, d).map_err(|e| format!("offset {e}"))?;
    // At most a week of milliseconds: fits an i64 with room to spare.
    Ok(sign * d.as_millis() as i64)
}
