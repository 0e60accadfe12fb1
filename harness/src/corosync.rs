//! Reading corosync's own tools: `corosync-quorumtool -s -p` and
//! `corosync-cfgtool -s`. Pure parsing; running the tools is the caller's job.
//!
//! The lab uses these as an independent view of a node (and `lab up` to know
//! when the cluster has formed); drills observe quorum by notification in the
//! agent instead.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub node_id: u32,
    pub votes: u32,
    pub name: String,
}

/// One node's view of quorum as `corosync-quorumtool -s -p` prints it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QuorumStatus {
    pub node_id: u32,
    pub ring_id: String,
    pub quorate: bool,
    pub expected_votes: u32,
    pub total_votes: u32,
    pub quorum: u32,
    pub flags: Vec<String>,
    pub members: Vec<Member>,
}

impl QuorumStatus {
    /// The member nodes. A QDevice is listed by quorumtool as node id 0
    /// ("Qdevice"); it votes but is not a node.
    pub fn nodes(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| m.node_id != 0)
    }

    pub fn member_names(&self) -> Vec<&str> {
        self.nodes().map(|m| m.name.as_str()).collect()
    }

    pub fn qdevice_listed(&self) -> bool {
        self.members.iter().any(|m| m.node_id == 0)
    }
}

/// Parses `corosync-quorumtool -s -p`. Returns `None` when the text holds no
/// quorum section (corosync not running prints "Cannot initialize ...").
pub fn parse_quorum_status(text: &str) -> Option<QuorumStatus> {
    let mut status = QuorumStatus::default();
    let mut seen_quorate = false;
    let mut in_members = false;
    for line in text.lines() {
        if in_members {
            if let Some(member) = parse_member_line(line) {
                status.members.push(member);
            }
            continue;
        }
        if line.trim_start().starts_with("Nodeid") {
            in_members = true;
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "Node ID" => status.node_id = value.parse().unwrap_or(0),
            "Ring ID" => status.ring_id = value.to_owned(),
            "Quorate" => {
                seen_quorate = true;
                status.quorate = value == "Yes";
            }
            "Expected votes" => status.expected_votes = value.parse().unwrap_or(0),
            "Total votes" => status.total_votes = value.parse().unwrap_or(0),
            "Quorum" => {
                // "Quorum:           2  Activity blocked" when inquorate.
                status.quorum = value
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
            }
            "Flags" => status.flags = value.split_whitespace().map(str::to_owned).collect(),
            _ => {}
        }
    }
    seen_quorate.then_some(status)
}

/// `         1          1         NR pve1 (local)`: id, votes, an optional
/// QDevice column, the name. The QDevice itself appears as `0 1 Qdevice`.
fn parse_member_line(line: &str) -> Option<Member> {
    let mut words = line.split_whitespace();
    let node_id = words.next()?.parse().ok()?;
    let votes = words.next()?.parse().ok()?;
    let rest: Vec<&str> = words.filter(|w| *w != "(local)").collect();
    let name = rest.last()?.to_string();
    Some(Member {
        node_id,
        votes,
        name,
    })
}

/// One knet link as `corosync-cfgtool -s` reports it from this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkStatus {
    pub link: u8,
    /// (peer node id, "connected" / "disconnected" / "localhost" ...)
    pub peers: Vec<(u32, String)>,
}

impl LinkStatus {
    /// Peers other than this node itself that the link reaches.
    pub fn connected_peers(&self) -> usize {
        self.peers.iter().filter(|(_, s)| s == "connected").count()
    }
    pub fn remote_peers(&self) -> usize {
        self.peers.iter().filter(|(_, s)| s != "localhost").count()
    }
}

/// Parses `corosync-cfgtool -s` (corosync 3, knet).
pub fn parse_link_status(text: &str) -> Vec<LinkStatus> {
    let mut links: Vec<LinkStatus> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("LINK ID ") {
            if let Some(link) = rest.split_whitespace().next().and_then(|l| l.parse().ok()) {
                links.push(LinkStatus {
                    link,
                    peers: Vec::new(),
                });
            }
        } else if let Some(rest) = trimmed.strip_prefix("nodeid:") {
            let (Some(current), Some((id, state))) = (links.last_mut(), rest.split_once(':'))
            else {
                continue;
            };
            if let Ok(id) = id.trim().parse() {
                current.peers.push((id, state.trim().to_owned()));
            }
        }
    }
    links
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from a 3-node lab (corosync 3.1.7).
    const QUORATE: &str = "Quorum information
------------------
Date:             Wed Nov 25 16:30:09 2026
Quorum provider:  corosync_votequorum
Nodes:            3
Node ID:          1
Ring ID:          1.d
Quorate:          Yes

Votequorum information
----------------------
Expected votes:   3
Highest expected: 3
Total votes:      3
Quorum:           2  
Flags:            Quorate 

Membership information
----------------------
    Nodeid      Votes    Qdevice Name
         1          1         NR pve1 (local)
         2          1         NR pve2
         3          1         NR pve3
";

    #[test]
    fn quorate_three_nodes() {
        let s = parse_quorum_status(QUORATE).unwrap();
        assert!(s.quorate);
        assert_eq!(s.node_id, 1);
        assert_eq!(s.ring_id, "1.d");
        assert_eq!((s.expected_votes, s.total_votes, s.quorum), (3, 3, 2));
        assert_eq!(s.flags, ["Quorate"]);
        assert_eq!(s.member_names(), ["pve1", "pve2", "pve3"]);
    }

    #[test]
    fn inquorate_and_down() {
        let text = QUORATE
            .replace("Quorate:          Yes", "Quorate:          No")
            .replace(
                "Quorum:           2  ",
                "Quorum:           2 Activity blocked",
            );
        let s = parse_quorum_status(&text).unwrap();
        assert!(!s.quorate);
        assert_eq!(s.quorum, 2);
        assert_eq!(
            parse_quorum_status("Cannot initialize QUORUM service\n"),
            None
        );
    }

    #[test]
    fn links() {
        let text = "Local node ID 1, transport knet
LINK ID 0 udp
\taddr\t= 198.18.0.1
\tstatus:
\t\tnodeid:          1:\tlocalhost
\t\tnodeid:          2:\tconnected
\t\tnodeid:          3:\tdisconnected
LINK ID 1 udp
\taddr\t= 198.18.1.1
\tstatus:
\t\tnodeid:          1:\tlocalhost
\t\tnodeid:          2:\tconnected
";
        let links = parse_link_status(text);
        assert_eq!(links.len(), 2);
        assert_eq!(links[0].connected_peers(), 1);
        assert_eq!(links[0].remote_peers(), 2);
        assert_eq!(links[1].link, 1);
        assert_eq!(links[1].connected_peers(), 1);
    }
}

/// What `corodrill plan --from corosync.conf` needs from a corosync.conf:
/// the nodelist (id, name) and the quorum section as flat keys like cmap's
/// (`two_node`, `device.model`, `device.net.algorithm`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfSummary {
    pub nodes: Vec<(u32, String)>,
    pub quorum: std::collections::BTreeMap<String, String>,
    /// `totem` keys (token, token_coefficient, consensus, ...).
    pub totem: std::collections::BTreeMap<String, String>,
    pub links: usize,
}

pub fn parse_corosync_conf(text: &str) -> Result<ConfSummary, String> {
    let mut summary = ConfSummary::default();
    let mut path: Vec<String> = Vec::new();
    let mut node: (Option<u32>, Option<String>) = (None, None);
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(section) = line.strip_suffix('{') {
            path.push(section.trim().to_owned());
            continue;
        }
        if line == "}" {
            if path.last().map(String::as_str) == Some("node")
                && path.first().map(String::as_str) == Some("nodelist")
            {
                match std::mem::take(&mut node) {
                    (Some(id), name) => summary
                        .nodes
                        .push((id, name.unwrap_or_else(|| format!("node{id}")))),
                    _ => return Err(format!("line {}: a nodelist node without nodeid", n + 1)),
                }
            }
            if path.pop().is_none() {
                return Err(format!("line {}: '}}' without an open section", n + 1));
            }
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            return Err(format!(
                "line {}: expected `key: value`, found {line:?}",
                n + 1
            ));
        };
        let (key, value) = (key.trim(), value.trim().to_owned());
        match path
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice()
        {
            ["nodelist", "node"] => match key {
                "nodeid" => node.0 = value.parse().ok(),
                "name" => node.1 = Some(value),
                k if k.starts_with("ring") && k.ends_with("_addr") => {
                    let link: usize = k[4..k.len() - 5].parse().unwrap_or(0);
                    summary.links = summary.links.max(link + 1);
                }
                _ => {}
            },
            ["totem"] => {
                summary.totem.insert(key.to_owned(), value);
            }
            ["quorum", rest @ ..] => {
                let mut full: Vec<&str> = rest.to_vec();
                full.push(key);
                summary.quorum.insert(full.join("."), value);
            }
            _ => {}
        }
    }
    if !path.is_empty() {
        return Err(format!("section {:?} is never closed", path.join(".")));
    }
    if summary.nodes.is_empty() {
        return Err("no nodelist with nodes".into());
    }
    Ok(summary)
}

#[cfg(test)]
mod conf_tests {
    use super::*;

    #[test]
    fn reads_a_proxmox_style_conf() {
        let conf = "totem {\n  version: 2\n  interface {\n    linknumber: 0\n  }\n}\nnodelist {\n  node {\n    name: pve1\n    nodeid: 1\n    ring0_addr: 10.0.0.1\n    ring1_addr: 10.1.0.1\n  }\n  node {\n    name: pve2\n    nodeid: 2\n    ring0_addr: 10.0.0.2\n  }\n}\nquorum {\n  provider: corosync_votequorum\n  two_node: 1\n  device {\n    model: net\n    net {\n      algorithm: ffsplit\n    }\n  }\n}\n";
        let s = parse_corosync_conf(conf).unwrap();
        assert_eq!(s.nodes, [(1, "pve1".to_string()), (2, "pve2".to_string())]);
        assert_eq!(s.links, 2);
        assert_eq!(s.quorum["two_node"], "1");
        assert_eq!(s.quorum["device.model"], "net");
        assert_eq!(s.quorum["device.net.algorithm"], "ffsplit");
        assert_eq!(s.totem["version"], "2");
        assert!(parse_corosync_conf("quorum {\n").is_err());
    }
}
