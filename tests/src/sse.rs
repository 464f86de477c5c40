//! A Server-Sent Events client for tests, parsing frames the way the WHATWG
//! EventSource does (id, event, data lines joined with `\n`, comments ignored), with
//! the reconnect-with-`Last-Event-ID` behaviour of a standard client.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use reqwest::{Client, Response, StatusCode};

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

impl Frame {
    pub fn cursor(&self) -> Option<u64> {
        self.id.as_deref().and_then(|s| s.parse().ok())
    }

    pub fn json(&self) -> Result<serde_json::Value> {
        Ok(serde_json::from_str(&self.data)?)
    }
}

/// One open stream.
pub struct Sse {
    resp: Response,
    buf: Vec<u8>,
    /// The last `id:` seen, as an EventSource keeps it.
    pub last_event_id: Option<String>,
    /// The last `retry:` hint, in ms.
    pub retry_ms: Option<u64>,
    /// Comment lines seen (keepalives).
    pub comments: usize,
}

/// A client without a total request timeout (streams stay open).
pub fn client() -> Result<Client> {
    Ok(Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()?)
}

impl Sse {
    /// Opens `GET {base}/v1/stream{query}` with `Last-Event-ID` when given.
    pub async fn connect(
        http: &Client,
        base: &str,
        token: &str,
        query: &str,
        last_event_id: Option<&str>,
    ) -> Result<Self> {
        let mut req = http
            .get(format!("{base}/v1/stream{query}"))
            .bearer_auth(token)
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let resp = req.send().await?;
        if resp.status() != StatusCode::OK {
            let s = resp.status();
            bail!(
                "stream answered {s}: {}",
                resp.text().await.unwrap_or_default()
            );
        }
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !ct.starts_with("text/event-stream") {
            bail!("content-type {ct}");
        }
        Ok(Self {
            resp,
            buf: Vec::new(),
            last_event_id: last_event_id.map(str::to_owned),
            retry_ms: None,
            comments: 0,
        })
    }

    pub fn response_header(&self, name: &str) -> Option<String> {
        self.resp
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// The next dispatched event; `None` when the server closed the stream.
    pub async fn next(&mut self) -> Result<Option<Frame>> {
        let mut id: Option<String> = None;
        let mut event = String::new();
        let mut data: Option<String> = None;
        loop {
            // Take complete lines out of the buffer.
            while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                let line = String::from_utf8(line[..line.len() - 1].to_vec())
                    .context("stream is not UTF-8")?;
                if line.is_empty() {
                    if let Some(d) = data.take() {
                        if id.is_some() {
                            self.last_event_id.clone_from(&id);
                        }
                        let ev = if event.is_empty() {
                            "message".to_owned()
                        } else {
                            std::mem::take(&mut event)
                        };
                        return Ok(Some(Frame {
                            id: id.take(),
                            event: ev,
                            data: d,
                        }));
                    }
                    id = None;
                    event.clear();
                    continue;
                }
                if line.starts_with(':') {
                    self.comments += 1;
                    continue;
                }
                let (field, value) = match line.split_once(':') {
                    Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                    None => (line.as_str(), ""),
                };
                match field {
                    "id" => id = Some(value.to_owned()),
                    "event" => event = value.to_owned(),
                    "data" => match &mut data {
                        Some(d) => {
                            d.push('\n');
                            d.push_str(value);
                        }
                        None => data = Some(value.to_owned()),
                    },
                    "retry" => self.retry_ms = value.parse().ok(),
                    _ => {}
                }
            }
            match self.resp.chunk().await {
                Ok(Some(bytes)) => self.buf.extend_from_slice(&bytes),
                Ok(None) => return Ok(None),
                Err(e) => {
                    if e.is_body() || e.is_decode() {
                        return Ok(None);
                    }
                    return Err(e.into());
                }
            }
        }
    }

    /// The next event within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Result<Option<Frame>> {
        tokio::time::timeout(wait, self.next())
            .await
            .context("no stream frame in time")?
    }
}
