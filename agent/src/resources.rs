//! Resource watching: where this node's view says each watched resource
//! is active, read every interval and sent as an event when it changes,
//! stamped with the agent's monotonic time of the read (for Pacemaker, this
//! node's own starts and stops with the time of Pacemaker's alert for
//! them: `pacemaker_alert`, merged by `resource_view`). Three sources:
//! Pacemaker (`crm_mon` XML), Proxmox VE's HA manager (`ha-manager
//! status`, plus whether `/etc/pve` takes writes) and an operator's probe
//! command. A node whose source does not answer (stopped with corosync,
//! powered off, a probe past its timeout) reports that it cannot say.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use corodrill_protocol::{EventBody, ResourceSource, ResourceTimeSource, ResourceWatch};

use crate::wire::Out;

/// One thread per source: Pacemaker's and the HA manager's views are read
/// once for all their resources (at the shortest interval asked), each
/// probe on its own.
pub fn watch_all(out: &Arc<Out>, node: &str, watches: Vec<ResourceWatch>) {
    let group = |source: &ResourceSource| {
        let list: Vec<&ResourceWatch> = watches.iter().filter(|w| &w.source == source).collect();
        let interval = list.iter().map(|w| w.interval_ms).min();
        let names: Vec<String> = list.iter().map(|w| w.resource.clone()).collect();
        interval.map(|ms| (names, Duration::from_millis(ms.max(100))))
    };
    if let Some((names, interval)) = group(&ResourceSource::Pacemaker) {
        let (out, node) = (out.clone(), node.to_owned());
        std::thread::spawn(move || watch_pacemaker(&out, &node, names, interval));
    }
    if let Some((names, interval)) = group(&ResourceSource::PveHa) {
        let out = out.clone();
        std::thread::spawn(move || watch_pve_ha(&out, names, interval));
    }
    for w in watches {
        if let ResourceSource::Probe {
            command,
            timeout_ms,
        } = w.source
        {
            let (out, node) = (out.clone(), node.to_owned());
            let timeout = Duration::from_millis(timeout_ms.max(100));
            let interval = Duration::from_millis(w.interval_ms.max(100));
            std::thread::spawn(move || {
                watch(&out, vec![w.resource.clone()], interval, || {
                    probe(&command, timeout, &node)
                        .map(|v| BTreeMap::from([(w.resource.clone(), v)]))
                })
            });
        }
    }
}

/// Reads a view every interval, forever, and sends each resource's
/// placement when it changes. A view that cannot be read is "cannot say".
fn watch(
    out: &Out,
    resources: Vec<String>,
    interval: Duration,
    mut read: impl FnMut() -> Result<BTreeMap<String, Vec<String>>, String>,
) {
    let mut last: BTreeMap<String, Option<Vec<String>>> = BTreeMap::new();
    loop {
        let read_at = (crate::wire::mono_ns(), crate::wire::utc_us());
        let view = read();
        for r in &resources {
            let active_on = view
                .as_ref()
                .ok()
                .map(|v| v.get(r).cloned().unwrap_or_default());
            if last.get(r) != Some(&active_on) {
                last.insert(r.clone(), active_on.clone());
                out.event_at(
                    read_at.0,
                    read_at.1,
                    EventBody::Resource {
                        resource: r.clone(),
                        active_on,
                        source: Some(ResourceTimeSource::Poll),
                    },
                );
            }
        }
        std::thread::sleep(interval);
    }
}

/// Pacemaker's view: `crm_mon` read every interval on a thread of its
/// own, this node's alerts followed every [`ALERT_READ`], both merged by
/// `resource_view::Merge` (which holds them `HOLD_NS` to put them in
/// order). Without the alert file (no Pacemaker user, /run not writable)
/// the poll alone speaks, as it does for resources no alert names.
fn watch_pacemaker(out: &Out, here: &str, resources: Vec<String>, interval: Duration) {
    use crate::pacemaker_alert as alert;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || loop {
        let view = crm_mon()
            .and_then(|xml| parse_crm_mon(&xml))
            .map_err(|_| ());
        // Stamped when crm_mon answered: what it shows had happened by then.
        if tx
            .send((crate::wire::mono_ns(), crate::wire::utc_us(), view))
            .is_err()
        {
            return;
        }
        std::thread::sleep(interval);
    });
    let file = std::path::Path::new(alert::ALERT_FILE);
    let mut tail = match alert::prepare(file) {
        Ok(()) => Some(alert::Tail::open(file.to_owned())),
        Err(e) => {
            eprintln!(
                "corodrill-agent: no Pacemaker alerts, resource times from crm_mon only: {e}"
            );
            None
        }
    };
    let mut steps = crate::corosync_log::Steps::default();
    let mut merge = crate::resource_view::Merge::new(here, &resources);
    loop {
        match rx.recv_timeout(ALERT_READ) {
            Ok((mono, utc, view)) => merge.poll(mono, utc, view),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
        }
        let (now, utc) = (crate::wire::mono_ns(), crate::wire::utc_us());
        // Pacemaker writes with the node's realtime (no libfaketime in
        // the lab): a step of it makes its timestamps unmappable.
        steps.sample(now, utc, Some(0));
        for a in tail.as_mut().map(alert::Tail::read).unwrap_or_default() {
            let Some(active) = alert::active_after(&a) else {
                continue;
            };
            let timed = alert::time_alert(now, utc, steps.steady_since(now), a.utc_us);
            merge.alert(
                &a.node,
                alert::resource_name(&a.rsc),
                active,
                timed,
                (now, utc),
            );
        }
        for c in merge.flush(now) {
            out.event_at(
                c.mono_ns,
                c.utc_us,
                EventBody::Resource {
                    resource: c.resource,
                    active_on: c.active_on,
                    source: Some(c.source),
                },
            );
        }
        for d in merge.disagreements.drain(..) {
            eprintln!("corodrill-agent: {d}");
        }
    }
}

/// How often the Pacemaker watch reads its alert file and sends what is
/// due: well within `resource_view::HOLD_NS`.
const ALERT_READ: Duration = Duration::from_millis(50);

/// The HA manager's view, and whether `/etc/pve` takes writes here.
fn watch_pve_ha(out: &Out, resources: Vec<String>, interval: Duration) {
    let probe = std::path::Path::new(crate::pve_ha::ETC_PVE_PROBE);
    let mut writable: Option<bool> = None;
    watch(out, resources, interval, || {
        let now = crate::pve_ha::etc_pve_writable(probe);
        if let Some(w) = now.filter(|_| now != writable) {
            out.event(EventBody::EtcPve { writable: w });
        }
        writable = now;
        let text = crate::node::run_output(crate::node::command("ha-manager").arg("status"))?;
        let status = corodrill_status::ha_manager::parse_ha_status(&text)?;
        Ok(status
            .services
            .iter()
            .map(|(sid, s)| (sid.clone(), corodrill_status::ha_manager::active_on(s)))
            .collect())
    });
}

/// Runs a probe once: exit 0 means the resource answers, on the nodes it
/// prints (or here, if it prints nothing); another exit status means it
/// does not answer; past the timeout the probe is killed (its whole
/// process group) and the node cannot say.
fn probe(command: &str, timeout: Duration, here: &str) -> Result<Vec<String>, String> {
    let mut child = {
        let mut running = PROBES.lock().unwrap_or_else(|p| p.into_inner());
        let Some(running) = running.as_mut() else {
            return Err("the agent is stopping".into());
        };
        let child = crate::node::command("sh")
            .args(["-c", command])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("probe {command:?}: {e}"))?;
        running.insert(child.id() as i32);
        child
    };
    let result = probe_result(&mut child, command, timeout, here);
    if let Some(running) = PROBES.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
        running.remove(&(child.id() as i32));
    }
    result
}

/// The process groups of the probes running now (None once the agent
/// stops): a hung probe must not outlive the agent.
static PROBES: Mutex<Option<BTreeSet<i32>>> = Mutex::new(Some(BTreeSet::new()));

/// Kills every running probe with its children, and starts no more. Called
/// on every way out of the agent.
pub fn stop_probes() {
    let running = PROBES.lock().unwrap_or_else(|p| p.into_inner()).take();
    for pgid in running.into_iter().flatten() {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pgid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

fn probe_result(
    child: &mut std::process::Child,
    command: &str,
    timeout: Duration,
    here: &str,
) -> Result<Vec<String>, String> {
    // Read on a thread so a chatty probe cannot fill the pipe and stall.
    let mut stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.take(64 * 1024).read_to_string(&mut text);
        }
        text
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) | Err(_) => {
                let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
                let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
                let _ = child.wait();
                return Err(format!("probe {command:?}: no answer within {timeout:?}"));
            }
        }
    };
    let text = reader.join().unwrap_or_default();
    if !status.success() {
        return Ok(Vec::new());
    }
    let mut nodes: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
    if nodes.is_empty() {
        nodes.push(here.to_owned());
    }
    nodes.sort();
    nodes.dedup();
    Ok(nodes)
}

fn crm_mon() -> Result<String, String> {
    let out = crate::node::command("crm_mon")
        .args(["--one-shot", "--inactive", "--output-as=xml"])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("crm_mon: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "crm_mon: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Every resource name (the one rule of `corodrill_status::crm_mon`) and
/// the nodes it is active on, in this node's view.
fn parse_crm_mon(xml: &str) -> Result<BTreeMap<String, Vec<String>>, String> {
    corodrill_status::crm_mon::parse(xml)
        .map(|view| view.active_on())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_says_where_from_its_exit_status_and_words() {
        let t = Duration::from_secs(5);
        assert_eq!(probe("true", t, "pve2"), Ok(vec!["pve2".to_owned()]));
        assert_eq!(
            probe("echo pve3 pve1; echo pve3", t, "pve2"),
            Ok(vec!["pve1".to_owned(), "pve3".to_owned()])
        );
        assert_eq!(probe("echo pve1; exit 2", t, "pve2"), Ok(vec![]));
        // Past its timeout: killed with its children, and no view.
        let started = Instant::now();
        let slow = probe("sleep 30 & wait", Duration::from_millis(200), "pve2");
        assert!(slow.is_err_and(|e| e.contains("no answer within")));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
