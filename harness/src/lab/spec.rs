//! What a lab is, before anything is built: validated flags, node names,
//! namespace names and addresses. Pure: nothing here touches the system.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::LabError;

/// knet's limits: 32 nodes would already be a large lab; 8 links per node.
pub const MAX_NODES: u8 = 32;
pub const MAX_LINKS: u8 = 8;
/// Namespace names are built as `<lab>-<node>` ("pve32", "qnetd" are 5
/// characters), and the kernel's own limit for names is 15: keep to it.
pub const MAX_LAB_NAME: usize = 9;
pub const QNETD: &str = "qnetd";
/// Resource names stay short enough to read in `lab status`.
pub const MAX_RESOURCE_NAME: usize = 40;

/// Which corosync.conf the lab writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// token 1000 ms unless `--token` says otherwise: fast drills.
    Fast,
    /// What `pvecm create` writes: corosync's default token (3000 ms) and
    /// `token_coefficient: 125`, so the lab shows Proxmox VE's real timings.
    Proxmox,
}

/// votequorum keys an operator may set with `--quorum-option`.
const QUORUM_KEYS: &[&str] = &[
    "two_node",
    "wait_for_all",
    "last_man_standing",
    "last_man_standing_window",
    "auto_tie_breaker",
    "auto_tie_breaker_node",
    "allow_downscale",
    "expected_votes",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabSpec {
    pub name: String,
    pub nodes: u8,
    pub links: u8,
    pub qdevice: bool,
    /// Explicit totem token in milliseconds; `None` leaves corosync's default.
    pub token_ms: Option<u32>,
    pub profile: Profile,
    pub quorum_options: BTreeMap<String, String>,
    /// Every node runs sshd and the inventory reaches agents over ssh, as
    /// on a real cluster.
    #[serde(default)]
    pub ssh: bool,
    /// Every node runs Pacemaker beside corosync (`lab up --pacemaker`).
    #[serde(default)]
    pub pacemaker: bool,
    /// The `ocf:pacemaker:Dummy` resources `lab up` creates (`--resource`).
    #[serde(default)]
    pub resources: Vec<String>,
    /// Every node is a QEMU VM (`lab up --vm`).
    #[serde(default)]
    pub vm: Option<super::vm::VmSpec>,
}

impl LabSpec {
    /// Checks every flag and returns the spec, or an error naming the flag.
    pub fn new(
        name: &str,
        nodes: u8,
        links: u8,
        qdevice: bool,
        token_ms: Option<u32>,
        profile: Profile,
        quorum_options: &[String],
    ) -> Result<LabSpec, LabError> {
        validate_name(name)?;
        if nodes == 0 || nodes > MAX_NODES {
            return Err(LabError::invalid(format!(
                "--nodes {nodes}: a lab has 1 to {MAX_NODES} nodes"
            )));
        }
        if links == 0 || links > MAX_LINKS {
            return Err(LabError::invalid(format!(
                "--links {links}: corosync (knet) has 1 to {MAX_LINKS} links"
            )));
        }
        if let Some(t) = token_ms {
            if !(100..=600_000).contains(&t) {
                return Err(LabError::invalid(format!(
                    "--token {t}: expected 100 to 600000 milliseconds"
                )));
            }
        }
        let mut options = BTreeMap::new();
        for option in quorum_options {
            let (key, value) = parse_quorum_option(option)?;
            options.insert(key, value);
        }
        if options.get("two_node").is_some_and(|v| v != "0") && nodes != 2 {
            return Err(LabError::invalid(format!(
                "--quorum-option two_node=1: two_node needs exactly 2 nodes, the lab has {nodes}"
            )));
        }
        let token_ms = match (token_ms, profile) {
            (Some(t), _) => Some(t),
            (None, Profile::Fast) => Some(1000),
            (None, Profile::Proxmox) => None,
        };
        Ok(LabSpec {
            name: name.to_owned(),
            nodes,
            links,
            qdevice,
            token_ms,
            profile,
            quorum_options: options,
            ssh: false,
            pacemaker: false,
            resources: Vec::new(),
            vm: None,
        })
    }

    /// Adds Pacemaker (`--pacemaker`) and its resources (`--resource`,
    /// which needs `--pacemaker`). A resource name becomes an XML id in the
    /// CIB and a file name of the Dummy agent's state: a letter or `_`, then
    /// letters, digits, `_`, `-` and `.`.
    pub fn with_pacemaker(
        mut self,
        pacemaker: bool,
        resources: &[String],
    ) -> Result<LabSpec, LabError> {
        if !pacemaker && !resources.is_empty() {
            return Err(LabError::invalid(format!(
                "--resource {}: resources run under Pacemaker; add --pacemaker",
                resources[0]
            )));
        }
        let mut names: Vec<String> = Vec::new();
        for name in resources {
            let ok = name.len() <= MAX_RESOURCE_NAME
                && name
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if !ok {
                return Err(LabError::invalid(format!(
                    "--resource {name:?}: a resource name is 1 to {MAX_RESOURCE_NAME} characters, \
                     a letter or '_' first, then letters, digits, '_', '-' or '.' (it becomes an id in the CIB)"
                )));
            }
            if names.contains(name) {
                return Err(LabError::invalid(format!("--resource {name}: given twice")));
            }
            names.push(name.clone());
        }
        self.pacemaker = pacemaker;
        self.resources = names;
        Ok(self)
    }

    pub fn node_names(&self) -> impl Iterator<Item = String> {
        (1..=self.nodes).map(|i| format!("pve{i}"))
    }

    /// The network namespace of a lab host (`pve1`, `qnetd`) or of the switch (`sw`).
    pub fn netns(&self, host: &str) -> String {
        netns_name(&self.name, host)
    }

    /// The namespace that holds the lab's bridges, one per corosync link.
    pub fn switch_netns(&self) -> String {
        netns_name(&self.name, "sw")
    }
}

pub fn netns_name(lab: &str, host: &str) -> String {
    format!("{lab}-{host}")
}

/// Link `l` is the subnet 198.18.l.0/24 (RFC 2544's benchmarking range, so it
/// never clashes with a real network; it only exists inside the lab's
/// namespaces). Node `pveN` is `.N`, the QDevice host `.254`.
pub fn node_address(node_id: u8, link: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, link, node_id)
}

pub fn qnetd_address() -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, 254)
}

pub const PREFIX_LEN: u8 = 24;

fn validate_name(name: &str) -> Result<(), LabError> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let starts_with_letter = name.chars().next().is_some_and(|c| c.is_ascii_lowercase());
    if name.is_empty() || name.len() > MAX_LAB_NAME || !ok_chars || !starts_with_letter {
        return Err(LabError::invalid(format!(
            "--name {name:?}: a lab name is 1 to {MAX_LAB_NAME} characters, lowercase letters and digits, \
             starting with a letter (it becomes part of namespace names, which the kernel limits to 15)"
        )));
    }
    Ok(())
}

fn parse_quorum_option(option: &str) -> Result<(String, String), LabError> {
    let Some((key, value)) = option.split_once('=') else {
        return Err(LabError::invalid(format!(
            "--quorum-option {option:?}: expected KEY=VALUE, for example two_node=1"
        )));
    };
    let key = key.trim();
    let value = value.trim();
    if !QUORUM_KEYS.contains(&key) {
        return Err(LabError::invalid(format!(
            "--quorum-option {option:?}: unknown votequorum key {key:?} (known: {})",
            QUORUM_KEYS.join(", ")
        )));
    }
    if value.is_empty() || !value.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ') {
        return Err(LabError::invalid(format!(
            "--quorum-option {option:?}: the value must be letters, digits and spaces"
        )));
    }
    Ok((key.to_owned(), value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, nodes: u8, links: u8, opts: &[&str]) -> Result<LabSpec, LabError> {
        let opts: Vec<String> = opts.iter().map(|s| s.to_string()).collect();
        LabSpec::new(name, nodes, links, false, None, Profile::Fast, &opts)
    }

    #[test]
    fn defaults_are_fast() {
        let s = spec("lab", 3, 1, &[]).unwrap();
        assert_eq!(s.token_ms, Some(1000));
        assert_eq!(s.node_names().collect::<Vec<_>>(), ["pve1", "pve2", "pve3"]);
        assert_eq!(s.netns("pve2"), "lab-pve2");
        let p = LabSpec::new("lab", 3, 1, false, None, Profile::Proxmox, &[]).unwrap();
        assert_eq!(p.token_ms, None);
    }

    #[test]
    fn node_and_link_counts_are_bounded() {
        for (nodes, links) in [(0, 1), (33, 1), (3, 0), (3, 9)] {
            let err = spec("lab", nodes, links, &[]).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{nodes} nodes {links} links");
        }
        assert!(spec("lab", 32, 8, &[]).is_ok());
    }

    #[test]
    fn names_fit_the_kernel_limit() {
        for bad in ["", "Lab", "1lab", "lab-one", "lab_x", "abcdefghij", "la b"] {
            assert!(spec(bad, 3, 1, &[]).is_err(), "{bad:?} accepted");
        }
        let s = spec("abcdefghi", 32, 8, &[]).unwrap();
        assert!(s.netns("pve32").len() <= 15);
        assert!(s.netns(QNETD).len() <= 15);
    }

    #[test]
    fn quorum_options() {
        let s = spec("lab", 2, 1, &["two_node=1", "wait_for_all = 0"]).unwrap();
        assert_eq!(s.quorum_options["two_node"], "1");
        assert_eq!(s.quorum_options["wait_for_all"], "0");
        assert!(spec("lab", 3, 1, &["two_node=1"]).is_err());
        assert!(spec("lab", 3, 1, &["bogus=1"]).is_err());
        assert!(spec("lab", 3, 1, &["two_node"]).is_err());
        assert!(spec("lab", 2, 1, &["two_node=1;}"]).is_err());
    }

    #[test]
    fn pacemaker_and_resources() {
        let base = spec("lab", 3, 1, &[]).unwrap();
        let s = base
            .clone()
            .with_pacemaker(true, &["svc".into(), "db_1".into(), "web-2.a".into()])
            .unwrap();
        assert!(s.pacemaker);
        assert_eq!(s.resources, ["svc", "db_1", "web-2.a"]);
        assert!(base.clone().with_pacemaker(true, &[]).unwrap().pacemaker);
        let without = base.clone().with_pacemaker(false, &["svc".into()]);
        assert_eq!(without.unwrap_err().exit_code(), 2);
        let long = "x".repeat(MAX_RESOURCE_NAME + 1);
        for bad in ["", "1svc", "-x", "a b", "a/b", "a\"b", "<x>", long.as_str()] {
            let err = base.clone().with_pacemaker(true, &[bad.to_string()]);
            assert_eq!(err.unwrap_err().exit_code(), 2, "{bad:?} accepted");
        }
        let twice = base.with_pacemaker(true, &["svc".into(), "svc".into()]);
        assert!(twice.is_err());
    }

    #[test]
    fn records_without_pacemaker_still_load() {
        // lab.toml written before --pacemaker existed.
        let mut s = spec("lab", 3, 1, &[]).unwrap();
        s.ssh = true;
        let mut text = toml::to_string(&s).unwrap();
        text = text
            .lines()
            .filter(|l| !l.starts_with("pacemaker") && !l.starts_with("resources"))
            .map(|l| format!("{l}\n"))
            .collect();
        let back: LabSpec = toml::from_str(&text).unwrap();
        assert!(!back.pacemaker && back.resources.is_empty());
    }

    #[test]
    fn addresses() {
        assert_eq!(node_address(3, 1).to_string(), "198.18.1.3");
        assert_eq!(qnetd_address().to_string(), "198.18.0.254");
    }
}
