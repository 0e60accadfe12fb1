//! The inventory: which nodes a drill runs on, how to reach each node's
//! agent, and how to power it. The lab writes one; operators write their own
//! for real clusters. `run` treats both alike.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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
    /// Corosync link name ("ring0") -> this node's address on it.
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

    pub fn from_toml(text: &str) -> Result<Inventory, toml::de::Error> {
        toml::from_str(text)
    }
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
