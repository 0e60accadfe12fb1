//! Benchmark of the agent on a real 3-node lab (issue 4's figures):
//! - skew between the first and the last node's fault taking effect when one
//!   fault is applied on all three nodes at once (agents' monotonic clocks,
//!   which are the host's in the lab), aim p95 <= 10 ms;
//! - time to heal (request sent to reply: rolled back and read back), per
//!   fault kind, aim <= 50 ms;
//! - time from lease expiry to the rollback's event;
//! - agent resident memory (peak RSS), aim <= 8 MiB.
//!
//! Run as root after a release build of the agent:
//! `cargo build --release --workspace && cargo bench --bench agent`.

mod common;

use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use common::{apply_fault, harmless_cut, heal_ms, lock, summary, timed_skew};
use corodrill::cluster::agent::AgentConn;
use corodrill::lab::{self, LabSpec, Profile};
use corodrill_protocol::{EventBody, Fault, Op};

const T: Duration = Duration::from_secs(30);

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("agent bench: needs root (it builds a real lab)");
        std::process::exit(1);
    }
    let name = "benchag";
    let _ = lab::down(name);
    let spec =
        LabSpec::new(name, 3, 1, false, None, Profile::Fast, &[]).unwrap_or_else(|e| panic!("{e}"));
    let up = lab::up(spec, None, &|_| {}).unwrap_or_else(|e| panic!("{e}"));
    let inventory = lab::inventory(&up.lab);
    println!(
        "agent: {}",
        inventory.nodes[0]
            .connect
            .split(" -- ")
            .nth(1)
            .unwrap_or("?")
    );
    let conns: Vec<Arc<Mutex<AgentConn>>> = inventory
        .nodes
        .iter()
        .map(|n| {
            Arc::new(Mutex::new(
                AgentConn::connect(&n.name, &n.connect, T).unwrap_or_else(|e| panic!("{e}")),
            ))
        })
        .collect();

    // Skew: the same fault on all three nodes, requests sent together.
    let mut skews = Vec::new();
    for run in 0..50 {
        let barrier = Arc::new(Barrier::new(conns.len()));
        let handles: Vec<_> = conns
            .iter()
            .map(|c| {
                let c = c.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    let c = lock(&c);
                    barrier.wait();
                    apply_fault(&c, &format!("skew{run}"), harmless_cut(), 60_000, None)
                })
            })
            .collect();
        let at: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap_or(0)).collect();
        let spread = at.iter().max().unwrap_or(&0) - at.iter().min().unwrap_or(&0);
        skews.push(spread as f64 / 1e6);
        for c in &conns {
            heal_ms(&mut lock(c), &format!("skew{run}"), T);
        }
    }
    println!("one fault applied on 3 nodes at once: skew between first and last to take effect");
    summary("skew", skews, "ms");
    // As `run` applies a fault on several nodes: at one agreed instant.
    let mut timed = Vec::new();
    let mut mapped = Vec::new();
    for run in 0..50 {
        let (own, through_mapping, _, _) = timed_skew(&conns, &format!("timed{run}"));
        timed.push(own);
        mapped.push(through_mapping);
    }
    println!("the same at one agreed instant (as run applies it): skew on the agents' clock (one kernel's)");
    summary("skew", timed, "ms");
    println!("  and through the controller's clock mappings (what a run records)");
    summary("skew", mapped, "ms");

    println!("time to heal (request sent to reply: rolled back and read back)");
    let mut pve3 = lock(&conns[2]);
    let kinds: Vec<(&str, Fault)> = vec![
        ("cut", harmless_cut()),
        (
            "link-down",
            Fault::LinkDown {
                address: "198.18.0.3".parse().unwrap(),
            },
        ),
        ("pause", Fault::Pause),
        (
            "clock-skew",
            Fault::ClockSkew {
                offset_ms: 300_000,
                strobe_ms: None,
            },
        ),
        (
            "degrade rate",
            Fault::Degrade {
                peers: vec![],
                addresses: vec!["198.18.0.3".parse().unwrap()],
                loss_percent: None,
                delay_ms: None,
                jitter_ms: None,
                rate: Some("10mbit".into()),
            },
        ),
    ];
    for (kind, fault) in kinds {
        let mut times = Vec::new();
        for run in 0..20 {
            apply_fault(&pve3, &format!("{kind}{run}"), fault.clone(), 60_000, None);
            times.push(heal_ms(&mut pve3, &format!("{kind}{run}"), T));
        }
        summary(kind, times, "ms");
    }

    // Lease expiry: from the moment the lease runs out to the agent's event.
    let mut lags = Vec::new();
    for run in 0..10 {
        let lease_ms = 300;
        let applied = apply_fault(
            &pve3,
            &format!("lease{run}"),
            harmless_cut(),
            lease_ms,
            None,
        );
        loop {
            let ev = pve3
                .events()
                .recv_timeout(T)
                .unwrap_or_else(|_| panic!("no lease expiry"));
            if matches!(ev.body, EventBody::LeaseExpired { .. }) {
                lags.push((ev.mono_ns as f64 - applied as f64) / 1e6 - lease_ms as f64);
                break;
            }
        }
    }
    println!("lease expiry to rollback done (the lease is checked every 10 ms)");
    summary("lag", lags, "ms");

    // Memory: peak RSS of each agent process, with a watch and a cut running.
    pve3.request(Op::Watch, T).ok();
    apply_fault(&pve3, "mem", harmless_cut(), 60_000, None);
    std::thread::sleep(Duration::from_millis(500));
    let out = std::process::Command::new("sh")
        .args([
            "-c",
            "for p in $(pidof corodrill-agent); do grep -h VmHWM /proc/$p/status; done",
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let peaks: Vec<f64> = out
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map(|kib| kib / 1024.0)
        .collect();
    println!(
        "agent peak resident memory (VmHWM) per agent: {}",
        peaks
            .iter()
            .map(|m| format!("{m:.1} MiB"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    drop(pve3);
    drop(conns);
    let _ = lab::down(name);
}
