//! The history on real SQLite files in a scratch directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::*;
use crate::experiment::parse;
use crate::judge::Verdict;

/// A fresh directory for one test's files (removed when dropped).
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "corodrill-history-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn db(&self) -> PathBuf {
        self.0.join("sub/history.sqlite")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn result(times: &[(&str, Option<f64>)], token: &str) -> DrillResult {
    let e = parse(
        Path::new("/nonexistent/isolate.toml"),
        "name = \"isolate\"\nnodes = 3\n[[fault]]\nid = \"f\"\nkind = \"kill\"\nnodes = [\"pve1\"]\n[[expect]]\nname = \"e\"\nafter = \"f\"\nnodes = \"all\"\nquorate = true\nwithin = \"5s\"\n",
    )
    .unwrap();
    DrillResult {
        experiment: e,
        log: Vec::new(),
        verdicts: times
            .iter()
            .map(|(name, t)| Verdict {
                name: (*name).into(),
                invariant: false,
                passed: true,
                measured: *t,
                kept: t.is_none(),
                message: "seen".into(),
            })
            .collect(),
        error: None,
        wall: Duration::from_secs(20),
        retried: false,
        cluster: Some(Box::new(ClusterFacts {
            nodes: vec!["pve1".into(), "pve2".into(), "pve3".into()],
            corosync_versions: ["pve1", "pve2", "pve3"]
                .map(|n| (n.to_owned(), "3.1.7".to_owned()))
                .into(),
            agent_versions: BTreeMap::new(),
            settings: BTreeMap::from([
                ("totem.token".to_owned(), token.to_owned()),
                ("two_node".to_owned(), "0".to_owned()),
            ]),
            corosync_conf_sha256: BTreeMap::from([
                ("pve1".to_owned(), "aa".to_owned()),
                ("pve2".to_owned(), "bb".to_owned()),
            ]),
        })),
        regressions: Vec::new(),
    }
}

#[test]
fn a_new_file_is_migrated_to_the_newest_version_and_reopens() {
    let s = Scratch::new();
    let h = History::open(&s.db()).unwrap();
    assert_eq!(h.version().unwrap(), schema::MIGRATIONS.len() as i64);
    drop(h);
    let h = History::open(&s.db()).unwrap();
    assert_eq!(h.version().unwrap(), schema::MIGRATIONS.len() as i64);
    let mode: String = h
        .conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn a_file_from_a_newer_corodrill_is_refused_naming_it() {
    let s = Scratch::new();
    drop(History::open(&s.db()).unwrap());
    let conn = Connection::open(s.db()).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = History::open(&s.db()).err().expect("refused").to_string();
    assert!(err.contains(&s.db().display().to_string()), "{err}");
    assert!(err.contains("newer corodrill"), "{err}");
    assert!(err.contains("schema version 99"), "{err}");
}

#[test]
fn a_file_that_is_not_sqlite_is_an_error_naming_it() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.db().parent().unwrap()).unwrap();
    std::fs::write(
        s.db(),
        b"not a database, just some text that is long enough",
    )
    .unwrap();
    let err = History::open(&s.db()).err().expect("refused").to_string();
    assert!(err.contains(&s.db().display().to_string()), "{err}");
}

#[test]
fn runs_round_trip_with_facts_and_verdicts() {
    let s = Scratch::new();
    let mut h = History::open(&s.db()).unwrap();
    let (id, regressions) = h
        .record("lab", &result(&[("e", Some(3.5)), ("whole", None)], "1000"))
        .unwrap();
    assert!(regressions.is_empty());
    let run = h.run(id).unwrap();
    assert_eq!(
        (run.cluster.as_str(), run.drill.as_str(), run.passed),
        ("lab", "isolate", true)
    );
    assert_eq!(run.facts["totem.token"], "1000");
    assert_eq!(run.facts["quorum.two_node"], "0");
    // Every node on the same version: one fact; fingerprints that differ:
    // one per node.
    assert_eq!(run.facts["corosync.version"], "3.1.7");
    assert_eq!(run.facts["corosync.conf.sha256.pve2"], "bb");
    assert_eq!(run.facts["nodes"], "pve1 pve2 pve3");
    assert_eq!(run.verdicts.len(), 2);
    assert_eq!(run.verdicts[0].measured, Some(3.5));
    assert!(run.verdicts[1].kept);
    assert!(matches!(h.run(id + 1), Err(HistoryError::NoRun { .. })));
    let drills = h.drills(None, None).unwrap();
    assert_eq!(drills.len(), 1);
    assert_eq!(drills[0].runs, 1);
}

#[test]
fn a_slower_run_after_five_is_a_regression_naming_what_changed() {
    let s = Scratch::new();
    let mut h = History::open(&s.db()).unwrap();
    for t in [3.4, 3.5, 3.6, 3.5] {
        let (_, r) = h.record("lab", &result(&[("e", Some(t))], "1000")).unwrap();
        assert!(r.is_empty());
    }
    // Four earlier runs: too few to judge.
    let (_, r) = h
        .record("lab", &result(&[("e", Some(30.0))], "1000"))
        .unwrap();
    assert!(r.is_empty(), "{r:?}");
    // Another cluster's history does not count.
    let (_, r) = h
        .record("other", &result(&[("e", Some(30.0))], "1000"))
        .unwrap();
    assert!(r.is_empty(), "{r:?}");
    let (id, r) = h
        .record("lab", &result(&[("e", Some(40.0))], "3000"))
        .unwrap();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].runs, 5);
    assert_eq!(
        r[0].changed.iter().map(|c| c.words()).collect::<Vec<_>>(),
        ["totem.token 1000 -> 3000"]
    );
    // Kept with the run.
    let stored = h.run(id).unwrap();
    let words = stored.verdicts[0].regression.as_deref().unwrap_or_default();
    assert!(words.contains("40.000s beyond"), "{words}");
    // The table says so.
    let key = &h.drills(Some("lab"), Some("isolate")).unwrap()[0];
    let text = render::drill_table(key, &h.runs("lab", "isolate", 20).unwrap());
    assert!(text.contains("REGRESSION"), "{text}");
}

#[test]
fn runs_that_failed_to_run_or_were_disturbed_make_no_baseline() {
    let s = Scratch::new();
    let mut h = History::open(&s.db()).unwrap();
    for _ in 0..6 {
        let mut r = result(&[("e", Some(3.0))], "1000");
        r.error = Some("agent unreachable".into());
        h.record("lab", &r).unwrap();
    }
    let (_, r) = h
        .record("lab", &result(&[("e", Some(30.0))], "1000"))
        .unwrap();
    assert!(r.is_empty(), "{r:?}");
}

#[test]
fn what_changed_is_told_against_the_last_run_that_reached_the_cluster() {
    let s = Scratch::new();
    let mut h = History::open(&s.db()).unwrap();
    for _ in 0..5 {
        h.record("lab", &result(&[("e", Some(3.0))], "1000"))
            .unwrap();
    }
    // The agents unreachable: no facts of the cluster.
    let mut unreached = result(&[], "1000");
    unreached.cluster = None;
    unreached.error = Some("agents unreachable".into());
    h.record("lab", &unreached).unwrap();
    let (_, r) = h
        .record("lab", &result(&[("e", Some(30.0))], "1000"))
        .unwrap();
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0].changed.is_empty(), "{:?}", r[0].changed);
}

#[test]
fn an_uncommitted_run_leaves_nothing() {
    // A run killed mid-record: its transaction never commits.
    let s = Scratch::new();
    let mut h = History::open(&s.db()).unwrap();
    {
        let tx = h.conn.transaction().unwrap();
        tx.execute(
            "INSERT INTO runs (started, cluster, drill, file, passed, disturbed, wall)
             VALUES (0, 'lab', 'half', 'f', 1, 0, 1.0)",
            [],
        )
        .unwrap();
        // Dropped without commit: rolled back, as a killed process's is.
    }
    drop(h);
    let h = History::open(&s.db()).unwrap();
    assert!(h.drills(None, None).unwrap().is_empty());
}

#[test]
fn two_writers_at_once_both_land() {
    let s = Scratch::new();
    drop(History::open(&s.db()).unwrap());
    let path = s.db();
    std::thread::scope(|scope| {
        for cluster in ["a", "b"] {
            let path = path.clone();
            scope.spawn(move || {
                let mut h = History::open(&path).unwrap();
                for _ in 0..20 {
                    h.record(cluster, &result(&[("e", Some(1.0))], "1000"))
                        .unwrap();
                }
            });
        }
    });
    let h = History::open(&path).unwrap();
    let drills = h.drills(None, None).unwrap();
    assert_eq!(drills.iter().map(|d| d.runs).sum::<usize>(), 40);
}
