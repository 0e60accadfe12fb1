//! Quorum transitions timed from corosync's own record: the `[QUORUM]
//! Members[N]: ...` line corosync writes (hires timestamps) for each view it
//! hands to libquorum, matched to that notification by ring id and members
//! and mapped onto the agent's monotonic clock. The notification itself
//! reaches the agent a few ms later (~20 ms for a restarted corosync's first
//! view, since the agent can only connect once corosync's IPC is up).
//!
//! The line's time is corosync's wall clock, which a clock-skew drill moves:
//! in the lab corosync runs under libfaketime (the agent does not), so the
//! node's faketime offset is added to the agent's own realtime to read the
//! clock corosync wrote with; on a real node `clock_settime` moves both. A
//! clock that stepped within the window a line may come from (a skew
//! applied or healed, a strobe) cannot be trusted to map a line: the
//! notification's time is kept, and the event says so (`source`).
//!
//! Everything but [`Tail::read`] and [`corosync_offset_us`] is pure.

use std::path::{Path, PathBuf};

use crate::follow::Follow;

/// A line may be at most this much older than the notification it times
/// (µs); an older match is another transition's.
pub const MAX_LEAD_US: i64 = 1_000_000;

/// Lines not taken by a notification within this long after they were read
/// are dropped (ns): none can still be matched.
const KEEP_NS: u64 = 2_000_000_000;

/// How much the corosync clock's offset from the monotonic clock may move
/// between two samples without counting as a step (µs): NTP slews at most
/// 500 ppm, a few hundred µs between samples.
const STEP_US: i64 = 2_000;

/// Time zones are whole quarter hours from UTC: the line's local time of day
/// and the clock's UTC agree modulo a quarter hour, which is all a lead of
/// under a second needs (µs).
const QUARTER_HOUR_US: i64 = 15 * 60 * 1_000_000;

/// One `[QUORUM] Members[N]: ...` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembersLine {
    /// The ring of the `A new membership (R) was formed` line before it.
    pub ring: Option<String>,
    pub members: Vec<u32>,
    /// What the primary-component line just before it said, if any.
    pub quorate: Option<bool>,
    /// Local time of day the line was written, in µs; None without hires
    /// timestamps (seconds only: useless for timing).
    pub tod_us: Option<i64>,
}

/// Reads corosync's lines in order, remembering the ring and primary
/// component statement that a `Members` line belongs to.
#[derive(Debug, Default)]
pub struct Parser {
    ring: Option<String>,
    quorate: Option<bool>,
}

impl Parser {
    pub fn line(&mut self, line: &str) -> Option<MembersLine> {
        if let Some((_, rest)) = line.split_once("A new membership (") {
            self.ring = rest.split_once(')').map(|(r, _)| r.to_owned());
            self.quorate = None;
            return None;
        }
        if line.contains("This node is within the non-primary component") {
            self.quorate = Some(false);
            return None;
        }
        if line.contains("This node is within the primary component") {
            self.quorate = Some(true);
            return None;
        }
        let (_, rest) = line.split_once("[QUORUM] Members[")?;
        let members = rest
            .split_once("]:")?
            .1
            .split_whitespace()
            .map(|id| id.parse().ok())
            .collect::<Option<Vec<u32>>>()?;
        Some(MembersLine {
            ring: self.ring.clone(),
            members,
            quorate: self.quorate.take(),
            tod_us: time_of_day_us(line),
        })
    }
}

/// The time of day of a corosync log line (`Dec 02 10:04:11.341 [pid] ...`,
/// or journalctl's `-o short-precise` `Dec 02 10:04:11.341234 host ...`),
/// in µs; None without a fraction of a second.
pub fn time_of_day_us(line: &str) -> Option<i64> {
    let word = line.split_whitespace().nth(2)?;
    let (hms, frac) = word.split_once('.')?;
    let mut parts = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, s) = (parts.next()??, parts.next()??, parts.next()??);
    if parts.next().is_some() || h > 23 || m > 59 || s > 60 {
        return None;
    }
    if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Digits beyond µs are dropped; fewer are scaled up ("341" is 341 ms).
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
    let us: i64 = digits.parse().ok()?;
    Some(((h * 60 + m) * 60 + s) * 1_000_000 + us)
}

/// How long before `clock_now_us` (UTC µs on the clock corosync writes
/// with) a line stamped `tod_us` (local time of day) was written, if that is
/// at most [`MAX_LEAD_US`]. A line stamped after now comes out as almost a
/// quarter hour and is refused with the rest.
pub fn lead_us(tod_us: i64, clock_now_us: i64) -> Option<i64> {
    let lead = (clock_now_us - tod_us).rem_euclid(QUARTER_HOUR_US);
    (lead <= MAX_LEAD_US).then_some(lead)
}

/// Takes the latest line that reports this view (same ring and members, and
/// no contrary primary-component statement) out of `lines`, with every line
/// before it: each line times one notification at most.
pub fn take_match<T>(
    lines: &mut Vec<(MembersLine, T)>,
    ring: &str,
    members: &[u32],
    quorate: bool,
) -> Option<MembersLine> {
    let i = lines.iter().rposition(|(l, _)| {
        l.ring.as_deref() == Some(ring) && l.members == members && l.quorate != Some(!quorate)
    })?;
    lines.drain(..=i).last().map(|(l, _)| l)
}

/// Watches the clock corosync writes with (the agent's realtime plus the
/// node's faketime offset) against the monotonic clock: a step makes lines
/// from around it untrustworthy.
#[derive(Debug, Default)]
pub struct Steps {
    last: Option<i64>,
    stepped_at_ns: Option<u64>,
}

impl Steps {
    /// One sample: monotonic ns, the agent's realtime µs, corosync's offset
    /// from it (None when it cannot be read: as good as a step).
    pub fn sample(&mut self, mono_ns: u64, real_us: i64, offset_us: Option<i64>) {
        let Some(offset) = offset_us else {
            self.last = None;
            self.stepped_at_ns = Some(mono_ns);
            return;
        };
        let k = real_us + offset - (mono_ns / 1000) as i64;
        if self.last.is_some_and(|last| (k - last).abs() > STEP_US) {
            self.stepped_at_ns = Some(mono_ns);
        }
        self.last = Some(k);
    }

    /// Whether a line up to [`MAX_LEAD_US`] before `mono_ns` was written on
    /// the same clock as now. Samples are at most 250 ms apart (the quorum
    /// watch's poll), so a step in that window was seen by one of them.
    pub fn steady_since(&self, mono_ns: u64) -> bool {
        let window = (MAX_LEAD_US as u64 + 300_000) * 1000;
        self.stepped_at_ns.is_none_or(|at| at + window < mono_ns)
    }
}

/// What a notification's view is timed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timed {
    pub mono_ns: u64,
    pub utc_us: i64,
    pub from_log: bool,
}

/// Maps a matched line onto the agent's clocks through the pair read when
/// the notification arrived, or keeps that pair when the line cannot be
/// trusted.
pub fn time_view(
    seen_mono_ns: u64,
    seen_utc_us: i64,
    offset_us: Option<i64>,
    steady: bool,
    line: Option<&MembersLine>,
) -> Timed {
    let fallback = Timed {
        mono_ns: seen_mono_ns,
        utc_us: seen_utc_us,
        from_log: false,
    };
    let (Some(offset), true, Some(tod)) = (offset_us, steady, line.and_then(|l| l.tod_us)) else {
        return fallback;
    };
    match lead_us(tod, seen_utc_us + offset) {
        Some(lead) if (lead as u64) * 1000 <= seen_mono_ns => Timed {
            mono_ns: seen_mono_ns - lead as u64 * 1000,
            utc_us: seen_utc_us - lead,
            from_log: true,
        },
        _ => fallback,
    }
}

/// A view timed from its line that would land at or before the last view
/// sent (`last_ns`) is timed by its notification (`seen`) instead: views
/// keep the order in which corosync reported them. (An expected-votes
/// override reports the old view with the new votes first, then the
/// quorate view, whose line was written before either notice arrived.)
pub fn after_last(timed: Timed, last_ns: u64, seen_mono_ns: u64, seen_utc_us: i64) -> Timed {
    if timed.from_log && timed.mono_ns <= last_ns {
        Timed {
            mono_ns: seen_mono_ns,
            utc_us: seen_utc_us,
            from_log: false,
        }
    } else {
        timed
    }
}

/// corosync's wall clock minus the agent's, in µs: the lab node's faketime
/// offset (a missing file is no offset), 0 on a real node. None when the
/// file holds what the agent did not write.
pub fn corosync_offset_us(faketime: Option<&Path>) -> Option<i64> {
    let Some(file) = faketime else {
        return Some(0);
    };
    match std::fs::read_to_string(file) {
        Ok(text) => parse_faketime_offset_us(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(0),
        Err(_) => None,
    }
}

/// libfaketime's relative offsets as the clock fault writes them: "+300s",
/// "-1.500s", "+0s".
pub fn parse_faketime_offset_us(text: &str) -> Option<i64> {
    let t = text.trim();
    if t.is_empty() {
        return Some(0);
    }
    let (sign, rest) = match t.as_bytes()[0] {
        b'+' => (1, &t[1..]),
        b'-' => (-1, &t[1..]),
        _ => return None,
    };
    let secs = rest.strip_suffix('s')?;
    let (whole, frac) = secs.split_once('.').unwrap_or((secs, ""));
    if frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let frac_us: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<6}").parse().ok()?
    };
    Some(sign * (whole * 1_000_000 + frac_us))
}

/// corosync's log file followed from where it ended when the watch began:
/// the `Members` lines read, each with when it was read.
pub struct Tail {
    file: Follow,
    parser: Parser,
    pub lines: Vec<(MembersLine, u64)>,
    /// Whether the last `Members` line had hires time (None: none seen yet).
    pub hires: Option<bool>,
}

impl Tail {
    pub fn open(path: PathBuf) -> Tail {
        Tail {
            file: Follow::from_end(path),
            parser: Parser::default(),
            lines: Vec::new(),
            hires: None,
        }
    }

    /// Reads the lines written since the last call (whole lines only).
    pub fn read(&mut self, now_mono_ns: u64) {
        self.lines.retain(|(_, read)| read + KEEP_NS > now_mono_ns);
        let (parser, lines, hires) = (&mut self.parser, &mut self.lines, &mut self.hires);
        self.file.new_lines(|line| {
            if let Some(m) = parser.line(line) {
                *hires = Some(m.tod_us.is_some());
                lines.push((m, now_mono_ns));
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_timed_from_its_line_never_lands_before_the_last_one_sent() {
        let from_log = |mono_ns| Timed {
            mono_ns,
            utc_us: 7,
            from_log: true,
        };
        // The quorate view's line (6.0136 s) is earlier than the stale view
        // already sent at 6.0165 s: the notification's time (6.0170 s).
        let t = after_last(from_log(6_013_600_000), 6_016_500_000, 6_017_000_000, 9);
        assert_eq!(
            t,
            Timed {
                mono_ns: 6_017_000_000,
                utc_us: 9,
                from_log: false
            }
        );
        // After the last view sent: the line's time stands.
        let t = after_last(from_log(6_020_000_000), 6_016_500_000, 6_021_000_000, 9);
        assert_eq!(t, from_log(6_020_000_000));
    }

    const LOG: &str = "\
Dec 02 10:04:14.469 [30426] pve1 corosync notice  [QUORUM] Sync members[3]: 1 2 3
Dec 02 10:04:14.469 [30426] pve1 corosync notice  [QUORUM] Sync joined[2]: 2 3
Dec 02 10:04:14.469 [30426] pve1 corosync notice  [TOTEM ] A new membership (1.d) was formed. Members joined: 2 3
Dec 02 10:04:14.473 [30426] pve1 corosync notice  [QUORUM] This node is within the primary component and will provide service.
Dec 02 10:04:14.473 [30426] pve1 corosync notice  [QUORUM] Members[3]: 1 2 3
Dec 02 10:04:43.833 [30426] pve1 corosync notice  [QUORUM] Sync members[1]: 1
Dec 02 10:04:43.833 [30426] pve1 corosync notice  [TOTEM ] A new membership (1.11) was formed. Members left: 2 3
Dec 02 10:04:43.833 [30426] pve1 corosync notice  [QUORUM] This node is within the non-primary component and will NOT provide any services.
Dec 02 10:04:43.834 [30426] pve1 corosync notice  [QUORUM] Members[1]: 1
Dec 02 10:05:02.617 [30426] pve1 corosync notice  [TOTEM ] A new membership (1.2d) was formed. Members joined: 2 3
Dec 02 10:05:02.621 [30426] pve1 corosync notice  [QUORUM] Members[3]: 1 2 3
";

    fn parse(log: &str) -> Vec<(MembersLine, u64)> {
        let mut p = Parser::default();
        log.lines()
            .filter_map(|l| p.line(l))
            .map(|m| (m, 0))
            .collect()
    }

    fn tod(h: i64, m: i64, s: i64, ms: i64) -> i64 {
        ((h * 60 + m) * 60 + s) * 1_000_000 + ms * 1000
    }

    #[test]
    fn reads_members_lines_with_their_ring_and_primary_statement() {
        let lines = parse(LOG);
        let got: Vec<_> = lines.into_iter().map(|(l, _)| l).collect();
        assert_eq!(
            got,
            vec![
                MembersLine {
                    ring: Some("1.d".into()),
                    members: vec![1, 2, 3],
                    quorate: Some(true),
                    tod_us: Some(tod(10, 4, 14, 473)),
                },
                MembersLine {
                    ring: Some("1.11".into()),
                    members: vec![1],
                    quorate: Some(false),
                    tod_us: Some(tod(10, 4, 43, 834)),
                },
                MembersLine {
                    ring: Some("1.2d".into()),
                    members: vec![1, 2, 3],
                    quorate: None,
                    tod_us: Some(tod(10, 5, 2, 621)),
                },
            ]
        );
    }

    #[test]
    fn time_of_day_needs_hires() {
        assert_eq!(
            time_of_day_us("Dec 02 10:04:11.341 [1] pve1 corosync notice  [QUORUM] Members[1]: 1"),
            Some(tod(10, 4, 11, 341))
        );
        // journalctl -o short-precise: µs.
        assert_eq!(
            time_of_day_us("Dec 02 23:59:59.000123 pve1 corosync[7]: [QUORUM] Members[1]: 1"),
            Some(tod(23, 59, 59, 0) + 123)
        );
        // Debian's default `timestamp: on`: seconds only.
        assert_eq!(
            time_of_day_us("Dec 02 10:04:11 [1] pve1 corosync notice  [QUORUM] Members[1]: 1"),
            None
        );
        assert_eq!(time_of_day_us("[QUORUM] Members[1]: 1"), None);
        assert_eq!(time_of_day_us("Dec 02 25:04:11.341 x"), None);
    }

    #[test]
    fn matches_by_ring_members_and_quorate_once() {
        let mut lines = parse(LOG);
        // Another ring with the same members: not this view.
        assert_eq!(take_match(&mut lines, "1.5", &[1, 2, 3], true), None);
        // A primary statement that contradicts the notification.
        assert_eq!(take_match(&mut lines, "1.11", &[1], true), None);
        assert_eq!(take_match(&mut lines, "1.d", &[1, 2], true), None);
        let m = take_match(&mut lines, "1.11", &[1], false).map(|l| l.tod_us);
        assert_eq!(m, Some(Some(tod(10, 4, 43, 834))));
        // Taken with the lines before it; the later one stays.
        assert_eq!(lines.len(), 1);
        assert_eq!(take_match(&mut lines, "1.11", &[1], false), None);
        assert!(take_match(&mut lines, "1.2d", &[1, 2, 3], true).is_some());
        assert!(lines.is_empty());
    }

    #[test]
    fn lead_is_bounded_and_never_after_the_notification() {
        let day = 86_400_000_000i64;
        // 2026-12-02 10:04:14.480 UTC, the line at .473 local = UTC.
        let now = 20_424 * day + tod(10, 4, 14, 480);
        assert_eq!(lead_us(tod(10, 4, 14, 473), now), Some(7_000));
        // Local time one hour or 5:45 ahead of UTC: the same lead.
        assert_eq!(lead_us(tod(11, 4, 14, 473), now), Some(7_000));
        assert_eq!(lead_us(tod(15, 49, 14, 473), now), Some(7_000));
        // Over midnight.
        let just_after = 20_424 * day + 2_000;
        assert_eq!(lead_us(tod(23, 59, 59, 999), just_after), Some(3_000));
        // Written after the notification: refused.
        assert_eq!(lead_us(tod(10, 4, 14, 481), now), None);
        // More than a second before it: another transition's.
        assert_eq!(lead_us(tod(10, 4, 13, 479), now), None);
        assert_eq!(lead_us(tod(10, 4, 13, 480), now), Some(1_000_000));
    }

    fn line_at(tod_us: i64) -> MembersLine {
        MembersLine {
            ring: Some("1.d".into()),
            members: vec![1],
            quorate: None,
            tod_us: Some(tod_us),
        }
    }

    #[test]
    fn maps_a_line_through_the_notifications_clock_pair() {
        let seen_mono = 50_000_000_000u64;
        let seen_utc = tod(10, 4, 14, 480);
        let line = line_at(tod(10, 4, 14, 473));
        let t = time_view(seen_mono, seen_utc, Some(0), true, Some(&line));
        assert_eq!(
            t,
            Timed {
                mono_ns: seen_mono - 7_000_000,
                utc_us: seen_utc - 7_000,
                from_log: true
            }
        );
        // corosync 300 s ahead (libfaketime): its line is read on its clock.
        let skewed = line_at(tod(10, 9, 14, 473));
        let t = time_view(seen_mono, seen_utc, Some(300_000_000), true, Some(&skewed));
        assert_eq!(t.mono_ns, seen_mono - 7_000_000);
        // The same line read on the agent's clock is refused, not misplaced.
        assert!(!time_view(seen_mono, seen_utc, Some(0), true, Some(&skewed)).from_log);
        // A clock that stepped, an offset unknown, no line, no hires: the
        // notification's own pair.
        let fallback = Timed {
            mono_ns: seen_mono,
            utc_us: seen_utc,
            from_log: false,
        };
        assert_eq!(
            time_view(seen_mono, seen_utc, Some(0), false, Some(&line)),
            fallback
        );
        assert_eq!(
            time_view(seen_mono, seen_utc, None, true, Some(&line)),
            fallback
        );
        assert_eq!(
            time_view(seen_mono, seen_utc, Some(0), true, None),
            fallback
        );
        let seconds = MembersLine {
            tod_us: None,
            ..line
        };
        assert_eq!(
            time_view(seen_mono, seen_utc, Some(0), true, Some(&seconds)),
            fallback
        );
    }

    #[test]
    fn a_step_of_corosyncs_clock_distrusts_lines_around_it() {
        let s = 1_000_000_000u64;
        let mut steps = Steps::default();
        steps.sample(10 * s, 1_000_000, Some(0));
        steps.sample(10 * s + s / 4, 1_250_000 + 300, Some(0)); // slew: not a step
        assert!(steps.steady_since(11 * s));
        // A 2 s skew applied (the faketime file rewritten).
        steps.sample(10 * s + s / 2, 1_500_000, Some(2_000_000));
        assert!(!steps.steady_since(11 * s));
        assert!(!steps.steady_since(11 * s + 700_000_000));
        assert!(steps.steady_since(12 * s));
        // An offset that cannot be read counts as a step.
        steps.sample(20 * s, 11_000_000, None);
        assert!(!steps.steady_since(20 * s + 1));
    }

    #[test]
    fn reads_the_faketime_offsets_the_clock_fault_writes() {
        for ms in [300_000i64, -90_000, 1_500, -1_500, 0, 1] {
            let text = crate::faults::clock::faketime_offset(ms);
            assert_eq!(parse_faketime_offset_us(&text), Some(ms * 1000), "{text}");
        }
        assert_eq!(parse_faketime_offset_us(""), Some(0));
        assert_eq!(parse_faketime_offset_us("@2026-01-01 00:00:00"), None);
        assert_eq!(parse_faketime_offset_us("+1d"), None);
    }
}
