//! Operator commands on an inventory outside a drill: `status` (each node's
//! view, live) and `heal` (roll back whatever corodrill left anywhere).

use std::path::Path;
use std::time::{Duration, Instant};

use corodrill_protocol::{EventBody, Op, Outcome};

use crate::cluster::agent::AgentConn;
use crate::cluster::connect::{cluster_config, cluster_model, connect_all};
use crate::inventory::Inventory;

/// The inventory, or its error printed and exit status 2.
fn inventory_or_report(path: &Path) -> Result<Inventory, u8> {
    crate::inventory::load(path).map_err(|e| {
        eprintln!("{e}");
        2
    })
}

/// `corodrill install-agent`: the agent binary onto every node, each
/// checked; exit 0 when every node has it, 2 for bad input, 3 otherwise.
pub fn install_agent(inventory_path: &Path, agent: Option<&Path>) -> u8 {
    let inventory = match inventory_or_report(inventory_path) {
        Ok(i) => i,
        Err(code) => return code,
    };
    let Some(binary) = agent
        .map(Path::to_path_buf)
        .or_else(crate::cluster::agent::bundled_agent)
    else {
        eprintln!(
            "no corodrill-agent beside corodrill: say which binary to install with --agent PATH"
        );
        return 2;
    };
    if !binary.is_file() {
        eprintln!("--agent {}: no such file", binary.display());
        return 2;
    }
    let mut code = 0;
    for result in crate::cluster::install::install_all(&inventory, &binary, Duration::from_secs(60))
    {
        match result {
            Ok(i) => println!(
                "{}: {} installed at {} ({:.1}s), answering",
                i.node,
                i.version,
                i.path,
                i.took.as_secs_f64()
            ),
            Err(e) => {
                eprintln!("{e}");
                code = 3;
            }
        }
    }
    code
}

/// `corodrill heal`: the operator's red button. On each node, an agent
/// starts; if no other holds the node it rolls back what its journal holds
/// (a previous agent's faults); if one does (a drill running now), it makes
/// that agent roll back and exit, and takes over. Says which drill's faults
/// it ended. Safe at any time.
pub fn heal(inventory_path: &Path) -> u8 {
    let inventory = match inventory_or_report(inventory_path) {
        Ok(i) => i,
        Err(code) => return code,
    };
    let (mut agents, failures) = connect_all(&inventory, Duration::from_secs(20));
    let mut code = 0;
    for f in &failures {
        eprintln!("{f}");
        code = 3;
    }
    // In parallel: taking over waits for the other agent to let go.
    let results: Vec<(String, Vec<String>, bool)> = std::thread::scope(|s| {
        let handles: Vec<_> = agents
            .iter_mut()
            .map(|a| s.spawn(move || heal_one(a)))
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let mut acted = false;
    for (node, lines, clean) in results {
        if !clean {
            code = 3;
        }
        if lines.is_empty() {
            println!("{node}: nothing to roll back");
        }
        acted |= !lines.is_empty();
        for l in lines {
            println!("{node}: {l}");
        }
    }
    if !failures.is_empty() || agents.is_empty() {
        return code;
    }
    // Healed is not whole: read every node's view, live, until corosync has
    // had its time to show what the faults just removed did.
    let model = cluster_model(&agents, &inventory, &std::collections::BTreeMap::new());
    let settle = if acted {
        model.window()
    } else {
        Duration::ZERO
    };
    let nodes: Vec<String> = inventory.nodes.iter().map(|n| n.name.clone()).collect();
    match verify_whole(
        &agents,
        &nodes,
        settle,
        model.merge_window().max(Duration::from_secs(60)),
    ) {
        Ok(said) => println!("{said}"),
        Err(why) => {
            eprintln!("after healing, the cluster is not whole: {why}");
            code = 3;
        }
    }
    code
}

/// Watches every node's quorum view until each is quorate with every node
/// as member, one ring, and `settle` has passed; or says what is missing
/// at `timeout`.
fn verify_whole(
    agents: &[AgentConn],
    nodes: &[String],
    settle: Duration,
    timeout: Duration,
) -> Result<String, String> {
    let started = Instant::now();
    let ids: std::collections::BTreeMap<u32, String> = agents
        .iter()
        .filter_map(|a| Some((a.hello.node_id?, a.node.clone())))
        .collect();
    for a in agents {
        match a.request(Op::Watch, Duration::from_secs(5)) {
            Ok(Outcome::Ok { .. }) => {}
            other => return Err(format!("{}: cannot watch its quorum: {other:?}", a.node)),
        }
    }
    let mut views: std::collections::BTreeMap<String, crate::log::NodeState> =
        std::collections::BTreeMap::new();
    let mut last_said = Instant::now();
    loop {
        for a in agents {
            while let Ok(ev) = a.events().try_recv() {
                let state = match ev.body {
                    EventBody::Quorum {
                        quorate,
                        ring_id,
                        members,
                        total_votes,
                        ..
                    } => crate::log::NodeState {
                        quorate,
                        members: members
                            .iter()
                            .map(|m| {
                                m.name
                                    .clone()
                                    .or_else(|| ids.get(&m.node_id).cloned())
                                    .unwrap_or_else(|| format!("node{}", m.node_id))
                            })
                            .collect(),
                        ring_id,
                        total_votes,
                        corosync_up: true,
                    },
                    EventBody::CorosyncDown { .. } => crate::log::NodeState::down(),
                    _ => continue,
                };
                views.insert(a.node.clone(), state);
            }
        }
        let missing = crate::log::not_whole(&views, nodes);
        let rings: std::collections::BTreeSet<&str> =
            views.values().map(|s| s.ring_id.as_str()).collect();
        let elapsed = started.elapsed();
        if missing.is_empty() && rings.len() == 1 && elapsed >= settle {
            return Ok(format!(
                "cluster whole: every node quorate with all {} nodes, ring {} (live views, {:.1}s after the heal)",
                nodes.len(),
                rings.into_iter().next().unwrap_or_default(),
                elapsed.as_secs_f64()
            ));
        }
        let why = if !missing.is_empty() {
            missing.join("; ")
        } else if rings.len() > 1 {
            format!(
                "nodes on different rings ({})",
                rings.into_iter().collect::<Vec<_>>().join(", ")
            )
        } else {
            format!(
                "every node sees every node; giving corosync {:.1}s to show what the heal changed",
                settle.as_secs_f64()
            )
        };
        if elapsed >= timeout {
            return Err(why);
        }
        if last_said.elapsed() >= Duration::from_secs(5) {
            last_said = Instant::now();
            eprintln!("waiting for the cluster to be whole: {why}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One node's heal: its report lines, and whether it is clean.
fn heal_one(a: &mut AgentConn) -> (String, Vec<String>, bool) {
    let mut clean = true;
    let mut lines: Vec<String> = a
        .hello
        .recovered
        .iter()
        .map(|r| {
            clean &= r.clean;
            r.to_string()
        })
        .collect();
    let op = if a.owns() {
        Op::HealAll
    } else {
        if let corodrill_protocol::Role::Observer { owner_pid, held } = &a.hello.role {
            let drills: std::collections::BTreeSet<&str> =
                held.iter().filter_map(|h| h.drill.as_deref()).collect();
            lines.push(format!(
                "a running drill{} holds this node (agent pid {}): ending it",
                if drills.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", drills.into_iter().collect::<Vec<_>>().join(", "))
                },
                owner_pid.map_or("unknown".into(), |p| p.to_string())
            ));
        }
        Op::TakeOver { grace_ms: 10_000 }
    };
    match a.request(op, Duration::from_secs(90)) {
        Ok(Outcome::Healed { reports, .. }) => lines.extend(reports.iter().map(|r| {
            clean &= r.clean;
            r.to_string()
        })),
        Ok(Outcome::Error { message }) => {
            lines.push(message);
            clean = false;
        }
        Ok(other) => {
            lines.push(format!("heal answered {other:?}"));
            clean = false;
        }
        Err(e) => {
            lines.push(e.to_string());
            clean = false;
        }
    }
    (a.node.clone(), lines, clean)
}

/// `corodrill status`: each node's own view, read from its agent's quorum
/// stream, its knet links as corosync-cfgtool reports them, and its clock
/// against ours.
pub fn status(inventory_path: &Path) -> u8 {
    let inventory = match inventory_or_report(inventory_path) {
        Ok(i) => i,
        Err(code) => return code,
    };
    let (mut agents, failures) = connect_all(&inventory, Duration::from_secs(20));
    for f in &failures {
        eprintln!("{f}");
    }
    println!(
        "{:<8} {:<9} {:<8} {:<8} {:<24} {:>6} {:>9}  links",
        "node", "corosync", "quorate", "ring id", "members", "votes", "clock"
    );
    // Each node on its own thread: one whose corosync does not answer
    // (paused, say) costs its own timeouts, not everyone's.
    let lines: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = agents
            .iter_mut()
            .map(|a| s.spawn(move || status_line(a)))
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    for line in lines {
        println!("{line}");
    }
    if failures.is_empty() {
        0
    } else {
        3
    }
}

/// One node's line of `corodrill status`.
fn status_line(a: &mut AgentConn) -> String {
    let version = a
        .hello
        .capabilities
        .corosync_version
        .clone()
        .unwrap_or_else(|| "-".into());
    let clock = format!("{:+.1}ms", a.clock_offset_us as f64 / 1000.0);
    let links = match a.request(Op::Preflight { peers: Vec::new() }, Duration::from_secs(10)) {
        Ok(Outcome::Checks { checks }) => checks
            .into_iter()
            .find(|c| c.name == "corosync links")
            .map_or_else(|| "-".into(), |c| c.detail),
        _ => "-".into(),
    };
    let watching = matches!(
        a.request(Op::Watch, Duration::from_secs(5)),
        Ok(Outcome::Ok { .. })
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut line = format!(
        "{:<8} {:<9} no answer from the quorum stream",
        a.node, version
    );
    while watching && Instant::now() < deadline {
        let Ok(ev) = a
            .events()
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        else {
            break;
        };
        match ev.body {
            EventBody::Quorum {
                quorate,
                ring_id,
                members,
                total_votes,
                expected_votes,
                ..
            } => {
                let names: Vec<String> = members
                    .iter()
                    .map(|m| {
                        m.name
                            .clone()
                            .unwrap_or_else(|| format!("node{}", m.node_id))
                    })
                    .collect();
                let votes = format!(
                    "{}/{}",
                    total_votes.map_or("?".into(), |v| v.to_string()),
                    expected_votes.map_or("?".into(), |v| v.to_string())
                );
                line = format!(
                    "{:<8} {:<9} {:<8} {:<8} {:<24} {:>6} {:>9}  {links}",
                    a.node,
                    version,
                    if quorate { "yes" } else { "no" },
                    ring_id,
                    names.join(","),
                    votes,
                    clock
                );
                break;
            }
            EventBody::CorosyncDown { reason } => {
                line = format!("{:<8} {:<9} corosync down: {reason}", a.node, version);
                break;
            }
            EventBody::LeaseExpired { .. }
            | EventBody::Links { .. }
            | EventBody::Resource { .. }
            | EventBody::EtcPve { .. }
            | EventBody::Stall { .. } => {}
        }
    }
    line
}

/// `corodrill preflight`: each node's own read-only checks (names, clock,
/// links, round trips, firewall), and the cluster's (links, QDevice,
/// quorum). Exit 1 on a failed check.
pub fn preflight(inventory_path: &Path, junit: Option<&Path>) -> u8 {
    use corodrill_protocol::{Check, CheckStatus, Peer};

    let inventory = match inventory_or_report(inventory_path) {
        Ok(i) => i,
        Err(code) => return code,
    };
    // Each node's link addresses by link number (ring0 first).
    let addresses = |n: &crate::inventory::InventoryNode| -> Vec<std::net::IpAddr> {
        n.link_addresses().into_values().collect()
    };
    let (mut agents, failures) = connect_all(&inventory, Duration::from_secs(20));
    let mut results: Vec<(String, Check)> = failures
        .iter()
        .map(|f| {
            (
                "-".to_string(),
                Check {
                    name: "agent reachable".into(),
                    status: CheckStatus::Fail,
                    detail: f.clone(),
                    fix: Some("check the inventory's connect command and that corodrill-agent is installed".into()),
                },
            )
        })
        .collect();
    for a in &mut agents {
        let peers: Vec<Peer> = inventory
            .nodes
            .iter()
            .filter(|n| n.name != a.node)
            .map(|n| Peer {
                name: n.name.clone(),
                addresses: addresses(n),
            })
            .collect();
        match a.request(Op::Preflight { peers }, Duration::from_secs(120)) {
            Ok(Outcome::Checks { checks }) => {
                results.extend(checks.into_iter().map(|c| (a.node.clone(), c)))
            }
            Ok(other) => results.push((
                a.node.clone(),
                cluster_check(
                    "agent",
                    CheckStatus::Fail,
                    format!("preflight answered {other:?}"),
                    None,
                ),
            )),
            Err(e) => results.push((
                a.node.clone(),
                cluster_check("agent", CheckStatus::Fail, e.to_string(), None),
            )),
        }
    }
    // Clocks against the controller's.
    for a in &agents {
        let offset_ms = a.clock_offset_us as f64 / 1000.0;
        let (status, fix) = if offset_ms.abs() <= 500.0 {
            (CheckStatus::Pass, None)
        } else {
            (
                CheckStatus::Warn,
                Some("synchronise the clocks (chrony) on every node and on this machine"),
            )
        };
        results.push((
            a.node.clone(),
            cluster_check(
                "clock offset against the controller",
                status,
                format!("{offset_ms:+.1} ms"),
                fix,
            ),
        ));
    }
    // The cluster's shape.
    let nodes = inventory.nodes.len();
    let links = inventory.links();
    let qdevice = agents
        .iter()
        .any(|a| a.hello.quorum_config.contains_key("device.model"));
    results.push((
        "cluster".into(),
        if links > 1 {
            cluster_check(
                "more than one corosync link",
                CheckStatus::Pass,
                format!("{links} links"),
                None,
            )
        } else {
            cluster_check(
                "more than one corosync link",
                CheckStatus::Warn,
                "one link: a single switch or NIC failure splits the cluster".into(),
                Some("add a second link on a separate network (ring1_addr)"),
            )
        },
    ));
    if nodes == 2 && !qdevice {
        results.push((
            "cluster".into(),
            cluster_check(
                "two nodes without QDevice",
                CheckStatus::Warn,
                "two nodes, one vote each: on a cut between them both lose quorum".into(),
                Some("add a QDevice on a third machine (pvecm qdevice setup ADDRESS)"),
            ),
        ));
    }
    let votes = nodes + usize::from(qdevice);
    let quorum = votes / 2 + 1;
    results.push((
        "cluster".into(),
        cluster_check(
            "quorum plan",
            CheckStatus::Pass,
            format!(
                "{nodes} nodes{}: {votes} votes, quorum {quorum}; the cluster survives losing {} node(s)",
                if qdevice { " + QDevice" } else { "" },
                votes.saturating_sub(quorum).min(nodes.saturating_sub(1))
            ),
            None,
        ),
    ));

    for (node, c) in &results {
        let mark = match c.status {
            CheckStatus::Pass => "pass",
            CheckStatus::Warn => "warn",
            CheckStatus::Fail => "FAIL",
        };
        println!("{mark}  {:<8} {:<32} {}", node, c.name, c.detail);
        if let (Some(fix), false) = (&c.fix, c.status == CheckStatus::Pass) {
            println!("      {:<8} {:<32} fix: {fix}", "", "");
        }
    }
    if let Some(path) = junit {
        let mut suite = quick_junit::TestSuite::new("preflight");
        for (node, c) in &results {
            let status = match c.status {
                CheckStatus::Fail => {
                    let mut s = quick_junit::TestCaseStatus::non_success(
                        quick_junit::NonSuccessKind::Failure,
                    );
                    s.set_message(format!(
                        "{}{}",
                        c.detail,
                        c.fix
                            .as_ref()
                            .map(|f| format!("; fix: {f}"))
                            .unwrap_or_default()
                    ));
                    s
                }
                _ => quick_junit::TestCaseStatus::success(),
            };
            let mut case = quick_junit::TestCase::new(format!("{node}: {}", c.name), status);
            case.set_classname("preflight");
            case.set_system_out(c.detail.clone());
            if c.status == CheckStatus::Warn {
                case.add_property(quick_junit::Property::new(
                    "warning",
                    c.fix.clone().unwrap_or_default(),
                ));
            }
            suite.add_test_case(case);
        }
        let mut report = quick_junit::Report::new("corodrill preflight");
        report.add_test_suite(suite);
        let xml = report.to_string().unwrap_or_default();
        if let Err(e) = std::fs::write(path, xml) {
            eprintln!("cannot write {}: {e}", path.display());
            return 3;
        }
    }
    if results.iter().any(|(_, c)| c.status == CheckStatus::Fail) {
        1
    } else {
        0
    }
}

fn cluster_check(
    name: &str,
    status: corodrill_protocol::CheckStatus,
    detail: String,
    fix: Option<&str>,
) -> corodrill_protocol::Check {
    corodrill_protocol::Check {
        name: name.into(),
        status,
        detail,
        fix: fix.map(str::to_owned),
    }
}

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
