//! Benchmark of the quorum oracle on real labs (issue 6's figures):
//! - predicted vs observed detection time over every two-way split of a
//!   5-node lab (15), for each node whose view changed: median and worst
//!   error;
//! - random-drill throughput on a 3-node lab with two links: faults
//!   judged per minute.
//!
//! Run as root after a build: `cargo build --release --workspace &&
//! cargo bench --bench oracle`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const CORODRILL: &str = env!("CARGO_BIN_EXE_corodrill");

/// A lab taken down however the bench ends.
struct Lab(String);

impl Lab {
    fn up(name: &str, args: &[&str]) -> Lab {
        let out = Command::new(CORODRILL)
            .args(["-q", "lab", "up", "--name", name])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run corodrill: {e}"));
        assert!(
            out.status.success(),
            "lab up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Lab(name.to_owned())
    }
    fn inventory(&self) -> PathBuf {
        PathBuf::from(format!("/var/lib/corodrill/labs/{}/inventory.toml", self.0))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new(CORODRILL)
            .args(["-q", "lab", "down", "--name", &self.0])
            .output();
    }
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("oracle bench: needs root (it builds real labs)");
        std::process::exit(1);
    }
    let dir = std::env::temp_dir().join(format!("corodrill-bench-oracle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");

    // Every split of five nodes, judged by the oracle.
    {
        let lab = Lab::up("bo5", &["--nodes", "5"]);
        let inventory = corodrill::inventory::Inventory::from_toml(
            &std::fs::read_to_string(lab.inventory()).expect("inventory"),
        )
        .expect("inventory");
        let (agents, failures) =
            corodrill::cluster::connect::connect_all(&inventory, Duration::from_secs(20));
        assert!(failures.is_empty(), "{failures:?}");
        let (_, cmap) = corodrill::cluster::connect::cluster_config(&agents);
        drop(agents);
        let timing = corodrill::model::oracle::Timing::from_runtime(&cmap).expect("totem runtime");
        let predicted = timing.detection().as_secs_f64();
        let nodes: Vec<String> = inventory.nodes.iter().map(|n| n.name.clone()).collect();
        let file = dir.join("every-split.toml");
        std::fs::write(
            &file,
            corodrill::experiment::generated::every_split_drill(&nodes, Duration::from_secs(9)),
        )
        .expect("write drill");
        let json = dir.join("every-split.jsonl");
        let out = Command::new(CORODRILL)
            .args(["-q", "run", "--oracle", "--inventory"])
            .arg(lab.inventory())
            .arg(&file)
            .arg("--json")
            .arg(&json)
            .output()
            .expect("run");
        let passed = out.status.success();
        let mut errors: Vec<f64> = std::fs::read_to_string(&json)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["kind"] == "expect.pass")
            .filter(|e| {
                e["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("oracle: ") && !n.contains(".healed"))
            })
            // Nodes whose view changed; the others were right at once.
            .filter_map(|e| e["measured"].as_f64().filter(|m| *m > 0.5))
            .map(|m| m - predicted)
            .collect();
        errors.sort_by(f64::total_cmp);
        let checks = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("oracle: "))
            .count();
        if errors.is_empty() {
            println!("every split of 5 nodes: no transitions measured (run passed: {passed})");
        } else {
            let worst = errors
                .iter()
                .copied()
                .max_by(|a, b| a.abs().total_cmp(&b.abs()))
                .unwrap_or(0.0);
            println!(
                "every split of 5 nodes: {checks} oracle checks, run {}; detection predicted {predicted:.3}s, \
                 observed over {} changed views: error median {:+.3}s, worst {:+.3}s (min {:+.3}s, max {:+.3}s)",
                if passed { "passed" } else { "FAILED" },
                errors.len(),
                errors[errors.len() / 2],
                worst,
                errors[0],
                errors[errors.len() - 1],
            );
        }
    }

    // Random drill throughput.
    {
        let lab = Lab::up("bo3", &["--links", "2"]);
        let out = Command::new(CORODRILL)
            .args([
                "-q",
                "drill",
                "--random",
                "--seed",
                "1",
                "--duration",
                "3m",
                "--inventory",
            ])
            .arg(lab.inventory())
            .arg("--out")
            .arg(&dir)
            .output()
            .expect("drill");
        let stdout = String::from_utf8_lossy(&out.stdout);
        match stdout
            .lines()
            .find(|l| l.contains("faults judged per minute"))
        {
            Some(line) => println!("{line}"),
            None => println!("random drill did not finish cleanly:\n{stdout}"),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
