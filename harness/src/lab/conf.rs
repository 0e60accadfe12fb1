//! corosync.conf for a lab node. Pure: the same spec always gives the same text.

use std::fmt::Write;
use std::path::Path;

use super::spec::{node_address, qnetd_address, LabSpec, Profile};

/// Where a node's corosync keeps its files (all inside the lab's directory:
/// nothing under /etc or /var/lib/corosync is touched).
pub struct NodePaths<'a> {
    pub authkey: &'a Path,
    pub logfile: &'a Path,
    pub state_dir: &'a Path,
}

/// `realtime`: corosync's own default scheduling (SCHED_RR), for a node
/// with CPUs of its own; false for nodes that share the host's cores.
pub fn corosync_conf(spec: &LabSpec, paths: &NodePaths, realtime: bool) -> String {
    let mut c = String::new();
    // `writeln!` into a String cannot fail; the results are ignored on purpose.
    let _ = writeln!(c, "# written by corodrill lab up for lab {:?}", spec.name);
    c.push_str("totem {\n");
    let _ = writeln!(c, "  version: 2");
    let _ = writeln!(c, "  cluster_name: {}", spec.name);
    let _ = writeln!(c, "  config_version: 1");
    let _ = writeln!(c, "  transport: knet");
    match spec.profile {
        // What `pvecm create` writes on Proxmox VE 8.
        Profile::Proxmox => {
            let _ = writeln!(c, "  ip_version: ipv4-6");
            let _ = writeln!(c, "  link_mode: passive");
            let _ = writeln!(c, "  secauth: on");
            let _ = writeln!(c, "  token_coefficient: 125");
        }
        Profile::Fast => {
            let _ = writeln!(c, "  crypto_cipher: aes256");
            let _ = writeln!(c, "  crypto_hash: sha256");
        }
    }
    if let Some(token) = spec.token_ms {
        let _ = writeln!(c, "  token: {token}");
    }
    let _ = writeln!(c, "  keyfile: {}", paths.authkey.display());
    for link in 0..spec.links {
        let _ = writeln!(c, "  interface {{\n    linknumber: {link}\n  }}");
    }
    c.push_str("}\n\nnodelist {\n");
    for (i, name) in spec.node_names().enumerate() {
        let id = i as u8 + 1;
        c.push_str("  node {\n");
        let _ = writeln!(c, "    name: {name}");
        let _ = writeln!(c, "    nodeid: {id}");
        let _ = writeln!(c, "    quorum_votes: 1");
        for link in 0..spec.links {
            let _ = writeln!(c, "    ring{link}_addr: {}", node_address(id, link));
        }
        c.push_str("  }\n");
    }
    c.push_str("}\n\nquorum {\n  provider: corosync_votequorum\n");
    for (key, value) in &spec.quorum_options {
        let _ = writeln!(c, "  {key}: {value}");
    }
    if spec.qdevice {
        c.push_str("  device {\n    votes: 1\n    model: net\n    net {\n");
        let _ = writeln!(c, "      host: {}", qnetd_address());
        c.push_str("      algorithm: ffsplit\n      tls: off\n    }\n  }\n");
    }
    c.push_str("}\n\nlogging {\n  to_syslog: no\n  to_stderr: no\n  to_logfile: yes\n");
    let _ = writeln!(c, "  logfile: {}", paths.logfile.display());
    // Millisecond times: the ground truth corodrill's quorum times are checked against.
    c.push_str("  timestamp: hires\n}\n\nsystem {\n");
    let _ = writeln!(c, "  state_dir: {}", paths.state_dir.display());
    if !realtime {
        // The namespace lab's nodes share this machine's cores: one
        // corosync busy at realtime priority (a rejoin can keep its main
        // thread busy for seconds) would starve every other node, the
        // agents and the controller (seen: ~950 ms of every second, the
        // kernel's realtime limit). A node of its own keeps corosync's
        // default, as on a real cluster.
        c.push_str("  sched_rr: no\n");
    }
    c.push_str("}\n");
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(spec: &LabSpec) -> String {
        corosync_conf(
            spec,
            &NodePaths {
                authkey: Path::new("/l/authkey"),
                logfile: Path::new("/l/pve1/corosync.log"),
                state_dir: Path::new("/l/pve1/state"),
            },
            false,
        )
    }

    /// Brace balance and one key per line: the two things corosync's parser
    /// rejects (it failed on `totem { version: 2` during the prototype).
    fn assert_parsable(conf: &str) {
        let mut depth = 0i32;
        for line in conf.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.ends_with('{') {
                assert_eq!(line.matches('{').count(), 1, "{line}");
                depth += 1;
            } else if line == "}" {
                depth -= 1;
            } else {
                assert!(line.contains(": "), "not a key: {line}");
            }
            assert!(depth >= 0);
        }
        assert_eq!(depth, 0);
    }

    #[test]
    fn fast_profile_two_links_qdevice() {
        let spec = LabSpec::new(
            "lab",
            2,
            2,
            true,
            None,
            Profile::Fast,
            &["two_node=1".into()],
        )
        .unwrap();
        let conf = render(&spec);
        assert_parsable(&conf);
        assert!(conf.contains("  token: 1000\n"));
        assert!(conf.contains("ring1_addr: 198.18.1.2"));
        assert!(conf.contains("linknumber: 1"));
        assert!(conf.contains("two_node: 1"));
        assert!(conf.contains("host: 198.18.0.254"));
        assert!(conf.contains("tls: off"));
        assert!(conf.contains("timestamp: hires"));
        // Nodes sharing the host's cores: no realtime corosync.
        assert!(conf.contains("  sched_rr: no\n"));
        let own_cpus = corosync_conf(
            &spec,
            &NodePaths {
                authkey: Path::new("/etc/corosync/authkey"),
                logfile: Path::new("/var/log/corosync/corosync.log"),
                state_dir: Path::new("/var/lib/corosync"),
            },
            true,
        );
        assert_parsable(&own_cpus);
        assert!(!own_cpus.contains("sched_rr"));
    }

    #[test]
    fn proxmox_profile_leaves_token_default() {
        let spec = LabSpec::new("lab", 3, 1, false, None, Profile::Proxmox, &[]).unwrap();
        let conf = render(&spec);
        assert_parsable(&conf);
        assert!(!conf.contains("token:"));
        assert!(conf.contains("token_coefficient: 125"));
        assert!(conf.contains("link_mode: passive"));
        assert!(conf.contains("secauth: on"));
        assert!(!conf.contains("device"));
    }
}
