//! What the benches share (`agent`, `vm_lab`, `failover`): percentiles, one
//! line of figures, a harmless fault and the time to heal it.
#![allow(dead_code)]

use std::net::IpAddr;
use std::time::{Duration, Instant};

use corodrill::cluster::agent::AgentConn;
use corodrill_protocol::{Direction, Fault, Op, Outcome};

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

pub fn summary(name: &str, mut v: Vec<f64>, unit: &str) {
    v.sort_by(|a, b| a.total_cmp(b));
    println!(
        "  {name}: p50 {:.2} {unit}, p95 {:.2} {unit}, max {:.2} {unit} (n={})",
        percentile(&v, 0.5),
        percentile(&v, 0.95),
        v[v.len() - 1],
        v.len()
    );
}

/// A cut of an address no node has: it takes effect like any cut but leaves
/// the cluster alone, so the runs do not wait for corosync.
pub fn harmless_cut() -> Fault {
    Fault::Cut {
        peers: vec!["198.18.0.250".parse::<IpAddr>().unwrap()],
        direction: Direction::Both,
    }
}

/// Applies a fault (at `at_mono_ns` on the agent's clock, or at once);
/// the agent's time it took effect.
pub fn apply_fault(
    conn: &AgentConn,
    id: &str,
    fault: Fault,
    lease_ms: u64,
    at_mono_ns: Option<u64>,
) -> u64 {
    match conn.request(
        Op::Apply {
            fault_id: id.into(),
            fault,
            lease_ms,
            allow_management_cut: false,
            drill: None,
            at_mono_ns,
        },
        Duration::from_secs(60),
    ) {
        Ok(Outcome::Ok { mono_ns }) => mono_ns,
        other => panic!("{}: apply {id}: {other:?}", conn.node),
    }
}

/// Heals a fault; the time from request sent to reply (rolled back and
/// read back), in ms.
pub fn heal_ms(conn: &mut AgentConn, id: &str, timeout: Duration) -> f64 {
    let start = Instant::now();
    match conn.request(
        Op::Heal {
            fault_id: id.into(),
        },
        timeout,
    ) {
        Ok(Outcome::Healed { reports, .. }) if reports.iter().all(|r| r.clean) => {}
        other => panic!("{}: heal {id}: {other:?}", conn.node),
    }
    start.elapsed().as_secs_f64() * 1e3
}

pub fn lock(c: &std::sync::Mutex<AgentConn>) -> std::sync::MutexGuard<'_, AgentConn> {
    c.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One fault applied on every connection as `run` applies one fault on
/// several nodes: each agent's clock mapped afresh, one instant agreed, each
/// told it on its own clock. Returns, in ms: the spread of the agents' own
/// times of effect (the true skew where the agents share one clock, as the
/// namespace lab's do), the spread on the controller's clock through the
/// mappings, and how far those mappings can be wrong for the two nodes
/// furthest apart (half of each one's best round trip, added).
/// One fault on every agent at one agreed instant, as `run` applies it: the
/// spread of its taking effect on the agents' own clocks, the same through
/// the mappings, their uncertainty, and each node's lateness (from its
/// instant to its fault in effect, on its own clock), all in ms.
pub fn timed_skew(
    conns: &[std::sync::Arc<std::sync::Mutex<AgentConn>>],
    id: &str,
) -> (f64, f64, f64, Vec<f64>) {
    use corodrill::run::clock::{agreed_instant, clock, now_ns, CLOCK_ROUND_TRIPS};
    let mappings: std::collections::BTreeMap<String, _> = std::thread::scope(|s| {
        let handles: Vec<_> = conns
            .iter()
            .map(|c| {
                s.spawn(move || {
                    let conn = lock(c);
                    let m = clock(&conn, CLOCK_ROUND_TRIPS, Duration::from_secs(30))
                        .unwrap_or_else(|e| panic!("{e}"));
                    (conn.node.clone(), m)
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let at = agreed_instant(now_ns(), &mappings);
    let took: Vec<(String, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = conns
            .iter()
            .map(|c| {
                let at = &at;
                s.spawn(move || {
                    let conn = lock(c);
                    let at = at.get(&conn.node).copied();
                    let took = apply_fault(&conn, id, harmless_cut(), 120_000, at);
                    (conn.node.clone(), took)
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let spread =
        |v: Vec<i64>| (v.iter().max().unwrap_or(&0) - v.iter().min().unwrap_or(&0)) as f64 / 1e6;
    let own = spread(took.iter().map(|(_, t)| *t as i64).collect());
    let mapped = spread(
        took.iter()
            .map(|(n, t)| *t as i64 + mappings[n].offset_ns)
            .collect(),
    );
    let mut halves: Vec<i64> = mappings.values().map(|m| m.round_trip_ns / 2).collect();
    halves.sort_unstable();
    let uncertainty = halves.iter().rev().take(2).sum::<i64>() as f64 / 1e6;
    let late: Vec<f64> = took
        .iter()
        .filter_map(|(n, t)| Some((*t as i64 - *at.get(n)? as i64) as f64 / 1e6))
        .collect();
    for c in conns {
        heal_ms(&mut lock(c), id, Duration::from_secs(30));
    }
    (own, mapped, uncertainty, late)
}
