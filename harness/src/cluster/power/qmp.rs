//! `driver = "qmp"`: a QEMU VM through its QMP socket (QEMU started with
//! `-qmp unix:PATH,server=on,wait=off`). Off is a pulled plug that keeps
//! QEMU itself running, so that on needs no command line: the CPUs stop at
//! once (`stop`: the node goes silent mid-instruction, nothing is flushed,
//! no shutdown runs) and the machine is reset (`system_reset`: what was in
//! its memory is gone). On is `cont`: the reset machine boots. QEMU's run
//! state is the power state: `running` is on, anything else off.
//!
//! QMP is JSON lines over the socket: a greeting, `qmp_capabilities`, then
//! one reply per command, with asynchronous events in between that are
//! skipped. Small enough to speak here with serde_json rather than take a
//! QAPI crate that generates every command of QEMU's schema.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::{PowerDriver, PowerState};

/// A QEMU VM's QMP socket.
pub(super) struct QmpPower {
    pub(super) socket: PathBuf,
    pub(super) timeout: Duration,
}

/// One QMP session: greeted and in command mode.
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects, reads the greeting and leaves capabilities negotiation.
    pub fn connect(socket: &std::path::Path, timeout: Duration) -> Result<Qmp, String> {
        let stream = UnixStream::connect(socket).map_err(|e| {
            format!(
                "cannot reach QEMU's QMP socket {}: {e} (QEMU started with -qmp unix:{},server=on,wait=off?)",
                socket.display(),
                socket.display()
            )
        })?;
        for set in [
            UnixStream::set_read_timeout as fn(&UnixStream, Option<Duration>) -> _,
            UnixStream::set_write_timeout,
        ] {
            set(&stream, Some(timeout)).map_err(|e| format!("QMP socket: {e}"))?;
        }
        let writer = stream.try_clone().map_err(|e| format!("QMP socket: {e}"))?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream),
            writer,
        };
        let greeting = qmp.read()?;
        if greeting.get("QMP").is_none() {
            return Err(format!(
                "QMP socket: expected QEMU's greeting, got {greeting}"
            ));
        }
        qmp.execute("qmp_capabilities")?;
        Ok(qmp)
    }

    fn read(&mut self) -> Result<Value, String> {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .map_err(|e| format!("reading QMP: {e}"))?;
        if n == 0 {
            return Err("QEMU closed the QMP socket".into());
        }
        serde_json::from_str(&line).map_err(|e| format!("QMP sent what is not JSON ({e}): {line}"))
    }

    /// Runs one command without arguments and returns its `return` value.
    pub fn execute(&mut self, command: &str) -> Result<Value, String> {
        let request = serde_json::json!({ "execute": command });
        writeln!(self.writer, "{request}").map_err(|e| format!("writing to QMP: {e}"))?;
        loop {
            let reply = self.read()?;
            if reply.get("event").is_some() {
                continue;
            }
            if let Some(ret) = reply.get("return") {
                return Ok(ret.clone());
            }
            if let Some(err) = reply.get("error") {
                return Err(format!(
                    "QMP {command}: {}",
                    err.get("desc").and_then(Value::as_str).unwrap_or("error")
                ));
            }
            return Err(format!("QMP {command}: unexpected reply {reply}"));
        }
    }

    /// QEMU's run state (`running`, `paused`, `prelaunch`, `shutdown`, ...).
    pub fn run_state(&mut self) -> Result<String, String> {
        let status = self.execute("query-status")?;
        status
            .get("status")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("QMP query-status: no status in {status}"))
    }
}

/// The power state QEMU's run state stands for.
pub fn power_state(run_state: &str) -> PowerState {
    if run_state == "running" {
        PowerState::On
    } else {
        PowerState::Off
    }
}

/// Stops the CPUs and resets the machine: a pulled plug.
pub fn off(qmp: &mut Qmp) -> Result<(), String> {
    qmp.execute("stop")?;
    qmp.execute("system_reset").map(drop)
}

/// Boots the machine: reset first unless it is fresh from a reset (a guest
/// that shut itself down under `-no-shutdown` is in `shutdown`), then run.
pub fn on(qmp: &mut Qmp) -> Result<(), String> {
    match qmp.run_state()?.as_str() {
        "running" => Ok(()),
        "prelaunch" => qmp.execute("cont").map(drop),
        _ => {
            qmp.execute("system_reset")?;
            qmp.execute("cont").map(drop)
        }
    }
}

impl PowerDriver for QmpPower {
    fn driver(&self) -> &'static str {
        "qmp"
    }
    fn off(&self) -> Result<(), String> {
        off(&mut Qmp::connect(&self.socket, self.timeout)?)
    }
    fn on(&self) -> Result<(), String> {
        on(&mut Qmp::connect(&self.socket, self.timeout)?)
    }
    fn status(&self) -> Result<PowerState, String> {
        let state = Qmp::connect(&self.socket, self.timeout)?.run_state()?;
        Ok(power_state(&state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_running_is_on() {
        assert_eq!(power_state("running"), PowerState::On);
        for s in [
            "paused",
            "prelaunch",
            "shutdown",
            "internal-error",
            "suspended",
        ] {
            assert_eq!(power_state(s), PowerState::Off, "{s}");
        }
    }
}
