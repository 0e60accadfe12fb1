//! Proxmox VE's HA manager as `ha-manager status` prints it. Pure: the
//! agent runs the command and reads `/etc/pve` itself.
//!
//! The format is pve-ha-manager's: `PVE::CLI::ha_manager::status` prints
//! `"$type $status"` for each entry `PVE::API2::HA::Status::status` returns:
//!
//! ```text
//! quorum OK                                  (or: quorum No quorum on node 'pve1'!)
//! master pve1 (active, Thu Nov 26 10:00:00 2020)[ - <disarm or CRS note>]
//! fencing armed (CRM watchdog active)        (since 2026; not read here)
//! lrm pve1 (active[, watchdog active], Thu Nov 26 10:00:00 2020)
//! lrm pve3 (unable to read lrm status)
//! service vm:100 (pve1, started)
//! ```
//!
//! `--verbose` appends `full cluster state:` and the manager's JSON, which
//! is not read.

use std::collections::BTreeMap;

/// What one `ha-manager status` said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HaStatus {
    /// The `quorum` line: pmxcfs's quorum as seen on the node that ran the
    /// command. `None` when the line is missing or says something else.
    pub quorate: Option<bool>,
    /// The node the manager status names as CRM master. Missing while no
    /// CRM has written a manager status (HA never used on the cluster).
    pub master: Option<String>,
    /// The master's state: `active`, `idle`, `old timestamp - dead?`
    /// (no master has written for 30 s) or `detected time drift!`.
    pub master_state: Option<String>,
    /// Each LRM's node and state: `active`, `idle`, `wait_for_agent_lock`,
    /// `lost_agent_lock`, `maintenance mode`, `old timestamp - dead?`,
    /// `unable to read lrm status`, ...
    pub lrms: BTreeMap<String, String>,
    /// Each HA resource by sid (`vm:100`, `ct:101`).
    pub services: BTreeMap<String, Service>,
}

/// One `service` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// The node the CRM holds the service on (`---` for none): for
    /// `migrate` and `relocate` still the source, the target is not printed.
    pub node: String,
    /// The state as printed: the CRM's state, or the friendlier one
    /// `PVE::HA::Tools::get_verbose_service_state` derives (`starting`,
    /// `stopping`, `disabled`, `queued`, `ignored`, ...).
    pub state: String,
}

/// Parses `ha-manager status` (or the first part of `--verbose`). Lines it
/// does not know are skipped; an input without a single `quorum`,
/// `master`, `lrm` or `service` line is an error.
pub fn parse_ha_status(text: &str) -> Result<HaStatus, String> {
    let mut status = HaStatus::default();
    let mut recognised = false;
    for line in text.lines() {
        let line = line.trim_end();
        // `--verbose` prints the manager's JSON after this line.
        if line == "full cluster state:" {
            break;
        }
        let Some((kind, rest)) = line.split_once(' ') else {
            continue;
        };
        let known = match kind {
            "quorum" => parse_quorum(rest).map(|q| status.quorate = Some(q)),
            "master" => node_and_state(rest).map(|(node, state)| {
                status.master = Some(node);
                status.master_state = Some(state);
            }),
            "lrm" => node_and_state(rest).map(|(node, state)| {
                status.lrms.insert(node, state);
            }),
            "service" => parse_service(rest).map(|(sid, service)| {
                status.services.insert(sid, service);
            }),
            _ => None,
        };
        recognised |= known.is_some();
    }
    if recognised {
        return Ok(status);
    }
    let first = text.lines().map(str::trim).find(|l| !l.is_empty());
    Err(match first {
        None => "empty `ha-manager status` output".to_owned(),
        Some(l) => format!(
            "no `ha-manager status` line (quorum, master, lrm or service ...) in the output, \
             which starts {:?}",
            l.chars().take(80).collect::<String>()
        ),
    })
}

/// `OK` or `No quorum on node 'NODE'!`, the two strings Status.pm prints.
fn parse_quorum(rest: &str) -> Option<bool> {
    if rest == "OK" {
        Some(true)
    } else if rest.starts_with("No quorum") {
        Some(false)
    } else {
        None
    }
}

/// `NODE (STATE, ...)...` of `master` and `lrm` lines. The state is the
/// first field in the parentheses: the other fields (watchdog, time) hold
/// no comma or parenthesis, and what follows the `)` (` - disarmed, ...`,
/// ` - static load CRS`) is not the state.
fn node_and_state(rest: &str) -> Option<(String, String)> {
    let (node, after) = rest.split_once(" (")?;
    let inner = &after[..after.find(')')?];
    let state = inner.split(", ").next().unwrap_or(inner).trim();
    if !is_word(node) || state.is_empty() {
        return None;
    }
    Some((node.to_owned(), state.to_owned()))
}

/// `SID (NODE, STATE)`. The state may hold spaces (`clearing error flag`).
fn parse_service(rest: &str) -> Option<(String, Service)> {
    let (sid, after) = rest.split_once(" (")?;
    let (node, state) = after.strip_suffix(')')?.split_once(", ")?;
    let state = state.trim();
    if !is_word(sid) || !sid.contains(':') || !is_word(node) || state.is_empty() {
        return None;
    }
    let service = Service {
        node: node.to_owned(),
        state: state.to_owned(),
    };
    Some((sid.to_owned(), service))
}

fn is_word(s: &str) -> bool {
    !s.is_empty() && !s.contains(char::is_whitespace)
}

/// Where the service runs as far as the HA manager says: its node when
/// the manager holds the guest there running or not yet confirmed
/// stopped, nothing when it holds it stopped, not yet started, or makes no
/// claim. A state the manager may add later counts as no claim.
pub fn active_on(service: &Service) -> Vec<String> {
    // `---`: Status.pm's stand-in for a service without a node.
    if !is_word(&service.node) || service.node == "---" {
        return Vec::new();
    }
    let on_node = match service.state.as_str() {
        // The LRM reported a successful start (Status.pm shows `starting`
        // until it has, `stopping` only while it is still running).
        "started" | "stopping" => true,
        // Stop asked for, not yet confirmed by the LRM.
        "request_stop" => true,
        // The guest stays on the printed (source) node until the LRM reports
        // the move done; then the CRM puts it on the target as `started`.
        "migrate" | "relocate" => true,
        // The node left the quorate partition and the CRM waits for it to be
        // fenced. A guest running there keeps running until the node's
        // watchdog resets it, and HA starts it nowhere else before that: the
        // window a split-brain check must see, so it is reported.
        "fence" => true,
        // Frozen in place (LRM restart on upgrade, node shutdown with the
        // freeze policy, disarmed in freeze mode): HA neither stops nor
        // moves it, so a running guest stays running there.
        "freeze" => true,
        // Fencing succeeded (the node was reset), no new node started yet:
        // nothing runs anywhere. The printed node is still the fenced one.
        "recovery" => false,
        // Asked to start, not (yet) confirmed running.
        "starting" | "request_start" | "request_start_balance" | "queued" => false,
        // The LRM confirmed it stopped.
        "stopped" | "disabled" => false,
        // HA gave up after failed starts (or, rarer, a failed stop) and
        // counts it as inactive (PVE::HA::Tools::count_active_services).
        "error" | "clearing error flag" => false,
        // Not managed, or not in the manager's state at all: no claim.
        "ignored" | "ignore" | "deleting" | "not found" => false,
        _ => false,
    };
    if on_node {
        vec![service.node.clone()]
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> HaStatus {
        parse_ha_status(text).unwrap()
    }

    fn service(node: &str, state: &str) -> Service {
        Service {
            node: node.into(),
            state: state.into(),
        }
    }

    #[test]
    fn docs_service_states() {
        let s = parse(include_str!("../tests/data/pve-ha/docs-service-states.txt"));
        assert_eq!(s.quorate, Some(true));
        assert_eq!(s.master.as_deref(), Some("elsa"));
        assert_eq!(s.master_state.as_deref(), Some("active"));
        assert_eq!(s.lrms, BTreeMap::from([("elsa".into(), "active".into())]));
        assert_eq!(
            s.services,
            BTreeMap::from([
                ("ct:100".into(), service("elsa", "stopped")),
                ("ct:102".into(), service("elsa", "started")),
                ("vm:501".into(), service("elsa", "started")),
            ])
        );
        assert_eq!(active_on(&s.services["ct:100"]), Vec::<String>::new());
        assert_eq!(active_on(&s.services["vm:501"]), vec!["elsa"]);
    }

    #[test]
    fn dead_lrm_with_watchdog_fields() {
        let s = parse(include_str!("../tests/data/pve-ha/galaxy-lrm-dead.txt"));
        assert_eq!(s.quorate, Some(true));
        assert_eq!(s.master.as_deref(), Some("purple-server"));
        assert_eq!(s.lrms.len(), 4);
        assert_eq!(s.lrms["grey-server"], "old timestamp - dead?");
        assert_eq!(s.lrms["blue-server"], "active");
        assert_eq!(s.lrms["red-server"], "idle");
        assert_eq!(s.services.len(), 2);
        assert_eq!(s.services["ct:107"], service("blue-server", "started"));
        assert_eq!(active_on(&s.services["ct:108"]), vec!["blue-server"]);
    }

    #[test]
    fn error_services_are_not_active() {
        // The same capture's `pct list` shows both containers stopped.
        let s = parse(include_str!("../tests/data/pve-ha/galaxy-error.txt"));
        assert_eq!(s.master.as_deref(), Some("red-server"));
        assert_eq!(s.services["ct:107"], service("blue-server", "error"));
        assert_eq!(s.services["ct:108"], service("blue-server", "error"));
        assert!(s.services.values().all(|sv| active_on(sv).is_empty()));
    }

    #[test]
    fn master_with_crs_note() {
        let s = parse(include_str!("../tests/data/pve-ha/cartesi-dynamic-crs.txt"));
        assert_eq!(s.master.as_deref(), Some("proxmox"));
        assert_eq!(s.master_state.as_deref(), Some("active"));
        assert_eq!(s.lrms["pve2"], "active");
        assert_eq!(s.lrms["pve3"], "idle");
        assert_eq!(s.services["vm:200"], service("pve2", "stopped"));
        assert!(active_on(&s.services["vm:200"]).is_empty());
    }

    #[test]
    fn migrating_and_waiting_for_lock() {
        let s = parse(include_str!("../tests/data/pve-ha/pve91-migrate-error.txt"));
        assert_eq!(s.quorate, Some(true));
        assert_eq!(s.master.as_deref(), Some("pve"));
        assert_eq!(s.lrms["pve-ksy"], "wait_for_agent_lock");
        assert_eq!(s.services["vm:100"], service("pve", "migrate"));
        assert_eq!(active_on(&s.services["vm:100"]), vec!["pve"]);
        assert!(active_on(&s.services["vm:101"]).is_empty());
    }

    // The lines below follow Status.pm's format strings; no public capture
    // of them was found.
    #[test]
    fn no_quorum_no_master_unreadable_lrm() {
        let s = parse(
            "quorum No quorum on node 'pve1'!\n\
             lrm pve1 (active, Thu Nov 26 10:00:00 2020)\n\
             lrm pve3 (unable to read lrm status)\n\
             service vm:100 (pve3, fence)\n\
             service vm:101 (---, not found)\n\
             service ct:102 (pve1, clearing error flag)\n",
        );
        assert_eq!(s.quorate, Some(false));
        assert_eq!(s.master, None);
        assert_eq!(s.lrms["pve3"], "unable to read lrm status");
        assert_eq!(active_on(&s.services["vm:100"]), vec!["pve3"]);
        assert!(active_on(&s.services["vm:101"]).is_empty());
        assert_eq!(s.services["ct:102"].state, "clearing error flag");
    }

    #[test]
    fn verbose_json_and_noise_are_not_read() {
        let s = parse(
            "unable to read file '/etc/pve/nodes/node19/lrm_status'\n\
             quorum OK\r\n\
             master pve1 (active, Thu Nov 26 10:00:00 2020) - disarmed, resource mode: freeze\n\
             service vm:100\n\
             full cluster state:\n\
             service vm:999 (pve9, started)\n\
             {\n   \"master_node\" : \"pve1\"\n}\n",
        );
        assert_eq!(s.quorate, Some(true));
        assert_eq!(s.master.as_deref(), Some("pve1"));
        assert!(s.services.is_empty());
    }

    #[test]
    fn nothing_recognised_is_an_error() {
        assert!(parse_ha_status("").unwrap_err().contains("empty"));
        let err = parse_ha_status("ipcc_send_rec[1] failed: Connection refused\n").unwrap_err();
        assert!(err.contains("quorum, master, lrm or service"), "{err}");
        assert!(err.contains("ipcc_send_rec"), "{err}");
    }

    #[test]
    fn state_mapping() {
        let on_node = [
            "started",
            "stopping",
            "request_stop",
            "migrate",
            "relocate",
            "fence",
            "freeze",
        ];
        let nowhere = [
            "recovery",
            "starting",
            "request_start",
            "request_start_balance",
            "queued",
            "stopped",
            "disabled",
            "error",
            "clearing error flag",
            "ignored",
            "ignore",
            "deleting",
            "not found",
            "some_future_state",
        ];
        for state in on_node {
            assert_eq!(active_on(&service("pve2", state)), vec!["pve2"], "{state}");
        }
        for state in nowhere {
            assert!(active_on(&service("pve2", state)).is_empty(), "{state}");
        }
        assert!(active_on(&service("---", "started")).is_empty());
    }
}
