//! The server's connections: accepting, limiting, timing out and serving them.
//!
//! - **Limits.** At most `api.max_connections` open client connections (lowered at
//!   start to the file descriptor limit minus `api.reserved_fds`, which stay free for
//!   deliveries, the store and streams' own files) and `api.max_connections_per_ip`
//!   from one address. A connection past a limit is closed at once, counted in
//!   `gatepulse_connections_refused_total` and logged (at most once a second).
//! - **Timeouts.** A request's headers must arrive within `api.header_read_timeout_secs`
//!   (hyper's header timer; it also bounds how long a kept-alive connection waits for
//!   its next request). A connection that reads and writes nothing for
//!   `api.idle_timeout_secs` is closed, and so is one whose peer accepts none of our
//!   bytes for `api.write_timeout_secs` (a frozen stream client, a slowloris reader).
//!   Bodies have their own deadline (`api.body_read_timeout_secs`, in the extractors).
//! - **Lanes.** Every connection gets `TCP_NODELAY`. One whose first request is
//!   `GET /v1/stream` is served on the stream runtime instead of the API's: a thousand
//!   stream clients then keep their own threads busy, and a publish never queues
//!   behind their writes (on one runtime, publish latency grew with every stream
//!   client: at 1,000 clients × 1,000 events/s the publish → 202 median was ~70 ms; see
//!   docs/benchmarks.md).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::{Instant, Sleep};

use crate::telemetry;

/// Connections the kernel queues before `accept`: many stream clients reconnecting
/// at once must not overflow it (the kernel caps it at `net.core.somaxconn`).
const BACKLOG: u32 = 4096;

/// Binds a listener with a deep accept backlog (tokio's `bind` uses 128).
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// What a stream connection's first bytes are.
const STREAM_REQUEST: &[u8] = b"GET /v1/stream";

/// How long a new connection may take to send its first bytes before it is handed to
/// the API side unclassified (where the header timeout then applies).
const FIRST_BYTES_WAIT: Duration = Duration::from_secs(10);

/// How connections are limited and timed out (from `[api]`).
#[derive(Debug, Clone)]
pub struct ConnConfig {
    /// Writes that make no progress for this long fail (`None`: never).
    pub write_timeout: Option<Duration>,
    /// A connection with no bytes moving either way for this long is closed.
    pub idle_timeout: Option<Duration>,
    /// A request's headers must arrive within this.
    pub header_read_timeout: Duration,
    /// Open client connections at most (already lowered to the descriptor limit).
    pub max_connections: usize,
    /// Open client connections from one IP address at most.
    pub max_per_ip: usize,
}

impl ConnConfig {
    /// From `[api]`: the connection cap is lowered to what the process's file
    /// descriptor limit allows (raising the soft limit to the hard one first), keeping
    /// `reserved_fds` free.
    pub fn from_api(api: &crate::config::ApiConfig) -> Self {
        let secs = |s: u64| (s > 0).then(|| Duration::from_secs(s));
        let fds = descriptor_limit();
        let room = fds.saturating_sub(api.reserved_fds as u64).max(1);
        let max_connections = api
            .max_connections
            .min(usize::try_from(room).unwrap_or(usize::MAX));
        if max_connections < api.max_connections {
            tracing::warn!(
                configured = api.max_connections,
                effective = max_connections,
                fd_limit = fds,
                reserved = api.reserved_fds,
                "api.max_connections lowered to fit the file descriptor limit (raise ulimit -n)"
            );
        }
        Self {
            write_timeout: secs(api.write_timeout_secs),
            idle_timeout: secs(api.idle_timeout_secs),
            header_read_timeout: Duration::from_secs(api.header_read_timeout_secs.max(1)),
            max_connections,
            max_per_ip: api.max_connections_per_ip,
        }
    }
}

/// The soft `RLIMIT_NOFILE`, raised to the hard limit when that is allowed.
fn descriptor_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if let (Some(cur), Some(max)) = (limit.current, limit.maximum)
        && cur < max
    {
        let raised = rustix::process::Rlimit {
            current: Some(max),
            maximum: Some(max),
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return max;
        }
    }
    limit.current.unwrap_or(u64::MAX)
}

/// Open connections, in all and per address.
#[derive(Debug)]
struct Tracker {
    open: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    max: usize,
    max_per_ip: usize,
    /// Woken when a connection closes (shutdown waits for the last one).
    closed: Notify,
    /// When a refusal was last logged.
    last_warned: Mutex<Option<Instant>>,
}

/// One admitted connection's place; freed when dropped with the connection's I/O.
#[derive(Debug)]
pub struct ConnGuard {
    tracker: Arc<Tracker>,
    ip: IpAddr,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if let Ok(mut per_ip) = self.tracker.per_ip.lock()
            && let Some(n) = per_ip.get_mut(&self.ip)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
        let left = self.tracker.open.fetch_sub(1, Ordering::AcqRel) - 1;
        telemetry::set_connections_open(left);
        self.tracker.closed.notify_waiters();
    }
}

impl Tracker {
    fn new(config: &ConnConfig) -> Self {
        Self {
            open: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
            max: config.max_connections.max(1),
            max_per_ip: config.max_per_ip.max(1),
            closed: Notify::new(),
            last_warned: Mutex::new(None),
        }
    }

    /// A place for one more connection from `ip`, or the reason there is none.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnGuard, &'static str> {
        {
            let mut per_ip = self
                .per_ip
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mine = per_ip.entry(ip).or_insert(0);
            if *mine >= self.max_per_ip {
                return Err("max_connections_per_ip");
            }
            *mine += 1;
        }
        let before = self.open.fetch_add(1, Ordering::AcqRel);
        let guard = ConnGuard {
            tracker: self.clone(),
            ip,
        };
        if before >= self.max {
            drop(guard);
            return Err("max_connections");
        }
        telemetry::set_connections_open(before + 1);
        Ok(guard)
    }

    fn refused(&self, reason: &'static str, addr: SocketAddr) {
        telemetry::record_connection_refused(reason);
        let mut last = self
            .last_warned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            *last = Some(Instant::now());
            tracing::warn!(peer = %addr.ip(), reason, open = self.open.load(Ordering::Acquire),
                max = self.max, max_per_ip = self.max_per_ip,
                "connection refused: limit reached (api.max_connections / api.max_connections_per_ip)");
        }
    }

    /// Resolves once no connection is open.
    async fn all_closed(&self) {
        loop {
            let closed = self.closed.notified();
            if self.open.load(Ordering::Acquire) == 0 {
                return;
            }
            closed.await;
        }
    }
}

/// Where stream connections are served: another runtime, the same app.
#[derive(Clone)]
pub struct StreamLane {
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for StreamLane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamLane").finish_non_exhaustive()
    }
}

impl StreamLane {
    pub fn new(runtime: tokio::runtime::Handle) -> Self {
        Self { runtime }
    }
}

/// Serves `app` on `listener` until `stop` turns true, then finishes the requests in
/// progress and resolves once every connection has closed (the caller bounds the
/// wait with the shutdown grace period).
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    lane: Option<StreamLane>,
    config: ConnConfig,
    mut stop: watch::Receiver<bool>,
) {
    let tracker = Arc::new(Tracker::new(&config));
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            r = listener.accept() => r,
        };
        let (io, addr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let guard = match tracker.admit(addr.ip()) {
            Ok(g) => g,
            Err(reason) => {
                drop(io);
                tracker.refused(reason, addr);
                continue;
            }
        };
        if let Err(e) = io.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        tokio::spawn(connection(
            io,
            guard,
            app.clone(),
            lane.clone(),
            config.clone(),
            stop.clone(),
        ));
    }
    tracker.all_closed().await;
}

/// Classifies one connection and serves it where it belongs.
async fn connection(
    io: TcpStream,
    guard: ConnGuard,
    app: axum::Router,
    lane: Option<StreamLane>,
    config: ConnConfig,
    stop: watch::Receiver<bool>,
) {
    if let Some(lane) = lane
        && is_stream(&io).await
    {
        let io = match io.into_std() {
            Ok(io) => io,
            Err(e) => {
                tracing::debug!(error = %e, "cannot move a stream connection");
                return;
            }
        };
        lane.runtime.spawn(async move {
            match TcpStream::from_std(io) {
                Ok(io) => serve_http(io, guard, app, &config, stop).await,
                Err(e) => tracing::debug!(error = %e, "cannot register a stream connection"),
            }
        });
        return;
    }
    serve_http(io, guard, app, &config, stop).await;
}

/// Whether a connection's first bytes are a stream request (waits for them, briefly).
async fn is_stream(io: &TcpStream) -> bool {
    let mut head = [0u8; STREAM_REQUEST.len()];
    let deadline = Instant::now() + FIRST_BYTES_WAIT;
    loop {
        let n = match tokio::time::timeout_at(deadline, io.peek(&mut head)).await {
            Ok(Ok(n)) => n,
            // Nothing yet, or an error the API side will see too.
            _ => return false,
        };
        if n == 0 || !STREAM_REQUEST.starts_with(&head[..n]) {
            return false;
        }
        if n == head.len() {
            return true;
        }
        // A prefix of a stream request so far: wait for the rest.
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Serves HTTP/1.1 on one connection; `stop` ends it gracefully (the request in
/// progress finishes first).
async fn serve_http(
    io: TcpStream,
    guard: ConnGuard,
    app: axum::Router,
    config: &ConnConfig,
    mut stop: watch::Receiver<bool>,
) {
    let peer = io.peer_addr().ok().map(|a| super::ClientAddr(a.ip()));
    let io = StallGuard::new(io, config.write_timeout, config.idle_timeout).holding(guard);
    // Each request learns its client's address (the audit log records it).
    let app = tower::ServiceBuilder::new()
        .map_request(move |mut req: hyper::Request<hyper::body::Incoming>| {
            if let Some(p) = peer {
                req.extensions_mut().insert(p);
            }
            req
        })
        .service(app);
    let service = hyper_util::service::TowerToHyperService::new(app);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(io), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = async { drop(stop.wait_for(|stop| *stop).await) } => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// A TCP stream whose writes fail with `TimedOut` once they have made no progress
/// for the write timeout, and whose reads fail once nothing has moved either way for
/// the idle timeout. It holds the connection's place under the limits.
#[derive(Debug)]
pub struct StallGuard {
    io: TcpStream,
    timeout: Option<Duration>,
    timer: Option<Pin<Box<Sleep>>>,
    /// A write is waiting and the timer runs.
    stalled: bool,
    idle: Option<Duration>,
    idle_timer: Option<Pin<Box<Sleep>>>,
    /// The last time bytes moved in either direction.
    active_at: Instant,
    _place: Option<ConnGuard>,
}

impl StallGuard {
    fn new(io: TcpStream, timeout: Option<Duration>, idle: Option<Duration>) -> Self {
        Self {
            io,
            timeout,
            timer: None,
            stalled: false,
            idle,
            idle_timer: None,
            active_at: Instant::now(),
            _place: None,
        }
    }

    fn holding(mut self, guard: ConnGuard) -> Self {
        self._place = Some(guard);
        self
    }

    /// Called when a write is `Pending`: arms the timer on the first stall and
    /// reports whether it has run out.
    fn stall_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(timeout) = self.timeout else {
            return false;
        };
        let deadline = Instant::now() + timeout;
        if !self.stalled {
            self.stalled = true;
            match &mut self.timer {
                Some(t) => t.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        self.timer
            .as_mut()
            .is_some_and(|t| t.as_mut().poll(cx).is_ready())
    }

    /// Called when a read is `Pending`: whether nothing has moved for the idle timeout
    /// (the timer follows the last activity, so a connection busy writing never is).
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(idle) = self.idle else {
            return false;
        };
        loop {
            let deadline = self.active_at + idle;
            let timer = self
                .idle_timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            if timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            if self.active_at + idle <= Instant::now() {
                return true;
            }
        }
    }

    fn guard<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match r {
            Poll::Pending => {
                if self.stall_expired(cx) {
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the peer stopped reading (api.write_timeout_secs)",
                    )))
                } else {
                    Poll::Pending
                }
            }
            ready => {
                self.stalled = false;
                self.active_at = Instant::now();
                ready
            }
        }
    }
}

impl AsyncRead for StallGuard {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Pending => {
                if self.idle_expired(cx) {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the connection was idle (api.idle_timeout_secs)",
                    )));
                }
                Poll::Pending
            }
            ready => {
                if buf.filled().len() > before {
                    self.active_at = Instant::now();
                }
                ready
            }
        }
    }
}

impl AsyncWrite for StallGuard {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.guard(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.guard(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        self.guard(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn config() -> ConnConfig {
        ConnConfig {
            write_timeout: None,
            idle_timeout: None,
            header_read_timeout: Duration::from_secs(10),
            max_connections: 1000,
            max_per_ip: 1000,
        }
    }

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = TcpStream::connect(addr).await.unwrap();
        let (io, _) = listener.accept().await.unwrap();
        (io, peer)
    }

    #[tokio::test]
    async fn a_peer_that_stops_reading_times_the_write_out() {
        let (io, _peer) = pair().await;
        let mut io = StallGuard::new(io, Some(Duration::from_millis(200)), None);
        let chunk = vec![0u8; 64 * 1024];
        let started = std::time::Instant::now();
        let err = loop {
            if let Err(e) = io.write_all(&chunk).await {
                break e;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "never timed out"
            );
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn a_silent_connection_is_closed_after_the_idle_timeout() {
        let (io, _peer) = pair().await;
        let mut io = StallGuard::new(io, None, Some(Duration::from_millis(200)));
        let mut buf = [0u8; 16];
        let started = std::time::Instant::now();
        let err = io.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn a_reading_peer_is_never_cut() {
        let (io, mut peer) = pair().await;
        let mut io = StallGuard::new(
            io,
            Some(Duration::from_millis(200)),
            Some(Duration::from_millis(200)),
        );
        let reader = tokio::spawn(async move {
            let mut sink = Vec::new();
            peer.read_to_end(&mut sink).await.unwrap();
            sink.len()
        });
        let chunk = vec![1u8; 256 * 1024];
        for _ in 0..40 {
            io.write_all(&chunk).await.unwrap();
        }
        io.shutdown().await.unwrap();
        assert_eq!(reader.await.unwrap(), 40 * 256 * 1024);
    }

    /// Sends one request over a fresh connection and returns the whole answer.
    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut io = TcpStream::connect(addr).await.unwrap();
        io.write_all(
            format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut answer = String::new();
        io.read_to_string(&mut answer).await.unwrap();
        answer
    }

    #[test]
    fn stream_requests_are_served_on_the_lane_and_others_are_not() {
        let runtime = |name: &str| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name(name)
                .enable_all()
                .build()
                .unwrap()
        };
        let (lane_rt, api_rt) = (runtime("lane-rt"), runtime("api-rt"));
        api_rt.block_on(async {
            let thread = || async { std::thread::current().name().unwrap_or("?").to_owned() };
            let app = axum::Router::new()
                .route("/v1/stream", axum::routing::get(thread))
                .route("/v1/events", axum::routing::get(thread));
            let (_stop_tx, stop) = tokio::sync::watch::channel(false);
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let lane = StreamLane::new(lane_rt.handle().clone());
            tokio::spawn(serve(listener, app, Some(lane), config(), stop));
            assert!(get(addr, "/v1/stream").await.ends_with("lane-rt"));
            assert!(get(addr, "/v1/events").await.ends_with("api-rt"));
            // A connection that sends its request in pieces is classified correctly.
            let mut io = TcpStream::connect(addr).await.unwrap();
            io.write_all(b"GET /v1/st").await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            io.write_all(b"ream HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut answer = String::new();
            io.read_to_string(&mut answer).await.unwrap();
            assert!(answer.ends_with("lane-rt"), "{answer}");
        });
    }

    #[tokio::test]
    async fn connections_past_the_limits_are_closed_at_once_and_places_come_back() {
        let app = axum::Router::new().route("/x", axum::routing::get(|| async { "ok" }));
        let (_stop_tx, stop) = tokio::sync::watch::channel(false);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = ConnConfig {
            max_per_ip: 2,
            ..config()
        };
        tokio::spawn(serve(listener, app, None, limits, stop));
        // Two connections hold their places; a third from the same address is closed.
        let held: Vec<TcpStream> = vec![
            TcpStream::connect(addr).await.unwrap(),
            TcpStream::connect(addr).await.unwrap(),
        ];
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut third = TcpStream::connect(addr).await.unwrap();
        let _ = third.write_all(b"GET /x HTTP/1.1\r\nhost: x\r\n\r\n").await;
        let mut buf = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(10), third.read_to_end(&mut buf))
            .await
            .unwrap()
            .unwrap_or(0);
        assert_eq!(n, 0, "refused without an answer");
        drop(held);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let answer = get(addr, "/x").await;
            if answer.ends_with("ok") {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{answer}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_request_whose_headers_never_finish_is_cut_off() {
        let app = axum::Router::new().route("/x", axum::routing::get(|| async { "ok" }));
        let (_stop_tx, stop) = tokio::sync::watch::channel(false);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = ConnConfig {
            header_read_timeout: Duration::from_millis(300),
            ..config()
        };
        tokio::spawn(serve(listener, app, None, limits, stop));
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"POST /v1/events HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "the server kept the connection open");
    }
}
