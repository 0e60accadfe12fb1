//! `corodrill history`, and the hook by which `run`, `demo` and `drill
//! --random` append each run to the history and learn its regressions.

use std::path::{Path, PathBuf};

use crate::history::{self, regression, History, HistoryError};
use crate::report::DrillResult;

/// Where runs are recorded, on which cluster, and what a regression does.
pub struct Recorder {
    pub history: History,
    /// The inventory's name.
    pub cluster: String,
    /// A regression fails its expectation (and so the run: exit 1).
    pub fail_on_regression: bool,
}

impl Recorder {
    /// Opens the history for a command's runs; None without one
    /// (`--no-history`). An error is said on stderr and is exit status 2,
    /// before any drill runs.
    pub fn open(
        path: Option<&Path>,
        cluster: &str,
        fail_on_regression: bool,
    ) -> Result<Option<Recorder>, u8> {
        let Some(path) = path else { return Ok(None) };
        match History::open(path) {
            Ok(history) => Ok(Some(Recorder {
                history,
                cluster: cluster.to_owned(),
                fail_on_regression,
            })),
            Err(e) => {
                eprintln!("corodrill: {e}");
                Err(2)
            }
        }
    }

    /// Appends one run and attaches its regressions (failing their
    /// verdicts with `--fail-on-regression`). A history that cannot be
    /// written is said, and the drill's own verdicts stand.
    pub fn record(&mut self, result: &mut DrillResult, progress: &dyn Fn(&str)) {
        match self.history.record(&self.cluster, result) {
            Ok((id, regressions)) => {
                progress(&format!(
                    "history: run {id} of {} on {} in {}",
                    result.experiment.name,
                    self.cluster,
                    self.history.path().display()
                ));
                if self.fail_on_regression {
                    regression::fail_regressed(&mut result.verdicts, &regressions);
                }
                result.regressions = regressions;
            }
            Err(e) => eprintln!("corodrill: {e}; this run is not in the history"),
        }
    }
}

pub struct HistoryArgs {
    pub history: PathBuf,
    pub cluster: Option<String>,
    pub drill: Option<String>,
    /// How many of each drill's latest runs to show and summarize.
    pub last: usize,
    /// Two run ids: what differs between them.
    pub diff: Option<(i64, i64)>,
    /// Also write the page with a trend chart per measured time.
    pub html: Option<PathBuf>,
}

/// `corodrill history`: 0; 2 for a history that cannot be read or a run
/// that is not in it; 3 for a page that cannot be written.
pub fn history_command(args: &HistoryArgs) -> u8 {
    if !args.history.exists() {
        // Reading must not create the file (nor its directory).
        println!(
            "no runs recorded: {} does not exist yet",
            args.history.display()
        );
        return 0;
    }
    let groups = match read(args) {
        Ok(Read::Diff(text)) => {
            print!("{text}");
            return 0;
        }
        Ok(Read::Groups(groups)) => groups,
        Err(e) => {
            eprintln!("corodrill: {e}");
            return 2;
        }
    };
    print!("{}", history::render::tables(&groups));
    let Some(path) = &args.html else { return 0 };
    let page = match history::html::page(&groups, args.last) {
        Ok(page) => page,
        Err(e) => {
            eprintln!("corodrill: {e}");
            return 3;
        }
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    match std::fs::write(path, page) {
        Ok(()) => {
            println!("page: {}", path.display());
            0
        }
        Err(e) => {
            eprintln!("cannot write {}: {e}", path.display());
            3
        }
    }
}

enum Read {
    Diff(String),
    Groups(Vec<(history::DrillKey, Vec<history::StoredRun>)>),
}

fn read(args: &HistoryArgs) -> Result<Read, HistoryError> {
    let h = History::open(&args.history)?;
    if let Some((a, b)) = args.diff {
        return Ok(Read::Diff(history::render::diff_text(
            &h.run(a)?,
            &h.run(b)?,
        )));
    }
    let groups = h
        .drills(args.cluster.as_deref(), args.drill.as_deref())?
        .into_iter()
        .map(|key| {
            let runs = h.runs(&key.cluster, &key.drill, args.last)?;
            Ok((key, runs))
        })
        .collect::<Result<Vec<_>, HistoryError>>()?;
    Ok(Read::Groups(groups))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(history: PathBuf) -> HistoryArgs {
        HistoryArgs {
            history,
            cluster: None,
            drill: None,
            last: 20,
            diff: None,
            html: None,
        }
    }

    #[test]
    fn reading_a_missing_history_creates_nothing() {
        let dir =
            std::env::temp_dir().join(format!("corodrill-history-cmd-{}", std::process::id()));
        let path = dir.join("none/history.sqlite");
        assert_eq!(history_command(&args(path.clone())), 0);
        assert!(!path.exists() && !dir.exists());
    }

    #[test]
    fn a_newer_history_or_a_missing_run_is_exit_2() {
        let dir =
            std::env::temp_dir().join(format!("corodrill-history-cmd2-{}", std::process::id()));
        let path = dir.join("history.sqlite");
        drop(History::open(&path).unwrap());
        let mut diff = args(path.clone());
        diff.diff = Some((1, 2));
        assert_eq!(history_command(&diff), 2, "no such runs");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 7).unwrap();
        drop(conn);
        assert_eq!(history_command(&args(path.clone())), 2);
        // And a run refuses it before any drill (exit 2).
        assert_eq!(Recorder::open(Some(&path), "lab", false).err(), Some(2));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
