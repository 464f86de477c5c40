//! Metrics and logs. Every metric name is defined here once and nowhere else, so the
//! dashboards in `grafana/` and the alerts in `prometheus/` cannot drift from the code.
//!
//! Metrics go through the `metrics` facade into a Prometheus recorder installed once
//! per process; `/metrics` renders it.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::config::{LogConfig, LogFormat};

pub const HTTP_REQUESTS_TOTAL: &str = "gatepulse_http_requests_total";
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "gatepulse_http_request_duration_seconds";
pub const EVENTS_ACCEPTED_TOTAL: &str = "gatepulse_events_accepted_total";
pub const EVENTS_DEDUPED_TOTAL: &str = "gatepulse_events_deduped_total";
pub const STORE_COMMIT_BATCH_SIZE: &str = "gatepulse_store_commit_batch_size";
pub const STORE_COMMIT_DURATION_SECONDS: &str = "gatepulse_store_commit_duration_seconds";

pub const DELIVERY_ATTEMPTS_TOTAL: &str = "gatepulse_delivery_attempts_total";
pub const DELIVERY_ATTEMPT_DURATION_SECONDS: &str = "gatepulse_delivery_attempt_duration_seconds";
pub const DELIVERY_LATENCY_SECONDS: &str = "gatepulse_delivery_latency_seconds";
pub const DELIVERY_CLAIM_DURATION_SECONDS: &str = "gatepulse_delivery_claim_duration_seconds";
pub const DELIVERY_CLAIM_BATCH_SIZE: &str = "gatepulse_delivery_claim_batch_size";
pub const DELIVERY_IN_FLIGHT: &str = "gatepulse_delivery_in_flight";
pub const DELIVERY_QUEUE_DEPTH: &str = "gatepulse_delivery_queue_depth";
pub const DELIVERY_RETRY_BACKLOG: &str = "gatepulse_delivery_retry_backlog";
pub const DLQ_SIZE: &str = "gatepulse_dlq_size";
pub const ENDPOINT_CIRCUITS: &str = "gatepulse_endpoint_circuits";
pub const ENDPOINTS_AUTO_DISABLED_TOTAL: &str = "gatepulse_endpoints_auto_disabled_total";
pub const OVERLOAD_DROPS_TOTAL: &str = "gatepulse_overload_drops_total";
pub const COMPACTION_DURATION_SECONDS: &str = "gatepulse_compaction_duration_seconds";
pub const SEGMENTS_DELETED_TOTAL: &str = "gatepulse_segments_deleted_total";
pub const RETENTION_ROWS_DELETED_TOTAL: &str = "gatepulse_retention_rows_deleted_total";
pub const TRANSFORM_STAGE_DURATION_SECONDS: &str = "gatepulse_transform_stage_duration_seconds";
pub const TRANSFORM_ERRORS_TOTAL: &str = "gatepulse_transform_errors_total";
pub const PLUGINS_DISABLED_TOTAL: &str = "gatepulse_plugins_disabled_total";
pub const STREAM_CLIENTS: &str = "gatepulse_stream_clients";
pub const STREAM_EVENTS_SENT_TOTAL: &str = "gatepulse_stream_events_sent_total";
pub const STREAM_DISCONNECTS_TOTAL: &str = "gatepulse_stream_disconnects_total";
pub const STREAM_RESETS_TOTAL: &str = "gatepulse_stream_resets_total";
pub const CONNECTIONS_OPEN: &str = "gatepulse_connections_open";
pub const CONNECTIONS_REFUSED_TOTAL: &str = "gatepulse_connections_refused_total";
pub const CLUSTER_LEADER: &str = "gatepulse_cluster_leader";
pub const CLUSTER_LEADER_CHANGES_TOTAL: &str = "gatepulse_cluster_leader_changes_total";
pub const TRACE_SPANS_DROPPED_TOTAL: &str = "gatepulse_trace_spans_dropped_total";

/// Every metric name this build exports (checked against the dashboards by a test).
pub const ALL_METRICS: &[&str] = &[
    HTTP_REQUESTS_TOTAL,
    HTTP_REQUEST_DURATION_SECONDS,
    EVENTS_ACCEPTED_TOTAL,
    EVENTS_DEDUPED_TOTAL,
    STORE_COMMIT_BATCH_SIZE,
    STORE_COMMIT_DURATION_SECONDS,
    DELIVERY_ATTEMPTS_TOTAL,
    DELIVERY_ATTEMPT_DURATION_SECONDS,
    DELIVERY_LATENCY_SECONDS,
    DELIVERY_CLAIM_DURATION_SECONDS,
    DELIVERY_CLAIM_BATCH_SIZE,
    DELIVERY_IN_FLIGHT,
    DELIVERY_QUEUE_DEPTH,
    DELIVERY_RETRY_BACKLOG,
    DLQ_SIZE,
    ENDPOINT_CIRCUITS,
    ENDPOINTS_AUTO_DISABLED_TOTAL,
    OVERLOAD_DROPS_TOTAL,
    COMPACTION_DURATION_SECONDS,
    SEGMENTS_DELETED_TOTAL,
    RETENTION_ROWS_DELETED_TOTAL,
    TRANSFORM_STAGE_DURATION_SECONDS,
    TRANSFORM_ERRORS_TOTAL,
    PLUGINS_DISABLED_TOTAL,
    STREAM_CLIENTS,
    STREAM_EVENTS_SENT_TOTAL,
    STREAM_DISCONNECTS_TOTAL,
    STREAM_RESETS_TOTAL,
    CONNECTIONS_OPEN,
    CONNECTIONS_REFUSED_TOTAL,
    CLUSTER_LEADER,
    CLUSTER_LEADER_CHANGES_TOTAL,
    TRACE_SPANS_DROPPED_TOTAL,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder (once per process) and returns its handle.
pub fn metrics_handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let latency = [
                0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                0.5, 1.0, 2.5, 5.0,
            ];
            let batch = [
                1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
            ];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &latency)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(STORE_COMMIT_BATCH_SIZE.into()), &batch)
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(DELIVERY_CLAIM_BATCH_SIZE.into()),
                        &batch,
                    )
                });
            let recorder = match builder {
                Ok(b) => b.build_recorder(),
                Err(_) => PrometheusBuilder::new().build_recorder(),
            };
            let handle = recorder.handle();
            // Another recorder may already be installed (tests running several servers
            // in one process share this one); either way the handle renders ours.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            handle
        })
        .clone()
}

fn describe() {
    describe_gauge!(
        CLUSTER_LEADER,
        "1 on the node holding the cluster leadership, 0 on the others; exported only by nodes in a cluster."
    );
    describe_counter!(
        CLUSTER_LEADER_CHANGES_TOTAL,
        "Leadership changes this node saw (a new term), by outcome: won (this node took it) or other."
    );
    describe_counter!(
        HTTP_REQUESTS_TOTAL,
        "HTTP requests by route, method and status."
    );
    describe_histogram!(
        HTTP_REQUEST_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "HTTP request latency by route and method."
    );
    describe_counter!(
        EVENTS_ACCEPTED_TOTAL,
        "Events stored (new, not deduplicated)."
    );
    describe_counter!(
        EVENTS_DEDUPED_TOTAL,
        "Publishes answered with an earlier event through their idempotency key."
    );
    describe_histogram!(
        STORE_COMMIT_BATCH_SIZE,
        "Write operations sharing one durable commit (group commit)."
    );
    describe_histogram!(
        DELIVERY_CLAIM_BATCH_SIZE,
        "Deliveries leased by one claim (one store round trip)."
    );
    describe_histogram!(
        DELIVERY_CLAIM_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Time to lease one batch of due deliveries of an endpoint, with their events."
    );
    describe_histogram!(
        STORE_COMMIT_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Time to run and durably commit one write batch."
    );
    describe_counter!(
        DELIVERY_ATTEMPTS_TOTAL,
        "Delivery attempts by outcome: success, retry (will be retried), dead (sent to the DLQ)."
    );
    describe_histogram!(
        DELIVERY_ATTEMPT_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Duration of one HTTP attempt, request to response."
    );
    describe_histogram!(
        DELIVERY_LATENCY_SECONDS,
        metrics::Unit::Seconds,
        "From the event's acceptance to its successful delivery."
    );
    describe_gauge!(DELIVERY_IN_FLIGHT, "Attempts in progress.");
    describe_gauge!(
        DELIVERY_QUEUE_DEPTH,
        "Deliveries waiting for their first attempt."
    );
    describe_gauge!(DELIVERY_RETRY_BACKLOG, "Deliveries waiting for a retry.");
    describe_gauge!(DLQ_SIZE, "Deliveries in the dead-letter queue.");
    describe_gauge!(
        ENDPOINT_CIRCUITS,
        "Endpoints with recent delivery activity, by circuit breaker state (label state: \
         closed, half_open, open). Per-endpoint state is in /v1/stats, not here: endpoint \
         ids as labels would be unbounded and readable by anyone who can scrape."
    );
    describe_gauge!(
        CONNECTIONS_OPEN,
        "Open client connections (API and streams)."
    );
    describe_counter!(
        CONNECTIONS_REFUSED_TOTAL,
        "Client connections closed on arrival by a limit (label reason: \
         max_connections, max_connections_per_ip)."
    );
    describe_counter!(
        TRACE_SPANS_DROPPED_TOTAL,
        "Finished trace spans not exported: the export queue (tracing.max_queue_spans) was full or the OTLP collector did not accept them."
    );
    describe_counter!(
        ENDPOINTS_AUTO_DISABLED_TOTAL,
        "Endpoints disabled automatically (410 Gone or failing too long)."
    );
    describe_counter!(
        OVERLOAD_DROPS_TOTAL,
        "Events refused because of overload, by reason: inflight (too many publish requests at once) or queue_full (the tenant's queue is at its limit)."
    );
    describe_histogram!(
        COMPACTION_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Duration of one retention pass (all its batches)."
    );
    describe_counter!(
        SEGMENTS_DELETED_TOTAL,
        "Segments deleted by retention: a segment is one bounded batch of expired rows removed in one transaction."
    );
    describe_counter!(
        RETENTION_ROWS_DELETED_TOTAL,
        "Records deleted by retention, by kind: event, delivery, attempt."
    );
    describe_histogram!(
        TRANSFORM_STAGE_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Time of one transform stage per delivery, by stage: mapping or plugin."
    );
    describe_counter!(
        TRANSFORM_ERRORS_TOTAL,
        "Transform stages that failed, by stage and kind (mapping_limit, plugin_out_of_fuel, plugin_deadline, plugin_memory_limit, …)."
    );
    describe_counter!(
        PLUGINS_DISABLED_TOTAL,
        "Plugin modules disabled after too many consecutive failures."
    );
    counter!(PLUGINS_DISABLED_TOTAL).increment(0);
    describe_gauge!(STREAM_CLIENTS, "Open stream (SSE) connections.");
    describe_counter!(
        STREAM_EVENTS_SENT_TOTAL,
        "Items (events and delivery statuses) written to stream clients, history and live."
    );
    describe_counter!(
        STREAM_DISCONNECTS_TOTAL,
        "Stream connections ended, by reason: client (went away), slow_client (its buffer filled), shutdown."
    );
    describe_counter!(
        STREAM_RESETS_TOTAL,
        "gatepulse.reset frames sent (a cursor older than retention or the backfill limits), by reason."
    );
    gauge!(STREAM_CLIENTS).set(0.0);
    counter!(STREAM_EVENTS_SENT_TOTAL).increment(0);
    for reason in ["client", "slow_client", "shutdown"] {
        counter!(STREAM_DISCONNECTS_TOTAL, "reason" => reason).increment(0);
    }
    counter!(SEGMENTS_DELETED_TOTAL).increment(0);
    for reason in ["inflight", "queue_full"] {
        counter!(OVERLOAD_DROPS_TOTAL, "reason" => reason).increment(0);
    }
    for outcome in ["success", "retry", "dead"] {
        counter!(DELIVERY_ATTEMPTS_TOTAL, "outcome" => outcome).increment(0);
    }
    counter!(ENDPOINTS_AUTO_DISABLED_TOTAL).increment(0);
    gauge!(DELIVERY_IN_FLIGHT).set(0.0);
    // Counters without labels exist from the start, so dashboards show 0, not "no data".
    counter!(EVENTS_ACCEPTED_TOTAL).increment(0);
    counter!(EVENTS_DEDUPED_TOTAL).increment(0);
}

pub fn record_http(route: &str, method: &str, status: u16, elapsed: Duration) {
    counter!(
        HTTP_REQUESTS_TOTAL,
        "route" => route.to_owned(),
        "method" => method.to_owned(),
        "status" => status.to_string()
    )
    .increment(1);
    histogram!(
        HTTP_REQUEST_DURATION_SECONDS,
        "route" => route.to_owned(),
        "method" => method.to_owned()
    )
    .record(elapsed.as_secs_f64());
}

pub fn record_trace_spans_dropped(n: u64) {
    counter!(TRACE_SPANS_DROPPED_TOTAL).increment(n);
}

pub fn record_publish(deduped: bool) {
    if deduped {
        counter!(EVENTS_DEDUPED_TOTAL).increment(1);
    } else {
        counter!(EVENTS_ACCEPTED_TOTAL).increment(1);
    }
}

pub fn record_commit(batch: usize, elapsed: Duration) {
    histogram!(STORE_COMMIT_BATCH_SIZE).record(batch as f64);
    histogram!(STORE_COMMIT_DURATION_SECONDS).record(elapsed.as_secs_f64());
}

/// One claim: `claimed` deliveries leased in `elapsed`.
pub fn record_claim(claimed: usize, elapsed: Duration) {
    histogram!(DELIVERY_CLAIM_BATCH_SIZE).record(claimed as f64);
    histogram!(DELIVERY_CLAIM_DURATION_SECONDS).record(elapsed.as_secs_f64());
}

/// One finished attempt. `outcome` is `success`, `retry` or `dead`.
pub fn record_attempt(outcome: &'static str, elapsed: Duration) {
    counter!(DELIVERY_ATTEMPTS_TOTAL, "outcome" => outcome).increment(1);
    histogram!(DELIVERY_ATTEMPT_DURATION_SECONDS).record(elapsed.as_secs_f64());
}

/// Events refused for overload (`reason`: `inflight` or `queue_full`).
pub fn record_overload(reason: &'static str, events: u64) {
    counter!(OVERLOAD_DROPS_TOTAL, "reason" => reason).increment(events);
}

/// One retention pass finished.
pub fn record_retention_pass(elapsed: Duration) {
    histogram!(COMPACTION_DURATION_SECONDS).record(elapsed.as_secs_f64());
}

/// One retention batch (segment) deleted these records.
pub fn record_segment(events: u64, deliveries: u64, attempts: u64) {
    counter!(SEGMENTS_DELETED_TOTAL).increment(1);
    counter!(RETENTION_ROWS_DELETED_TOTAL, "kind" => "event").increment(events);
    counter!(RETENTION_ROWS_DELETED_TOTAL, "kind" => "delivery").increment(deliveries);
    counter!(RETENTION_ROWS_DELETED_TOTAL, "kind" => "attempt").increment(attempts);
}

/// Acceptance-to-delivery latency of a successful delivery.
pub fn record_delivery_latency(seconds: f64) {
    histogram!(DELIVERY_LATENCY_SECONDS).record(seconds.max(0.0));
}

pub fn set_in_flight(n: usize) {
    gauge!(DELIVERY_IN_FLIGHT).set(n as f64);
}

pub fn set_queue(pending: u64, retrying: u64, dead: u64) {
    gauge!(DELIVERY_QUEUE_DEPTH).set(pending as f64);
    gauge!(DELIVERY_RETRY_BACKLOG).set(retrying as f64);
    gauge!(DLQ_SIZE).set(dead as f64);
}

/// The open connections gauge.
pub fn set_connections_open(n: usize) {
    gauge!(CONNECTIONS_OPEN).set(n as f64);
}

/// One connection closed on arrival by a limit.
pub fn record_connection_refused(reason: &'static str) {
    counter!(CONNECTIONS_REFUSED_TOTAL, "reason" => reason).increment(1);
}

/// How many endpoints' circuits are in each state.
pub fn set_circuits(closed: u64, half_open: u64, open: u64) {
    gauge!(ENDPOINT_CIRCUITS, "state" => "closed").set(closed as f64);
    gauge!(ENDPOINT_CIRCUITS, "state" => "half_open").set(half_open as f64);
    gauge!(ENDPOINT_CIRCUITS, "state" => "open").set(open as f64);
}

/// This node saw the leadership change hands (a new term: `won` by this node, or
/// by another).
pub fn record_leader_change(won: bool) {
    counter!(CLUSTER_LEADER_CHANGES_TOTAL, "outcome" => if won { "won" } else { "other" })
        .increment(1);
}

/// Whether this node leads its cluster (only nodes in a cluster set it, so that a
/// single node never trips the "no leader" alert).
pub fn set_cluster_leader(is_leader: bool) {
    gauge!(CLUSTER_LEADER).set(if is_leader { 1.0 } else { 0.0 });
}

/// The stream client gauge, moved by one connection opening or closing.
pub fn stream_clients(delta: f64) {
    gauge!(STREAM_CLIENTS).increment(delta);
}

/// The counter of stream items sent; fetch once per connection, bump per item.
pub fn stream_items_sent() -> metrics::Counter {
    counter!(STREAM_EVENTS_SENT_TOTAL)
}

/// A stream connection ended (`reason`: `client`, `slow_client` or `shutdown`).
pub fn record_stream_end(reason: &'static str) {
    counter!(STREAM_DISCONNECTS_TOTAL, "reason" => reason).increment(1);
}

/// A `gatepulse.reset` frame was sent.
pub fn record_stream_reset(reason: &'static str) {
    counter!(STREAM_RESETS_TOTAL, "reason" => reason).increment(1);
}

/// One transform stage ran (`stage`: `mapping` or `plugin`).
pub fn record_transform_stage(stage: &'static str, took: Duration) {
    histogram!(TRANSFORM_STAGE_DURATION_SECONDS, "stage" => stage).record(took.as_secs_f64());
}

/// A transform stage failed.
pub fn record_transform_error(stage: &'static str, kind: &'static str) {
    counter!(TRANSFORM_ERRORS_TOTAL, "stage" => stage, "kind" => kind).increment(1);
}

/// A plugin was disabled for failing too often.
pub fn record_plugin_disabled() {
    counter!(PLUGINS_DISABLED_TOTAL).increment(1);
}

pub fn record_auto_disable() {
    counter!(ENDPOINTS_AUTO_DISABLED_TOTAL).increment(1);
}

/// Installs the tracing subscriber for the `gp` process. `RUST_LOG` wins over the
/// configured level.
pub fn init_logging(config: &LogConfig) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match config.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
