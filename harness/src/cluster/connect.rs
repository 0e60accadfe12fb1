//! Reaching the whole cluster at once: every node's agent connected in
//! parallel, and the cluster's quorum and timing model read from their
//! hellos. Used by `run` and by the commands outside a drill alike.

use std::time::Duration;

use crate::cluster::agent::{AgentConn, AgentError};
use crate::inventory::Inventory;

/// Every agent of the inventory, connected in parallel; failures by node.
pub fn connect_all(inventory: &Inventory, timeout: Duration) -> (Vec<AgentConn>, Vec<String>) {
    let results: Vec<Result<AgentConn, AgentError>> = std::thread::scope(|s| {
        let handles: Vec<_> = inventory
            .nodes
            .iter()
            .map(|n| s.spawn(move || AgentConn::connect(&n.name, &n.connect, timeout)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(AgentError::Gone {
                        node: "?".into(),
                        stderr: String::new(),
                    })
                })
            })
            .collect()
    });
    let mut agents = Vec::new();
    let mut failures = Vec::new();
    for r in results {
        match r {
            Ok(a) => agents.push(a),
            Err(e) => failures.push(e.to_string()),
        }
    }
    (agents, failures)
}

/// The nodes (id, name) and corosync's quorum and totem settings, as the
/// agents' hellos report them (the first node's view of the settings).
pub fn cluster_config(
    agents: &[AgentConn],
) -> (
    Vec<(u32, String)>,
    std::collections::BTreeMap<String, String>,
) {
    let nodes = agents
        .iter()
        .enumerate()
        .map(|(i, a)| (a.hello.node_id.unwrap_or(i as u32 + 1), a.node.clone()))
        .collect();
    let cmap = agents
        .first()
        .map(|a| a.hello.quorum_config.clone())
        .unwrap_or_default();
    (nodes, cmap)
}

/// The quorum and timing model of the cluster the agents are on, with the
/// operator's "what if" overrides (`--model-override`) on top.
pub fn cluster_model(
    agents: &[AgentConn],
    inventory: &Inventory,
    overrides: &std::collections::BTreeMap<String, String>,
) -> crate::model::predict::Model {
    let (nodes, mut cmap) = cluster_config(agents);
    cmap.extend(overrides.clone());
    crate::model::predict::Model {
        config: crate::model::oracle::QuorumConfig::from_cmap(nodes, &cmap),
        timing: crate::model::oracle::Timing::from_runtime(&cmap).unwrap_or_else(|| {
            crate::model::oracle::Timing::from_totem(&Default::default(), inventory.nodes.len())
        }),
        links: inventory.links(),
    }
}

/// What the cluster runs, as its agents said hello: what the history keeps
/// beside each run, to say what changed between two runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterFacts {
    /// The nodes, by inventory name, in the inventory's order.
    pub nodes: Vec<String>,
    /// `corosync -v` by node (nodes that did not say are left out).
    pub corosync_versions: std::collections::BTreeMap<String, String>,
    /// The agent's version by node.
    pub agent_versions: std::collections::BTreeMap<String, String>,
    /// corosync's totem and quorum settings as the first node's cmap has
    /// them at run time (`totem.token`, `two_node`, ...).
    pub settings: std::collections::BTreeMap<String, String>,
    /// The SHA-256 of each node's corosync.conf (nodes whose agent could
    /// not read it are left out).
    pub corosync_conf_sha256: std::collections::BTreeMap<String, String>,
}

/// The facts the agents' hellos carry.
pub fn cluster_facts(agents: &[AgentConn]) -> ClusterFacts {
    let (_, settings) = cluster_config(agents);
    let by_node = |f: &dyn Fn(&AgentConn) -> Option<String>| {
        agents
            .iter()
            .filter_map(|a| Some((a.node.clone(), f(a)?)))
            .collect()
    };
    ClusterFacts {
        nodes: agents.iter().map(|a| a.node.clone()).collect(),
        corosync_versions: by_node(&|a| a.hello.capabilities.corosync_version.clone()),
        agent_versions: by_node(&|a| Some(a.hello.agent_version.clone())),
        settings,
        corosync_conf_sha256: by_node(&|a| a.hello.corosync_conf_sha256.clone()),
    }
}
