//! The entries of the cargo-fuzz targets in `fuzz/` (one per input the
//! controller reads from outside), and the replay of their seed corpora
//! (`fuzz/corpus/TARGET/`) as unit tests: what fuzzing found stays found.
//! Each takes any bytes and must not panic, whatever they say.

use std::path::Path;

use crate::inventory::{Inventory, InventoryNode, Power};

/// An experiment file: parsed, and when valid, planned on a 3-node lab
/// with two links and described (plan adds the durations it says).
pub fn experiment(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(experiment) = crate::experiment::parse(Path::new("fuzz.toml"), text) else {
        return;
    };
    let inventory = lab_inventory();
    let names: Vec<String> = inventory.nodes.iter().map(|n| n.name.clone()).collect();
    for e in &experiment.expects {
        let _ = e.describe(&names);
    }
    if let Ok(plan) = crate::plan::plan(&experiment, &inventory) {
        let _ = crate::plan::describe(&experiment, &plan);
    }
}

/// An inventory file: parsed, and when valid, written back and read again.
pub fn inventory(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(inventory) = Inventory::from_toml(text) {
        for node in &inventory.nodes {
            let _ = node.link_addresses();
            let _ = crate::cluster::install::CommandPath::parse(&node.connect);
        }
        let _ = Inventory::from_toml(&inventory.to_toml());
    }
}

/// Text as corosync's tools print it, and as corosync.conf.
pub fn corosync(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(Some(status)) = crate::cluster::corosync::parse_quorum_status(&text) {
        let _ = status.member_names();
    }
    if let Ok(links) = crate::cluster::corosync::parse_link_status(&text) {
        for l in &links {
            let _ = (l.connected_peers(), l.remote_peers());
        }
    }
    let _ = crate::cluster::corosync::parse_corosync_conf(&text);
}

/// `crm_mon --output-as=xml`, as the lab and the agent's watches read it.
pub fn crm_mon(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(view) = corodrill_status::crm_mon::parse(&text) {
        let _ = (view.online(), view.active_on());
    }
}

/// `ha-manager status`, as the agent's watches read it.
pub fn ha_manager(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(status) = corodrill_status::ha_manager::parse_ha_status(&text) {
        for service in status.services.values() {
            let _ = corodrill_status::ha_manager::active_on(service);
        }
    }
}

fn lab_inventory() -> Inventory {
    Inventory {
        name: "fuzz".into(),
        nodes: (1..=3)
            .map(|i| InventoryNode {
                name: format!("pve{i}"),
                connect: "true".into(),
                links: (0..2)
                    .map(|l| (format!("ring{l}"), format!("198.18.{l}.{i}")))
                    .collect(),
                power: Power::Lab { lab: "fuzz".into() },
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    /// Every file of `fuzz/corpus/TARGET/`, at least one.
    fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/corpus")
            .join(target);
        let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| {
                let path = entry.expect("a corpus entry").path();
                let data =
                    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                (path, data)
            })
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{} is empty", dir.display());
        files
    }

    /// Runs `entry` on every file; a panic names the file.
    fn replay(target: &str, entry: fn(&[u8])) {
        for (path, data) in corpus(target) {
            if std::panic::catch_unwind(|| entry(&data)).is_err() {
                panic!("fuzz/corpus/{target}/{}: panicked", path.display());
            }
        }
    }

    #[test]
    fn experiment_corpus_replays() {
        replay("experiment", super::experiment);
    }

    #[test]
    fn inventory_corpus_replays() {
        replay("inventory", super::inventory);
    }

    #[test]
    fn corosync_corpus_replays() {
        replay("corosync", super::corosync);
    }

    #[test]
    fn crm_mon_corpus_replays() {
        replay("crm_mon", super::crm_mon);
    }

    #[test]
    fn ha_manager_corpus_replays() {
        replay("ha_manager", super::ha_manager);
    }
}
