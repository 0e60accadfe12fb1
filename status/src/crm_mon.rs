//! Pacemaker's `crm_mon --one-shot --inactive --output-as=xml`: one node's
//! view of the cluster (its DC, quorum, which nodes are online, where each
//! resource runs).
//!
//! **How resources are named** (the one rule, for the lab and the agent
//! alike): by the names an operator writes in a drill, which are the ids of
//! the CIB's configuration.
//! - A primitive by its id. Instances of a clone are one resource: crm_mon
//!   prints an anonymous clone's instances all under the primitive's id and a
//!   globally unique clone's as `id:N`; the `:N` is dropped, and the resource
//!   is active on every node where one of its instances is.
//! - A clone, group or bundle by its own id too, active wherever one of the
//!   resources it holds is (`web-clone` where `web` runs, a group where its
//!   members run).

use std::collections::BTreeMap;

use roxmltree::Node as XmlNode;

/// crm_mon's output that is not a view of the cluster.
#[derive(Debug, thiserror::Error)]
pub enum CrmMonError {
    #[error("crm_mon's XML: {0}")]
    Xml(#[from] roxmltree::Error),
    /// crm_mon could not read the cluster (Pacemaker not running on the
    /// node, a CIB it could not read): it then prints only a status and
    /// its errors, sometimes with code 0.
    #[error("crm_mon printed no cluster status: {0}")]
    NoStatus(String),
}

/// One node's view of the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterView {
    /// The Designated Controller, if this node knows one.
    pub dc: Option<String>,
    /// Whether this node's partition has quorum (as the DC reports it).
    pub quorate: bool,
    /// Every node Pacemaker knows, in crm_mon's order.
    pub nodes: Vec<Node>,
    /// Every resource, by its name (see the module's rule), in crm_mon's
    /// order; a clone's instances merged into one.
    pub resources: Vec<Resource>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub online: bool,
}

/// Where a resource is, in one node's view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// The primitive's id, without a clone instance's `:N`.
    pub id: String,
    /// `class:provider:type`, e.g. `ocf:pacemaker:Dummy`.
    pub agent: String,
    /// `Started`, `Stopped`, `Promoted`, ...: an active instance's role if
    /// there is one, else the first instance's.
    pub role: String,
    /// Whether any instance is active.
    pub active: bool,
    /// Whether any instance has failed.
    pub failed: bool,
    /// The nodes where an instance is active, sorted (more than one: a
    /// clone, or a primitive active twice).
    pub nodes: Vec<String>,
    /// The clones, groups and bundles that hold it, innermost first, by id
    /// (without `:N`).
    pub within: Vec<String>,
}

impl ClusterView {
    /// The nodes that are online, in crm_mon's order.
    pub fn online(&self) -> Vec<&str> {
        self.nodes
            .iter()
            .filter(|n| n.online)
            .map(|n| n.name.as_str())
            .collect()
    }

    pub fn resource(&self, id: &str) -> Option<&Resource> {
        self.resources.iter().find(|r| r.id == id)
    }

    /// The one node a primitive is started on, if it is started, not
    /// failed, on exactly one.
    pub fn started_on(&self, id: &str) -> Option<&str> {
        self.resource(id)
            .filter(|r| r.active && !r.failed && r.role == "Started" && r.nodes.len() == 1)
            .map(|r| r.nodes[0].as_str())
    }

    /// Every name an operator may give (primitives, and the clones, groups
    /// and bundles holding them) and the nodes where it is active, sorted.
    pub fn active_on(&self) -> BTreeMap<String, Vec<String>> {
        let mut view: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in &self.resources {
            for name in std::iter::once(&r.id).chain(&r.within) {
                let nodes = view.entry(name.clone()).or_default();
                nodes.extend(r.nodes.iter().cloned());
            }
        }
        for nodes in view.values_mut() {
            nodes.sort();
            nodes.dedup();
        }
        view
    }
}

/// A resource's name from crm_mon's id: a clone instance's `:N` dropped.
/// CIB ids are XML NCNames, which hold no `:`, so a `:` can only start the
/// instance number.
pub fn resource_name(id: &str) -> &str {
    match id.rsplit_once(':') {
        Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => id,
    }
}

/// Reads `crm_mon --one-shot --inactive --output-as=xml`.
///
/// Only `<current_dc>` in the summary, the `<node>` elements directly under
/// `<nodes>`, and each `<resource>` under `<resources>` (at any depth:
/// clones, groups and bundles hold theirs) with its `<node>` children are
/// read. `<node>` elements elsewhere (node attributes, node history) are
/// not members and are skipped.
pub fn parse(xml: &str) -> Result<ClusterView, CrmMonError> {
    let doc = roxmltree::Document::parse(xml)?;
    let root = doc.root_element();
    let Some(summary) = child(root, "summary") else {
        return Err(CrmMonError::NoStatus(why_no_status(root)));
    };
    let mut view = ClusterView::default();
    if let Some(dc) = child(summary, "current_dc") {
        if dc.attribute("present") == Some("true") {
            view.dc = dc.attribute("name").map(str::to_owned);
        }
        view.quorate = dc.attribute("with_quorum") == Some("true");
    }
    if let Some(nodes) = child(root, "nodes") {
        view.nodes = children(nodes, "node")
            .filter_map(|n| {
                Some(Node {
                    name: n.attribute("name")?.to_owned(),
                    online: n.attribute("online") == Some("true"),
                })
            })
            .collect();
    }
    if let Some(resources) = child(root, "resources") {
        for r in resources
            .descendants()
            .filter(|n| n.has_tag_name("resource"))
        {
            if let Some(id) = r.attribute("id") {
                add_instance(&mut view.resources, resource_name(id), r, resources);
            }
        }
    }
    for r in &mut view.resources {
        r.nodes.sort();
        r.nodes.dedup();
    }
    Ok(view)
}

/// Adds one `<resource>` of crm_mon's to the resource it is an instance of.
fn add_instance(resources: &mut Vec<Resource>, id: &str, r: XmlNode, top: XmlNode) {
    let active = r.attribute("active") == Some("true");
    let failed = r.attribute("failed") == Some("true");
    let role = r.attribute("role").unwrap_or_default();
    let index = match resources.iter().position(|e| e.id == id) {
        Some(i) => i,
        None => {
            resources.push(Resource {
                id: id.to_owned(),
                agent: r.attribute("resource_agent").unwrap_or_default().to_owned(),
                role: role.to_owned(),
                active: false,
                failed: false,
                nodes: Vec::new(),
                within: r
                    .ancestors()
                    .take_while(|a| *a != top)
                    .filter(|a| {
                        ["clone", "group", "bundle"]
                            .iter()
                            .any(|t| a.has_tag_name(*t))
                    })
                    .filter_map(|a| a.attribute("id"))
                    .map(|c| resource_name(c).to_owned())
                    .collect(),
            });
            resources.len() - 1
        }
    };
    let entry = &mut resources[index];
    if active {
        if !entry.active {
            entry.role = role.to_owned();
        }
        entry.active = true;
        entry.nodes.extend(
            children(r, "node")
                .filter_map(|n| n.attribute("name"))
                .map(str::to_owned),
        );
    }
    entry.failed |= failed;
}

/// What crm_mon said instead of a status: its status message and errors.
fn why_no_status(root: XmlNode) -> String {
    let Some(status) = child(root, "status") else {
        return format!("no <summary> in <{}>", root.tag_name().name());
    };
    let mut said = format!(
        "{} (code {})",
        status.attribute("message").unwrap_or("no message"),
        status.attribute("code").unwrap_or("?")
    );
    for e in status.descendants().filter(|n| n.has_tag_name("error")) {
        if let Some(text) = e.text() {
            said.push_str("; ");
            said.push_str(text.trim());
        }
    }
    said
}

fn child<'a, 'i>(node: XmlNode<'a, 'i>, name: &str) -> Option<XmlNode<'a, 'i>> {
    node.children().find(|n| n.has_tag_name(name))
}

fn children<'a, 'i: 'a>(
    node: XmlNode<'a, 'i>,
    name: &'a str,
) -> impl Iterator<Item = XmlNode<'a, 'i>> + 'a {
    node.children().filter(move |n| n.has_tag_name(name))
}

#[cfg(test)]
mod tests {
    //! The samples in `tests/crm_mon/` are Pacemaker 2.1.5's own output:
    //! `crm_mon --one-shot --inactive --output-as=xml` with `CIB_file` set
    //! to `cib.xml` (there) after `crm_simulate -x cib.xml -u pve1 -u pve2
    //! -u pve3 -q true -S -O`, then `-d pve3`, a `dc-uuid`, and
    //! `-i svc_monitor_10000@pve1=7`; `not-connected.xml` is crm_mon on a
    //! machine where Pacemaker is not running.
    use super::*;

    const ALL_UP: &str = include_str!("../tests/crm_mon/all-up-no-dc.xml");
    const PVE3_DOWN: &str = include_str!("../tests/crm_mon/pve3-down-svc-failed.xml");
    const NO_NODE_SEEN: &str = include_str!("../tests/crm_mon/no-node-seen.xml");
    const NOT_CONNECTED: &str = include_str!("../tests/crm_mon/not-connected.xml");
    const CIB_INVALID: &str = include_str!("../tests/crm_mon/cib-invalid.xml");

    fn on(view: &BTreeMap<String, Vec<String>>, name: &str) -> Vec<String> {
        view.get(name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not in {view:?}"))
    }

    #[test]
    fn every_node_up_and_where_each_resource_runs() {
        let v = parse(ALL_UP).unwrap();
        assert_eq!(v.dc, None);
        assert!(!v.quorate);
        assert_eq!(v.online(), ["pve1", "pve2", "pve3"]);
        assert_eq!(v.started_on("svc"), Some("pve1"));
        assert_eq!(v.resource("svc").unwrap().agent, "ocf:pacemaker:Dummy");
        assert_eq!(v.started_on("idle"), None);
        assert!(!v.resource("idle").unwrap().active);
        let ids: Vec<&str> = v.resources.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["svc", "idle", "web", "ip", "g1", "g2", "db"]);
        // An anonymous clone: three instances, one resource on all nodes.
        let web = v.resource("web").unwrap();
        assert_eq!(web.nodes, ["pve1", "pve2", "pve3"]);
        assert_eq!(web.within, ["web-clone"]);
        assert_eq!(v.started_on("web"), None, "a clone is not on one node");
        // A unique clone's ip:0 and ip:1 are one resource, "ip".
        assert_eq!(v.resource("ip").unwrap().nodes, ["pve2", "pve3"]);
        assert!(v.resource("ip:0").is_none());
        assert_eq!(v.resource("db").unwrap().role, "Unpromoted");

        let active = v.active_on();
        assert_eq!(on(&active, "svc"), ["pve1"]);
        assert!(on(&active, "idle").is_empty());
        assert_eq!(on(&active, "web"), ["pve1", "pve2", "pve3"]);
        assert_eq!(on(&active, "web-clone"), ["pve1", "pve2", "pve3"]);
        assert_eq!(on(&active, "ip"), ["pve2", "pve3"]);
        assert_eq!(on(&active, "ip-clone"), ["pve2", "pve3"]);
        assert_eq!(on(&active, "grp"), ["pve1"]);
        assert!(!active.contains_key("ip:0"));
    }

    #[test]
    fn a_node_down_a_dc_and_a_failed_resource() {
        let v = parse(PVE3_DOWN).unwrap();
        assert_eq!(v.dc.as_deref(), Some("pve1"));
        assert!(v.quorate);
        assert_eq!(
            v.nodes,
            [
                Node {
                    name: "pve1".into(),
                    online: true
                },
                Node {
                    name: "pve2".into(),
                    online: true
                },
                Node {
                    name: "pve3".into(),
                    online: false
                },
            ]
        );
        assert_eq!(v.online(), ["pve1", "pve2"]);
        let svc = v.resource("svc").unwrap();
        assert!(svc.active && svc.failed);
        assert_eq!(svc.nodes, ["pve1"]);
        assert_eq!(v.started_on("svc"), None, "failed is not started");
        let active = v.active_on();
        assert_eq!(
            on(&active, "svc"),
            ["pve1"],
            "failed but still active there"
        );
        assert_eq!(on(&active, "web-clone"), ["pve1", "pve2"]);
        assert_eq!(on(&active, "ip"), ["pve1", "pve2"]);
        assert_eq!(on(&active, "grp"), ["pve2"]);
        // <node> elements of node_history are not members.
        assert_eq!(v.nodes.len(), 3);
    }

    #[test]
    fn nodes_configured_but_none_seen() {
        let v = parse(NO_NODE_SEEN).unwrap();
        assert!(v.online().is_empty());
        assert_eq!(v.nodes.len(), 3);
        assert!(v.active_on().values().all(Vec::is_empty));
    }

    #[test]
    fn no_status_is_an_error_that_says_why() {
        let e = parse(NOT_CONNECTED).unwrap_err().to_string();
        assert!(e.contains("Not connected (code 102)"), "{e}");
        assert!(e.contains("Connection refused"), "{e}");
        // Code 0 and still no status.
        let e = parse(CIB_INVALID).unwrap_err().to_string();
        assert!(e.contains("Could not connect to the CIB"), "{e}");
        assert!(parse("<pacemaker-result/>").is_err());
        assert!(matches!(parse("not xml"), Err(CrmMonError::Xml(_))));
        assert!(parse("").is_err());
        assert!(parse("<pacemaker-result><summary").is_err());
    }

    #[test]
    fn escapes_in_attributes() {
        let xml = r#"<pacemaker-result><summary><current_dc present="true" name="a&amp;b&#x43;" with_quorum="true"/></summary></pacemaker-result>"#;
        assert_eq!(parse(xml).unwrap().dc.as_deref(), Some("a&bC"));
    }

    #[test]
    fn instance_numbers_dropped_only_there() {
        assert_eq!(resource_name("ip:0"), "ip");
        assert_eq!(resource_name("ip:12"), "ip");
        assert_eq!(resource_name("ip"), "ip");
        assert_eq!(resource_name("ip:"), "ip:");
        assert_eq!(resource_name("ip:x"), "ip:x");
    }
}
