//! Pacemaker's own record of each resource operation on this node: its
//! alerts. Pacemaker (2.1, as verified in the lab) runs every configured
//! alert agent for each resource operation result on the node where the
//! operation ran, as the user hacluster, with no arguments and the event in
//! `CRM_alert_*` variables; `CRM_alert_timestamp_epoch` and
//! `CRM_alert_timestamp_usec` are the moment it was recorded, to the
//! millisecond of the "Result of start operation" line in the node's
//! pacemaker.log.
//!
//! The alert agent is this binary: called with `CRM_alert_kind` set and no
//! arguments, it appends one JSON line to [`ALERT_FILE`] (the alert's
//! recipient) and exits. The file is under `/run`, which is the node's own
//! in the lab (each lab node has a private tmpfs there) and on a real node,
//! so that one path in the cluster-wide CIB names every node's own file.
//! The resource watch prepares it (owned by hacluster, who writes it) and
//! follows it.
//!
//! Pacemaker runs without libfaketime in the lab and shares the node's
//! realtime on a real node, so an alert's time is on the agent's own
//! realtime: mapped onto the monotonic clock through the pair read when the
//! line was read, unless that clock stepped around it (then the arrival
//! time is kept, and the event says so).
//!
//! Everything but [`alert_main`], [`prepare`] and [`Tail::read`] is pure.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::corosync_log::MAX_LEAD_US;
use crate::follow::Follow;

/// Where the alert agent writes and the resource watch reads, on each node.
pub const ALERT_FILE: &str = "/run/corodrill-agent/pacemaker-alerts";

/// The alert agent starts the file again past this size (the watch follows
/// a truncation): a node's alerts are a few lines per operation.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// One alert as the alert agent writes it (one JSON line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub kind: String,
    pub node: String,
    pub rsc: String,
    pub task: String,
    pub interval_ms: u64,
    /// The resource agent's exit code (`CRM_alert_rc`).
    pub rc: i32,
    pub target_rc: i32,
    /// Pacemaker's execution status (`CRM_alert_status`): 0 done, 1
    /// cancelled, 2 timed out, ...
    pub status: i32,
    /// UTC µs (`CRM_alert_timestamp_epoch` and `_usec`).
    pub utc_us: i64,
}

/// Whether this process is Pacemaker calling its alert agent.
pub fn is_alert_call() -> bool {
    std::env::var_os("CRM_alert_kind").is_some() && std::env::args_os().len() == 1
}

/// The alert agent: one line for a resource alert, nothing for the others.
/// Writes only to [`ALERT_FILE`], and only when that file exists (the watch
/// made it): with no watch there is nobody to tell.
pub fn alert_main() -> u8 {
    let vars: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("CRM_alert_"))
        .collect();
    let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if get("CRM_alert_recipient").is_some_and(|r| r != ALERT_FILE) {
        eprintln!("corodrill-agent: as an alert agent, the only recipient is {ALERT_FILE}");
        return 1;
    }
    let Some(alert) = from_env(get) else {
        return 0;
    };
    match append(Path::new(ALERT_FILE), &alert) {
        Ok(()) => 0,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => {
            eprintln!("corodrill-agent: writing the alert to {ALERT_FILE}: {e}");
            1
        }
    }
}

fn append(path: &Path, alert: &Alert) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().append(true).open(path)?;
    if f.metadata()?.len() > MAX_FILE_BYTES {
        f.set_len(0)?;
    }
    let mut line = serde_json::to_vec(alert).map_err(std::io::Error::other)?;
    line.push(b'\n');
    // One write: appends of a whole line do not interleave.
    f.write_all(&line)
}

/// A resource alert from Pacemaker's variables; None for the other kinds
/// (node, fencing, attribute) and for a resource alert missing its fields.
pub fn from_env<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Option<Alert> {
    if get("CRM_alert_kind")? != "resource" {
        return None;
    }
    let num = |k: &str| get(k).and_then(|v| v.trim().parse::<i64>().ok());
    let usec = num("CRM_alert_timestamp_usec")?;
    if !(0..1_000_000).contains(&usec) {
        return None;
    }
    Some(Alert {
        kind: "resource".into(),
        node: get("CRM_alert_node")?.to_owned(),
        rsc: get("CRM_alert_rsc")?.to_owned(),
        task: get("CRM_alert_task")?.to_owned(),
        interval_ms: num("CRM_alert_interval").unwrap_or(0).max(0) as u64,
        rc: num("CRM_alert_rc")? as i32,
        target_rc: num("CRM_alert_target_rc").unwrap_or(0) as i32,
        status: num("CRM_alert_status")? as i32,
        utc_us: num("CRM_alert_timestamp_epoch")?.checked_mul(1_000_000)? + usec,
    })
}

/// OCF's "not running".
const OCF_NOT_RUNNING: i32 = 7;
/// Pacemaker's execution status "done" and "timed out".
const EXEC_DONE: i32 = 0;
const EXEC_TIMEOUT: i32 = 2;

/// The resource an alert is about, by the one naming rule of
/// `corodrill_status::crm_mon`: a clone instance (`web:1`) by its clone's
/// primitive (`web`).
pub fn resource_name(rsc: &str) -> &str {
    match rsc.rsplit_once(':') {
        Some((name, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => rsc,
    }
}

/// Whether the resource is active on the alert's node after this
/// operation, as `crm_mon` will show it; None when the operation says
/// nothing about that (cancelled, a notify, a successful migrate_to).
/// "Not running" is not active, whatever the operation; a successful stop
/// is not active; any other completed start, stop, monitor, promote, demote
/// or migrate is active, failed ones included: Pacemaker takes a failed
/// resource as possibly running (crm_mon shows it FAILED, active) until a
/// stop succeeds. A timed-out start or stop may have left it running too.
pub fn active_after(a: &Alert) -> Option<bool> {
    if a.kind != "resource" {
        return None;
    }
    let task = a.task.as_str();
    let known = matches!(
        task,
        "start" | "stop" | "monitor" | "promote" | "demote" | "migrate_to" | "migrate_from"
    );
    match a.status {
        EXEC_DONE if !known => None,
        EXEC_DONE if a.rc == OCF_NOT_RUNNING => Some(false),
        EXEC_DONE if a.rc == 0 && task == "stop" => Some(false),
        EXEC_DONE if a.rc == 0 && task == "migrate_to" => None,
        EXEC_DONE => Some(true),
        EXEC_TIMEOUT if matches!(task, "start" | "stop") => Some(true),
        _ => None,
    }
}

/// Maps an alert's UTC time onto the agent's monotonic clock through the
/// pair read when its line was read (`seen_*`); None when the clock
/// stepped around it, it is from the future, or it is over
/// [`MAX_LEAD_US`] old (then its arrival times it).
pub fn time_alert(
    seen_mono_ns: u64,
    seen_utc_us: i64,
    steady: bool,
    alert_utc_us: i64,
) -> Option<(u64, i64)> {
    let lead = seen_utc_us.checked_sub(alert_utc_us)?;
    if !steady || !(0..=MAX_LEAD_US).contains(&lead) {
        return None;
    }
    let mono = seen_mono_ns.checked_sub(lead as u64 * 1000)?;
    Some((mono, alert_utc_us))
}

/// Makes the recipient the alert agent writes to: the directory, and the
/// file owned by hacluster (Pacemaker runs alert agents as that user).
/// Idempotent.
pub fn prepare(file: &Path) -> Result<(), String> {
    let dir = file.parent().ok_or("no directory")?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !file.exists() {
        std::fs::write(file, b"").map_err(|e| format!("{}: {e}", file.display()))?;
    }
    let user = nix::unistd::User::from_name("hacluster")
        .map_err(|e| format!("looking up hacluster: {e}"))?
        .ok_or("no user hacluster (Pacemaker is not installed)")?;
    nix::unistd::chown(file, Some(user.uid), Some(user.gid))
        .map_err(|e| format!("giving {} to hacluster: {e}", file.display()))?;
    std::fs::set_permissions(file, std::os::unix::fs::PermissionsExt::from_mode(0o640))
        .map_err(|e| format!("{}: {e}", file.display()))
}

/// The alert file followed from where it ended when the watch began.
pub struct Tail(Follow);

impl Tail {
    pub fn open(path: PathBuf) -> Tail {
        Tail(Follow::from_end(path))
    }

    /// The alerts written since the last call (whole lines only; a line
    /// that does not parse is skipped).
    pub fn read(&mut self) -> Vec<Alert> {
        let mut alerts = Vec::new();
        self.0.new_lines(|line| {
            if let Ok(a) = serde_json::from_str(line.trim_end()) {
                alerts.push(a);
            }
        });
        alerts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The variables of a start on pve1, as Pacemaker 2.1.5 set them in
    /// the lab.
    const START: &[(&str, &str)] = &[
        ("CRM_alert_desc", "ok"),
        ("CRM_alert_exec_time", "17"),
        ("CRM_alert_interval", "0"),
        ("CRM_alert_kind", "resource"),
        ("CRM_alert_node", "pve1"),
        ("CRM_alert_node_sequence", "1"),
        ("CRM_alert_rc", "0"),
        ("CRM_alert_recipient", ALERT_FILE),
        ("CRM_alert_rsc", "svc"),
        ("CRM_alert_status", "0"),
        ("CRM_alert_target_rc", "0"),
        ("CRM_alert_task", "start"),
        ("CRM_alert_timestamp", "12:56:06.449790"),
        ("CRM_alert_timestamp_epoch", "1796216166"),
        ("CRM_alert_timestamp_usec", "449790"),
        ("CRM_alert_version", "2.1.5"),
    ];

    fn with(over: &[(&'static str, &'static str)]) -> Option<Alert> {
        let get = |k: &str| {
            over.iter()
                .chain(START)
                .find(|(n, _)| *n == k)
                .map(|(_, v)| *v)
        };
        from_env(get)
    }

    #[test]
    fn a_resource_alert_is_read_from_pacemakers_variables() {
        let a = with(&[]).unwrap();
        assert_eq!(
            a,
            Alert {
                kind: "resource".into(),
                node: "pve1".into(),
                rsc: "svc".into(),
                task: "start".into(),
                interval_ms: 0,
                rc: 0,
                target_rc: 0,
                status: 0,
                utc_us: 1_796_216_166_449_790,
            }
        );
        let line = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<Alert>(&line).unwrap(), a);
        assert_eq!(with(&[("CRM_alert_kind", "node")]), None);
        assert_eq!(with(&[("CRM_alert_timestamp_usec", "1000000")]), None);
        assert_eq!(with(&[("CRM_alert_rc", "x")]), None);
    }

    #[test]
    fn what_each_operation_says_about_where_it_runs() {
        let op = |task: &'static str, rc: &'static str, status: &'static str| {
            active_after(
                &with(&[
                    ("CRM_alert_task", task),
                    ("CRM_alert_rc", rc),
                    ("CRM_alert_status", status),
                ])
                .unwrap(),
            )
        };
        assert_eq!(op("start", "0", "0"), Some(true));
        assert_eq!(op("stop", "0", "0"), Some(false));
        assert_eq!(op("monitor", "0", "0"), Some(true));
        assert_eq!(op("monitor", "8", "0"), Some(true), "running promoted");
        assert_eq!(op("monitor", "7", "0"), Some(false), "failed: not running");
        assert_eq!(op("monitor", "1", "0"), Some(true), "failed: may run");
        assert_eq!(op("start", "1", "0"), Some(true), "failed start: may run");
        assert_eq!(op("stop", "1", "0"), Some(true), "failed stop: still runs");
        assert_eq!(op("start", "0", "2"), Some(true), "timed out: may run");
        assert_eq!(op("monitor", "0", "1"), None, "cancelled");
        assert_eq!(op("notify", "0", "0"), None);
        assert_eq!(op("migrate_to", "0", "0"), None);
        assert_eq!(op("migrate_from", "0", "0"), Some(true));
    }

    #[test]
    fn a_clone_instance_is_named_by_its_primitive() {
        assert_eq!(resource_name("svc"), "svc");
        assert_eq!(resource_name("web:2"), "web");
        assert_eq!(resource_name("a:b"), "a:b");
        assert_eq!(resource_name("x:"), "x:");
    }

    #[test]
    fn an_alert_is_timed_by_its_timestamp_when_the_clock_held() {
        let seen = (50_000_000_000, 1_796_216_166_469_790);
        // Read 20 ms after Pacemaker recorded it.
        assert_eq!(
            time_alert(seen.0, seen.1, true, 1_796_216_166_449_790),
            Some((49_980_000_000, 1_796_216_166_449_790))
        );
        assert_eq!(
            time_alert(seen.0, seen.1, false, 1_796_216_166_449_790),
            None
        );
        // From the future, or older than a second: its arrival times it.
        assert_eq!(time_alert(seen.0, seen.1, true, seen.1 + 1), None);
        assert_eq!(time_alert(seen.0, seen.1, true, seen.1 - 1_000_001), None);
        assert_eq!(time_alert(10, seen.1, true, seen.1 - 1_000), None);
    }

    #[test]
    fn the_alert_file_is_followed_from_its_end_and_across_a_restart() {
        let dir = std::env::temp_dir().join(format!("corodrill-alerts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pacemaker-alerts");
        let a = with(&[]).unwrap();
        std::fs::write(&file, b"").unwrap();
        append(&file, &a).unwrap();
        let mut tail = Tail::open(file.clone());
        assert!(tail.read().is_empty(), "written before the watch began");
        append(&file, &a).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap()
            .write_all(b"not json\n{\"partial")
            .unwrap();
        assert_eq!(tail.read(), vec![a.clone()]);
        std::fs::write(&file, b"").unwrap();
        append(&file, &a).unwrap();
        assert_eq!(tail.read(), vec![a], "started again from its beginning");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
