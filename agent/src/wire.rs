//! What every part of the agent that speaks to the controller shares: the
//! one stdout writer and the two clocks events are stamped with. Its own
//! module so that the watches (quorum, resources, stalls) and the server
//! use it without importing each other.

use std::io::Write;
use std::sync::Mutex;

use corodrill_protocol::{to_line, Event, EventBody, Message};

/// The agent's stdout: one whole JSON line at a time, from any thread.
pub struct Out(Mutex<std::io::Stdout>);

impl Out {
    pub fn new() -> Out {
        Out(Mutex::new(std::io::stdout()))
    }

    pub fn send(&self, msg: &Message) {
        let line = to_line(msg);
        let mut out = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // A controller that is gone shows up as EOF on stdin; the write error
        // itself needs no handling here.
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    }

    pub fn event(&self, body: EventBody) {
        self.event_at(mono_ns(), utc_us(), body);
    }

    /// An event stamped with when it was seen, not when it was sent.
    pub fn event_at(&self, mono_ns: u64, utc_us: i64, body: EventBody) {
        self.send(&Message::Event(Event {
            mono_ns,
            utc_us,
            body,
        }));
    }
}

pub fn mono_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// Sleeps until the monotonic clock reads `at_ns` (at once when it is past):
/// an absolute sleep, so a wake-up late by the scheduler is not added twice.
pub fn sleep_until_mono(at_ns: u64) {
    let at = nix::sys::time::TimeSpec::new(
        (at_ns / 1_000_000_000) as nix::libc::time_t,
        (at_ns % 1_000_000_000) as nix::libc::c_long,
    );
    // EINTR (a signal) goes back to sleep; any other error returns at once.
    while let Err(nix::errno::Errno::EINTR) = nix::time::clock_nanosleep(
        nix::time::ClockId::CLOCK_MONOTONIC,
        nix::time::ClockNanosleepFlags::TIMER_ABSTIME,
        &at,
    ) {}
}

pub fn utc_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}
