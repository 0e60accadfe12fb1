//! Benchmark of the run history (issue 17's figures), no lab needed:
//! - the history's overhead on a run: opening the file and recording one
//!   run (3 nodes' facts, 6 verdicts) into a history of 10,000 runs,
//!   regressions compared; median and worst of 50;
//! - `corodrill history` over 10,000 stored runs (40 drills on 2
//!   clusters, the last 20 of each listed): the command as an operator
//!   runs it, process start included, median of 5;
//! - the file's size per run.
//!
//! `cargo bench --bench history` (a release build of corodrill first for
//! the command's figure: `cargo build --release -p corodrill`).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use corodrill::cluster::connect::ClusterFacts;
use corodrill::history::History;
use corodrill::judge::Verdict;
use corodrill::report::DrillResult;

const CORODRILL: &str = env!("CARGO_BIN_EXE_corodrill");
const RUNS: usize = 10_000;

fn result(drill: usize, t: f64) -> DrillResult {
    let text = format!(
        "name = \"drill-{drill}\"\nnodes = 3\n[[fault]]\nid = \"f\"\nkind = \"kill\"\nnodes = [\"pve1\"]\n[[expect]]\nname = \"e\"\nafter = \"f\"\nnodes = \"all\"\nquorate = true\nwithin = \"5s\"\n"
    );
    let experiment = corodrill::experiment::parse(Path::new("/nonexistent/drill.toml"), &text)
        .expect("the bench's drill parses");
    let names = [
        "majority keeps quorum",
        "pve3 loses quorum",
        "whole again",
        "svc fails over",
        "no split-brain",
        "every fault rolled back, cluster whole at the end",
    ];
    let nodes: Vec<String> = (1..=3).map(|i| format!("pve{i}")).collect();
    DrillResult {
        experiment,
        log: Vec::new(),
        verdicts: names
            .iter()
            .enumerate()
            .map(|(i, n)| Verdict {
                name: (*n).into(),
                invariant: i >= 4,
                passed: true,
                measured: (i < 4).then_some(t + i as f64),
                kept: false,
                message: "seen".into(),
            })
            .collect(),
        error: None,
        wall: Duration::from_secs(25),
        retried: false,
        cluster: Some(Box::new(ClusterFacts {
            nodes: nodes.clone(),
            corosync_versions: nodes.iter().map(|n| (n.clone(), "3.1.7".into())).collect(),
            agent_versions: nodes.iter().map(|n| (n.clone(), "0.1.0".into())).collect(),
            settings: BTreeMap::from([
                ("totem.token".into(), "1000".into()),
                ("totem.consensus".into(), "1200".into()),
                ("provider".into(), "corosync_votequorum".into()),
                ("two_node".into(), "0".into()),
                ("wait_for_all".into(), "0".into()),
            ]),
            corosync_conf_sha256: nodes
                .iter()
                .map(|n| (n.clone(), format!("{:064x}", n.len())))
                .collect(),
        })),
        regressions: Vec::new(),
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let dir = std::env::temp_dir().join(format!("corodrill-bench-history-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let db = dir.join("history.sqlite");

    // 10,000 runs: 40 drills on 2 clusters, 250 runs each.
    let started = Instant::now();
    {
        let mut h = History::open(&db).expect("history");
        let mut rng = fastrand::Rng::with_seed(17);
        for i in 0..RUNS {
            let cluster = if i % 2 == 0 { "pve-a" } else { "pve-b" };
            let r = result((i / 2) % 20, 3.0 + rng.f64());
            h.record(cluster, &r).expect("record");
        }
    }
    let fill = started.elapsed();
    println!(
        "history: {RUNS} runs recorded in {:.1} s ({:.2} ms a run)",
        fill.as_secs_f64(),
        fill.as_secs_f64() * 1000.0 / RUNS as f64
    );

    // The overhead on one run: open (migrations checked) and record.
    let mut times = Vec::new();
    for i in 0..50 {
        let r = result(i % 20, 3.5);
        let t = Instant::now();
        let mut h = History::open(&db).expect("history");
        h.record("pve-a", &r).expect("record");
        drop(h);
        times.push(t.elapsed());
    }
    let worst = times.iter().max().copied().unwrap_or_default();
    println!(
        "history overhead on a run (open + record + compare, {} runs stored): median {:.1} ms, worst {:.1} ms (aim < 50 ms)",
        RUNS,
        median(times).as_secs_f64() * 1000.0,
        worst.as_secs_f64() * 1000.0
    );

    // `corodrill history` over them, as an operator runs it.
    let mut times = Vec::new();
    let mut lines = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let out = Command::new(CORODRILL)
            .args(["history", "--history"])
            .arg(&db)
            .output()
            .expect("corodrill history");
        times.push(t.elapsed());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        lines = out.stdout.iter().filter(|b| **b == b'\n').count();
    }
    println!(
        "corodrill history over {} runs (40 drills, {lines} lines): median {:.1} ms (aim < 200 ms)",
        RUNS + 50,
        median(times).as_secs_f64() * 1000.0
    );

    // Size: everything checkpointed into the file.
    {
        let h = History::open(&db).expect("history");
        drop(h);
    }
    let size: u64 = ["", "-wal", "-shm"]
        .iter()
        .filter_map(|s| std::fs::metadata(format!("{}{s}", db.display())).ok())
        .map(|m| m.len())
        .sum();
    println!(
        "history file: {:.1} MiB for {} runs, {:.0} bytes a run (3 nodes' facts, 6 verdicts)",
        size as f64 / 1024.0 / 1024.0,
        RUNS + 50,
        size as f64 / (RUNS + 50) as f64
    );
    let _ = std::fs::remove_dir_all(&dir);
}
