//! The inventory: which nodes a drill runs on, how to reach each node's
//! agent, and how to power it. The lab writes one; operators write their own
//! for real clusters. `run` treats both alike.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::Range;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::errors::ErrorCode;

/// A corodrill inventory: the nodes of one cluster, how to reach each
/// node's agent and how to power it. `corodrill lab up` writes one; write
/// your own for a real cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "corodrill inventory")]
pub struct Inventory {
    /// The cluster's name, as reports show it.
    #[schemars(extend("examples" = ["pve"]))]
    pub name: String,
    /// The nodes (`[[node]]`), each once.
    #[serde(rename = "node")]
    pub nodes: Vec<InventoryNode>,
}

/// One node of the cluster (`[[node]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InventoryNode {
    /// The node's name, as experiments name it (corosync's node name).
    /// Unique in the inventory.
    #[schemars(extend("examples" = ["pve1"]))]
    pub name: String,
    /// Any shell command whose stdin/stdout is the node's agent, run with
    /// `sh -c` on the controller: `ssh root@10.0.0.10 corodrill-agent
    /// --stdio` on a real cluster.
    #[schemars(extend("examples" = ["ssh root@10.0.0.10 corodrill-agent --stdio"]))]
    pub connect: String,
    /// The node's address on each corosync link: keys `ring0` to `ring7`
    /// (corosync's link numbers), each an IP address. Faults name links by
    /// number (`links = [1]` is `ring1`).
    #[schemars(
        extend("propertyNames" = {"pattern": "^ring[0-7]$"}),
        extend("examples" = [{"ring0": "10.10.0.10", "ring1": "10.20.0.10"}])
    )]
    pub links: BTreeMap<String, String>,
    /// How corodrill powers the node off and on (`power-off` faults);
    /// `driver` says which driver.
    pub power: Power,
}

/// How the controller powers a node off and on: `driver` says which, each
/// driver has its fields. Secrets are never written here: the inventory
/// names an environment variable, read when the drill starts and handed to
/// the tool through its environment or an HTTP header, never a command
/// line. Before any fault `run` asks each driver of a node to be powered
/// off for its state: a missing variable is exit 2, no answer exit 3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "driver", rename_all = "lowercase", deny_unknown_fields)]
pub enum Power {
    /// A node of the network-namespace lab on this machine (`corodrill lab
    /// power NODE off|on`): every process in the node dies, its links go
    /// down; on brings them up and starts its daemons as a boot would.
    Lab {
        /// The lab's name (`lab up --name`).
        #[schemars(extend("examples" = ["lab"]))]
        lab: String,
    },
    /// Your own shell commands, run with `sh -c` on the controller.
    Command {
        /// Powers the node off.
        #[schemars(extend("examples" = ["virsh destroy pve1"]))]
        off: String,
        /// Powers the node on.
        #[schemars(extend("examples" = ["virsh start pve1"]))]
        on: String,
        /// Prints the node's power state: its last word `on` or `off`.
        #[schemars(extend("examples" = ["virsh domstate pve1 | sed 's/running/on/;s/shut off/off/'"]))]
        status: String,
    },
    /// A machine of a Vagrant project: `vagrant halt --force` / `vagrant up`.
    Vagrant {
        /// The machine's name in the Vagrantfile.
        #[schemars(extend("examples" = ["pve1"]))]
        machine: String,
        /// The directory of the Vagrantfile. Default: the current directory.
        #[schemars(extend("examples" = ["."]))]
        dir: Option<String>,
    },
    /// A libvirt domain: `virsh destroy` / `virsh start`.
    Libvirt {
        /// The domain's name.
        #[schemars(extend("examples" = ["pve1"]))]
        domain: String,
        /// virsh's connection URI (`-c`). Default: virsh's own default.
        #[schemars(extend("examples" = ["qemu:///system"]))]
        uri: Option<String>,
    },
    /// A QEMU VM through its QMP socket (QEMU started with `-qmp
    /// unix:PATH,server=on,wait=off`), the VM lab's own driver: off stops
    /// the CPUs and resets the machine (`stop`, `system_reset`: a pulled
    /// plug, QEMU stays up), on runs it again (`cont`: it boots).
    Qmp {
        /// The QMP socket, on the machine that runs corodrill.
        #[schemars(extend("examples" = ["/var/lib/corodrill/labs/vmlab/pve1/qmp.sock"]))]
        socket: String,
    },
    /// A BMC over IPMI: `ipmitool -I lanplus -H HOST -U USER -E chassis
    /// power off|on|status`, the password in ipmitool's environment.
    Ipmi {
        /// The BMC's address.
        #[schemars(extend("examples" = ["10.0.1.10"]))]
        host: String,
        /// The BMC user.
        #[schemars(extend("examples" = ["admin"]))]
        user: String,
        /// The environment variable that holds the BMC password.
        #[schemars(extend("examples" = ["IPMI_PASSWORD"]))]
        password_env: String,
    },
    /// A VM of an outer Proxmox VE host (nested clusters), through its
    /// HTTPS API (`/nodes/NODE/qemu/VMID/status/...`), TLS verified.
    Proxmox {
        /// The outer host's API: `https://HOST:8006`.
        #[schemars(extend("examples" = ["https://10.0.0.2:8006"]))]
        api: String,
        /// The outer host's node name that runs the VM.
        #[schemars(extend("examples" = ["host1"]))]
        node: String,
        /// The VM's id on the outer host.
        #[schemars(extend("examples" = [101]))]
        vmid: u32,
        /// The environment variable that holds the API token,
        /// `USER@REALM!ID=SECRET`, sent in the `Authorization` header.
        #[schemars(extend("examples" = ["PVE_TOKEN"]))]
        token_env: String,
        /// The outer host's CA certificate (a PEM file), for its
        /// self-signed certificate. Default: the system's CAs.
        #[schemars(extend("examples" = ["/etc/corodrill/outer-ca.pem"]))]
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
            Power::Qmp { .. } => "qmp",
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
        let of_toml = |e| InventoryError::of_toml(text, e);
        let inventory: Inventory = toml::from_str(text).map_err(of_toml)?;
        // The same text again, for where each name, key and address is.
        let spans: Spans = toml::from_str(text).map_err(of_toml)?;
        let mut first: BTreeMap<&str, usize> = BTreeMap::new();
        for node in &spans.node {
            let name = node.name.get_ref().as_str();
            if let Some(earlier) = first.insert(name, node.name.span().start) {
                let (line, _) = crate::experiment::spans::line_column(text, earlier);
                return Err(InventoryError::at(
                    node.name.span(),
                    ErrorCode::DuplicateNode,
                    format!("name: node {name:?} is named twice (first on line {line})"),
                ));
            }
            for (key, address) in &node.links {
                let link = key.get_ref();
                if link_number(link).is_none() {
                    return Err(InventoryError::at(
                        key.span(),
                        ErrorCode::BadLinkName,
                        format!("links: node {name:?}: link {link:?} is not ring0 to ring7 (corosync's link numbers)"),
                    ));
                }
                if address.get_ref().parse::<IpAddr>().is_err() {
                    return Err(InventoryError::at(
                        address.span(),
                        ErrorCode::BadAddress,
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
#[error("{message} {}", code.hint())]
pub struct InventoryError {
    code: ErrorCode,
    message: String,
    span: Option<Range<usize>>,
}

impl InventoryError {
    fn at(span: Range<usize>, code: ErrorCode, message: String) -> InventoryError {
        InventoryError {
            code,
            message,
            span: Some(span),
        }
    }

    /// The message, without the code's hint.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    pub fn span(&self) -> Option<Range<usize>> {
        self.span.clone()
    }
}

impl InventoryError {
    /// toml's error about `text`: not TOML at all, or TOML with a wrong
    /// key or value.
    fn of_toml(text: &str, e: toml::de::Error) -> InventoryError {
        let message = e.message().trim().to_owned();
        let code = if text.parse::<toml::Table>().is_err() {
            ErrorCode::TomlSyntax
        } else {
            ErrorCode::of_deserialize(&message)
        };
        InventoryError {
            code,
            message,
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
    let text = std::fs::read_to_string(path).map_err(|e| {
        ErrorCode::CannotRead.tag(format!(
            "{}: cannot read the inventory: {e}",
            path.display()
        ))
    })?;
    Inventory::from_toml(&text).map_err(|e| {
        let (line, column) =
            crate::experiment::spans::line_column(&text, e.span().map_or(0, |s| s.start));
        format!("{}:{line}:{column}: {e}", path.display())
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
                && err.contains("`lab`, `command`, `vagrant`, `libvirt`, `qmp`, `ipmi`, `proxmox`"),
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
