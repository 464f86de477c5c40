//! `gp tail`: follows the tenant stream in the terminal. By default it shows delivery
//! attempts (`deliveries.status`) as a live log, optionally of one endpoint; with
//! `--topic` it shows events. Reconnects by itself with `Last-Event-ID`, so a server
//! restart or a dropped connection loses nothing.

use std::time::Duration;

use clap::Args;
use serde_json::Value;

use super::client::Client;

#[derive(Debug, Args)]
pub struct TailArgs {
    /// Only this endpoint's attempts.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Topic pattern to follow (default: `deliveries.status`, the attempt log).
    #[arg(long)]
    pub topic: Option<String>,
    /// Start after this cursor (history first) instead of live only.
    #[arg(long)]
    pub from_cursor: Option<u64>,
    /// Print each item's JSON instead of a formatted line.
    #[arg(long)]
    pub json: bool,
}

/// One parsed SSE message.
#[derive(Debug, Default, PartialEq)]
struct Message {
    id: Option<String>,
    event: String,
    data: String,
}

/// An incremental SSE parser (WHATWG rules for the fields GatePulse sends).
#[derive(Debug, Default)]
struct Parser {
    buf: Vec<u8>,
    current: Message,
    has_data: bool,
    retry_ms: Option<u64>,
}

impl Parser {
    fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message in what was pushed.
    fn next(&mut self) -> Option<Message> {
        while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&line[..pos]);
            let line = line.strip_suffix('\r').unwrap_or(&line);
            if line.is_empty() {
                let done = std::mem::take(&mut self.current);
                if std::mem::take(&mut self.has_data) {
                    return Some(done);
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => self.current.id = Some(value.to_owned()),
                "event" => self.current.event = value.to_owned(),
                "data" => {
                    if self.has_data {
                        self.current.data.push('\n');
                    }
                    self.current.data.push_str(value);
                    self.has_data = true;
                }
                "retry" => self.retry_ms = value.parse().ok(),
                _ => {}
            }
        }
        None
    }
}

pub(super) fn run(args: TailArgs) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gp: {e}");
            return 1;
        }
    };
    runtime.block_on(async move {
        let client = match Client::configured() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("gp: {e}");
                return 1;
            }
        };
        tokio::select! {
            code = follow(&client, &args) => code,
            _ = tokio::signal::ctrl_c() => 0,
        }
    })
}

async fn follow(client: &Client, args: &TailArgs) -> i32 {
    let topic = args.topic.as_deref().unwrap_or(crate::stream::STATUS_TOPIC);
    let mut last_id: Option<String> = None;
    let mut retry = Duration::from_secs(2);
    let mut first = true;
    loop {
        let mut query = vec![format!("topic={}", encode(topic))];
        if let (None, Some(c)) = (&last_id, args.from_cursor) {
            query.push(format!("from_cursor={c}"));
        }
        let mut req = client
            .http
            .get(format!("{}/v1/stream?{}", client.base, query.join("&")))
            .bearer_auth(&client.token)
            .header("accept", "text/event-stream");
        if let Some(t) = &client.tenant {
            req = req.header("GatePulse-Tenant", t);
        }
        if let Some(id) = &last_id {
            req = req.header("last-event-id", id);
        }
        match req.send().await {
            Ok(resp) if resp.status().is_success() => {
                if first {
                    eprintln!("gp: following {topic} at {} (Ctrl-C to stop)", client.base);
                    first = false;
                }
                let mut resp = resp;
                let mut parser = Parser::default();
                loop {
                    match resp.chunk().await {
                        Ok(Some(bytes)) => parser.push(&bytes),
                        Ok(None) | Err(_) => break,
                    }
                    while let Some(m) = parser.next() {
                        if m.id.is_some() {
                            last_id.clone_from(&m.id);
                        }
                        show(&m, args);
                    }
                }
                if let Some(ms) = parser.retry_ms {
                    retry = Duration::from_millis(ms);
                }
                eprintln!(
                    "gp: stream closed; reconnecting in {} ms",
                    retry.as_millis()
                );
            }
            Ok(resp) => {
                let status = resp.status();
                let text = resp.text().await.unwrap_or_default();
                // Refusals (auth, bad topic) will not get better by retrying.
                if status.is_client_error() {
                    eprintln!("gp: {status}: {text}");
                    return 1;
                }
                eprintln!("gp: {status}: {text}; retrying in {} ms", retry.as_millis());
            }
            Err(e) => eprintln!("gp: {e}; retrying in {} ms", retry.as_millis()),
        }
        tokio::time::sleep(retry).await;
    }
}

fn show(m: &Message, args: &TailArgs) {
    let data: Value = serde_json::from_str(&m.data).unwrap_or(Value::String(m.data.clone()));
    match m.event.as_str() {
        "gatepulse.reset" => {
            eprintln!("gp: the stream skipped ahead: {data}");
            return;
        }
        "gatepulse.disconnect" => {
            eprintln!("gp: disconnected by the server: {data}");
            return;
        }
        _ => {}
    }
    if let Some(ep) = &args.endpoint
        && data.get("endpoint_id").and_then(Value::as_str) != Some(ep.as_str())
    {
        return;
    }
    if args.json {
        println!("{}", m.data);
        return;
    }
    let s = |k: &str| {
        data.get(k)
            .and_then(Value::as_str)
            .unwrap_or("-")
            .to_owned()
    };
    if m.event == crate::stream::STATUS_TOPIC {
        let code = data
            .get("http_code")
            .and_then(Value::as_u64)
            .map_or_else(|| "---".to_owned(), |c| c.to_string());
        let latency = data.get("latency_ms").and_then(Value::as_u64).unwrap_or(0);
        let attempt = data.get("attempt").and_then(Value::as_u64).unwrap_or(0);
        let error = data.get("error_kind").and_then(Value::as_str).unwrap_or("");
        println!(
            "{}  {}  {}  #{attempt:<2} {:<9} {code} {latency:>5} ms  {}  {error}",
            s("at"),
            s("endpoint_id"),
            s("delivery_id"),
            s("status"),
            s("event_id"),
        );
    } else {
        let payload = data
            .get("payload")
            .map(Value::to_string)
            .unwrap_or_default();
        println!(
            "{}  {:>8}  {}  {}  {payload}",
            s("created_at"),
            m.id.as_deref().unwrap_or("-"),
            m.event,
            s("id"),
        );
    }
}

/// Percent-encodes a topic pattern for the query string (`#` above all).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'*' => {
                out.push(b as char);
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_split_frames_comments_and_multiline_data() {
        let mut p = Parser::default();
        p.push(b"retry: 1500\n: hello\n\nid: 4\nevent: deliveries.st");
        assert_eq!(p.next(), None);
        p.push(b"atus\ndata: {\"a\":\ndata: 1}\n\nid: 5\r\nevent: x\r\ndata: 2\r\n\r\n");
        assert_eq!(
            p.next(),
            Some(Message {
                id: Some("4".into()),
                event: "deliveries.status".into(),
                data: "{\"a\":\n1}".into(),
            })
        );
        assert_eq!(p.next().map(|m| m.data), Some("2".into()));
        assert_eq!(p.retry_ms, Some(1500));
        assert_eq!(p.next(), None);
    }

    #[test]
    fn topics_are_encoded_for_the_query() {
        assert_eq!(encode("orders.#"), "orders.%23");
        assert_eq!(encode("a.*.b"), "a.*.b");
    }
}
