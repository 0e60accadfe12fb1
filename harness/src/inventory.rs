//! The inventory: which nodes a drill runs on, how to reach each node's
//! agent, and how to power it. The lab writes one; operators write their own
//! for real clusters. `run` treats both alike.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::Range;

use serde::{Deserialize, Serialize};
use toml::Spanned;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    pub name: String,
    #[serde(rename = "node")]
    pub nodes: Vec<InventoryNode>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryNode {
    pub name: String,
    /// Any shell command whose stdin/stdout is the node's agent.
    pub connect: String,
    /// Corosync link name ("ring0" to "ring7") -> this node's address on
    /// it (an IP address); `from_toml` refuses anything else.
    pub links: BTreeMap<String, String>,
    pub power: Power,
}

/// How the controller powers a node off and on (README, "Real clusters").
/// Only `lab` is driven so far; the others are read, so that real
/// inventories parse, and a drill that would need them is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "driver", rename_all = "lowercase", deny_unknown_fields)]
pub enum Power {
    /// A node of the network-namespace lab `lab` on this machine.
    Lab { lab: String },
    /// Operator-given shell commands.
    Command {
        off: String,
        on: String,
        status: String,
    },
    /// `vagrant halt --force` / `vagrant up` of a machine of a Vagrant project.
    Vagrant {
        machine: String,
        dir: Option<String>,
    },
    /// `virsh destroy` / `virsh start` of a libvirt domain.
    Libvirt { domain: String, uri: Option<String> },
    /// `ipmitool chassis power`; the password is read from an environment
    /// variable, never written in the inventory or on a command line.
    Ipmi {
        host: String,
        user: String,
        password_env: String,
    },
    /// A VM of an outer Proxmox VE host (nested clusters), through its API
    /// with a token read from an environment variable.
    Proxmox {
        api: String,
        node: String,
        vmid: u32,
        token_env: String,
        /// The outer host's CA certificate (PEM), for its self-signed
        /// certificate; the system's CAs otherwise.
        cacert: Option<String>,
    },
}

impl Power {
    pub fn driver(&self) -> &'static str {
        match self {
            Power::Lab { .. } => "lab",
            Power::Command { .. } => "command",
            Power::Vagrant { .. } => "vagrant",
            Power::Libvirt { .. } => "libvirt",
            Power::Ipmi { .. } => "ipmi",
            Power::Proxmox { .. } => "proxmox",
        }
    }
}

impl Inventory {
    /// The fewest corosync links any node has.
    pub fn links(&self) -> usize {
        self.nodes.iter().map(|n| n.links.len()).min().unwrap_or(0)
    }

    pub fn to_toml(&self) -> String {
        // Serializing these plain structs cannot fail; keep a readable
        // message all the same rather than a panic.
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot write inventory: {e}\n"))
    }

    /// Reads an inventory and checks what serde cannot: node names are
    /// unique, links are `ringN` with an IP address. Errors carry the
    /// byte span of what they are about, for `file:line:column`.
    pub fn from_toml(text: &str) -> Result<Inventory, InventoryError> {
        let inventory: Inventory = toml::from_str(text)?;
        // The same text again, for where each name, key and address is.
        let spans: Spans = toml::from_str(text)?;
        let mut first: BTreeMap<&str, usize> = BTreeMap::new();
        for node in &spans.node {
            let name = node.name.get_ref().as_str();
            if let Some(earlier) = first.insert(name, node.name.span().start) {
                let (line, _) = crate::experiment::spans::line_column(text, earlier);
                return Err(InventoryError::at(
                    node.name.span(),
                    format!("name: node {name:?} is named twice (first on line {line})"),
                ));
            }
            for (key, address) in &node.links {
                let link = key.get_ref();
                if link_number(link).is_none() {
                    return Err(InventoryError::at(
                        key.span(),
                        format!("links: node {name:?}: link {link:?} is not ring0 to ring7 (corosync's link numbers)"),
                    ));
                }
                if address.get_ref().parse::<IpAddr>().is_err() {
                    return Err(InventoryError::at(
                        address.span(),
                        format!(
                            "links: node {name:?}: {link} = {:?} is not an IP address",
                            address.get_ref()
                        ),
                    ));
                }
            }
        }
        Ok(inventory)
    }
}

impl InventoryNode {
    /// This node's address on each corosync link, by link number.
    /// `from_toml` has checked every link; one the lab or a test built
    /// wrong is left out.
    pub fn link_addresses(&self) -> BTreeMap<u8, IpAddr> {
        self.links
            .iter()
            .filter_map(|(key, addr)| Some((link_number(key)?, addr.parse().ok()?)))
            .collect()
    }
}

/// "ring0" to "ring7" as corosync's link number; None for anything else
/// ("ring08", "eth0", "ring8").
pub fn link_number(key: &str) -> Option<u8> {
    let n: u8 = key.strip_prefix("ring")?.parse().ok()?;
    (n <= 7 && key == format!("ring{n}")).then_some(n)
}

/// What is wrong with an inventory, and where (a byte span of its text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InventoryError {
    message: String,
    span: Option<Range<usize>>,
}

impl InventoryError {
    fn at(span: Range<usize>, message: String) -> InventoryError {
        InventoryError {
            message,
            span: Some(span),
        }
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn span(&self) -> Option<Range<usize>> {
        self.span.clone()
    }
}

impl From<toml::de::Error> for InventoryError {
    fn from(e: toml::de::Error) -> InventoryError {
        InventoryError {
            message: e.message().trim().to_owned(),
            span: e.span(),
        }
    }
}

/// Where an inventory's node names, link keys and addresses are written.
#[derive(Deserialize)]
struct Spans {
    #[serde(default)]
    node: Vec<NodeSpans>,
}

#[derive(Deserialize)]
struct NodeSpans {
    name: Spanned<String>,
    #[serde(default)]
    links: BTreeMap<Spanned<String>, Spanned<String>>,
}

/// The inventory file at `path`, every error with `file:line:column`.
pub fn load(path: &std::path::Path) -> Result<Inventory, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read the inventory: {e}", path.display()))?;
    Inventory::from_toml(&text).map_err(|e| {
        let (line, column) =
            crate::experiment::spans::line_column(&text, e.span().map_or(0, |s| s.start));
        format!("{}:{line}:{column}: {}", path.display(), e.message())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_design_md_shape() {
        let inv = Inventory {
            name: "lab".into(),
            nodes: vec![InventoryNode {
                name: "pve1".into(),
                connect: "nsenter --net=/run/netns/lab-pve1 -- corodrill-agent --stdio".into(),
                links: [("ring0".to_string(), "198.18.0.1".to_string())].into(),
                power: Power::Lab { lab: "lab".into() },
            }],
        };
        let text = inv.to_toml();
        assert!(text.contains("[[node]]"), "{text}");
        assert!(text.contains("driver = \"lab\""), "{text}");
        assert_eq!(Inventory::from_toml(&text).unwrap(), inv);
        assert!(Inventory::from_toml("name = \"x\"\nbogus = 1\nnode = []\n").is_err());
    }

    /// An unknown power driver is refused with every driver there is.
    #[test]
    fn unknown_driver_names_the_known_ones() {
        let text = "name = \"x\"\n[[node]]\nname = \"pve1\"\nconnect = \"false\"\nlinks = { ring0 = \"198.18.0.1\" }\npower = { driver = \"ilo\", host = \"10.0.1.1\" }\n";
        let err = Inventory::from_toml(text).unwrap_err().to_string();
        assert!(
            err.contains("unknown variant `ilo`")
                && err.contains("`lab`, `command`, `vagrant`, `libvirt`, `ipmi`, `proxmox`"),
            "{err}"
        );
    }

    /// Two nodes of one name, a link that is not `ringN`, an address that
    /// is not an IP: refused where they are written, naming the node.
    #[test]
    fn duplicate_names_and_bad_links_are_refused_where_written() {
        let node = |name: &str, links: &str| {
            format!("[[node]]\nname = \"{name}\"\nconnect = \"true\"\nlinks = {{ {links} }}\npower = {{ driver = \"lab\", lab = \"l\" }}\n")
        };
        let where_ = |text: &str| {
            let e = Inventory::from_toml(text).unwrap_err();
            let (line, column) =
                crate::experiment::spans::line_column(text, e.span().map_or(0, |s| s.start));
            format!("{line}:{column}: {}", e.message())
        };
        let good = format!(
            "name = \"x\"\n{}{}",
            node("pve1", "ring0 = \"198.18.0.1\", ring1 = \"fd00::1\""),
            node("pve2", "ring0 = \"198.18.0.2\"")
        );
        let inv = Inventory::from_toml(&good).unwrap();
        assert_eq!(
            inv.nodes[0].link_addresses(),
            [
                (0, "198.18.0.1".parse().unwrap()),
                (1, "fd00::1".parse().unwrap())
            ]
            .into()
        );
        let twice = good.replace("\"pve2\"", "\"pve1\"");
        assert_eq!(
            where_(&twice),
            "8:8: name: node \"pve1\" is named twice (first on line 3)"
        );
        let eth = good.replace("ring1 =", "eth1 =");
        let e = where_(&eth);
        assert!(
            e.starts_with("5:33: links: node \"pve1\": link \"eth1\" is not ring0 to ring7"),
            "{e}"
        );
        for bad in ["ring8", "ring01", "ring"] {
            assert!(Inventory::from_toml(&good.replace("ring1 =", &format!("{bad} ="))).is_err());
        }
        let name = good.replace("\"198.18.0.2\"", "\"pve2.example\"");
        assert_eq!(
            where_(&name),
            "10:19: links: node \"pve2\": ring0 = \"pve2.example\" is not an IP address"
        );
    }

    /// The example inventories shipped for real clusters parse.
    #[test]
    fn shipped_example_inventories_parse() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments/inventories");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let inv =
                Inventory::from_toml(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(inv.nodes.len() >= 3, "{}", path.display());
            seen += 1;
        }
        assert!(seen >= 2);
    }
}
