//! Reads, on a connection of their own (WAL lets them run beside the
//! writer's commits): the deliveries due, and what the admin API lists.
//! Nothing here parses an event it does not deliver, and one event that
//! cannot be read back is reported on its own, never failing a whole read.

use super::super::{
    Claimed, DeadLetter, DueDelivery, JournalError, PendingDelivery, Slots, Unreadable,
};
use super::stored::{ROW_COLUMNS, Recent, Row, event_json};
use rusqlite::{Connection, params};
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
    // Plugins not named are rare (removed plugins) and finding them scans
    // every due row: only when asked.
    if other_slots > 0 {
        let named: Vec<&str> = slots.iter().map(|s| s.plugin.as_str()).collect();
        let busy = ids(in_flight);
        let named = serde_json::to_string(&named).unwrap_or_else(|_| "[]".into());
        let mut others = conn.prepare_cached(
            "SELECT due_at, id, event_seq, plugin, attempts + 1, ttl_from FROM deliveries
             WHERE due_at <= ?1
               AND plugin NOT IN (SELECT value FROM json_each(?2))
               AND id NOT IN (SELECT value FROM json_each(?3))
             ORDER BY due_at, id LIMIT ?4",
        )?;
        let found = others.query_map(params![now_ms, named, busy, other_slots], due_row)?;
        for row in found {
            rows.push(row?);
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

/// Deliveries not yet done, oldest due first, optionally for one plugin.
pub(super) fn deliveries(
    conn: &Connection,
    plugin: Option<&str>,
    limit: usize,
) -> Result<Vec<PendingDelivery>, JournalError> {
    let mut query = conn.prepare_cached(
        "SELECT d.id, e.event_id,
                CASE WHEN e.format = 1
                     THEN coalesce(json_extract(e.body, '$.event.eventType'),
                                   json_extract(e.body, '$.event.type'), '')
                     ELSE e.event_type END,
                d.plugin, d.attempts, d.due_at, d.last_error, e.received_at
         FROM deliveries d JOIN events e ON e.seq = d.event_seq
         WHERE ?1 IS NULL OR d.plugin = ?1
         ORDER BY d.due_at, d.id LIMIT ?2",
    )?;
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
    Ok(rows.collect::<Result<_, _>>()?)
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
