//! The controller's one way to run an external tool with a deadline (a power
//! driver's, an install command, a lab node's corosync and Pacemaker tools):
//! in a process group of its own, the whole group killed when the deadline
//! passes, its output read on threads so a chatty tool cannot stall on a
//! full pipe. (The agent has its own, `node::run_within`, on the node.)

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A tool that ran to its end, whatever its exit status.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// A tool that could not be run to its end.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("writing to {program}: {source}")]
    Stdin {
        program: String,
        source: std::io::Error,
    },
    #[error("waiting for {program}: {source}")]
    Wait {
        program: String,
        source: std::io::Error,
    },
    #[error("{program} did not answer within {timeout:?}")]
    Timeout { program: String, timeout: Duration },
}

/// Runs `cmd` with `stdin` (or none) until it exits or `timeout` passes;
/// then its whole process group is killed. The command must not start a
/// session of its own (`setsid` fails in a group leader).
pub fn run_within(
    cmd: &mut Command,
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<Finished, ToolError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|source| ToolError::Spawn {
            program: program.clone(),
            source,
        })?;
    let kill = |child: &mut std::process::Child| {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = child.wait();
    };
    let read_all = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut p) = pipe {
                let mut bytes = Vec::new();
                let _ = p.read_to_end(&mut bytes);
                text = String::from_utf8_lossy(&bytes).into_owned();
            }
            text
        })
    };
    let out = read_all(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = read_all(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    // Written on a thread too: a tool that reads its stdin only after
    // writing much must not hold this one past the deadline.
    let writer = match (stdin, child.stdin.take()) {
        (Some(data), Some(mut pipe)) => {
            let data = data.to_vec();
            Some(std::thread::spawn(move || pipe.write_all(&data)))
        }
        _ => None,
    };
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                kill(&mut child);
                return Err(ToolError::Timeout { program, timeout });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(source) => {
                kill(&mut child);
                return Err(ToolError::Wait { program, source });
            }
        }
    };
    // A tool that exits without reading its stdin is not an error here:
    // its exit status says what happened.
    if let Some(Ok(Err(source))) = writer.map(|w| w.join()) {
        if source.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(ToolError::Stdin { program, source });
        }
    }
    Ok(Finished {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// Runs a tool as `run_within` does and returns its stdout; a non-zero
/// exit is an error carrying what it said (stderr, or stdout if that is
/// empty).
pub fn run(cmd: &mut Command, stdin: Option<&[u8]>, timeout: Duration) -> Result<String, String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let f = run_within(cmd, stdin, timeout).map_err(|e| e.to_string())?;
    if f.status.success() {
        Ok(f.stdout)
    } else {
        let said = if f.stderr.trim().is_empty() {
            f.stdout.trim()
        } else {
            f.stderr.trim()
        };
        Err(format!("{program} failed ({}): {said}", f.status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }

    #[test]
    fn output_status_and_stdin() {
        let f = run_within(
            &mut sh("cat; echo err >&2; exit 3"),
            Some(b"in"),
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(f.status.code(), Some(3));
        assert_eq!(f.stdout, "in");
        assert_eq!(f.stderr, "err\n");
        assert_eq!(
            run(&mut sh("echo ok"), None, Duration::from_secs(5)),
            Ok("ok\n".into())
        );
        let e = run(
            &mut sh("echo why >&2; exit 1"),
            None,
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(e.contains("failed") && e.contains("why"), "{e}");
        // A tool that does not read its stdin still gives its status.
        let big = vec![b'x'; 1 << 20];
        let f = run_within(&mut sh("exit 0"), Some(&big), Duration::from_secs(5)).unwrap();
        assert!(f.status.success());
        assert!(matches!(
            run_within(
                &mut Command::new("/nonexistent/tool"),
                None,
                Duration::from_secs(1)
            ),
            Err(ToolError::Spawn { .. })
        ));
    }

    #[test]
    fn the_whole_group_is_killed_at_the_deadline() {
        let started = Instant::now();
        // The background sleep holds stdout open: only a group kill ends it.
        let e = run_within(
            &mut sh("sleep 30 & echo $!; wait"),
            None,
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert!(matches!(e, ToolError::Timeout { .. }), "{e}");
        assert!(e.to_string().contains("did not answer within"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
