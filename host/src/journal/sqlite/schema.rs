//! The journal's tables, and the migration of journals written by earlier
//! versions (tracked in SQLite's `user_version`).

use super::super::JournalError;
use rusqlite::Connection;

/// The schema version this code writes.
const VERSION: i64 = 6;

const TABLES: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq         INTEGER PRIMARY KEY,
    topic_key   TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    body        TEXT NOT NULL,  -- the event's JSON as received; '' once only dedup needs it
    received_at INTEGER NOT NULL
);
-- Dedup: the event id first, as ids differ in their first characters and
-- every event of a topic shares its ~100-character key (version 5).
CREATE UNIQUE INDEX IF NOT EXISTS events_identity ON events (event_id, topic_key);
CREATE TABLE IF NOT EXISTS deliveries (
    id          INTEGER PRIMARY KEY,
    event_seq   INTEGER NOT NULL REFERENCES events (seq),
    plugin      TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,  -- attempts made (and recorded)
    due_at      INTEGER NOT NULL,
    last_error  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS deliveries_plugin ON deliveries (plugin, due_at, id);
-- Version 6 rebuilds it with ids never reused (see VERSION_6).
CREATE TABLE IF NOT EXISTS dead_letters (
    id          INTEGER PRIMARY KEY,
    event_seq   INTEGER NOT NULL REFERENCES events (seq),
    plugin      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    attempts    INTEGER NOT NULL,
    last_error  TEXT NOT NULL,
    dead_at     INTEGER NOT NULL,
    replayed_at INTEGER
);
CREATE TABLE IF NOT EXISTS kv (
    namespace TEXT NOT NULL,
    bucket    TEXT NOT NULL,
    key       TEXT NOT NULL,
    value     BLOB NOT NULL,
    PRIMARY KEY (namespace, bucket, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS health (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at INTEGER NOT NULL
);
";

/// Version 2: each event's own text and what is needed to list and read it
/// without parsing (`format` 1 rows hold the earlier wrapped JSON), and the
/// indexes the periodic purge and retention need.
const VERSION_2: &[&str] = &[
    "ALTER TABLE events ADD COLUMN format INTEGER NOT NULL DEFAULT 1",
    "ALTER TABLE events ADD COLUMN schema TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE events ADD COLUMN topic TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE events ADD COLUMN event_type TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE events ADD COLUMN subscription TEXT",
    "ALTER TABLE events ADD COLUMN delivery_count INTEGER",
    "ALTER TABLE events ADD COLUMN data_version_header TEXT",
    "CREATE INDEX IF NOT EXISTS events_received ON events (received_at)",
    "CREATE INDEX IF NOT EXISTS events_kept ON events (received_at) WHERE body <> ''",
    "CREATE INDEX IF NOT EXISTS deliveries_event ON deliveries (event_seq)",
    "CREATE INDEX IF NOT EXISTS dead_letters_event ON dead_letters (event_seq)",
    "CREATE INDEX IF NOT EXISTS dead_letters_dead_at ON dead_letters (dead_at)",
];

/// Version 3: each failed attempt's error (a JSON array of strings, the
/// latest [`KEPT_ERRORS`](crate::journal::KEPT_ERRORS)), kept with the
/// delivery and its dead letter.
const VERSION_3: &[&str] = &[
    "ALTER TABLE deliveries ADD COLUMN errors TEXT NOT NULL DEFAULT '[]'",
    "ALTER TABLE dead_letters ADD COLUMN errors TEXT NOT NULL DEFAULT '[]'",
];

/// Version 4: when a delivery's time-to-live started, where that is not
/// its event's acceptance (a replayed dead letter's delivery: from the
/// replay). NULL: from `events.received_at`.
const VERSION_4: &[&str] = &["ALTER TABLE deliveries ADD COLUMN ttl_from INTEGER"];

/// Version 5: cheaper index upkeep per event. No index on
/// `deliveries.due_at` or `events.received_at`: every delivery paid for
/// the first twice (insert, delete) and every event for the second; what
/// used them searches `(plugin, due_at, id)` per plugin, and the purge
/// finds its cut-off by `seq` (the writer stamps `received_at` never going
/// back). The dedup index leads with the event id, which tells events
/// apart in a few characters, instead of the topic, which every event of
/// a topic shares. (Rebuilding it takes a moment on a large journal, once.)
const VERSION_5: &[&str] = &[
    "DROP INDEX IF EXISTS deliveries_due",
    "DROP INDEX IF EXISTS events_received",
    "DROP INDEX IF EXISTS events_identity",
    "CREATE UNIQUE INDEX events_identity ON events (event_id, topic_key)",
];

/// Version 6: dead letters' ids are never used again (`AUTOINCREMENT`).
/// Without it SQLite gives a new row the highest id + 1, so once the newest
/// letters were purged (by an operator, or all of them by retention) the
/// next letter took a purged one's id, and a replay or purge by an id
/// listed earlier reached a different letter. SQLite cannot add
/// `AUTOINCREMENT` to a table, so it is rebuilt, ids kept.
const VERSION_6: &[&str] = &[
    "CREATE TABLE dead_letters_v6 (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        event_seq   INTEGER NOT NULL REFERENCES events (seq),
        plugin      TEXT NOT NULL,
        reason      TEXT NOT NULL,
        attempts    INTEGER NOT NULL,
        last_error  TEXT NOT NULL,
        dead_at     INTEGER NOT NULL,
        replayed_at INTEGER,
        errors      TEXT NOT NULL DEFAULT '[]'
    )",
    "INSERT INTO dead_letters_v6
        (id, event_seq, plugin, reason, attempts, last_error, dead_at, replayed_at, errors)
     SELECT id, event_seq, plugin, reason, attempts, last_error, dead_at, replayed_at, errors
     FROM dead_letters",
    "DROP TABLE dead_letters",
    "ALTER TABLE dead_letters_v6 RENAME TO dead_letters",
    "CREATE INDEX dead_letters_event ON dead_letters (event_seq)",
    "CREATE INDEX dead_letters_dead_at ON dead_letters (dead_at)",
];

/// Create the tables, or bring an earlier journal up to [`VERSION`].
pub(super) fn migrate(conn: &mut Connection) -> Result<(), JournalError> {
    conn.execute_batch(TABLES)?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version >= VERSION {
        return Ok(());
    }
    let tx = conn.transaction()?;
    let steps: [(i64, &[&str]); 5] = [
        (2, VERSION_2),
        (3, VERSION_3),
        (4, VERSION_4),
        (5, VERSION_5),
        (6, VERSION_6),
    ];
    for (step, statements) in steps {
        if version < step {
            for statement in statements {
                tx.execute(statement, [])?;
            }
        }
    }
    tx.pragma_update(None, "user_version", VERSION)?;
    tx.commit()?;
    Ok(())
}
