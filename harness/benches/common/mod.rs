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
