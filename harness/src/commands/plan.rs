//! `corodrill plan`: what each drill would do on this cluster and what the
//! model predicts, without touching a node.

use std::path::Path;
use std::time::Duration;

use crate::cluster::connect::{cluster_config, connect_all};

use super::inventory_or_report;

/// `corodrill plan`: the quorum model's answers for this cluster, from its
/// live configuration (through the agents) or from a corosync.conf.
pub fn plan(
    inventory_path: Option<&Path>,
    conf_path: Option<&Path>,
    experiments: &[std::path::PathBuf],
) -> u8 {
    use crate::model::oracle::{plan_table, QuorumConfig};
    if !experiments.is_empty() && inventory_path.is_none() {
        eprintln!("corodrill plan: experiments are planned against an inventory: give --inventory");
        return 2;
    }
    let drills = match crate::experiment::load(experiments) {
        Ok(d) => d,
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            return 2;
        }
    };
    let mut inventory = None;
    let (name, nodes, cmap, links, timing) = match (inventory_path, conf_path) {
        (_, Some(conf)) => {
            let text = match std::fs::read_to_string(conf) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("{}: {e}", conf.display());
                    return 2;
                }
            };
            match crate::cluster::corosync::parse_corosync_conf(&text) {
                Ok(s) => {
                    let timing = Some(crate::model::oracle::Timing::from_totem(
                        &s.totem,
                        s.nodes.len(),
                    ));
                    (
                        conf.display().to_string(),
                        s.nodes,
                        s.quorum,
                        s.links,
                        timing,
                    )
                }
                Err(e) => {
                    eprintln!("{}: {e}", conf.display());
                    return 2;
                }
            }
        }
        (Some(inv), None) => {
            let inv = match inventory_or_report(inv) {
                Ok(i) => i,
                Err(code) => return code,
            };
            let mut planned = Vec::new();
            for e in &drills {
                match crate::plan::plan(e, &inv) {
                    Ok(p) => planned.push(p),
                    Err(errors) => {
                        for why in errors {
                            eprintln!("{}: {why}", e.file.display());
                        }
                        return 2;
                    }
                }
            }
            let (agents, failures) = connect_all(&inv, Duration::from_secs(20));
            if !failures.is_empty() {
                for f in failures {
                    eprintln!("{f}");
                }
                return 3;
            }
            let (nodes, cmap) = cluster_config(&agents);
            let links = inv.links();
            let timing = crate::model::oracle::Timing::from_runtime(&cmap);
            let name = inv.name.clone();
            inventory = Some((
                planned,
                agents.iter().any(|a| !a.hello.ha_services.is_empty()),
            ));
            (name, nodes, cmap, links, timing)
        }
        (None, None) => {
            eprintln!("corodrill plan: give --inventory or --from");
            return 2;
        }
    };
    let cfg = QuorumConfig::from_cmap(nodes, &cmap);
    let n = cfg.nodes.len();
    println!(
        "{name}: {n} nodes, {links} link(s){}{}{}",
        if cfg.qdevice.is_some() {
            ", QDevice"
        } else {
            ""
        },
        if cfg.two_node { ", two_node" } else { "" },
        if cfg.auto_tie_breaker.is_some() {
            ", auto_tie_breaker"
        } else {
            ""
        }
    );
    let expected = cfg.expected();
    println!("expected votes {expected}, quorum {}", cfg.quorum(expected));
    let (losses, splits) = plan_table(&cfg);
    let survivable = losses.iter().take_while(|(_, ok)| *ok).count();
    println!("the cluster survives losing {survivable} of {n} node(s):");
    for (k, ok) in &losses {
        println!(
            "  lose {k}: the other {} {}",
            n - k,
            if *ok { "keep quorum" } else { "lose quorum" }
        );
    }
    println!("partitions (every side reaching the QDevice, if any):");
    for s in &splits {
        let verdict = match (s.quorate[0], s.quorate[1]) {
            (true, true) => "BOTH quorate: split-brain unless fencing decides".to_string(),
            (false, false) => "neither side is quorate: the whole cluster freezes".to_string(),
            (true, false) => format!("{} keep(s) quorum", s.sides[0].join(", ")),
            (false, true) => format!("{} keep(s) quorum", s.sides[1].join(", ")),
        };
        println!(
            "  {} | {}: {verdict}",
            s.sides[0].join(", "),
            s.sides[1].join(", ")
        );
    }
    if let Some(t) = timing {
        println!(
            "timing: a node cut off, killed or paused is dropped, and a cut-off minority loses quorum, \
             about {:.2}s later (token {} ms + consensus {} ms); a healed node rejoins within about that too",
            t.detection().as_secs_f64(),
            t.token_ms,
            t.consensus_ms
        );
    }
    if n == 2 && cfg.qdevice.is_none() {
        println!(
            "warning: two nodes without a QDevice{}",
            if cfg.two_node {
                " (two_node: both sides stay quorate on a cut)"
            } else {
                ": a cut freezes both"
            }
        );
    }
    if links < 2 {
        println!("warning: a single corosync link: add a second on a separate network");
    }
    let Some(timing) = timing else {
        return 0;
    };
    println!("Proxmox VE HA fencing (nodes with active HA services):");
    let model = crate::model::predict::Model {
        config: cfg,
        timing,
        links,
    };
    for note in crate::model::fencing::cluster_notes(&model) {
        println!("  {note}");
    }
    // Each drill against this cluster's model: the timeline, what each
    // node should see after each change, where resources should be, and
    // who would be fenced.
    let (planned, has_ha) = inventory.unwrap_or_default();
    for (e, p) in drills.iter().zip(&planned) {
        println!("\n{}", crate::plan::describe(e, p));
        println!(
            "  predicted, settled (window {:.1}s after a loss, {:.1}s after a heal):",
            model.window().as_secs_f64(),
            model.merge_window().as_secs_f64()
        );
        for (t, what, views) in crate::model::predict::over_time(e, p, &model) {
            let said = match views {
                Err(why) => format!("the model cannot say: {why}"),
                Ok(views) => views
                    .iter()
                    .map(|(node, v)| match v {
                        None => format!("{node} ?"),
                        Some(v) if v.members.is_empty() => format!("{node} down"),
                        Some(v) if v.quorate => format!("{node} quorate"),
                        Some(_) => format!("{node} NOT quorate"),
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            };
            println!("  {:>7.1}s after {what}: {said}", t.as_secs_f64());
        }
        println!(
            "{}",
            crate::model::fencing::foresight_text(
                e,
                p,
                &model,
                if has_ha {
                    "this cluster has HA services"
                } else {
                    "this cluster has no HA services: as if it had"
                }
            )
        );
    }
    0
}
