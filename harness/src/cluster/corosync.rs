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

/// A line of a corosync tool's output that says something this parser
/// cannot read: a value that is not a number, a member line that is not
/// one. Better an error than a 0 that reads as a real value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{tool}: line {line}: {message}")]
pub struct ToolOutputError {
    pub tool: &'static str,
    pub line: usize,
    pub message: String,
}

const QUORUMTOOL: &str = "corosync-quorumtool";
const CFGTOOL: &str = "corosync-cfgtool";

/// Parses `corosync-quorumtool -s -p`. `Ok(None)` when the text holds no
/// quorum section (corosync not running prints "Cannot initialize ...").
pub fn parse_quorum_status(text: &str) -> Result<Option<QuorumStatus>, ToolOutputError> {
    let mut status = QuorumStatus::default();
    let mut seen_quorate = false;
    let mut in_members = false;
    for (n, line) in text.lines().enumerate() {
        let error = |message: String| ToolOutputError {
            tool: QUORUMTOOL,
            line: n + 1,
            message,
        };
        if in_members {
            if !line.trim().is_empty() {
                let member = parse_member_line(line)
                    .ok_or_else(|| error(format!("not a member line: {line:?}")))?;
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
        let number = |value: &str| -> Result<u32, ToolOutputError> {
            node_id(value)
                .ok_or_else(|| error(format!("{}: {value:?} is not a number", key.trim())))
        };
        match key.trim() {
            "Node ID" => status.node_id = number(value)?,
            "Ring ID" => status.ring_id = value.to_owned(),
            "Quorate" => {
                seen_quorate = true;
                status.quorate = match value {
                    "Yes" => true,
                    "No" => false,
                    other => return Err(error(format!("Quorate: {other:?} is not Yes or No"))),
                };
            }
            "Expected votes" => status.expected_votes = number(value)?,
            "Total votes" => status.total_votes = number(value)?,
            // "Quorum:           2  Activity blocked" when inquorate.
            "Quorum" => status.quorum = number(value.split_whitespace().next().unwrap_or(""))?,
            "Flags" => status.flags = value.split_whitespace().map(str::to_owned).collect(),
            _ => {}
        }
    }
    Ok(seen_quorate.then_some(status))
}

/// `         1          1         NR pve1 (local)`: id, votes, an optional
/// QDevice column, the name. The QDevice itself appears as `0 1 Qdevice`.
fn parse_member_line(line: &str) -> Option<Member> {
    let mut words = line.split_whitespace();
    let node_id = node_id(words.next()?)?;
    let votes = words.next()?.parse().ok()?;
    let rest: Vec<&str> = words.filter(|w| *w != "(local)").collect();
    let name = rest.last()?.to_string();
    Some(Member {
        node_id,
        votes,
        name,
    })
}

/// A number as quorumtool prints it: decimal, or hex with `-H`
/// (`0x00000001`, as `pvecm status` shows node ids).
fn node_id(text: &str) -> Option<u32> {
    match text.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
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
pub fn parse_link_status(text: &str) -> Result<Vec<LinkStatus>, ToolOutputError> {
    let mut links: Vec<LinkStatus> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let error = |message: String| ToolOutputError {
            tool: CFGTOOL,
            line: n + 1,
            message,
        };
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("LINK ID ") {
            let id = rest.split_whitespace().next().unwrap_or("");
            let link = id
                .parse()
                .map_err(|_| error(format!("LINK ID {id:?} is not a link number")))?;
            links.push(LinkStatus {
                link,
                peers: Vec::new(),
            });
        } else if let Some(rest) = trimmed.strip_prefix("nodeid:") {
            let Some((id, state)) = rest.split_once(':') else {
                return Err(error(format!(
                    "expected `nodeid: ID: state`, found {trimmed:?}"
                )));
            };
            let id = id.trim();
            let id = id
                .parse()
                .map_err(|_| error(format!("nodeid {id:?} is not a number")))?;
            let current = links
                .last_mut()
                .ok_or_else(|| error("a nodeid before any LINK ID".to_owned()))?;
            current.peers.push((id, state.trim().to_owned()));
        }
    }
    Ok(links)
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
        let s = parse_quorum_status(QUORATE).unwrap().unwrap();
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
        let s = parse_quorum_status(&text).unwrap().unwrap();
        assert!(!s.quorate);
        assert_eq!(s.quorum, 2);
        assert_eq!(
            parse_quorum_status("Cannot initialize QUORUM service\n"),
            Ok(None)
        );
    }

    /// A value that is not a number was read as 0 (a node id, a vote
    /// count), and a member line that was not one dropped a member.
    #[test]
    fn unreadable_values_are_errors_with_their_line() {
        let bad = |from: &str, to: &str| {
            let text = QUORATE.replace(from, to);
            parse_quorum_status(&text).unwrap_err().to_string()
        };
        assert_eq!(
            bad("Total votes:      3", "Total votes:      three"),
            "corosync-quorumtool: line 14: Total votes: \"three\" is not a number"
        );
        assert!(bad("Node ID:          1", "Node ID:          -1").contains("line 6: Node ID"));
        assert!(bad("Quorate:          Yes", "Quorate:          Maybe").contains("Maybe"));
        assert!(bad("Quorum:           2  ", "Quorum:").contains("line 15: Quorum"));
        assert!(bad(
            "         3          1         NR pve3",
            "         x          1         NR pve3"
        )
        .contains("line 23: not a member line"));
        let links = "LINK ID x udp\n\t\tnodeid:          2:\tconnected\n";
        assert_eq!(
            parse_link_status(links).unwrap_err().to_string(),
            "corosync-cfgtool: line 1: LINK ID \"x\" is not a link number"
        );
        assert!(parse_link_status("LINK ID 0 udp\n\t\tnodeid: two:\tconnected\n").is_err());
        assert!(parse_link_status("\t\tnodeid: 2:\tconnected\n").is_err());
        // quorumtool -H (pvecm status) prints node ids in hex.
        let hex = QUORATE
            .replace("Node ID:          1", "Node ID:          0x00000001")
            .replace(
                "         2          1         NR pve2",
                "0x00000002          1         NR pve2",
            );
        let s = parse_quorum_status(&hex).unwrap().unwrap();
        assert_eq!((s.node_id, s.members[1].node_id), (1, 2));
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
        let links = parse_link_status(text).unwrap();
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
                "nodeid" => match value.parse() {
                    Ok(id) => node.0 = Some(id),
                    Err(_) => {
                        return Err(format!("line {}: nodeid {value:?} is not a number", n + 1))
                    }
                },
                "name" => node.1 = Some(value),
                k => {
                    if let Some(number) =
                        k.strip_suffix("_addr").and_then(|r| r.strip_prefix("ring"))
                    {
                        // corosync's links are 0 to 7 (knet's KNET_MAX_LINK).
                        match number.parse::<usize>() {
                            Ok(link) if link <= 7 => summary.links = summary.links.max(link + 1),
                            _ => {
                                return Err(format!(
                                    "line {}: {k}: {number:?} is not a link number 0 to 7",
                                    n + 1
                                ))
                            }
                        }
                    }
                }
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

    /// A nodeid that is not a number was "a node without nodeid"; a ring
    /// number that was not one counted as link 0 (or overflowed).
    #[test]
    fn unreadable_numbers_are_errors_with_their_line() {
        let conf =
            |body: &str| format!("nodelist {{\n  node {{\n    name: pve1\n{body}\n  }}\n}}\n");
        assert_eq!(
            parse_corosync_conf(&conf("    nodeid: one")),
            Err("line 4: nodeid \"one\" is not a number".into())
        );
        for bad in [
            "ringx_addr",
            "ring8_addr",
            "ring18446744073709551615_addr",
            "ring_addr",
        ] {
            let e = parse_corosync_conf(&conf(&format!("    nodeid: 1\n    {bad}: 10.0.0.1")))
                .unwrap_err();
            assert!(
                e.starts_with("line 5:") && e.contains("not a link number"),
                "{e}"
            );
        }
        let s = parse_corosync_conf(&conf("    nodeid: 1\n    ring7_addr: 10.0.0.1")).unwrap();
        assert_eq!(s.links, 8);
    }
}
