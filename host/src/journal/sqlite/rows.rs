//! What each write does to the tables, inside the writer's transaction:
//! an append's events and deliveries, a settlement's outcome, an expiry,
//! and the purge's statements. The writer (`writer`) decides when these
//! run and groups them; this module only knows the rows.

use super::super::{Appended, JournalError, KEPT_ERRORS, NewEvent, Settlement, kept_error};
use crate::event::Event;
use rusqlite::{Connection, params};
use std::sync::Arc;

/// The `seq` of the first event received at or after `cutoff` (past the
/// last event's when there is none), by binary search over `seq`: the
/// writer stamps `received_at` so that it never goes back as `seq` rises.
/// A few dozen primary-key lookups instead of an index every event pays
/// for. (Journals written before version 5 may hold a clock's step back;
/// around one, events are purged up to that step early or late.)
pub(super) fn first_received_at_or_after(
    conn: &Connection,
    cutoff: i64,
) -> Result<i64, JournalError> {
    let (first, last): (Option<i64>, Option<i64>) =
        conn.query_row("SELECT MIN(seq), MAX(seq) FROM events", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    let (Some(mut low), Some(last)) = (first, last) else {
        return Ok(0);
    };
    let mut at = conn.prepare_cached(
        "SELECT seq, received_at FROM events WHERE seq >= ?1 ORDER BY seq LIMIT 1",
    )?;
    // The answer is in [low, high]; high = last + 1: every event is older.
    let mut high = last + 1;
    while low < high {
        let middle = low + (high - low) / 2;
        let (seq, received_at): (i64, i64) =
            at.query_row(params![middle], |r| Ok((r.get(0)?, r.get(1)?)))?;
        if received_at < cutoff {
            low = seq + 1;
        } else {
            high = middle;
        }
    }
    Ok(low)
}

/// The purge's statements, each with its cut-off as `?1`: dead letters past
/// retention and the text of finished events by time; events past the
/// dedup window that nothing refers to by `seq` (the first one kept).
pub(super) const PURGE: [&str; 3] = [
    "DELETE FROM dead_letters WHERE dead_at < ?1",
    "UPDATE events SET body = '' WHERE body <> '' AND received_at < ?1
     AND NOT EXISTS (SELECT 1 FROM deliveries WHERE event_seq = events.seq)
     AND NOT EXISTS (SELECT 1 FROM dead_letters WHERE event_seq = events.seq)",
    "DELETE FROM events WHERE seq < ?1
     AND NOT EXISTS (SELECT 1 FROM deliveries WHERE event_seq = events.seq)
     AND NOT EXISTS (SELECT 1 FROM dead_letters WHERE event_seq = events.seq)",
];

pub(super) fn insert(
    tx: &rusqlite::Transaction<'_>,
    batch: &[NewEvent],
    now: i64,
    kept: &mut Vec<(i64, Arc<Event>)>,
) -> Result<Appended, JournalError> {
    let mut appended = Appended::default();
    let mut add_event = tx.prepare_cached(
        "INSERT INTO events (topic_key, event_id, body, received_at, format, schema, topic,
                             event_type, subscription, delivery_count, data_version_header)
         VALUES (?1, ?2, ?3, ?4, 2, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (event_id, topic_key) DO NOTHING",
    )?;
    let mut add_delivery = tx
        .prepare_cached("INSERT INTO deliveries (event_seq, plugin, due_at) VALUES (?1, ?2, ?3)")?;
    for new in batch {
        let e = &new.event;
        // An event no plugin wants is kept for dedup only: its key, not its text.
        let body: &str = if new.plugins.is_empty() { "" } else { &e.raw };
        let inserted = add_event.execute(params![
            e.topic.to_lowercase(),
            e.id,
            body,
            now,
            e.schema.as_str(),
            e.topic,
            e.event_type,
            e.delivery.subscription_name,
            e.delivery.delivery_count,
            e.delivery.data_version,
        ])?;
        if inserted == 0 {
            appended.duplicates += 1;
            continue;
        }
        appended.events += 1;
        let seq = tx.last_insert_rowid();
        if !new.plugins.is_empty() {
            kept.push((seq, new.event.clone()));
        }
        for plugin in &new.plugins {
            add_delivery.execute(params![seq, plugin, now])?;
            appended.deliveries += 1;
        }
    }
    Ok(appended)
}

/// Dead-letter `plugin`'s deliveries whose time-to-live started before
/// `before` (see [`DueDelivery::ttl_from_ms`](super::super::DueDelivery)).
pub(super) fn expire(
    tx: &rusqlite::Transaction<'_>,
    plugin: &str,
    before: i64,
    now: i64,
) -> Result<u64, JournalError> {
    tx.prepare_cached(&format!(
        "INSERT INTO dead_letters (event_seq, plugin, reason, attempts, last_error, dead_at, errors)
         SELECT d.event_seq, d.plugin, 'TimeToLiveExceeded', d.attempts, ?4, ?3, {}
         FROM deliveries d JOIN events e ON e.seq = d.event_seq
         WHERE d.plugin = ?1 AND coalesce(d.ttl_from, e.received_at) < ?2",
        errors_with("d.errors", "?4")
    ))?
    .execute(params![
        plugin,
        before,
        now,
        "the event outlived its time-to-live while no version of the plugin served"
    ])?;
    let n = tx
        .prepare_cached(
            "DELETE FROM deliveries AS d WHERE plugin = ?1
             AND coalesce(ttl_from, (SELECT received_at FROM events WHERE seq = d.event_seq)) < ?2",
        )?
        .execute(params![plugin, before])?;
    Ok(n as u64)
}

/// SQL for the JSON array `column` with `error` appended, the oldest
/// dropped past [`KEPT_ERRORS`].
fn errors_with(column: &str, error: &str) -> String {
    format!(
        "CASE WHEN json_array_length({column}) >= {KEPT_ERRORS}
              THEN json_insert(json_remove({column}, '$[0]'), '$[#]', {error})
              ELSE json_insert({column}, '$[#]', {error}) END"
    )
}

/// Record one outcome; the number of deliveries it ended (0 or 1).
pub(super) fn settle(
    tx: &rusqlite::Transaction<'_>,
    settlement: &Settlement,
) -> Result<i64, JournalError> {
    let ended = match settlement {
        Settlement::Complete(id) => tx
            .prepare_cached("DELETE FROM deliveries WHERE id = ?1")?
            .execute(params![id])?,
        Settlement::RetryAt { id, due_ms, error } => {
            tx.prepare_cached(&format!(
                "UPDATE deliveries SET attempts = attempts + 1, due_at = ?2, last_error = ?3,
                 errors = {} WHERE id = ?1",
                errors_with("errors", "?4")
            ))?
            .execute(params![id, due_ms, error, kept_error(error)])?;
            0
        }
        Settlement::Postpone { id, due_ms } => {
            tx.prepare_cached("UPDATE deliveries SET due_at = ?2 WHERE id = ?1")?
                .execute(params![id, due_ms])?;
            0
        }
        Settlement::DeadLetter {
            id,
            reason,
            error,
            at_ms,
            attempts,
        } => {
            tx.prepare_cached(&format!(
                "INSERT INTO dead_letters
                   (event_seq, plugin, reason, attempts, last_error, dead_at, errors)
                 SELECT event_seq, plugin, ?2, ?5, ?3, ?4, {} FROM deliveries WHERE id = ?1",
                errors_with("errors", "?6")
            ))?
            .execute(params![
                id,
                reason.as_str(),
                error,
                at_ms,
                attempts,
                kept_error(error)
            ])?;
            tx.prepare_cached("DELETE FROM deliveries WHERE id = ?1")?
                .execute(params![id])?
        }
    };
    Ok(ended as i64)
}

#[cfg(test)]
mod tests {
    use super::{PURGE, first_received_at_or_after};
    use rusqlite::{Connection, params};

    /// A purge over a large journal must not read every row: each table it
    /// touches is searched through an index, never scanned.
    #[test]
    fn every_purge_statement_searches_an_index() {
        let mut conn = Connection::open_in_memory().expect("open");
        super::super::schema::migrate(&mut conn).expect("schema");
        for statement in PURGE {
            let mut plan = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {statement}"))
                .expect("plan");
            let steps: Vec<String> = plan
                .query_map([0i64], |row| row.get::<_, String>(3))
                .expect("rows")
                .collect::<Result<_, _>>()
                .expect("steps");
            assert!(!steps.is_empty(), "{statement}");
            for step in &steps {
                assert!(
                    !step.starts_with("SCAN"),
                    "{statement}\nscans a table: {steps:?}"
                );
            }
        }
    }

    /// The purge's cut-off by `seq` is the first event at or after the
    /// time, whatever the gaps earlier purges left in `seq`.
    #[test]
    fn the_first_event_at_or_after_a_time_is_found_by_seq() {
        let mut conn = Connection::open_in_memory().expect("open");
        super::super::schema::migrate(&mut conn).expect("schema");
        assert_eq!(first_received_at_or_after(&conn, 100).expect("empty"), 0);
        // seq 10, 13, 16, ... received at 1000, 1000, 1010, 1010, 1020, ...
        let events: Vec<(i64, i64)> = (0..40).map(|i| (10 + 3 * i, 1000 + 10 * (i / 2))).collect();
        for (seq, at) in &events {
            conn.execute(
                "INSERT INTO events (seq, topic_key, event_id, body, received_at)
                 VALUES (?1, 't', ?1, '', ?2)",
                params![seq, at],
            )
            .expect("event");
        }
        for cutoff in [0, 999, 1000, 1001, 1010, 1055, 1190, 1191, 5000] {
            let found = first_received_at_or_after(&conn, cutoff).expect("search");
            // What a scan finds: every event before the cut-off is older.
            let older = events.iter().filter(|(_, at)| *at < cutoff).count();
            let kept = events.iter().filter(|(seq, _)| *seq >= found).count();
            assert_eq!(events.len() - kept, older, "cut-off {cutoff}: seq {found}");
        }
    }
}
