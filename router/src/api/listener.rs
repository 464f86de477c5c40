//! The server's listener: every accepted connection gets `TCP_NODELAY` (small SSE
//! frames and JSON answers leave at once) and a write stall timeout.
//!
//! A peer that accepts none of the bytes we write for `api.write_timeout_secs` (it
//! stopped reading: a frozen stream client, a slowloris) gets its connection closed,
//! so it holds no task, buffer or stream slot past that.
//!
//! With a [`StreamLane`], connections whose first request is `GET /v1/stream` are
//! served on the lane's own runtime instead of the API's: a thousand stream clients
//! then keep their own threads busy, and a publish never queues behind their writes
//! (on one runtime, publish latency grew with every stream client: at 1,000 clients
//! × 1,000 events/s the publish → 202 median was ~70 ms; see docs/benchmarks.md).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

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
/// the API runtime unclassified (which then applies its own handling).
const FIRST_BYTES_WAIT: Duration = Duration::from_secs(10);

/// Where stream connections are served: another runtime, the same app.
#[derive(Clone)]
pub struct StreamLane {
    runtime: tokio::runtime::Handle,
    app: axum::Router,
    stop: tokio::sync::watch::Receiver<bool>,
}

impl std::fmt::Debug for StreamLane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamLane").finish_non_exhaustive()
    }
}

impl StreamLane {
    /// `stop` turning true ends the lane's connections gracefully (the sessions end
    /// on it too, so each response finishes first).
    pub fn new(
        runtime: tokio::runtime::Handle,
        app: axum::Router,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        Self { runtime, app, stop }
    }

    /// Serves one connection on the lane's runtime.
    fn serve(&self, io: TcpStream, timeout: Option<Duration>) {
        let io = match io.into_std() {
            Ok(io) => io,
            Err(e) => {
                tracing::debug!(error = %e, "cannot move a stream connection");
                return;
            }
        };
        let (app, mut stop) = (self.app.clone(), self.stop.clone());
        self.runtime.spawn(async move {
            let io = match TcpStream::from_std(io) {
                Ok(io) => io,
                Err(e) => {
                    tracing::debug!(error = %e, "cannot register a stream connection");
                    return;
                }
            };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(
                hyper_util::rt::TokioIo::new(StallGuard::new(io, timeout)),
                service,
            );
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                () = async { drop(stop.wait_for(|stop| *stop).await) } => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "stream connection ended with an error");
            }
        });
    }
}

#[derive(Debug)]
pub struct Guarded {
    inner: TcpListener,
    write_timeout: Option<Duration>,
    lane: Option<StreamLane>,
    /// Connections classified as not streams, back to the API runtime.
    api_tx: tokio::sync::mpsc::Sender<(TcpStream, SocketAddr)>,
    api_rx: tokio::sync::mpsc::Receiver<(TcpStream, SocketAddr)>,
}

impl Guarded {
    /// `write_timeout` zero disables the stall timeout.
    pub fn new(inner: TcpListener, write_timeout: Duration) -> Self {
        let (api_tx, api_rx) = tokio::sync::mpsc::channel(1024);
        Self {
            inner,
            write_timeout: (!write_timeout.is_zero()).then_some(write_timeout),
            lane: None,
            api_tx,
            api_rx,
        }
    }

    /// Serves stream connections on `lane`.
    pub fn with_stream_lane(mut self, lane: StreamLane) -> Self {
        self.lane = Some(lane);
        self
    }
}

/// Hands a new connection to the lane when its first bytes are a stream request, to
/// the API runtime otherwise.
async fn classify(
    io: TcpStream,
    addr: SocketAddr,
    lane: StreamLane,
    timeout: Option<Duration>,
    api: tokio::sync::mpsc::Sender<(TcpStream, SocketAddr)>,
) {
    let mut head = [0u8; STREAM_REQUEST.len()];
    let deadline = Instant::now() + FIRST_BYTES_WAIT;
    let is_stream = loop {
        let n = match tokio::time::timeout_at(deadline, io.peek(&mut head)).await {
            Ok(Ok(n)) => n,
            // Nothing yet, or an error the API side will see too.
            _ => break false,
        };
        if n == 0 || !STREAM_REQUEST.starts_with(&head[..n]) {
            break false;
        }
        if n == head.len() {
            break true;
        }
        // A prefix of a stream request so far: wait for the rest.
        if Instant::now() >= deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    if is_stream {
        lane.serve(io, timeout);
    } else {
        // The receiver lives as long as the server accepts.
        let _ = api.send((io, addr)).await;
    }
}

impl axum::serve::Listener for Guarded {
    type Io = StallGuard;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let accepted = tokio::select! {
                Some((io, addr)) = self.api_rx.recv() => {
                    return (StallGuard::new(io, self.write_timeout), addr);
                }
                r = self.inner.accept() => r,
            };
            match accepted {
                Ok((io, addr)) => {
                    if let Err(e) = io.set_nodelay(true) {
                        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                    }
                    match &self.lane {
                        None => return (StallGuard::new(io, self.write_timeout), addr),
                        Some(lane) => {
                            tokio::spawn(classify(
                                io,
                                addr,
                                lane.clone(),
                                self.write_timeout,
                                self.api_tx.clone(),
                            ));
                        }
                    }
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A TCP stream whose writes fail with `TimedOut` once they have made no progress
/// for the timeout.
#[derive(Debug)]
pub struct StallGuard {
    io: TcpStream,
    timeout: Option<Duration>,
    timer: Option<Pin<Box<Sleep>>>,
    /// A write is waiting and the timer runs.
    stalled: bool,
}

impl StallGuard {
    fn new(io: TcpStream, timeout: Option<Duration>) -> Self {
        Self {
            io,
            timeout,
            timer: None,
            stalled: false,
        }
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
        Pin::new(&mut self.io).poll_read(cx, buf)
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
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn a_peer_that_stops_reading_times_the_write_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut guarded = Guarded::new(listener, Duration::from_millis(200));
        // The peer connects and never reads.
        let _peer = TcpStream::connect(addr).await.unwrap();
        let (mut io, _) = axum::serve::Listener::accept(&mut guarded).await;
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

    /// Sends one request over a fresh connection and returns the whole answer.
    async fn get(addr: SocketAddr, path: &str) -> String {
        use tokio::io::AsyncReadExt;
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
            let guarded = Guarded::new(listener, Duration::ZERO).with_stream_lane(StreamLane::new(
                lane_rt.handle().clone(),
                app.clone(),
                stop,
            ));
            tokio::spawn(async move { axum::serve(guarded, app).await });
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
            tokio::io::AsyncReadExt::read_to_string(&mut io, &mut answer)
                .await
                .unwrap();
            assert!(answer.ends_with("lane-rt"), "{answer}");
        });
    }

    #[tokio::test]
    async fn a_reading_peer_is_never_cut() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut guarded = Guarded::new(listener, Duration::from_millis(200));
        let mut peer = TcpStream::connect(addr).await.unwrap();
        let (mut io, _) = axum::serve::Listener::accept(&mut guarded).await;
        let reader = tokio::spawn(async move {
            let mut sink = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut peer, &mut sink)
                .await
                .unwrap();
            sink.len()
        });
        let chunk = vec![1u8; 256 * 1024];
        for _ in 0..40 {
            io.write_all(&chunk).await.unwrap();
        }
        io.shutdown().await.unwrap();
        assert_eq!(reader.await.unwrap(), 40 * 256 * 1024);
    }
}
