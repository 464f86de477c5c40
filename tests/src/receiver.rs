//! A real HTTP receiver for delivery tests: it binds `127.0.0.1:0`, answers every
//! request according to a [`Behaviour`] that can be switched while it runs, and records
//! what arrived (time, headers, body, whether the Standard Webhooks signature verified).
//!
//! Signatures are checked with the official `standardwebhooks` crate, the way a
//! subscriber would, never with GatePulse code.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Result, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use standardwebhooks::Webhook;
use tokio::task::JoinHandle;

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// `200 OK`.
    Ok,
    /// `500` for the first `n` requests carrying a given `webhook-id` (counting every
    /// request ever received with that id), then `200`.
    FailFirst(u32),
    /// Reads the request and never answers: the handler awaits a future that never
    /// resolves, so the connection is held until the client gives up and hangs up
    /// (which drops the handler; nothing accumulates per held request but its record).
    BlackHole,
    /// Always this status code.
    Status(u16),
}

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub received_at: Instant,
    pub received_wall: SystemTime,
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// `None` when the receiver has no secret; otherwise whether
    /// `standardwebhooks::Webhook::verify` accepted the request.
    pub signature_ok: Option<bool>,
    /// The library's error when verification failed.
    pub signature_error: Option<String>,
    /// The status the receiver answered; `None` when it held the request (black hole).
    pub answered: Option<u16>,
}

impl Recorded {
    /// A header as text, if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn webhook_id(&self) -> Option<&str> {
        self.header("webhook-id")
    }

    pub fn event_id(&self) -> Option<&str> {
        self.header("gatepulse-event-id")
    }

    /// `gatepulse-attempt`, parsed.
    pub fn attempt(&self) -> Option<u32> {
        self.header("gatepulse-attempt")
            .and_then(|a| a.parse().ok())
    }

    /// The entries of `webhook-signature` (`v1,…`, `v1a,…`).
    pub fn signatures(&self) -> Vec<&str> {
        self.header("webhook-signature")
            .map(|s| s.split(' ').filter(|p| !p.is_empty()).collect())
            .unwrap_or_default()
    }

    /// Verifies this request with another secret, using the Standard Webhooks library.
    pub fn verify_with(&self, secret: &str) -> Result<(), String> {
        verify(secret, &self.headers, &self.body)
    }

    /// Verifies the `v1a,` (Ed25519) entries of `webhook-signature` with a `whpk_`
    /// public key: at least one must verify over `{id}.{timestamp}.{body}`. Ed25519
    /// from `ring`; the timestamp is not checked (the tests' clocks are the same).
    pub fn verify_v1a(&self, public_key: &str) -> Result<(), String> {
        use base64::Engine;
        use base64::engine::general_purpose::STANDARD;
        use ring::signature::{ED25519, UnparsedPublicKey};
        let raw = public_key
            .strip_prefix("whpk_")
            .and_then(|k| STANDARD.decode(k).ok())
            .ok_or_else(|| format!("not a whpk_ key: {public_key}"))?;
        let (id, ts) = match (self.header("webhook-id"), self.header("webhook-timestamp")) {
            (Some(id), Some(ts)) => (id, ts),
            _ => return Err("missing webhook-id or webhook-timestamp".into()),
        };
        let mut content = format!("{id}.{ts}.").into_bytes();
        content.extend_from_slice(&self.body);
        let key = UnparsedPublicKey::new(&ED25519, raw);
        let ok = self
            .signatures()
            .into_iter()
            .filter_map(|e| e.strip_prefix("v1a,"))
            .filter_map(|s| STANDARD.decode(s).ok())
            .any(|sig| key.verify(&content, &sig).is_ok());
        if ok {
            Ok(())
        } else {
            Err(format!("no v1a signature verifies with {public_key}"))
        }
    }

    pub fn answered_2xx(&self) -> bool {
        self.answered.is_some_and(|s| (200..300).contains(&s))
    }
}

/// Everything the receiver has seen, plus indexes kept up to date as requests arrive
/// so that wait conditions stay cheap at tens of thousands of requests.
#[derive(Debug, Default)]
pub struct Log {
    pub requests: Vec<Recorded>,
    /// `webhook-id` → number of requests that carried it.
    pub per_webhook_id: HashMap<String, u32>,
    /// `webhook-id`s that were answered with a 2xx at least once.
    pub succeeded_ids: HashSet<String>,
}

struct Shared {
    behaviour: Mutex<Behaviour>,
    secret: Option<String>,
    log: Mutex<Log>,
    /// Black-holed requests whose handler is still alive (the client has not hung up).
    held: AtomicUsize,
}

/// Counts a held request for as long as its handler future lives.
struct HeldGuard<'a>(&'a AtomicUsize);

impl<'a> HeldGuard<'a> {
    fn new(n: &'a AtomicUsize) -> Self {
        n.fetch_add(1, Ordering::SeqCst);
        Self(n)
    }
}

impl Drop for HeldGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn verify(secret: &str, headers: &HeaderMap, body: &[u8]) -> Result<(), String> {
    let wh = Webhook::new(secret).map_err(|e| format!("bad secret: {e}"))?;
    wh.verify(body, headers).map_err(|e| e.to_string())
}

/// A running receiver; the server task stops when this is dropped.
pub struct Receiver {
    shared: Arc<Shared>,
    url: String,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Receiver {
    /// Binds `127.0.0.1:0` and serves every path. With a `secret` (`whsec_…`) each
    /// request's signature is verified on arrival.
    pub async fn start(behaviour: Behaviour, secret: Option<String>) -> Result<Self> {
        let shared = Arc::new(Shared {
            behaviour: Mutex::new(behaviour),
            secret,
            log: Mutex::new(Log::default()),
            held: AtomicUsize::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("test receiver stopped: {e}");
            }
        });
        Ok(Self {
            shared,
            url: format!("http://{addr}/hook"),
            task,
        })
    }

    /// The URL to register as an endpoint (`http://127.0.0.1:<port>/hook`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Switches how later requests are answered (held black-hole requests stay held).
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *lock(&self.shared.behaviour) = behaviour;
    }

    /// Number of requests received so far.
    pub fn count(&self) -> usize {
        lock(&self.shared.log).requests.len()
    }

    /// Black-holed requests still held open (their client has not hung up yet).
    pub fn held(&self) -> usize {
        self.shared.held.load(Ordering::SeqCst)
    }

    /// A copy of every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.log).requests.clone()
    }

    /// The distinct `webhook-id`s seen so far.
    pub fn unique_webhook_ids(&self) -> HashSet<String> {
        lock(&self.shared.log)
            .per_webhook_id
            .keys()
            .cloned()
            .collect()
    }

    /// Runs `f` on the log under its lock (no copy).
    pub fn with_log<T>(&self, f: impl FnOnce(&Log) -> T) -> T {
        f(&lock(&self.shared.log))
    }

    /// Polls until `cond` holds on the log, or fails after `deadline` with a summary of
    /// what had arrived.
    pub async fn wait_for(&self, cond: impl Fn(&Log) -> bool, deadline: Duration) -> Result<()> {
        let end = Instant::now() + deadline;
        loop {
            let summary = {
                let log = lock(&self.shared.log);
                if cond(&log) {
                    return Ok(());
                }
                format!(
                    "{} requests, {} distinct webhook-ids, {} answered 2xx",
                    log.requests.len(),
                    log.per_webhook_id.len(),
                    log.succeeded_ids.len()
                )
            };
            if Instant::now() >= end {
                bail!("receiver condition not met within {deadline:?}: {summary}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received_at = Instant::now();
    let received_wall = SystemTime::now();
    let verified = shared.secret.as_deref().map(|s| verify(s, &headers, &body));
    let webhook_id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let answer = {
        let behaviour = *lock(&shared.behaviour);
        let mut log = lock(&shared.log);
        let seen = match &webhook_id {
            Some(id) => {
                let n = log.per_webhook_id.entry(id.clone()).or_insert(0);
                *n += 1;
                *n
            }
            None => 1,
        };
        let answer = if method != Method::POST {
            Some(405)
        } else {
            match behaviour {
                Behaviour::Ok => Some(200),
                Behaviour::FailFirst(n) => Some(if seen <= n { 500 } else { 200 }),
                Behaviour::BlackHole => None,
                Behaviour::Status(code) => Some(code),
            }
        };
        if let (Some(id), Some(code)) = (&webhook_id, answer)
            && (200..300).contains(&code)
        {
            log.succeeded_ids.insert(id.clone());
        }
        log.requests.push(Recorded {
            received_at,
            received_wall,
            method: method.to_string(),
            path: uri.path().to_owned(),
            headers,
            body,
            signature_ok: verified.as_ref().map(Result::is_ok),
            signature_error: verified.and_then(Result::err),
            answered: answer,
        });
        answer
    };
    match answer {
        Some(code) => StatusCode::from_u16(code)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            .into_response(),
        None => {
            let _held = HeldGuard::new(&shared.held);
            std::future::pending::<Response>().await
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    async fn post(url: &str, id: &str, secret: &str, body: &str, timeout: Duration) -> Option<u16> {
        let ts = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let sig = Webhook::new(secret)
            .unwrap()
            .sign(id, ts, body.as_bytes())
            .unwrap();
        let resp = reqwest::Client::new()
            .post(url)
            .timeout(timeout)
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sig)
            .body(body.to_owned())
            .send()
            .await;
        resp.ok().map(|r| r.status().as_u16())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn records_verifies_and_switches_behaviour() {
        crate::install_crypto_provider();
        let rx = Receiver::start(Behaviour::FailFirst(2), Some(SECRET.to_owned()))
            .await
            .unwrap();
        let long = Duration::from_secs(10);
        let mut codes = Vec::new();
        for _ in 0..3 {
            codes.push(post(rx.url(), "msg_a", SECRET, r#"{"a":1}"#, long).await);
        }
        assert_eq!(codes, [Some(500), Some(500), Some(200)]);
        // Another id starts its own count.
        assert_eq!(post(rx.url(), "msg_b", SECRET, "{}", long).await, Some(500));
        // A wrong secret is recorded as not verified.
        let other = "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldY";
        assert_eq!(post(rx.url(), "msg_c", other, "{}", long).await, Some(500));

        rx.set_behaviour(Behaviour::Status(410));
        assert_eq!(post(rx.url(), "msg_d", SECRET, "{}", long).await, Some(410));

        rx.set_behaviour(Behaviour::BlackHole);
        let short = Duration::from_millis(200);
        assert_eq!(post(rx.url(), "msg_e", SECRET, "{}", short).await, None);
        // The client hung up, so the held handler is dropped.
        let start = Instant::now();
        while rx.held() > 0 {
            assert!(start.elapsed() < long, "held request not released");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        rx.set_behaviour(Behaviour::Ok);
        assert_eq!(post(rx.url(), "msg_e", SECRET, "{}", long).await, Some(200));

        let reqs = rx.requests();
        assert_eq!(reqs.len(), 8);
        assert_eq!(rx.count(), 8);
        let verified: Vec<_> = reqs.iter().map(|r| r.signature_ok).collect();
        assert_eq!(
            verified,
            [true, true, true, true, false, true, true, true].map(Some)
        );
        assert!(reqs[4].signature_error.is_some());
        assert!(reqs[0].verify_with(SECRET).is_ok());
        assert!(reqs[0].verify_with(other).is_err());
        assert_eq!(reqs[0].body.as_ref(), br#"{"a":1}"#);
        assert_eq!(reqs[0].path, "/hook");
        assert_eq!(reqs[5].answered, Some(410));
        assert_eq!(reqs[6].answered, None);
        assert_eq!(rx.unique_webhook_ids().len(), 5);
        rx.wait_for(|l| l.succeeded_ids.len() == 2, long)
            .await
            .unwrap();
        let e = rx
            .wait_for(|l| l.succeeded_ids.len() == 3, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("8 requests"), "{e}");
    }
}
