//! The run history: every run of a drill appended to a SQLite file (by
//! default /var/lib/corodrill/history.sqlite) with what the cluster ran on,
//! every verdict and every measured time; each new run compared with the
//! same cluster's earlier runs of the same drill (`regression`).
//!
//! An edge, like `cluster/`: only `commands/` calls it, after the judge;
//! the stages never do. `schema.rs` holds the migrations, `regression.rs`
//! the rule (pure), `render.rs` what `corodrill history` prints and
//! `html.rs` its page (pure).
//! **Must not** run drills, reach agents, or change a result but for the
//! regressions it attaches.
//!
//! One transaction per run: a run killed before its commit leaves nothing
//! of itself. WAL and a busy timeout let concurrent runs append to one file.

pub mod html;
pub mod regression;
pub mod render;
mod schema;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::cluster::connect::ClusterFacts;
use crate::errors::ErrorCode;
use crate::report::DrillResult;
use regression::Regression;

/// Where the history lives unless `--history` says otherwise.
pub const DEFAULT_PATH: &str = "/var/lib/corodrill/history.sqlite";

/// How long a writer waits for another to finish its transaction.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("history {}: {source} {}", path.display(), ErrorCode::HistoryUnusable.hint())]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "history {}: cannot create its directory: {source} {}",
        path.display(),
        ErrorCode::HistoryUnusable.hint()
    )]
    Directory {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "history {}: written by a newer corodrill (schema version {found}; this one knows up to {known}): \
         use that corodrill, or another file with --history PATH {}",
        path.display(),
        ErrorCode::HistoryNewer.hint()
    )]
    Newer {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("history {}: no run {id} {}", path.display(), ErrorCode::NoSuchRun.hint())]
    NoRun { path: PathBuf, id: i64 },
}

/// An open history file.
pub struct History {
    conn: Connection,
    path: PathBuf,
}

/// One recorded run, as `corodrill history` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRun {
    pub id: i64,
    /// Seconds since the Unix epoch.
    pub started: i64,
    pub cluster: String,
    pub drill: String,
    pub file: String,
    pub passed: bool,
    pub error: Option<String>,
    pub disturbed: bool,
    pub wall: f64,
    pub facts: BTreeMap<String, String>,
    pub verdicts: Vec<StoredVerdict>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredVerdict {
    pub name: String,
    pub invariant: bool,
    pub passed: bool,
    pub kept: bool,
    pub measured: Option<f64>,
    pub message: Option<String>,
    pub regression: Option<String>,
}

/// One drill on one cluster: how many runs it has, the latest first.
#[derive(Debug, Clone, PartialEq)]
pub struct DrillKey {
    pub cluster: String,
    pub drill: String,
    pub runs: usize,
    pub last: i64,
}

impl History {
    /// Opens (creating it and its directory if need be) and migrates the
    /// history at `path`; refuses a file a newer corodrill wrote.
    pub fn open(path: &Path) -> Result<History, HistoryError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| HistoryError::Directory {
                path: path.to_path_buf(),
                source,
            })?;
        }
        let sql = |source| HistoryError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(sql)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sql)?;
        // WAL: readers never block the writer, and a writer killed mid-run
        // leaves the file as of its last commit.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql)?;
        // In WAL, NORMAL never corrupts the file; a power cut may lose the
        // last commits, not half a run. It spares an fsync per run.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql)?;
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(sql)?;
        let mut history = History {
            conn,
            path: path.to_path_buf(),
        };
        history.migrate()?;
        Ok(history)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sql(&self) -> impl Fn(rusqlite::Error) -> HistoryError + '_ {
        move |source| HistoryError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Brings the file to the newest schema, one migration per version,
    /// each in a transaction of its own (two runs starting at once migrate
    /// it once: the second finds it done).
    fn migrate(&mut self) -> Result<(), HistoryError> {
        let known = schema::MIGRATIONS.len() as i64;
        let path = self.path.clone();
        let sql = |source| HistoryError::Sqlite {
            path: path.clone(),
            source,
        };
        loop {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql)?;
            let found: i64 = tx
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .map_err(sql)?;
            if found > known {
                return Err(HistoryError::Newer {
                    path: path.clone(),
                    found,
                    known,
                });
            }
            let Some(step) = schema::MIGRATIONS.get(found as usize) else {
                return Ok(());
            };
            tx.execute_batch(step).map_err(sql)?;
            tx.pragma_update(None, "user_version", found + 1)
                .map_err(sql)?;
            tx.commit().map_err(sql)?;
        }
    }

    /// The schema version of the file (SQLite's `user_version`).
    pub fn version(&self) -> Result<i64, HistoryError> {
        self.conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(self.sql())
    }

    /// Appends one run of a drill on `cluster` in one transaction, and
    /// returns its id and the regressions of its measured times against
    /// the same cluster's earlier runs of the same drill.
    pub fn record(
        &mut self,
        cluster: &str,
        result: &DrillResult,
    ) -> Result<(i64, Vec<Regression>), HistoryError> {
        let path = self.path.clone();
        let sql = |source| HistoryError::Sqlite {
            path: path.clone(),
            source,
        };
        let drill = &result.experiment.name;
        let facts = facts_of(result);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        // What changed since the last run of this drill on this cluster
        // that reached the cluster (one whose agents were not reached
        // knows nothing of its settings).
        let last: Option<i64> = tx
            .query_row(
                "SELECT id FROM runs r WHERE cluster = ?1 AND drill = ?2
                 AND EXISTS (SELECT 1 FROM facts f WHERE f.run = r.id AND f.key = 'nodes')
                 ORDER BY id DESC LIMIT 1",
                params![cluster, drill],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql)?;
        let changed = match last {
            Some(id) => regression::diff(&load_facts(&tx, id).map_err(sql)?, &facts),
            None => Vec::new(),
        };
        // The earlier times: the latest runs that were carried out and not
        // disturbed (a stall makes times the machine's, not the cluster's).
        let mut earlier: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT v.name, v.measured FROM verdicts v
                     WHERE v.measured IS NOT NULL AND v.run IN (
                         SELECT id FROM runs
                         WHERE cluster = ?1 AND drill = ?2 AND error IS NULL AND disturbed = 0
                         ORDER BY id DESC LIMIT ?3)
                     ORDER BY v.run",
                )
                .map_err(sql)?;
            let rows = stmt
                .query_map(
                    params![cluster, drill, regression::BASELINE_RUNS as i64],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?)),
                )
                .map_err(sql)?;
            for row in rows {
                let (name, t) = row.map_err(sql)?;
                earlier.entry(name).or_default().push(t);
            }
        }
        let measured: Vec<(String, f64)> = result
            .verdicts
            .iter()
            .filter(|v| v.passed)
            .filter_map(|v| Some((v.name.clone(), v.measured?)))
            .collect();
        let regressions = if result.error.is_none() {
            regression::regressions(&measured, &earlier, &changed)
        } else {
            Vec::new()
        };
        let started = SystemTime::now()
            .checked_sub(result.wall)
            .unwrap_or_else(SystemTime::now)
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        tx.execute(
            "INSERT INTO runs (started, cluster, drill, file, passed, error, disturbed, wall)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                started,
                cluster,
                drill,
                result.experiment.file.display().to_string(),
                result.passed(),
                result.error,
                result.disturbed().is_some(),
                result.wall.as_secs_f64(),
            ],
        )
        .map_err(sql)?;
        let id = tx.last_insert_rowid();
        {
            let mut stmt = tx
                .prepare_cached("INSERT INTO facts (run, key, value) VALUES (?1, ?2, ?3)")
                .map_err(sql)?;
            for (k, v) in &facts {
                stmt.execute(params![id, k, v]).map_err(sql)?;
            }
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO verdicts (run, seq, name, invariant, passed, kept, measured, message, regression)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(sql)?;
            for (seq, v) in result.verdicts.iter().enumerate() {
                let flagged = regressions
                    .iter()
                    .find(|r| r.name == v.name)
                    .map(Regression::words);
                stmt.execute(params![
                    id,
                    seq as i64,
                    v.name,
                    v.invariant,
                    v.passed,
                    v.kept,
                    v.measured,
                    (!v.passed).then_some(&v.message),
                    flagged,
                ])
                .map_err(sql)?;
            }
        }
        tx.commit().map_err(sql)?;
        Ok((id, regressions))
    }

    /// Every drill on every cluster (or those named), the latest first.
    pub fn drills(
        &self,
        cluster: Option<&str>,
        drill: Option<&str>,
    ) -> Result<Vec<DrillKey>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT cluster, drill, count(*), max(started), max(id) FROM runs
                 WHERE (?1 IS NULL OR cluster = ?1) AND (?2 IS NULL OR drill = ?2)
                 GROUP BY cluster, drill ORDER BY max(id) DESC",
            )
            .map_err(self.sql())?;
        let rows = stmt
            .query_map(params![cluster, drill], |r| {
                Ok(DrillKey {
                    cluster: r.get(0)?,
                    drill: r.get(1)?,
                    runs: r.get::<_, i64>(2)? as usize,
                    last: r.get(3)?,
                })
            })
            .map_err(self.sql())?;
        rows.collect::<Result<_, _>>().map_err(self.sql())
    }

    /// The latest `last` runs of a drill on a cluster, oldest first, with
    /// their facts and verdicts.
    pub fn runs(
        &self,
        cluster: &str,
        drill: &str,
        last: usize,
    ) -> Result<Vec<StoredRun>, HistoryError> {
        let ids: Vec<i64> = {
            let mut stmt = self
                .conn
                .prepare_cached(
                    "SELECT id FROM runs WHERE cluster = ?1 AND drill = ?2 ORDER BY id DESC LIMIT ?3",
                )
                .map_err(self.sql())?;
            let rows = stmt
                .query_map(params![cluster, drill, last as i64], |r| r.get(0))
                .map_err(self.sql())?;
            rows.collect::<Result<_, _>>().map_err(self.sql())?
        };
        ids.into_iter().rev().map(|id| self.run(id)).collect()
    }

    /// One run by its id.
    pub fn run(&self, id: i64) -> Result<StoredRun, HistoryError> {
        let sql = self.sql();
        let mut run = self
            .conn
            .query_row(
                "SELECT id, started, cluster, drill, file, passed, error, disturbed, wall
                 FROM runs WHERE id = ?1",
                [id],
                |r| {
                    Ok(StoredRun {
                        id: r.get(0)?,
                        started: r.get(1)?,
                        cluster: r.get(2)?,
                        drill: r.get(3)?,
                        file: r.get(4)?,
                        passed: r.get(5)?,
                        error: r.get(6)?,
                        disturbed: r.get(7)?,
                        wall: r.get(8)?,
                        facts: BTreeMap::new(),
                        verdicts: Vec::new(),
                    })
                },
            )
            .optional()
            .map_err(&sql)?
            .ok_or_else(|| HistoryError::NoRun {
                path: self.path.clone(),
                id,
            })?;
        run.facts = load_facts(&self.conn, id).map_err(&sql)?;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT name, invariant, passed, kept, measured, message, regression
                 FROM verdicts WHERE run = ?1 ORDER BY seq",
            )
            .map_err(&sql)?;
        let rows = stmt
            .query_map([id], |r| {
                Ok(StoredVerdict {
                    name: r.get(0)?,
                    invariant: r.get(1)?,
                    passed: r.get(2)?,
                    kept: r.get(3)?,
                    measured: r.get(4)?,
                    message: r.get(5)?,
                    regression: r.get(6)?,
                })
            })
            .map_err(&sql)?;
        run.verdicts = rows.collect::<Result<_, _>>().map_err(&sql)?;
        Ok(run)
    }
}

fn load_facts(conn: &Connection, run: i64) -> rusqlite::Result<BTreeMap<String, String>> {
    let mut stmt = conn.prepare_cached("SELECT key, value FROM facts WHERE run = ?1")?;
    let rows = stmt.query_map([run], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// What a run ran on, as the history's facts: the cluster's (versions,
/// settings, fingerprints: one key for a value every node shares, one per
/// node where they differ), the drill file's fingerprint, corodrill's
/// version.
pub fn facts_of(result: &DrillResult) -> BTreeMap<String, String> {
    let mut facts = result
        .cluster
        .as_deref()
        .map(cluster_facts)
        .unwrap_or_default();
    if let Ok(bytes) = std::fs::read(&result.experiment.file) {
        facts.insert("drill.sha256".into(), sha256_hex(&bytes));
    }
    facts.insert("corodrill.version".into(), env!("CARGO_PKG_VERSION").into());
    facts
}

/// A cluster's facts as keys and values (pure).
pub fn cluster_facts(c: &ClusterFacts) -> BTreeMap<String, String> {
    let mut facts = BTreeMap::new();
    facts.insert("nodes".to_owned(), c.nodes.join(" "));
    for (key, by_node) in [
        ("corosync.version", &c.corosync_versions),
        ("agent.version", &c.agent_versions),
        ("corosync.conf.sha256", &c.corosync_conf_sha256),
    ] {
        let mut values: Vec<&String> = by_node.values().collect();
        values.sort();
        values.dedup();
        match values.as_slice() {
            [] => {}
            [one] => {
                facts.insert(key.to_owned(), (*one).clone());
            }
            _ => facts.extend(
                by_node
                    .iter()
                    .map(|(n, v)| (format!("{key}.{n}"), v.clone())),
            ),
        }
    }
    for (k, v) in &c.settings {
        let key = if k.starts_with("totem.") {
            k.clone()
        } else {
            format!("quorum.{k}")
        };
        facts.insert(key, v.clone());
    }
    facts
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests;

/// A stored run of `isolate` with one measured time, for the tables' and
/// the page's tests.
#[cfg(test)]
pub(crate) fn sample_run(
    id: i64,
    started: i64,
    cluster: &str,
    token: &str,
    measured: f64,
    regression: bool,
) -> StoredRun {
    StoredRun {
        id,
        started,
        cluster: cluster.into(),
        drill: "isolate".into(),
        file: "isolate.toml".into(),
        passed: true,
        error: None,
        disturbed: false,
        wall: 20.0,
        facts: BTreeMap::from([
            ("totem.token".to_owned(), token.to_owned()),
            ("nodes".to_owned(), "pve1 pve2 pve3".to_owned()),
        ]),
        verdicts: vec![StoredVerdict {
            name: "majority keeps quorum".into(),
            invariant: false,
            passed: true,
            kept: false,
            measured: Some(measured),
            message: None,
            regression: regression.then(|| "beyond".into()),
        }],
    }
}
