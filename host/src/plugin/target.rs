//! Plugins as dispatch targets: the plugin's filter decides what it gets,
//! the runtime delivers, and the outcome becomes dispatch's verdict.

use super::LoadedPlugin;
use crate::dispatch::{Policy, Target, Verdict};
use crate::event::Event;
use crate::runtime::{Entry, FailureKind, Invocation, Outcome, Runtime};
use std::sync::Arc;

/// One loaded plugin on a runtime.
pub struct PluginTarget {
    runtime: Arc<Runtime>,
    plugin: LoadedPlugin,
    history: Arc<History>,
}

/// How many recent invocations a plugin keeps for the admin API.
const HISTORY: usize = 50;

/// One attempt, as the admin API lists it.
#[derive(Debug, Clone)]
pub struct InvocationRecord {
    /// When it ended (ms since the epoch).
    pub at_ms: i64,
    /// The event.
    pub event_id: String,
    /// The event's short type.
    pub event_type: String,
    /// Which attempt.
    pub attempt: u32,
    /// The version that handled it (short content hash).
    pub version: String,
    /// `handled`, `retry`, `reject`, or the failure kind.
    pub outcome: &'static str,
    /// The reason, for anything but `handled` (config values redacted).
    pub reason: Option<String>,
    /// Time inside the plugin, in ms.
    pub duration_ms: f64,
    /// What it logged and did, one line each (the first
    /// [`RECORDED_LINES`], each cut at [`RECORDED_LINE_BYTES`]; config
    /// values already redacted).
    pub lines: Vec<String>,
}

/// Lines of an attempt its record keeps: enough to see what happened,
/// bounded so 50 records of a flooding plugin stay small.
pub const RECORDED_LINES: usize = 40;
/// Bytes of one recorded line.
pub const RECORDED_LINE_BYTES: usize = 500;

/// An attempt's entries as recorded lines, with a last line saying how
/// many more there were.
fn recorded_lines(invocation: &Invocation) -> Vec<String> {
    let mut lines: Vec<String> = invocation
        .entries
        .iter()
        .take(RECORDED_LINES)
        .map(|e| {
            let mut line = e.to_string();
            if line.len() > RECORDED_LINE_BYTES {
                line.truncate(line.floor_char_boundary(RECORDED_LINE_BYTES));
                line.push('…');
            }
            line
        })
        .collect();
    let more = (invocation.entries.len() - lines.len()) as u64 + invocation.dropped_log_lines;
    if more > 0 {
        lines.push(format!("({more} more not kept)"));
    }
    lines
}

/// A plugin's most recent invocations, newest last; kept across versions.
#[derive(Debug, Default)]
pub struct History(std::sync::Mutex<std::collections::VecDeque<InvocationRecord>>);

impl History {
    fn push(&self, record: InvocationRecord) {
        let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if list.len() == HISTORY {
            list.pop_front();
        }
        list.push_back(record);
    }

    /// The recent invocations, newest first.
    pub fn recent(&self) -> Vec<InvocationRecord> {
        let list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        list.iter().rev().cloned().collect()
    }
}

impl PluginTarget {
    /// Serve `plugin` on `runtime`, recording invocations in `history`.
    pub fn new(runtime: Arc<Runtime>, plugin: LoadedPlugin, history: Arc<History>) -> Self {
        Self {
            runtime,
            plugin,
            history,
        }
    }

    /// The plugin.
    pub fn plugin(&self) -> &LoadedPlugin {
        &self.plugin
    }
}

#[async_trait::async_trait]
impl Target for PluginTarget {
    fn name(&self) -> &str {
        self.plugin.version.name()
    }

    fn accepts(&self, event: &Event) -> bool {
        self.plugin.filter.matches(event)
    }

    fn policy(&self) -> Policy {
        Policy {
            max_attempts: self.plugin.retry.max_delivery_attempts,
            time_to_live: self.plugin.retry.event_time_to_live,
            max_concurrency: self.plugin.version.limits().max_concurrency,
            overall_concurrency: self.plugin.overall_concurrency,
        }
    }

    async fn deliver(&self, event: Arc<Event>, attempt: u32) -> Verdict {
        let event = &*event;
        let invocation = self
            .runtime
            .invoke(&self.plugin.version, event, attempt)
            .await;
        record(self.name(), event, &invocation);
        self.history.push(InvocationRecord {
            at_ms: crate::journal::now_ms(),
            event_id: event.id.clone(),
            event_type: event.short_type().to_string(),
            attempt,
            version: self.plugin.version.version().to_string(),
            outcome: invocation.outcome.label(),
            reason: match &invocation.outcome {
                Outcome::Handled => None,
                other => Some(other.to_string()),
            },
            duration_ms: invocation.duration.as_secs_f64() * 1000.0,
            lines: recorded_lines(&invocation),
        });
        match invocation.outcome {
            Outcome::Handled => Verdict::Done,
            Outcome::Reject(why) => Verdict::DeadLetter(why),
            Outcome::Failed(f) if f.kind == FailureKind::NoInstance => Verdict::Postpone(f.message),
            other => Verdict::Retry(other.to_string()),
        }
    }
}

/// Event Grid's per-attempt metrics for one invocation.
fn record(plugin: &str, event: &Event, invocation: &Invocation) {
    let plugin = plugin.to_string();
    metrics::histogram!("gridlet_destination_processing_duration_ms", "plugin" => plugin.clone())
        .record(invocation.duration.as_secs_f64() * 1000.0);
    if let Some(fuel) = invocation.fuel_used {
        metrics::histogram!("gridlet_fuel_used", "plugin" => plugin.clone()).record(fuel as f64);
    }
    if invocation.dropped_log_lines > 0 {
        metrics::counter!("gridlet_plugin_log_lines_dropped_total", "plugin" => plugin.clone())
            .increment(invocation.dropped_log_lines);
    }
    let outcome = match &invocation.outcome {
        Outcome::Handled => return,
        // A retry after an outbound request failed is the network's doing.
        Outcome::Retry(_)
            if invocation
                .entries
                .iter()
                .any(|e| matches!(e, Entry::Http { result: Err(_), .. })) =>
        {
            "http"
        }
        other => other.label(),
    };
    metrics::counter!(
        "gridlet_delivery_attempt_fail_total",
        "plugin" => plugin,
        "event_type" => event.type_label(),
        "outcome" => outcome
    )
    .increment(1);
}
