//! Reading TOML with its positions: every error of a file collected with
//! its `file:line:column`, and typed fields taken out of a table one by
//! one so that a key left over is an unknown key.

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::Path;

use serde::de::DeserializeOwned;
use toml::{Table, Value};

use super::Diagnostic;
use crate::errors::ErrorCode;

pub(super) fn diag(
    file: &Path,
    line: usize,
    column: usize,
    code: ErrorCode,
    message: String,
) -> Diagnostic {
    Diagnostic {
        file: file.to_owned(),
        line,
        column,
        code,
        message,
    }
}

/// Collects diagnostics against one file's text.
pub(super) struct Checker<'a> {
    pub(super) file: &'a Path,
    pub(super) text: &'a str,
    pub(super) errors: Vec<Diagnostic>,
    /// Every key the parser asked a table for, present or not: the keys
    /// it knows, which the reference's test holds to `format`'s types.
    pub(super) asked: BTreeSet<String>,
    /// The table being read ("fault", "expect", "watch"), for `asked`.
    pub(super) table: &'static str,
}

/// 1-based line and column of a byte offset in `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

impl Checker<'_> {
    /// Takes `key` out of `table` as it is, recording that it was asked for.
    pub(super) fn remove(&mut self, table: &mut Table, key: &str) -> Option<Value> {
        self.asked.insert(format!("{}.{key}", self.table));
        table.remove(key)
    }

    pub(super) fn at(&mut self, offset: usize, code: ErrorCode, message: impl Into<String>) {
        let (line, column) = line_column(self.text, offset);
        self.errors
            .push(diag(self.file, line, column, code, message.into()));
    }

    /// Points at `key = ...` inside `span` (an entry), or at the entry.
    pub(super) fn at_key(
        &mut self,
        span: &Range<usize>,
        key: &str,
        code: ErrorCode,
        message: impl Into<String>,
    ) {
        let offset = find_key(self.text, span, key).unwrap_or(span.start);
        self.at(offset, code, message);
    }

    /// Deserializes `value`, reporting a failure at `key` in `span`.
    pub(super) fn typed<T: DeserializeOwned>(
        &mut self,
        span: &Range<usize>,
        key: &str,
        value: Value,
    ) -> Option<T> {
        match T::deserialize(value) {
            Ok(v) => Some(v),
            Err(e) => {
                let message = e.to_string().trim().to_owned();
                // toml says which field a bad value is in on a line of its
                // own ("...\nin `kind`"): report it where that field is.
                let (message, field) = match message.rsplit_once("\nin `") {
                    Some((m, f)) => (
                        m.trim().to_owned(),
                        Some(f.trim_end_matches('`').to_owned()),
                    ),
                    None => (message, None),
                };
                // An unknown field is reported where that field is written.
                let culprit = message
                    .split('`')
                    .nth(1)
                    .filter(|_| message.starts_with("unknown field"))
                    .map(str::to_owned)
                    .or(field)
                    .unwrap_or_else(|| key.to_owned());
                let code = ErrorCode::of_deserialize(&message);
                self.at_key(span, &culprit, code, format!("{key}: {message}"));
                None
            }
        }
    }
}

/// toml gives an `[[array]]` entry the span of its header: the entry runs
/// from there to the next header (a line starting with `[`) or the end.
pub(super) fn entry_span(text: &str, header: Range<usize>) -> Range<usize> {
    let body = header.end.min(text.len());
    let end = text[body..]
        .match_indices('\n')
        .map(|(i, _)| body + i + 1)
        .find(|&line| {
            text[line..]
                .trim_start_matches([' ', '\t'])
                .starts_with('[')
        })
        .unwrap_or(text.len());
    header.start..end
}

/// The offset of `key` written as a key (`key =` or `key=`) in `span`.
pub(super) fn find_key(text: &str, span: &Range<usize>, key: &str) -> Option<usize> {
    let region = text.get(span.clone())?;
    let mut from = 0;
    while let Some(i) = region[from..].find(key) {
        let start = from + i;
        let before_ok = start == 0
            || region[..start].ends_with(|c: char| c.is_whitespace() || c == '{' || c == ',');
        let after = region[start + key.len()..].trim_start_matches([' ', '\t']);
        if before_ok && after.starts_with('=') {
            return Some(span.start + start);
        }
        from = start + key.len();
    }
    None
}

/// Takes `key` out of `table` as a T, reporting what is wrong with it.
pub(super) fn take<T: DeserializeOwned>(
    c: &mut Checker,
    span: &Range<usize>,
    table: &mut Table,
    key: &str,
) -> Result<Option<T>, ()> {
    match c.remove(table, key) {
        None => Ok(None),
        Some(v) => c.typed(span, key, v).map(Some).ok_or(()),
    }
}

pub(super) fn required<T: DeserializeOwned>(
    c: &mut Checker,
    span: &Range<usize>,
    table: &mut Table,
    key: &str,
    what: &str,
) -> Option<T> {
    match take(c, span, table, key) {
        Ok(Some(v)) => Some(v),
        Ok(None) => {
            c.at(
                span.start,
                ErrorCode::MissingField,
                format!("{what}: missing `{key}`"),
            );
            None
        }
        Err(()) => None,
    }
}
