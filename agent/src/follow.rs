//! A file followed as it grows (corosync's log, the Pacemaker alert file):
//! each read gives the whole lines written since the last one. A file
//! shorter than where the last read ended was truncated or started again,
//! and is read from its start.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::PathBuf;

pub struct Follow {
    path: PathBuf,
    pos: u64,
}

impl Follow {
    /// Follows `path` from its current end: what was written before is
    /// not this watch's.
    pub fn from_end(path: PathBuf) -> Follow {
        let pos = std::fs::metadata(&path).map_or(0, |m| m.len());
        Follow { path, pos }
    }

    /// Calls `each` with every whole line written since the last call
    /// (with its newline); a line still being written waits for the next.
    pub fn new_lines(&mut self, mut each: impl FnMut(&str)) {
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return;
        };
        let len = f.metadata().map_or(0, |m| m.len());
        if len < self.pos {
            self.pos = 0;
        }
        if len == self.pos || f.seek(SeekFrom::Start(self.pos)).is_err() {
            return;
        }
        let mut reader = BufReader::new(f);
        let mut line = String::new();
        while let Ok(n) = reader.read_line(&mut line) {
            if n == 0 || !line.ends_with('\n') {
                break;
            }
            self.pos += n as u64;
            each(&line);
            line.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn lines(f: &mut Follow) -> Vec<String> {
        let mut out = Vec::new();
        f.new_lines(|l| out.push(l.to_owned()));
        out
    }

    #[test]
    fn whole_new_lines_only_and_a_truncated_file_from_its_start() {
        let path = std::env::temp_dir().join(format!("corodrill-follow-{}", std::process::id()));
        std::fs::write(&path, "before\n").unwrap();
        let mut f = Follow::from_end(path.clone());
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        write!(file, "one\ntw").unwrap();
        assert_eq!(lines(&mut f), ["one\n"]);
        writeln!(file, "o").unwrap();
        assert_eq!(lines(&mut f), ["two\n"]);
        assert!(lines(&mut f).is_empty());
        std::fs::write(&path, "new\n").unwrap();
        assert_eq!(lines(&mut f), ["new\n"]);
        let _ = std::fs::remove_file(&path);
    }
}
