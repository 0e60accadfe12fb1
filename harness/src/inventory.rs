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

/// How the controller powers a node off and on. More drivers come with the
/// real-cluster work; the lab's is here because the lab writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "driver", rename_all = "lowercase", deny_unknown_fields)]
pub enum Power {
    /// A node of the network-namespace lab `lab` on this machine.
    Lab { lab: String },
}

impl Inventory {
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
}
