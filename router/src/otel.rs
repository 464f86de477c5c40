//! OpenTelemetry traces, exported over OTLP/HTTP with the JSON encoding: a span per
//! publish request and per delivery attempt, linked by the W3C trace context
//! (`traceparent`). A publish continues the publisher's trace when its request
//! carries one; each event keeps its publish span's context, so every attempt to
//! deliver it, retries and replays included, is a child of that span, and the
//! receiver's request carries the attempt's `traceparent` so its own spans join the
//! same trace.
//!
//! Off unless `tracing.otlp_endpoint` (or `OTEL_EXPORTER_OTLP_ENDPOINT`) is set; off,
//! a [`Tracer`] is `None` inside and costs a branch. On, a finished span goes to a
//! bounded queue (`tracing.max_queue_spans`) that one task sends in batches; a full
//! queue or an unreachable collector drops spans (counted in
//! `gatepulse_trace_spans_dropped_total`), never slows a publish or a delivery.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::config::TracingConfig;

/// Spans sent in one export request at most.
const BATCH: usize = 512;
/// A batch waits at most this long for more spans.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// The W3C trace context of one span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub sampled: bool,
}

impl SpanContext {
    /// Reads a `traceparent` header (W3C Trace Context, level 1). Unknown future
    /// versions are read by their version-00 prefix, as the specification asks;
    /// anything malformed, and the all-zero ids, give `None`.
    pub fn parse(header: &str) -> Option<Self> {
        let h = header.trim();
        // Byte offsets below: ASCII only (a header value always is).
        if !h.is_ascii() {
            return None;
        }
        let version = h.get(0..2)?;
        if version == "ff" || !is_lower_hex(version) {
            return None;
        }
        if (version == "00" && h.len() != 55) || h.len() < 55 {
            return None;
        }
        if version != "00" && h.len() > 55 && h.as_bytes()[55] != b'-' {
            return None;
        }
        let b = h.as_bytes();
        if b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return None;
        }
        let (trace, span, flags) = (&h[3..35], &h[36..52], &h[53..55]);
        if !is_lower_hex(trace) || !is_lower_hex(span) || !is_lower_hex(flags) {
            return None;
        }
        let mut trace_id = [0u8; 16];
        let mut span_id = [0u8; 8];
        hex::decode_to_slice(trace, &mut trace_id).ok()?;
        hex::decode_to_slice(span, &mut span_id).ok()?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }

    /// The `traceparent` header value.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{}",
            hex::encode(self.trace_id),
            hex::encode(self.span_id),
            if self.sampled { "01" } else { "00" }
        )
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

fn nonzero<const N: usize>() -> [u8; N] {
    loop {
        let id: [u8; N] = rand::random();
        if id != [0; N] {
            return id;
        }
    }
}

/// What a span is to its trace (OTLP's `SpanKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// A request this node answers (a publish).
    Server,
    /// A request this node sends (a delivery attempt).
    Client,
}

/// An attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    Str(String),
    Int(i64),
}

impl From<&str> for AttrValue {
    fn from(s: &str) -> Self {
        Self::Str(s.to_owned())
    }
}

impl From<String> for AttrValue {
    fn from(s: String) -> Self {
        Self::Str(s)
    }
}

impl From<i64> for AttrValue {
    fn from(n: i64) -> Self {
        Self::Int(n)
    }
}

impl From<u32> for AttrValue {
    fn from(n: u32) -> Self {
        Self::Int(i64::from(n))
    }
}

impl From<u16> for AttrValue {
    fn from(n: u16) -> Self {
        Self::Int(i64::from(n))
    }
}

/// A span in progress. Dropped without [`Span::end`], it is not exported.
#[derive(Debug)]
pub struct Span {
    context: SpanContext,
    parent: Option<[u8; 8]>,
    name: &'static str,
    kind: SpanKind,
    start_ns: u64,
    attributes: Vec<(&'static str, AttrValue)>,
    error: Option<String>,
    export: Arc<Export>,
}

impl Span {
    /// This span's context: what a child, or a request it sends, carries.
    pub fn context(&self) -> &SpanContext {
        &self.context
    }

    pub fn set(&mut self, key: &'static str, value: impl Into<AttrValue>) {
        self.attributes.push((key, value.into()));
    }

    /// Marks the span failed, with a message (never a secret: shown in the backend).
    pub fn fail(&mut self, message: impl Into<String>) {
        self.error = Some(message.into());
    }

    /// Ends the span now and queues it for export when its trace is sampled.
    pub fn end(self) {
        if !self.context.sampled {
            return;
        }
        let done = Finished {
            context: self.context,
            parent: self.parent,
            name: self.name,
            kind: self.kind,
            start_ns: self.start_ns,
            end_ns: now_ns(),
            attributes: self.attributes,
            error: self.error,
        };
        if self.export.tx.try_send(done).is_err() {
            crate::telemetry::record_trace_spans_dropped(1);
        }
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A finished span, waiting for export.
#[derive(Debug)]
struct Finished {
    context: SpanContext,
    parent: Option<[u8; 8]>,
    name: &'static str,
    kind: SpanKind,
    start_ns: u64,
    end_ns: u64,
    attributes: Vec<(&'static str, AttrValue)>,
    error: Option<String>,
}

#[derive(Debug)]
struct Export {
    tx: mpsc::Sender<Finished>,
    /// Traces without a sampled parent are kept with this probability.
    ratio: f64,
}

/// Starts spans, or does nothing when tracing is off. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Tracer {
    export: Option<Arc<Export>>,
}

/// Why tracing could not start.
#[derive(Debug, thiserror::Error)]
pub enum TracingError {
    #[error("tracing.otlp_endpoint: {0}")]
    Endpoint(String),
    #[error("tracing.otlp_headers: {0}")]
    Header(String),
    #[error("tracing: {0}")]
    Client(String),
}

impl Tracer {
    /// Tracing off.
    pub fn off() -> Self {
        Self { export: None }
    }

    /// From the configuration and the standard `OTEL_EXPORTER_OTLP_*` variables
    /// (`env`): off when no endpoint is set. Starts the export task.
    pub fn start(
        config: &TracingConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, TracingError> {
        let Some(target) = ExportTarget::resolve(config, env)? else {
            return Ok(Self::off());
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.export_timeout_secs.max(1)))
            .build()
            .map_err(|e| TracingError::Client(e.to_string()))?;
        let (tx, rx) = mpsc::channel(config.max_queue_spans.max(1));
        let resource = json!({
            "attributes": [
                attr("service.name", &AttrValue::Str(config.service_name.clone())),
                attr("service.version", &AttrValue::Str(env!("CARGO_PKG_VERSION").into())),
            ]
        });
        tracing::info!(endpoint = %target.url_for_logs(), "tracing: exporting spans over OTLP/HTTP");
        tokio::spawn(run_export(client, target, resource, rx));
        Ok(Self {
            export: Some(Arc::new(Export {
                tx,
                ratio: config.sample_ratio.clamp(0.0, 1.0),
            })),
        })
    }

    pub fn enabled(&self) -> bool {
        self.export.is_some()
    }

    /// Starts a span: a child of `parent` (a `traceparent` value) when it is valid,
    /// else the root of a new trace, sampled by `tracing.sample_ratio`. `None` when
    /// tracing is off.
    pub fn start_span(
        &self,
        name: &'static str,
        kind: SpanKind,
        parent: Option<&str>,
    ) -> Option<Span> {
        let export = self.export.as_ref()?;
        let parent = parent.and_then(SpanContext::parse);
        let context = match parent {
            Some(p) => SpanContext {
                trace_id: p.trace_id,
                span_id: nonzero(),
                sampled: p.sampled,
            },
            None => {
                let trace_id = nonzero::<16>();
                let mut low = [0u8; 8];
                low.copy_from_slice(&trace_id[8..]);
                // The trace id's random half decides, as OpenTelemetry's ratio
                // sampler does: a trace is kept or not as a whole.
                let sampled = export.ratio >= 1.0
                    || (u64::from_be_bytes(low) as f64) < export.ratio * (u64::MAX as f64);
                SpanContext {
                    trace_id,
                    span_id: nonzero(),
                    sampled,
                }
            }
        };
        Some(Span {
            context,
            parent: parent.map(|p| p.span_id),
            name,
            kind,
            start_ns: now_ns(),
            attributes: Vec::with_capacity(8),
            error: None,
            export: Arc::clone(export),
        })
    }
}

/// Where spans go.
#[derive(Debug)]
struct ExportTarget {
    url: reqwest::Url,
    headers: reqwest::header::HeaderMap,
}

impl ExportTarget {
    fn resolve(
        config: &TracingConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, TracingError> {
        let nonempty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        // The traces endpoint is used as given; a base endpoint gets `/v1/traces`.
        let url = if !config.otlp_endpoint.trim().is_empty() {
            with_traces_path(config.otlp_endpoint.trim())
        } else if let Some(u) = nonempty(env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) {
            u.trim().to_owned()
        } else if let Some(u) = nonempty(env("OTEL_EXPORTER_OTLP_ENDPOINT")) {
            with_traces_path(u.trim())
        } else {
            return Ok(None);
        };
        let url = reqwest::Url::parse(&url).map_err(|e| TracingError::Endpoint(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(TracingError::Endpoint(format!(
                "{}: only http and https are supported (OTLP/HTTP)",
                url.scheme()
            )));
        }
        let mut pairs: BTreeMap<String, String> = BTreeMap::new();
        // `k=v,k2=v2`, values percent-encoded (the OpenTelemetry convention).
        if let Some(list) = nonempty(env("OTEL_EXPORTER_OTLP_HEADERS")) {
            for item in list.split(',').filter(|i| !i.trim().is_empty()) {
                let (k, v) = item.split_once('=').ok_or_else(|| {
                    TracingError::Header("OTEL_EXPORTER_OTLP_HEADERS: expected key=value".into())
                })?;
                let v = percent_decode(v.trim());
                pairs.insert(k.trim().to_owned(), v);
            }
        }
        for (k, v) in &config.otlp_headers {
            pairs.insert(k.clone(), v.clone());
        }
        let mut headers = reqwest::header::HeaderMap::new();
        for (k, v) in pairs {
            let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| TracingError::Header(format!("{k:?} is not a header name")))?;
            // The value is a credential: never in the error.
            let mut value = reqwest::header::HeaderValue::from_str(&v)
                .map_err(|_| TracingError::Header(format!("the value of {k} is not valid")))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        Ok(Some(Self { url, headers }))
    }

    /// The URL without credentials or query (for logs).
    fn url_for_logs(&self) -> String {
        format!(
            "{}://{}{}",
            self.url.scheme(),
            self.url.host_str().unwrap_or(""),
            self.url.port().map(|p| format!(":{p}")).unwrap_or_default()
        ) + self.url.path()
    }
}

fn with_traces_path(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn attr(key: &str, value: &AttrValue) -> Value {
    let v = match value {
        AttrValue::Str(s) => json!({ "stringValue": s }),
        // OTLP JSON carries 64-bit integers as strings.
        AttrValue::Int(n) => json!({ "intValue": n.to_string() }),
    };
    json!({ "key": key, "value": v })
}

/// One span in OTLP JSON.
fn encode(span: &Finished) -> Value {
    let mut out = json!({
        "traceId": hex::encode(span.context.trace_id),
        "spanId": hex::encode(span.context.span_id),
        "name": span.name,
        "kind": match span.kind { SpanKind::Server => 2, SpanKind::Client => 3 },
        "startTimeUnixNano": span.start_ns.to_string(),
        "endTimeUnixNano": span.end_ns.to_string(),
        "attributes": span.attributes.iter().map(|(k, v)| attr(k, v)).collect::<Vec<_>>(),
        "status": match &span.error {
            None => json!({ "code": 1 }),
            Some(message) => json!({ "code": 2, "message": message }),
        },
    });
    if let (Some(parent), Some(map)) = (span.parent, out.as_object_mut()) {
        map.insert("parentSpanId".into(), Value::String(hex::encode(parent)));
    }
    out
}

async fn run_export(
    client: reqwest::Client,
    target: ExportTarget,
    resource: Value,
    mut rx: mpsc::Receiver<Finished>,
) {
    let mut failing_since: Option<std::time::Instant> = None;
    loop {
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + FLUSH_EVERY;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(span)) => batch.push(span),
                Ok(None) | Err(_) => break,
            }
        }
        let body = json!({
            "resourceSpans": [{
                "resource": resource,
                "scopeSpans": [{
                    "scope": { "name": "gatepulse", "version": env!("CARGO_PKG_VERSION") },
                    "spans": batch.iter().map(encode).collect::<Vec<_>>(),
                }],
            }],
        });
        let sent = client
            .post(target.url.clone())
            .headers(target.headers.clone())
            .json(&body)
            .send()
            .await;
        let failure = match sent {
            Ok(r) if r.status().is_success() => None,
            Ok(r) => Some(format!("the collector answered {}", r.status().as_u16())),
            Err(e) => Some(e.without_url().to_string()),
        };
        match failure {
            None => {
                if failing_since.take().is_some() {
                    tracing::info!("tracing: the collector accepts spans again");
                }
            }
            Some(why) => {
                crate::telemetry::record_trace_spans_dropped(batch.len() as u64);
                // One warning per outage, not one per batch.
                if failing_since.is_none() {
                    failing_since = Some(std::time::Instant::now());
                    tracing::warn!(error = %why, spans = batch.len(),
                        "tracing: exporting spans failed; dropping them until the collector answers");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const SAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn traceparent_round_trips_and_refuses_what_the_specification_refuses() {
        let c = SpanContext::parse(SAMPLE).unwrap();
        assert!(c.sampled);
        assert_eq!(c.traceparent(), SAMPLE);
        let unsampled = SpanContext::parse(&SAMPLE.replace("-01", "-00")).unwrap();
        assert!(!unsampled.sampled);
        // A later version with more fields is read by its version-00 prefix.
        assert!(SpanContext::parse(&format!("cc{}-extra", &SAMPLE[2..])).is_some());
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47é-00f067aa0ba902b7-01",
        ] {
            assert_eq!(SpanContext::parse(bad), None, "{bad:?}");
        }
    }

    fn config() -> TracingConfig {
        TracingConfig::default()
    }

    #[test]
    fn the_endpoint_comes_from_the_configuration_then_the_standard_variables() {
        let none = |_: &str| None;
        assert!(ExportTarget::resolve(&config(), &none).unwrap().is_none());
        let mut c = config();
        c.otlp_endpoint = "http://collector:4318/".into();
        let t = ExportTarget::resolve(&c, &none).unwrap().unwrap();
        assert_eq!(t.url.as_str(), "http://collector:4318/v1/traces");
        let env = |k: &str| match k {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("https://otel.example:4318".to_owned()),
            "OTEL_EXPORTER_OTLP_HEADERS" => Some("x-api-key=a%3Db, team = ops".to_owned()),
            _ => None,
        };
        let t = ExportTarget::resolve(&config(), &env).unwrap().unwrap();
        assert_eq!(t.url.as_str(), "https://otel.example:4318/v1/traces");
        assert_eq!(t.headers["x-api-key"], "a=b");
        assert_eq!(t.headers["team"], "ops");
        let traces = |k: &str| {
            (k == "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").then(|| "http://c:1/custom".to_owned())
        };
        let t = ExportTarget::resolve(&config(), &traces).unwrap().unwrap();
        assert_eq!(t.url.as_str(), "http://c:1/custom", "used as given");
        c.otlp_endpoint = "grpc://collector:4317".into();
        assert!(ExportTarget::resolve(&c, &none).is_err());
    }

    #[test]
    fn header_errors_never_show_the_value() {
        let mut c = config();
        c.otlp_endpoint = "http://c:4318".into();
        c.otlp_headers
            .insert("authorization".into(), "Bearer s3cr\net".into());
        let err = ExportTarget::resolve(&c, &|_| None)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("s3cr"), "{err}");
    }

    #[tokio::test]
    async fn children_keep_the_trace_and_the_sampling_decision() {
        let (tx, mut rx) = mpsc::channel(8);
        let tracer = Tracer {
            export: Some(Arc::new(Export { tx, ratio: 0.0 })),
        };
        // Ratio 0: a new trace is not sampled, so nothing is exported...
        let root = tracer.start_span("root", SpanKind::Server, None).unwrap();
        assert!(!root.context().sampled);
        root.end();
        assert!(rx.try_recv().is_err());
        // ...but a sampled parent is followed.
        let mut child = tracer
            .start_span("POST", SpanKind::Client, Some(SAMPLE))
            .unwrap();
        let parent = SpanContext::parse(SAMPLE).unwrap();
        assert_eq!(child.context().trace_id, parent.trace_id);
        assert_ne!(child.context().span_id, parent.span_id);
        child.set("gatepulse.attempt", 2u32);
        child.fail("timeout");
        child.end();
        let done = rx.try_recv().unwrap();
        let json = encode(&done);
        assert_eq!(json["parentSpanId"], "00f067aa0ba902b7");
        assert_eq!(json["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(json["kind"], 3);
        assert_eq!(json["status"]["code"], 2);
        assert_eq!(json["attributes"][0]["value"]["intValue"], "2");
        assert!(
            Tracer::off()
                .start_span("x", SpanKind::Server, None)
                .is_none()
        );
    }
}
