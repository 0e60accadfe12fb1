//! The agent's journal: every applied fault, with what it takes to roll it
//! back, written and fsynced *before* the fault takes effect. An agent that
//! starts and finds entries rolls them back first; `--rollback` does only
//! that.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::faults::Undo;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub fault_id: String,
    pub kind: String,
    pub undo: Undo,
    /// The kernel's boot id when the fault was applied: an entry from an
    /// earlier boot describes state the reboot already wiped.
    #[serde(default)]
    pub boot_id: Option<String>,
    /// The drill that applied it, as the controller named it.
    #[serde(default)]
    pub drill: Option<String>,
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`).
pub fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

pub struct Journal {
    path: PathBuf,
    pub entries: Vec<Entry>,
}

impl Journal {
    /// Opens (or creates) the journal in `state_dir`.
    pub fn open(state_dir: &Path) -> Result<Journal, String> {
        std::fs::create_dir_all(state_dir).map_err(|e| {
            format!(
                "cannot create the agent's state directory {}: {e}",
                state_dir.display()
            )
        })?;
        let path = state_dir.join("journal.json");
        let entries = match std::fs::read_to_string(&path) {
            Ok(text) if text.trim().is_empty() => Vec::new(),
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| format!("the journal {} is unreadable: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        Ok(Journal { path, entries })
    }

    pub fn record(&mut self, entry: Entry) -> Result<(), String> {
        self.entries.retain(|e| e.fault_id != entry.fault_id);
        self.entries.push(entry);
        self.save()
    }

    pub fn update(&mut self, fault_id: &str, undo: &Undo) -> Result<(), String> {
        if let Some(e) = self.entries.iter_mut().find(|e| e.fault_id == fault_id) {
            e.undo = undo.clone();
        }
        self.save()
    }

    pub fn remove(&mut self, fault_id: &str) -> Result<(), String> {
        self.entries.retain(|e| e.fault_id != fault_id);
        self.save()
    }

    /// Write to a temporary file, fsync it, rename it over the journal, fsync
    /// the directory: the journal on disk is always whole, old or new.
    fn save(&self) -> Result<(), String> {
        let text = serde_json::to_string_pretty(&self.entries).map_err(|e| e.to_string())?;
        let tmp = self.path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            if let Some(dir) = self.path.parent() {
                File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|e| format!("cannot write the journal {}: {e}", self.path.display()))
    }
}
