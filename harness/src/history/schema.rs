//! The history's schema, one migration per version (SQLite's
//! `PRAGMA user_version` holds the version a file is at). A migration is
//! never edited once released: a change of schema is a new one appended.

/// Migration `i` takes a file from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // 1: runs, the facts of what each ran on, and its verdicts.
    "
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        -- When the run started, seconds since the Unix epoch (UTC).
        started INTEGER NOT NULL,
        -- The inventory's name and the experiment's name.
        cluster TEXT NOT NULL,
        drill TEXT NOT NULL,
        -- The drill's file as named on the command line.
        file TEXT NOT NULL,
        passed INTEGER NOT NULL,
        -- Set when the drill could not be carried out.
        error TEXT,
        -- Failed while the machine stalled.
        disturbed INTEGER NOT NULL,
        wall REAL NOT NULL
    );
    CREATE INDEX runs_by_drill ON runs (cluster, drill, id);
    -- What the run ran on, as keys and values (corosync.version,
    -- totem.token, quorum.two_node, corosync.conf.sha256, drill.sha256,
    -- nodes, ...): a new fact needs no new column, and two runs differ
    -- where their facts do.
    CREATE TABLE facts (
        run INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (run, key)
    ) WITHOUT ROWID;
    CREATE TABLE verdicts (
        run INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        name TEXT NOT NULL,
        invariant INTEGER NOT NULL,
        passed INTEGER NOT NULL,
        kept INTEGER NOT NULL,
        -- Seconds; NULL when nothing arrived to be timed.
        measured REAL,
        -- A failure's message (a pass's is not kept).
        message TEXT,
        -- The regression flagged when this run was recorded, in words.
        regression TEXT,
        PRIMARY KEY (run, seq)
    ) WITHOUT ROWID;
    ",
];
