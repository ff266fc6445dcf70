//! Reads, on a connection of their own (WAL lets them run beside the
//! writer's commits): the deliveries due, and what the admin API lists.
//! Nothing here parses an event it does not deliver, and one event that
//! cannot be read back is reported on its own, never failing a whole read.

use super::super::{
    Claimed, DeadLetter, DueDelivery, JournalError, PendingDelivery, Slots, Unreadable,
};
use super::stored::{ROW_COLUMNS, Recent, Row, event_json};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;
use std::sync::{Arc, Mutex};

/// The deliveries due at `now_ms` that fit the slots (see
/// [`Journal::claim_due`](super::super::Journal::claim_due)).
pub(super) fn claim_due(
    conn: &Connection,
    recent: &Mutex<Recent>,
    now_ms: i64,
    limit: usize,
    slots: &[Slots],
    other_slots: u32,
    in_flight: &[i64],
) -> Result<Claimed, JournalError> {
    let mut claimed = Claimed::default();
    if limit == 0 {
        return Ok(claimed);
    }
    // Ids in flight as one JSON array parameter: the statements stay the
    // same text (prepared once, cached) whatever their number.
    let ids = |ids: &[i64]| serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
    // Each plugin's oldest due deliveries, as many as it has free slots,
    // by index; then those of plugins not named (not loaded any more).
    let mut rows: Vec<DueRow> = Vec::new();
    let mut per_plugin = conn.prepare_cached(
        "SELECT due_at, id, event_seq, plugin, attempts + 1, ttl_from FROM deliveries
         WHERE plugin = ?1 AND due_at <= ?2
           AND id NOT IN (SELECT value FROM json_each(?3))
         ORDER BY due_at, id LIMIT ?4",
    )?;
    for slot in slots.iter().filter(|s| s.free > 0) {
        let busy = ids(&slot.in_flight);
        let found = per_plugin.query_map(params![slot.plugin, now_ms, busy, slot.free], due_row)?;
        for row in found {
            rows.push(row?);
        }
    }
    // Plugins not named are rare (removed plugins): looked for only when
    // asked, each found by index like the named ones.
    if other_slots > 0 {
        let busy = ids(in_flight);
        for plugin in plugins_with_deliveries(conn)? {
            if slots.iter().any(|s| s.plugin == plugin) {
                continue;
            }
            let found =
                per_plugin.query_map(params![plugin, now_ms, busy, other_slots], due_row)?;
            for row in found {
                rows.push(row?);
            }
        }
    }
    // Oldest first, within the overall limit.
    rows.sort();
    rows.truncate(limit);
    let mut stored = conn.prepare_cached(&format!(
        "SELECT {ROW_COLUMNS}, received_at FROM events WHERE seq = ?1"
    ))?;
    for (_, id, seq, plugin, attempt, ttl_from) in rows {
        let known = recent.lock().unwrap_or_else(|e| e.into_inner()).get(seq);
        let read = match known {
            Some((event, received_at_ms)) => Ok((event, received_at_ms)),
            None => {
                let (row, received_at_ms) =
                    stored.query_row(params![seq], |r| Ok((Row::from(r)?, r.get::<_, i64>(6)?)))?;
                row.restore().map(|event| (Arc::new(event), received_at_ms))
            }
        };
        match read {
            Ok((event, received_at_ms)) => claimed.due.push(DueDelivery {
                id,
                event,
                plugin,
                attempt,
                received_at_ms,
                ttl_from_ms: ttl_from.unwrap_or(received_at_ms),
            }),
            Err(error) => claimed.unreadable.push(Unreadable {
                id,
                plugin,
                attempt,
                error,
            }),
        }
    }
    Ok(claimed)
}

/// A due delivery as the claim queries select it: due at, id, event,
/// plugin, attempt, when its time-to-live started (NULL: at the event's
/// acceptance).
type DueRow = (i64, i64, i64, String, u32, Option<i64>);

fn due_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DueRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

/// Deliveries not yet done, oldest due first, optionally for one plugin
/// (for all: each plugin's oldest, by index, merged).
pub(super) fn deliveries(
    conn: &Connection,
    plugin: Option<&str>,
    limit: usize,
) -> Result<Vec<PendingDelivery>, JournalError> {
    let plugins = match plugin {
        Some(plugin) => vec![plugin.to_string()],
        None => plugins_with_deliveries(conn)?,
    };
    let mut query = conn.prepare_cached(
        "SELECT d.id, e.event_id,
                CASE WHEN e.format = 1
                     THEN coalesce(json_extract(e.body, '$.event.eventType'),
                                   json_extract(e.body, '$.event.type'), '')
                     ELSE e.event_type END,
                d.plugin, d.attempts, d.due_at, d.last_error, e.received_at
         FROM deliveries d JOIN events e ON e.seq = d.event_seq
         WHERE d.plugin = ?1
         ORDER BY d.due_at, d.id LIMIT ?2",
    )?;
    let mut all = Vec::new();
    for plugin in plugins {
        let rows = query.query_map(params![plugin, limit as i64], |r| {
            Ok(PendingDelivery {
                id: r.get(0)?,
                event_id: r.get(1)?,
                event_type: r.get(2)?,
                plugin: r.get(3)?,
                attempts: r.get(4)?,
                due_at_ms: r.get(5)?,
                last_error: r.get(6)?,
                received_at_ms: r.get(7)?,
            })
        })?;
        for row in rows {
            all.push(row?);
        }
    }
    all.sort_by_key(|d| (d.due_at_ms, d.id));
    all.truncate(limit);
    Ok(all)
}

/// Every plugin with a delivery in the journal, each found by one search
/// of the `(plugin, due_at, id)` index (a loose index scan: no index on
/// `due_at` alone is kept, as every delivery would pay for it twice).
const PLUGINS_WITH_DELIVERIES: &str = "
    WITH RECURSIVE p(plugin) AS (
        SELECT MIN(plugin) FROM deliveries
        UNION ALL
        SELECT (SELECT MIN(plugin) FROM deliveries WHERE plugin > p.plugin)
        FROM p WHERE p.plugin IS NOT NULL
    )";

/// The plugins with deliveries in the journal, by name.
pub(super) fn plugins_with_deliveries(conn: &Connection) -> Result<Vec<String>, JournalError> {
    let mut query = conn.prepare_cached(&plugins_sql())?;
    let plugins = query.query_map([], |r| r.get(0))?;
    Ok(plugins.collect::<Result<_, _>>()?)
}

fn plugins_sql() -> String {
    format!("{PLUGINS_WITH_DELIVERIES} SELECT plugin FROM p WHERE plugin IS NOT NULL")
}

/// A plugin's earliest delivery not in flight (`?2`, a JSON array), by
/// index.
const NEXT_DUE: &str = "SELECT due_at FROM deliveries
     WHERE plugin = ?1 AND id NOT IN (SELECT value FROM json_each(?2))
     ORDER BY due_at, id LIMIT 1";

/// When the earliest delivery that `slots` could take is due: each plugin
/// with free slots, its deliveries in flight skipped, by index (a few rows
/// per plugin). Deliveries of plugins without free slots (waiting for a
/// version, or busy) are left out: nothing could claim them now, and
/// counting them had the dispatch loop look again every millisecond.
pub(super) fn next_due_ms(conn: &Connection, slots: &[Slots]) -> Result<Option<i64>, JournalError> {
    let mut first = conn.prepare_cached(NEXT_DUE)?;
    let mut next: Option<i64> = None;
    for slot in slots.iter().filter(|s| s.free > 0) {
        let busy = serde_json::to_string(&slot.in_flight).unwrap_or_else(|_| "[]".into());
        let due: Option<i64> = first
            .query_row(params![slot.plugin, busy], |r| r.get(0))
            .optional()?;
        next = match (next, due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    Ok(next)
}

/// Dead letters matching `filter` (one `?1` parameter), newest first, each
/// with its event's stored format and text.
pub(super) fn letters(
    conn: &Connection,
    filter: &str,
    arg: rusqlite::types::Value,
) -> Result<Vec<(DeadLetter, i64, String)>, JournalError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT d.id, d.plugin, d.reason, d.attempts, d.last_error, d.dead_at, d.replayed_at,
                e.received_at, e.event_id, e.format, e.body,
                CASE WHEN e.format = 1
                     THEN coalesce(json_extract(e.body, '$.event.topic'),
                                   json_extract(e.body, '$.event.source'), '')
                     ELSE e.topic END,
                CASE WHEN e.format = 1
                     THEN coalesce(json_extract(e.body, '$.event.eventType'),
                                   json_extract(e.body, '$.event.type'), '')
                     ELSE e.event_type END,
                d.errors
         FROM dead_letters d JOIN events e ON e.seq = d.event_seq {filter} ORDER BY d.id DESC"
    ))?;
    let rows = stmt.query_map(params![arg], |r| {
        Ok((
            DeadLetter {
                id: r.get(0)?,
                plugin: r.get(1)?,
                reason: r.get(2)?,
                delivery_attempts: r.get(3)?,
                last_error: r.get(4)?,
                dead_lettered_ms: r.get(5)?,
                replayed_ms: r.get(6)?,
                publish_time_ms: r.get(7)?,
                event_id: r.get(8)?,
                topic: r.get(11)?,
                event_type: r.get(12)?,
                errors: serde_json::from_str(&r.get::<_, String>(13)?).unwrap_or_default(),
            },
            r.get(9)?,
            r.get(10)?,
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// One dead letter and its event as JSON.
pub(super) fn dead_letter_event(
    conn: &Connection,
    id: i64,
) -> Result<Option<(DeadLetter, Value)>, JournalError> {
    let found = letters(conn, "WHERE d.id = ?1", id.into())?
        .into_iter()
        .next();
    Ok(found.map(|(letter, format, body)| (letter, event_json(format, &body))))
}

#[cfg(test)]
mod tests {
    use super::super::super::Slots;
    use super::{NEXT_DUE, next_due_ms, plugins_sql, plugins_with_deliveries};
    use rusqlite::{Connection, StatementStatus, params};

    fn journal() -> Connection {
        let mut conn = Connection::open_in_memory().expect("open");
        super::super::schema::migrate(&mut conn).expect("schema");
        conn
    }

    fn slot(plugin: &str, free: u32, in_flight: &[i64]) -> Slots {
        Slots {
            plugin: plugin.into(),
            free,
            overall: 64,
            in_flight: in_flight.to_vec(),
        }
    }

    /// What dispatch asks on every sweep and every idle turn costs a few
    /// index searches per plugin, not a pass over every delivery.
    #[test]
    fn finding_plugins_and_the_next_due_time_read_a_few_rows_per_plugin() {
        let conn = journal();
        conn.execute(
            "INSERT INTO events (seq, topic_key, event_id, body, received_at) VALUES (1, 't', 'e', '{}', 0)",
            [],
        )
        .expect("event");
        for i in 0..10_000 {
            conn.execute(
                "INSERT INTO deliveries (event_seq, plugin, due_at) VALUES (1, ?1, ?2)",
                params![["a", "b", "c"][i % 3], 10_000 - i as i64],
            )
            .expect("delivery");
        }
        let mut statement = conn.prepare(&plugins_sql()).expect("prepare");
        let mut rows = statement.query([]).expect("query");
        while rows.next().expect("row").is_some() {}
        drop(rows);
        let steps = statement.get_status(StatementStatus::VmStep);
        // A pass over the deliveries takes ≥ 10,000 steps.
        assert!(steps < 500, "{steps} steps");
        drop(statement);
        let slots = [slot("a", 8, &[]), slot("b", 8, &[]), slot("c", 8, &[])];
        assert_eq!(next_due_ms(&conn, &slots).expect("next"), Some(1));
        // The statement next_due_ms ran, from the cache, with its count.
        let cached = conn.prepare_cached(NEXT_DUE).expect("cached");
        let steps = cached.get_status(StatementStatus::VmStep);
        assert!(steps > 0 && steps < 500, "{steps} steps for three plugins");
    }

    #[test]
    fn the_next_due_time_counts_only_what_could_be_claimed() {
        let conn = journal();
        let all = [slot("a", 8, &[]), slot("b", 8, &[]), slot("c", 8, &[])];
        assert_eq!(next_due_ms(&conn, &all).expect("next"), None);
        assert!(plugins_with_deliveries(&conn).expect("plugins").is_empty());
        conn.execute(
            "INSERT INTO events (seq, topic_key, event_id, body, received_at) VALUES (1, 't', 'e', '{}', 0)",
            [],
        )
        .expect("event");
        // Ids 1..=5.
        for (plugin, due) in [("b", 50), ("a", 70), ("c", 30), ("b", 20), ("a", 90)] {
            conn.execute(
                "INSERT INTO deliveries (event_seq, plugin, due_at) VALUES (1, ?1, ?2)",
                params![plugin, due],
            )
            .expect("delivery");
        }
        assert_eq!(
            plugins_with_deliveries(&conn).expect("plugins"),
            ["a", "b", "c"]
        );
        assert_eq!(next_due_ms(&conn, &all).expect("next"), Some(20));
        // b's earliest (id 4) is in flight: its next is 50.
        let b_busy = [slot("a", 8, &[]), slot("b", 8, &[4]), slot("c", 0, &[])];
        assert_eq!(next_due_ms(&conn, &b_busy).expect("next"), Some(50));
        // c has no free slot (waiting for a version): not counted.
        let c_waits = [slot("a", 8, &[]), slot("c", 0, &[])];
        assert_eq!(next_due_ms(&conn, &c_waits).expect("next"), Some(70));
        // Every delivery of a plugin in flight: nothing to wait for.
        assert_eq!(
            next_due_ms(&conn, &[slot("a", 8, &[2, 5])]).expect("next"),
            None
        );
    }
}
