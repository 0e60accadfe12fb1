//! `partition`, `isolate` and one-way cuts: corosync traffic to and/or from
//! some peers is dropped by chains of corodrill's owned nftables table.
//!
//! Each cut has its own sets and chains, so that faults overlap and heal
//! independently. The peers are set elements with a kernel-side `timeout`
//! a little past the lease, renewed with it: if the agent hangs rather than
//! dies, the kernel heals the cut by itself (the last dead-man).

use std::net::IpAddr;
use std::time::Duration;

use corodrill_protocol::Direction;
use serde::{Deserialize, Serialize};

use super::{family, Ctx, Undo, COROSYNC_PORTS};
use crate::nft::{NftSession, TABLE};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NftSet {
    pub name: String,
    pub elements: Vec<IpAddr>,
}

/// corodrill's objects for one fault in the owned table.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NftObjects {
    pub chains: Vec<String>,
    pub sets: Vec<NftSet>,
}

/// One set per address family present among `peers`.
pub fn peer_sets(ctx: &mut Ctx, prefix: &str, peers: &[IpAddr]) -> Vec<NftSet> {
    let mut sets = Vec::new();
    for v6 in [false, true] {
        let elements: Vec<IpAddr> = peers
            .iter()
            .copied()
            .filter(|p| p.is_ipv6() == v6)
            .collect();
        if !elements.is_empty() {
            sets.push(NftSet {
                name: ctx.object_name(prefix),
                elements,
            });
        }
    }
    sets
}

/// The nft commands that create the sets, with elements that expire after `deadman`.
pub fn create_sets(sets: &[NftSet], deadman: Duration) -> String {
    sets.iter()
        .map(|s| format!("{}; {}", create_empty_set(s), add_elements(s, deadman)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The set without its elements: a rule matching it matches nothing yet.
fn create_empty_set(set: &NftSet) -> String {
    let (_, kind) = family(&set.elements[0]);
    format!(
        "add set inet {TABLE} {name} {{ type {kind}; flags timeout; }}",
        name = set.name
    )
}

fn add_elements(set: &NftSet, deadman: Duration) -> String {
    let secs = deadman.as_secs().max(1);
    let elements: Vec<String> = set
        .elements
        .iter()
        .map(|e| format!("{e} timeout {secs}s"))
        .collect();
    format!(
        "add element inet {TABLE} {} {{ {} }}",
        set.name,
        elements.join(", ")
    )
}

/// A base chain on `hook` that applies `verdict` to corosync packets
/// from (input) or to (output) the set's peers.
pub fn chain_with_rules(chain: &str, hook: &str, sets: &[NftSet], verdict: &str) -> String {
    let mut cmds = vec![format!(
        "add chain inet {TABLE} {chain} {{ type filter hook {hook} priority -10; policy accept; }}"
    )];
    let field = if hook == "input" { "saddr" } else { "daddr" };
    for s in sets {
        let (proto, _) = family(&s.elements[0]);
        cmds.push(format!(
            "add rule inet {TABLE} {chain} {proto} {field} @{set} udp dport {COROSYNC_PORTS} {verdict}",
            set = s.name
        ));
    }
    cmds.join("; ")
}

/// Prepared, then armed: the sets (empty) and the chains that drop what they
/// hold go in before the fault is journaled and its instant waited for, so
/// that at the instant only the peers are added to the sets, the smallest
/// transaction nft makes. In a TCG guest the whole cut took 85-125 ms to
/// commit, and as variable, which was most of the skew between nodes.
/// Empty sets drop nothing, and like the owned table they go with nft's
/// process; a refused journal or a failed arming removes them again.
pub fn apply(
    ctx: &mut Ctx,
    peers: &[IpAddr],
    direction: Direction,
    journal: &mut dyn FnMut(&Undo) -> Result<(), String>,
) -> Result<Undo, String> {
    if peers.is_empty() {
        return Err("a cut needs at least one peer address".into());
    }
    let sets = peer_sets(ctx, "cut", peers);
    let base = ctx.object_name("cut");
    let mut objects = NftObjects {
        chains: Vec::new(),
        sets: sets.clone(),
    };
    let mut prepare: Vec<String> = sets.iter().map(create_empty_set).collect();
    if matches!(direction, Direction::Both | Direction::Inbound) {
        let chain = format!("{base}_in");
        prepare.push(chain_with_rules(&chain, "input", &sets, "drop"));
        objects.chains.push(chain);
    }
    if matches!(direction, Direction::Both | Direction::Outbound) {
        let chain = format!("{base}_out");
        prepare.push(chain_with_rules(&chain, "output", &sets, "drop"));
        objects.chains.push(chain);
    }
    let arm: Vec<String> = sets.iter().map(|s| add_elements(s, ctx.deadman)).collect();
    let undo = Undo::Nft(objects.clone());
    ctx.nft()?
        .run(&prepare.join("; "))
        .map_err(|e| e.to_string())?;
    // From here the objects are in the table: a failure removes them.
    ctx.nft_objects.push(objects.clone());
    let armed = journal(&undo).and_then(|()| {
        ctx.nft()?
            .run_committed(&arm.join("; "))
            .map_err(|e| e.to_string())
    });
    match armed {
        Ok(committed) => {
            ctx.took_effect_ns = committed;
            Ok(undo)
        }
        Err(e) => Err(match rollback(ctx, &objects) {
            Ok(_) => e,
            Err(left) => format!("{e}; and removing its chains: {left}"),
        }),
    }
}

/// Pushes the kernel-side expiry of the peers out to `deadman` from now, in
/// one transaction (flush and re-add: packets never see an empty set).
pub fn renew(ctx: &mut Ctx, objects: &NftObjects) -> Result<(), String> {
    let deadman = ctx.deadman;
    let Some(nft) = ctx.nft.as_mut() else {
        return Err("the nftables table is gone (its nft process died): the cut has healed".into());
    };
    let cmds: Vec<String> = objects
        .sets
        .iter()
        .map(|s| {
            format!(
                "flush set inet {TABLE} {}; {}",
                s.name,
                add_elements(s, deadman)
            )
        })
        .collect();
    if cmds.is_empty() {
        return Ok(());
    }
    nft.run(&cmds.join("; ")).map_err(|e| e.to_string())
}

pub fn rollback(ctx: &mut Ctx, objects: &NftObjects) -> Result<String, String> {
    let ours = ctx.nft_objects.contains(objects);
    ctx.nft_objects.retain(|o| o != objects);
    if let Some(nft) = ctx.nft.as_mut().filter(|_| ours) {
        if ctx.nft_objects.is_empty() {
            // The last fault in the table: one atomic delete of the table.
            nft.delete_table().map_err(|e| e.to_string())?;
        } else {
            let mut cmds: Vec<String> = objects
                .chains
                .iter()
                .map(|c| format!("flush chain inet {TABLE} {c}; delete chain inet {TABLE} {c}"))
                .collect();
            cmds.extend(
                objects
                    .sets
                    .iter()
                    .map(|s| format!("delete set inet {TABLE} {}", s.name)),
            );
            nft.run(&cmds.join("; ")).map_err(|e| e.to_string())?;
        }
    }
    check(objects)
}

/// Reads the table back as any process sees it.
pub fn check(objects: &NftObjects) -> Result<String, String> {
    match NftSession::list() {
        None => Ok(format!("nftables table {TABLE} is gone")),
        Some(text) => {
            let left: Vec<&str> = objects
                .chains
                .iter()
                .map(String::as_str)
                .chain(objects.sets.iter().map(|s| s.name.as_str()))
                .filter(|name| text.split_whitespace().any(|w| w == *name))
                .collect();
            if left.is_empty() {
                Ok(format!("no chain or set of this fault in table {TABLE}"))
            } else {
                Err(format!("left in table {TABLE}: {}", left.join(", ")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_name_peers_ports_and_expiry() {
        let sets = vec![NftSet {
            name: "cut1_1".into(),
            elements: vec!["198.18.0.2".parse().unwrap(), "198.18.0.3".parse().unwrap()],
        }];
        let create = create_sets(&sets, Duration::from_millis(12_500));
        assert_eq!(
            create,
            "add set inet corodrill cut1_1 { type ipv4_addr; flags timeout; }; \
             add element inet corodrill cut1_1 { 198.18.0.2 timeout 12s, 198.18.0.3 timeout 12s }"
        );
        let chain = chain_with_rules("cut1_2_in", "input", &sets, "drop");
        assert!(
            chain.contains("type filter hook input priority -10"),
            "{chain}"
        );
        assert!(
            chain.contains("ip saddr @cut1_1 udp dport 5405-5412 drop"),
            "{chain}"
        );
        let out = chain_with_rules("cut1_2_out", "output", &sets, "drop");
        assert!(out.contains("ip daddr @cut1_1"), "{out}");
    }
}
