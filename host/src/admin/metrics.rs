//! `/metrics`: Prometheus text format, every family prefixed `gridlet_`.
//! Names follow Event Grid's own delivery metrics so operators recognise
//! them (DeliverySuccessCount → `gridlet_delivery_success_total`, and so on).
//!
//! The stages record through the `metrics` facade where the facts are
//! (ingest, dispatch, the plugin targets, the registry); this module installs
//! the process-wide Prometheus recorder once and renders it.
//!
//! The recorder keeps every histogram sample until it is folded into the
//! buckets; that happens on a scrape or at the recorder's upkeep, which a
//! recorder built this way does not schedule on its own. A thread does it
//! every [`UPKEEP_EVERY`], so a host nobody scrapes holds its buckets, not
//! every delivery's samples (16 bytes a delivery, without bound).

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

/// How often histogram samples are folded into their buckets when nobody
/// scrapes: at 20,000 deliveries a second that holds ≈ 0.6 MB of samples
/// at most; folding them costs microseconds.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(1);

/// Every family gridlet exports: name, kind, labels, meaning. The
/// configuration reference and the tests read this table.
pub const FAMILIES: &[(&str, &str, &str, &str)] = &[
    (
        "gridlet_events_received_total",
        "counter",
        "event_type",
        "Events accepted by the webhook and committed (Event Grid: PublishSuccessCount)",
    ),
    (
        "gridlet_events_duplicate_total",
        "counter",
        "",
        "Events acknowledged as duplicates of one seen within the dedup window, not delivered again",
    ),
    (
        "gridlet_requests_rejected_total",
        "counter",
        "reason",
        "Requests refused: auth (401), topic (403), size (413), timeout (408), malformed (400), busy (503/429), admin-auth (401 on /admin)",
    ),
    (
        "gridlet_delivery_success_total",
        "counter",
        "plugin, event_type",
        "Deliveries a plugin handled (Event Grid: DeliverySuccessCount)",
    ),
    (
        "gridlet_delivery_attempt_fail_total",
        "counter",
        "plugin, event_type, outcome",
        "Failed attempts by outcome: retry, reject, http, trap, deadline, memory, fuel, stack, host (Event Grid: DeliveryAttemptFailCount)",
    ),
    (
        "gridlet_dead_lettered_total",
        "counter",
        "plugin, event_type, reason",
        "Deliveries dead-lettered, by deadLetterReason (Event Grid: DeadLetteredCount)",
    ),
    (
        "gridlet_replayed_total",
        "counter",
        "",
        "Dead letters replayed as new deliveries",
    ),
    (
        "gridlet_deliveries_pending",
        "gauge",
        "",
        "Deliveries committed and not yet done (the backpressure bound applies to this)",
    ),
    (
        "gridlet_delivery_latency_seconds",
        "histogram",
        "plugin",
        "From the event's acceptance to its delivery being done (Event Grid: E2E delivery latency)",
    ),
    (
        "gridlet_destination_processing_duration_ms",
        "histogram",
        "plugin",
        "One attempt's execution time inside the plugin (Event Grid: DestinationProcessingDurationInMs)",
    ),
    (
        "gridlet_fuel_used",
        "histogram",
        "plugin",
        "Fuel one attempt consumed, for plugins with limits.fuel",
    ),
    (
        "gridlet_plugin_log_lines_dropped_total",
        "counter",
        "plugin",
        "Plugin log lines not written to gridlet's log: over the per-delivery cap or the per-plugin rate",
    ),
    (
        "gridlet_plugin_reloads_total",
        "counter",
        "plugin",
        "Versions loaded, at start and by hot reload",
    ),
    (
        "gridlet_plugin_rejected_versions_total",
        "counter",
        "plugin",
        "Plugin files that could not replace the serving version",
    ),
    (
        "gridlet_plugins_serving",
        "gauge",
        "",
        "Plugins serving now",
    ),
    (
        "gridlet_events_untyped_total",
        "counter",
        "event_type",
        "Events accepted whose data does not fit their type's record: delivered untyped (other)",
    ),
    (
        "gridlet_pull_received_events_total",
        "counter",
        "source",
        "Events received from a namespace subscription (Event Grid: SuccessfulReceivedEvents)",
    ),
    (
        "gridlet_pull_acknowledged_events_total",
        "counter",
        "source",
        "Events acknowledged, each only once its deliveries were committed",
    ),
    (
        "gridlet_pull_released_events_total",
        "counter",
        "source",
        "Events released with a delay because the journal could not take them",
    ),
    (
        "gridlet_pull_rejected_events_total",
        "counter",
        "source",
        "Events rejected: unreadable, or from a topic not in allowed_topics",
    ),
    (
        "gridlet_cluster_pending",
        "gauge",
        "plugin",
        "Cluster mode: the plugin's deliveries in JetStream not yet handed to any host",
    ),
    (
        "gridlet_cluster_ack_pending",
        "gauge",
        "plugin",
        "Cluster mode: the plugin's deliveries held by hosts, not yet settled",
    ),
    (
        "gridlet_cluster_redelivered",
        "gauge",
        "plugin",
        "Cluster mode: the plugin's deliveries handed out again (a host died or went silent holding them)",
    ),
    (
        "gridlet_pull_failed_lock_tokens_total",
        "counter",
        "source, operation",
        "Lock tokens an acknowledge, release, reject or renewLock did not settle",
    ),
    (
        "gridlet_pull_failed_calls_total",
        "counter",
        "source",
        "Receive or settle calls that failed: throttled, refused, unreachable",
    ),
];

/// Latency buckets, in seconds (and ×1000 for the millisecond histogram).
const BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Install the process-wide recorder (once; later calls reuse it). `None`
/// if another recorder was installed first.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let ms: Vec<f64> = BUCKETS.iter().map(|b| b * 1000.0).collect();
            let builder = PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Full(
                            "gridlet_destination_processing_duration_ms".into(),
                        ),
                        &ms,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Full("gridlet_fuel_used".into()),
                        &[1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10],
                    )
                });
            let recorder = match builder {
                Ok(b) => b.build_recorder(),
                Err(e) => {
                    tracing::error!("metrics: {e}");
                    return None;
                }
            };
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("metrics: another recorder is installed; /metrics is empty");
                return None;
            }
            describe();
            let upkeep = handle.clone();
            let started = std::thread::Builder::new()
                .name("gridlet-metrics".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_EVERY);
                        upkeep.run_upkeep();
                    }
                });
            if let Err(e) = started {
                // Then only scrapes fold samples in: say so, serve on.
                tracing::error!("metrics: no upkeep thread ({e}); histograms grow until scraped");
            }
            Some(handle)
        })
        .clone()
}

fn describe() {
    for (name, kind, _, help) in FAMILIES {
        let (name, help) = (*name, *help);
        match *kind {
            "counter" => describe_counter!(name, help),
            "gauge" => describe_gauge!(name, help),
            _ if name.ends_with("_seconds") => describe_histogram!(name, Unit::Seconds, help),
            _ if name.ends_with("_ms") => describe_histogram!(name, Unit::Milliseconds, help),
            _ => describe_histogram!(name, help),
        }
    }
}

/// `GET /metrics`.
pub fn router() -> Router {
    let handle = install();
    Router::new().route(
        "/metrics",
        get(move || {
            let text = handle.as_ref().map(|h| h.render()).unwrap_or_default();
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    text,
                )
                    .into_response()
            }
        }),
    )
}
