//! Benchmark of `lab up`: time from the start of `lab up` until every node is
//! quorate with every node as member, for 3 and 16 nodes, and the peak memory
//! of the whole lab (sum of the proportional set size, PSS, of every process
//! inside the lab's namespaces, so shared libraries are not counted twice).
//!
//! Run as root: `cargo bench --bench lab_up`. Aim (issue 3): 3 nodes within
//! 3 s, 16 nodes within 15 s on 2 cores.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use corodrill::lab::{self, host, LabSpec, Profile};

fn pss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("Pss:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Samples the lab's memory every 50 ms until told to stop; returns the peak.
fn sample_peak(name: String, nodes: u8, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let files: Vec<PathBuf> = (1..=nodes)
            .map(|i| host::netns_path(&format!("{name}-pve{i}")))
            .collect();
        let mut peak = 0;
        while !stop.load(Ordering::Relaxed) {
            let refs: Vec<&std::path::Path> = files.iter().map(PathBuf::as_path).collect();
            let total: u64 = host::processes_in(&refs).into_iter().map(pss_kib).sum();
            peak = peak.max(total);
            std::thread::sleep(Duration::from_millis(50));
        }
        peak
    })
}

fn measure(name: &str, nodes: u8) -> (Duration, u64) {
    let spec = match LabSpec::new(name, nodes, 1, false, None, Profile::Fast, &[]) {
        Ok(spec) => spec,
        Err(e) => panic!("{e}"),
    };
    let _ = lab::down(name);
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_peak(name.to_owned(), nodes, stop.clone());
    let result = lab::up(spec, None, &|_| {});
    // Keep sampling a moment after quorum: knet settles its MTU then.
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let peak = sampler.join().unwrap_or(0);
    let _ = lab::down(name);
    match result {
        Ok(up) => (up.elapsed, peak),
        Err(e) => panic!("lab up {nodes} nodes: {e}"),
    }
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("lab_up bench: needs root (it builds real labs)");
        std::process::exit(1);
    }
    // `cargo bench` passes --bench; a filter argument is not supported here.
    println!(
        "lab up: time until every node is quorate with full membership (token 1000 ms, 1 link)"
    );
    for (nodes, runs) in [(3u8, 5), (16, 2)] {
        let mut times = Vec::new();
        let mut peak = 0;
        for run in 0..runs {
            let (time, mem) = measure(&format!("bench{run}"), nodes);
            times.push(time);
            peak = peak.max(mem);
        }
        times.sort();
        let median = times[times.len() / 2];
        println!(
            "  {nodes:>2} nodes: median {:.2}s, min {:.2}s, max {:.2}s over {runs} runs; peak lab memory {:.1} MiB (PSS)",
            median.as_secs_f64(),
            times[0].as_secs_f64(),
            times[times.len() - 1].as_secs_f64(),
            peak as f64 / 1024.0
        );
    }
}
