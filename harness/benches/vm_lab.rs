//! Benchmark of the VM lab (issue 19's figures), on this machine:
//! - the node image's build, cold (an empty cache of its own) and cached;
//! - `lab up --vm`, 3 nodes, from QEMU's start to every node quorate;
//! - resident memory of each VM's QEMU;
//! - the skew of one fault applied on all three VMs at once over ssh, on
//!   the controller's clock (each agent's monotonic clock mapped through
//!   the offset of its best round trip, as `run` maps it), aim p95 <= 10 ms:
//!   each applying when its request arrives, and at one agreed instant as
//!   `run` applies it, with the bound that the mappings' uncertainty adds;
//! - the time to heal a cut on a VM (request sent to reply).
//!
//! Run as root after a release build: `cargo build --release --workspace &&
//! cargo bench --bench vm_lab`. `CORODRILL_VM_BENCH_COLD=1` also builds the
//! image from nothing (about two minutes); `CORODRILL_AGENT_DEB=PATH`
//! installs the agent from its .deb (else install-agent copies it).

mod common;

use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use common::{apply_fault, harmless_cut, heal_ms, lock, summary, timed_skew};
use corodrill::cluster::agent::AgentConn;
use corodrill::lab::{self, vm, LabSpec, Profile};
use corodrill::run::clock::{clock, CLOCK_ROUND_TRIPS};

const T: Duration = Duration::from_secs(60);

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("vm_lab bench: needs root (it builds a VM lab)");
        std::process::exit(1);
    }
    if std::env::var_os("CORODRILL_VM_BENCH_COLD").is_some() {
        let cache = std::env::temp_dir().join(format!("corodrill-vm-bench-{}", std::process::id()));
        std::env::set_var("CORODRILL_VM_CACHE", &cache);
        let started = Instant::now();
        vm::image::ensure(&|_| {}).unwrap_or_else(|e| panic!("{e}"));
        println!(
            "image build, cold: {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let size = std::fs::metadata(cache.join(vm::image::recipe_id()).join("base.qcow2"))
            .map(|m| m.len() as f64 / 1e6)
            .unwrap_or(0.0);
        println!("  base.qcow2: {size:.0} MB");
        let started = Instant::now();
        vm::image::ensure(&|_| {}).unwrap_or_else(|e| panic!("{e}"));
        println!("image, cached: {:.3} s", started.elapsed().as_secs_f64());
        let _ = std::fs::remove_dir_all(&cache);
        std::env::remove_var("CORODRILL_VM_CACHE");
    }
    // The image of the default cache, built first if missing, so that
    // `lab up` below is timed from QEMU's start.
    let started = Instant::now();
    let (_, built) = vm::image::ensure(&|_| {}).unwrap_or_else(|e| panic!("{e}"));
    println!(
        "image ({}): {:.1} s",
        if built { "built" } else { "cached" },
        started.elapsed().as_secs_f64()
    );

    let name = "benchvm";
    let _ = lab::down(name);
    let mut spec = LabSpec::new(name, 3, 1, false, None, Profile::Proxmox, &[])
        .unwrap_or_else(|e| panic!("{e}"));
    let agent = match std::env::var_os("CORODRILL_AGENT_DEB") {
        Some(deb) => vm::AgentInstall::Deb(deb.into()),
        None => vm::AgentInstall::InstallAgent,
    };
    let install = agent == vm::AgentInstall::InstallAgent;
    spec.vm = Some(vm::VmSpec::new(agent, None));
    let accel = spec.vm.as_ref().map(|v| v.accel);
    let started = Instant::now();
    let ready = |inventory: &corodrill::inventory::Inventory| {
        if install {
            let binary = corodrill::cluster::agent::bundled_agent()
                .ok_or_else(|| lab::LabError::Environment("no agent binary".into()))?;
            for r in corodrill::cluster::install::install_all(inventory, &binary, T) {
                r.map_err(|e| lab::LabError::Failed(e.to_string()))?;
            }
        }
        Ok(())
    };
    let up = lab::up_then(spec, None, &|_| {}, &ready).unwrap_or_else(|e| panic!("{e}"));
    println!(
        "lab up --vm, 3 nodes ({}, {}): {:.1} s to every node quorate (QEMU start to quorum, agents installed)",
        accel.map(|a| a.to_string()).unwrap_or_default(),
        vm::detect_accel().1,
        started.elapsed().as_secs_f64()
    );
    let rss: Vec<String> = up
        .lab
        .record
        .processes
        .iter()
        .filter_map(|p| {
            let status = std::fs::read_to_string(format!("/proc/{}/status", p.pid)).ok()?;
            let kib: f64 = status
                .lines()
                .find(|l| l.starts_with("VmRSS"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some(format!("{} {:.0} MB", p.host, kib / 1024.0))
        })
        .collect();
    println!("QEMU resident memory per VM: {}", rss.join(", "));

    let inventory = lab::inventory(&up.lab);
    let conns: Vec<Arc<Mutex<AgentConn>>> = inventory
        .nodes
        .iter()
        .map(|n| {
            let conn = AgentConn::connect(&n.name, &n.connect, T).unwrap_or_else(|e| panic!("{e}"));
            Arc::new(Mutex::new(conn))
        })
        .collect();
    let offsets: Vec<i64> = conns
        .iter()
        .map(|c| {
            clock(&lock(c), CLOCK_ROUND_TRIPS, T)
                .unwrap_or_else(|e| panic!("{e}"))
                .offset_ns
        })
        .collect();
    // Untimed: each agent applies when its request arrives.
    let mut skews = Vec::new();
    for run in 0..30 {
        let barrier = Arc::new(Barrier::new(conns.len()));
        let handles: Vec<_> = conns
            .iter()
            .zip(&offsets)
            .map(|(c, off)| {
                let c = c.clone();
                let off = *off;
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    let conn = lock(&c);
                    barrier.wait();
                    apply_fault(&conn, &format!("skew{run}"), harmless_cut(), 120_000, None) as i64
                        + off
                })
            })
            .collect();
        let at: Vec<i64> = handles.into_iter().map(|h| h.join().unwrap_or(0)).collect();
        let spread = at.iter().max().unwrap_or(&0) - at.iter().min().unwrap_or(&0);
        skews.push(spread as f64 / 1e6);
        for c in &conns {
            heal_ms(&mut lock(c), &format!("skew{run}"), T);
        }
    }
    println!(
        "one fault applied on 3 VMs at once over ssh, each when its request arrives: skew between first and last to take effect (controller's clock)"
    );
    summary("skew", skews, "ms");
    // Timed, as `run` applies a fault on several nodes: one agreed instant.
    let (mut mapped, mut bounds, mut lateness) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..30 {
        let (_, through_mapping, uncertainty, late) = timed_skew(&conns, &format!("timed{run}"));
        mapped.push(through_mapping);
        bounds.push(through_mapping + uncertainty);
        lateness.extend(late);
    }
    println!(
        "the same at one agreed instant (as run applies it): skew on the controller's clock through the mappings"
    );
    summary("skew", mapped, "ms");
    println!("  at most (adding how far the two least certain mappings can be wrong: half their best round trips)");
    summary("skew bound", bounds, "ms");
    println!("  each node's lateness: its agreed instant to its cut in effect (nft's commit echoed), on its own clock");
    summary("lateness", lateness, "ms");
    let mut heals = Vec::new();
    {
        let mut guard = lock(&conns[2]);
        for run in 0..20 {
            apply_fault(&guard, &format!("heal{run}"), harmless_cut(), 120_000, None);
            heals.push(heal_ms(&mut guard, &format!("heal{run}"), T));
        }
    }
    println!("time to heal a cut on a VM (request sent to reply: rolled back and read back)");
    summary("heal", heals, "ms");
    drop(conns);
    let _ = lab::down(name);
}
