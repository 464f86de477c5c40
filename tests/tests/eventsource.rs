//! The tenant stream read by a standard EventSource client (issue #7): the `eventsource`
//! npm package, in Node, through `tests/browser/eventsource.mjs`. A client process that
//! is restarted resumes with `Last-Event-ID`; a client that stays up while the server
//! restarts (gracefully, then `kill -9`) reconnects by itself after the `retry:` delay,
//! with the library's own `Last-Event-ID`. Together they get exactly the published
//! sequence: no gap, no duplicate, no reset.
//!
//! Needs Node.js (the test installs `tests/browser`'s locked `eventsource` package itself); the
//! test fails, never skips, without them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use gatepulse_e2e::Gp;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// How long any one step may take (a reconnect waits the 2–3 s `retry:` delay).
const WAIT: Duration = Duration::from_secs(60);
const TOPIC: &str = "seq.x";
/// How long the killed server stays down: more than the longest `retry:` hint (3 s).
const DOWN: Duration = Duration::from_secs(4);

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// Installs the client's npm packages the first time (`npm ci`).
fn require_node_tooling() {
    gatepulse_e2e::tooling::ensure_node_modules();
}

async fn publish(gp: &Gp, key: &str, topic: &str, n: u64) -> u64 {
    let (s, out) = gp
        .call(
            key,
            Method::POST,
            "/v1/events",
            Some(json!({"topic": topic, "payload": {"n": n}})),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::ACCEPTED, "{out}");
    out["cursor"].as_u64().unwrap()
}

/// Publishes `ns` on the client's topic, with an event the client's filter leaves out
/// after every third one (so its cursors are not consecutive).
async fn publish_seq(gp: &Gp, key: &str, ns: std::ops::RangeInclusive<u64>) {
    for n in ns {
        publish(gp, key, TOPIC, n).await;
        if n % 3 == 0 {
            publish(gp, key, "seq.y", n).await;
        }
    }
}

/// One message as the client printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Msg {
    id: u64,
    event: String,
    n: Option<u64>,
}

/// The Node client: its stdout lines as they come.
struct Client {
    child: Child,
    lines: mpsc::UnboundedReceiver<Msg>,
    got: Vec<Msg>,
    started: Instant,
}

impl Client {
    fn spawn(gp: &Gp, key: &str, expect: usize, extra: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new("node");
        cmd.arg(browser_dir().join("eventsource.mjs"))
            .env("BASE", &gp.base)
            .env("TOKEN", key)
            .env("TOPIC", TOPIC)
            .env("EXPECT", expect.to_string())
            .env("TIMEOUT_MS", WAIT.as_millis().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            // The client's connection log goes with the test's output.
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .expect("spawning node: install Node.js (>= 20) to run this test");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Some(line) = reader.next_line().await.unwrap() {
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("client printed {line:?}: {e}"));
                let msg = Msg {
                    id: v["id"].as_str().unwrap().parse().unwrap(),
                    event: v["event"].as_str().unwrap().to_owned(),
                    n: v["n"].as_u64(),
                };
                if tx.send(msg).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            got: Vec::new(),
            started: Instant::now(),
        }
    }

    fn ns(&self) -> Vec<Option<u64>> {
        self.got.iter().map(|m| m.n).collect()
    }

    /// Waits until the client has printed `n`; returns how long that took from `since`.
    async fn wait_for(&mut self, n: u64, since: Instant) -> Duration {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !self.got.iter().any(|m| m.n == Some(n)) {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(m)) => self.got.push(m),
                Ok(None) => panic!(
                    "the client ended before printing n={n}; got {:?} (status {:?})",
                    self.ns(),
                    self.child.try_wait()
                ),
                Err(_) => panic!(
                    "the client did not print n={n} within {WAIT:?}; got {:?}",
                    self.ns()
                ),
            }
        }
        since.elapsed()
    }

    /// Waits for the client to exit; returns its status and every message it printed.
    async fn finish(mut self) -> (ExitStatus, Vec<Msg>) {
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the client did not exit within {WAIT:?}; got {:?}",
                    self.ns()
                )
            })
            .unwrap();
        // Its stdout is closed now: every line is in the channel.
        while let Some(m) = self.lines.recv().await {
            self.got.push(m);
        }
        eprintln!(
            "client ran {:?}, printed {} messages, {status}",
            self.started.elapsed(),
            self.got.len()
        );
        (status, self.got)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eventsource_client_resumes_across_client_and_server_restarts_with_exactly_the_sequence()
{
    require_node_tooling();
    let dir = tempfile::tempdir().unwrap();
    let mut gp = Gp::start(dir.path(), &[]).await.unwrap();
    let (_, key) = gp.tenant_with_key().await.unwrap();
    publish_seq(&gp, &key, 1..=30).await;

    // Phase A: from the start, history then live; the first publishes race with the
    // client's connect and backfill.
    let t = Instant::now();
    let mut a = Client::spawn(&gp, &key, 45, &[("FROM_CURSOR", "0")]);
    publish_seq(&gp, &key, 31..=37).await;
    let first = a.wait_for(30, t).await;
    eprintln!("phase A: history up to n=30 after {first:?}");
    publish_seq(&gp, &key, 38..=45).await;
    let (status, phase_a) = a.finish().await;
    assert!(
        status.success(),
        "phase A client: {status}; got {phase_a:?}"
    );
    assert_eq!(phase_a.len(), 45);

    // Phase B: the client process restarts with the last id it printed, and stays up
    // across two server restarts.
    let last_a = phase_a.last().unwrap().id.to_string();
    let t = Instant::now();
    let mut b = Client::spawn(&gp, &key, 30, &[("LAST_EVENT_ID", &last_a)]);
    publish_seq(&gp, &key, 46..=55).await;
    let took = b.wait_for(55, t).await;
    eprintln!("phase B: resumed after id {last_a}, n=55 after {took:?}");

    // A graceful restart: the stream ends, the library reconnects after `retry:`.
    let code = gp.terminate().unwrap();
    assert_eq!(code, 0, "gp exit code after SIGTERM");
    let down = Instant::now();
    gp.restart().await.unwrap();
    eprintln!("graceful restart: server back after {:?}", down.elapsed());
    // Published while the client waits to reconnect: read back from the store.
    publish_seq(&gp, &key, 56..=60).await;
    let took = b.wait_for(60, down).await;
    eprintln!("graceful restart: client caught up to n=60 {took:?} after the stop");
    // And live again on the new connection.
    let t = Instant::now();
    publish_seq(&gp, &key, 61..=65).await;
    let took = b.wait_for(65, t).await;
    eprintln!("graceful restart: n=61..=65 live in {took:?}");

    // kill -9: the connection breaks without an end. The server stays down longer than
    // the `retry:` delay, so the library's first reconnect is refused; it keeps trying.
    gp.kill9().unwrap();
    let down = Instant::now();
    tokio::time::sleep(DOWN).await;
    gp.restart().await.unwrap();
    eprintln!("kill -9: server back after {:?}", down.elapsed());
    publish_seq(&gp, &key, 66..=70).await;
    let took = b.wait_for(70, down).await;
    eprintln!("kill -9: client caught up to n=70 {took:?} after the kill");
    let t = Instant::now();
    publish_seq(&gp, &key, 71..=75).await;
    let (status, phase_b) = b.finish().await;
    eprintln!("kill -9: n=71..=75 and exit in {:?}", t.elapsed());
    assert!(
        status.success(),
        "phase B client: {status}; got {phase_b:?}"
    );

    let all: Vec<Msg> = phase_a.into_iter().chain(phase_b).collect();
    let resets: Vec<&Msg> = all
        .iter()
        .filter(|m| m.event == "gatepulse.reset")
        .collect();
    assert!(resets.is_empty(), "no reset expected: {resets:?}");
    assert!(
        all.iter().all(|m| m.event == TOPIC),
        "only {TOPIC} messages: {all:?}"
    );
    let ns: Vec<Option<u64>> = all.iter().map(|m| m.n).collect();
    assert_eq!(
        ns,
        (1..=75).map(Some).collect::<Vec<_>>(),
        "exactly the published sequence, in order"
    );
    let ids: Vec<u64> = all.iter().map(|m| m.id).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids strictly increasing: {ids:?}"
    );
    // The ids are the events' cursors.
    let listed: Vec<u64> = gp
        .list_all(&key, "/v1/events?topic=seq.x")
        .await
        .unwrap()
        .iter()
        .map(|e| e["cursor"].as_u64().unwrap())
        .collect();
    assert_eq!(listed, ids);
}
