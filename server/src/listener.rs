//! The HTTP accept loop: a connection cap, header, idle and body-read
//! timeouts, and graceful shutdown (`[http]` in the configuration).
//!
//! ```text
//! accept ──► at max_connections? ── close the longest-idle connection (none idle: wait for one to end)
//!   └─► per connection: ConnIo (idle / header deadlines) ─► hyper HTTP/1 ─► Deadline body ─► axum Router
//! shutdown: stop accepting ─► every connection finishes its request in progress and closes
//! ```
//!
//! A connection is *idle* while no request is in progress and no byte of
//! the next one has arrived; it is closed after `idle_timeout` without a
//! byte moving. Once the first byte of a request head arrives the head must
//! be complete within `header_read_timeout`. While a request is being
//! handled neither applies; its body must arrive within `body_read_timeout`
//! (the handler then sees an `io::ErrorKind::TimedOut` error in the body
//! and answers `408`), and the handler itself may take as long as it takes.
//!
//! With `[http] tls_cert` the TLS layer ([`crate::tls`]) sits between the
//! raw-byte deadlines and HTTP, so a handshake is bounded like a request
//! head. [`head_limit`] bounds each request head's bytes and header fields
//! (`http.max_header_bytes`, `http.max_headers`) on the plaintext side and
//! answers `431` naming the limit. Each request carries its client's
//! address as a [`PeerAddr`] extension (the admin audit log records it).

mod head_limit;

use crate::config::HttpConfig;
use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Sleep;

/// The client address of a request (a request extension set by the listener).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// Serves `app` on `listener` (HTTPS when `tls` is given) until `stop` turns
/// true, then lets the connections finish their requests in progress.
/// Returns once every connection has closed (the caller bounds the wait with
/// `shutdown_timeout`).
#[expect(
    clippy::disallowed_methods,
    reason = "one task per connection; serve() counts them and, on stop, returns only after every one has ended (the alive channel)"
)]
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: HttpConfig,
    tls: Option<crate::tls::Acceptor>,
    mut stop: watch::Receiver<bool>,
) {
    let conns = Arc::new(Conns::default());
    // Each connection task holds a sender; `recv` returns None once all are gone.
    let (alive_tx, mut alive_rx) = tokio::sync::mpsc::channel::<()>(1);
    let (mut last_cap_warning, mut last_accept_warning): (Option<Instant>, Option<Instant>) = (None, None);
    loop {
        // At the cap: make room by closing the longest-idle connection, or
        // wait for one to end (busy ones are bounded by the timeouts).
        while conns.len() >= config.max_connections {
            let now = Instant::now();
            if last_cap_warning.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10)) {
                last_cap_warning = Some(now);
                tracing::warn!(
                    max_connections = config.max_connections,
                    "HTTP connection limit reached (http.max_connections): closing the longest-idle connection, \
                     or holding new connections in the listen backlog until one ends"
                );
            }
            if conns.evict_idle() {
                break;
            }
            tokio::select! {
                () = conns.closed.notified() => {}
                () = stopped(&mut stop) => break,
            }
        }
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning, and log at most every 10 s.
                    let now = Instant::now();
                    if last_accept_warning.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10)) {
                        last_accept_warning = Some(now);
                        tracing::warn!(error = %e, "accepting an HTTP connection failed (open-file limit?)");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        let _ = stream.set_nodelay(true);
        let state = conns.add();
        let app = app.clone();
        let (config, stop, alive, tls) = (config.clone(), stop.clone(), alive_tx.clone(), tls.clone());
        let conns = Arc::clone(&conns);
        tokio::spawn(async move {
            let plain_on_tls = tls.is_some() && !starts_like_tls(&stream, config.idle_timeout).await;
            let mut io = ConnIo::new(stream, Arc::clone(&state), &config);
            io.plaintext = tls.is_none();
            match tls {
                _ if plain_on_tls => refuse_plain_http(io.inner).await,
                None => serve_connection(io, peer, app, &config, Arc::clone(&state), stop).await,
                Some(tls) => match tls.accept(io).await {
                    Ok(io) => serve_connection(io, peer, app, &config, Arc::clone(&state), stop).await,
                    Err(e) => tracing::debug!(error = %e, %peer, "TLS handshake failed"),
                },
            }
            conns.remove(&state);
            drop(alive);
        });
    }
    drop(alive_tx);
    let _ = alive_rx.recv().await;
}

async fn serve_connection<I>(
    io: I,
    peer: std::net::SocketAddr,
    app: Router,
    config: &HttpConfig,
    state: Arc<ConnState>,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = head_limit::HeadLimit::new(io, Arc::clone(&state), config);
    let body_timeout = config.body_read_timeout;
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let mut app = app.clone();
        let guard = InFlight::start(Arc::clone(&state));
        let responding = Responding::start(Arc::clone(&state));
        let body_read = Arc::new(AtomicBool::new(false));
        let state = Arc::clone(&state);
        async move {
            let mut req = req.map(|b| Body::new(DeadlineBody::new(b, body_timeout, Arc::clone(&body_read))));
            req.extensions_mut().insert(PeerAddr(peer));
            let resp = tower::Service::call(&mut app, req).await;
            let unread = !body_read.load(Ordering::Relaxed);
            if unread {
                // Answered before the body's end (a refusal): hyper discards what
                // it can of the rest, which is not a request head.
                state.unread_body.store(true, Ordering::Relaxed);
            }
            drop(guard);
            // Until hyper has written the whole answer, the connection is not idle (never evicted at the cap).
            resp.map(|mut r| {
                if unread {
                    // The connection ends after this answer: a client must not
                    // send its next request behind a body nobody reads.
                    r.headers_mut()
                        .insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
                }
                r.map(|b| Body::new(ResponseBody { inner: b, _responding: responding }))
            })
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // Our own deadlines (ConnIo) replace hyper's header timer, which would
    // also run while a connection waits for its next request.
    builder.header_read_timeout(None).keep_alive(true);
    // Backstops behind `HeadLimit`, which answers first and names the limits
    // (hyper's own 431 has no body).
    builder.max_buf_size(config.max_header_bytes.saturating_add(16 << 10)).max_headers(config.max_headers + 16);
    let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => log_conn_error(result),
        () = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            log_conn_error(conn.await);
        }
    }
}

/// Whether a connection to a TLS listener starts with a TLS handshake record
/// (byte 0x16), looking without consuming; a silent one counts as TLS (the
/// handshake's own deadlines then close it).
async fn starts_like_tls(stream: &TcpStream, idle_timeout: Duration) -> bool {
    let mut first = [0u8; 1];
    match tokio::time::timeout(idle_timeout, stream.peek(&mut first)).await {
        Ok(Ok(1)) => first[0] == 0x16,
        _ => true,
    }
}

/// Answers a plain-HTTP request sent to a TLS listener with a readable `400`, then closes.
async fn refuse_plain_http(mut stream: TcpStream) {
    use tokio::io::AsyncWriteExt;
    let body = r#"{"status":"error","error":"this listener speaks HTTPS only (http.tls_cert): use https://"}"#;
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(answer.as_bytes())).await;
    let _ = stream.shutdown().await;
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

fn log_conn_error(result: Result<(), hyper::Error>) {
    if let Err(e) = result {
        tracing::debug!(error = %e, "HTTP connection ended with an error");
    }
}

/// The open connections, oldest first.
#[derive(Default)]
struct Conns {
    map: Mutex<BTreeMap<u64, Arc<ConnState>>>,
    next_id: AtomicU64,
    closed: tokio::sync::Notify,
}

impl Conns {
    fn len(&self) -> usize {
        self.map.lock().len()
    }

    fn add(&self) -> Arc<ConnState> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnState { id, ..ConnState::default() });
        self.map.lock().insert(id, Arc::clone(&state));
        state
    }

    fn remove(&self, state: &ConnState) {
        self.map.lock().remove(&state.id);
        self.closed.notify_one();
    }

    /// Asks the longest-idle connection to close; false when none is idle.
    fn evict_idle(&self) -> bool {
        let map = self.map.lock();
        let idle = map
            .values()
            .filter(|c| c.is_idle() && !c.evicted.load(Ordering::Relaxed))
            .min_by_key(|c| *c.last_active.lock());
        match idle {
            Some(c) => {
                c.evicted.store(true, Ordering::Relaxed);
                if let Some(w) = c.waker.lock().take() {
                    w.wake();
                }
                true
            }
            None => false,
        }
    }
}

/// What the accept loop and a connection's I/O share.
#[derive(Debug)]
struct ConnState {
    id: u64,
    /// Requests being handled (the handler has not answered yet).
    in_flight: AtomicUsize,
    /// Responses being written (their body not yet complete).
    responding: AtomicUsize,
    /// A byte of the next request head has arrived.
    head_started: AtomicBool,
    /// Requests handed to the router so far (a new head starts after each).
    requests: AtomicU64,
    /// The last request was answered before its body was read to the end: the
    /// bytes hyper reads next are that body's rest (drained), then the next
    /// head, which `HeadLimit` leaves to hyper's own buffer limit.
    unread_body: AtomicBool,
    /// The accept loop asked this connection to close (it is idle and the cap is reached).
    evicted: AtomicBool,
    last_active: Mutex<Instant>,
    /// Woken to let an idle connection see `evicted`.
    waker: Mutex<Option<Waker>>,
}

impl Default for ConnState {
    fn default() -> Self {
        Self {
            id: 0,
            in_flight: AtomicUsize::new(0),
            responding: AtomicUsize::new(0),
            head_started: AtomicBool::new(false),
            requests: AtomicU64::new(0),
            unread_body: AtomicBool::new(false),
            evicted: AtomicBool::new(false),
            last_active: Mutex::new(Instant::now()),
            waker: Mutex::new(None),
        }
    }
}

impl ConnState {
    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0
            && self.responding.load(Ordering::Relaxed) == 0
            && !self.head_started.load(Ordering::Relaxed)
    }
}

/// Marks a request in progress on its connection.
struct InFlight(Arc<ConnState>);

impl InFlight {
    fn start(state: Arc<ConnState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::Relaxed);
        state.requests.fetch_add(1, Ordering::Relaxed);
        state.unread_body.store(false, Ordering::Relaxed);
        state.head_started.store(false, Ordering::Relaxed);
        Self(state)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        *self.0.last_active.lock() = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Marks a response being written on its connection (dropped with its body).
struct Responding(Arc<ConnState>);

impl Responding {
    fn start(state: Arc<ConnState>) -> Self {
        state.responding.fetch_add(1, Ordering::Relaxed);
        Self(state)
    }
}

impl Drop for Responding {
    fn drop(&mut self) {
        self.0.responding.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that keeps its connection marked as responding.
struct ResponseBody {
    inner: Body,
    _responding: Responding,
}

impl HttpBody for ResponseBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// The answer to a request head not complete within `http.header_read_timeout`.
fn head_timeout_answer() -> Vec<u8> {
    let body = r#"{"status":"error","errorType":"timeout","error":"request headers not received within http.header_read_timeout"}"#;
    format!(
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A TCP stream that enforces the idle and header-read deadlines.
struct ConnIo {
    inner: TcpStream,
    state: Arc<ConnState>,
    idle_timeout: Duration,
    header_timeout: Duration,
    /// When the current request head's first byte arrived.
    head_started_at: Option<Instant>,
    sleep: Pin<Box<Sleep>>,
    sleep_deadline: Option<tokio::time::Instant>,
    /// No TLS above: a request head cut by its deadline is answered `408`.
    plaintext: bool,
}

impl ConnIo {
    fn new(inner: TcpStream, state: Arc<ConnState>, config: &HttpConfig) -> Self {
        Self {
            inner,
            state,
            idle_timeout: config.idle_timeout,
            header_timeout: config.header_read_timeout,
            head_started_at: None,
            sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
            sleep_deadline: None,
            plaintext: true,
        }
    }

    /// Bytes moved: the idle clock restarts, and the first byte read
    /// outside a request starts the next request head's clock.
    fn progressed(&mut self, read: usize) {
        let now = Instant::now();
        *self.state.last_active.lock() = now;
        if read > 0
            && self.state.in_flight.load(Ordering::Relaxed) == 0
            && !self.state.head_started.swap(true, Ordering::Relaxed)
        {
            self.head_started_at = Some(now);
        }
    }

    /// Called when the socket is not ready: `Some(error)` when a deadline has passed.
    fn check_deadline(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        if self.state.evicted.load(Ordering::Relaxed) {
            return Some(io::Error::new(io::ErrorKind::ConnectionAborted, "closed at http.max_connections"));
        }
        *self.state.waker.lock() = Some(cx.waker().clone());
        if self.state.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let in_head = self.state.head_started.load(Ordering::Relaxed);
        let (deadline, what) = match (in_head, self.head_started_at) {
            (true, Some(started)) => {
                (started + self.header_timeout, "request headers not received within http.header_read_timeout")
            }
            _ => (*self.state.last_active.lock() + self.idle_timeout, "connection idle for http.idle_timeout"),
        };
        let deadline = tokio::time::Instant::from_std(deadline);
        if self.sleep_deadline != Some(deadline) {
            self.sleep.as_mut().reset(deadline);
            self.sleep_deadline = Some(deadline);
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                if in_head && self.plaintext {
                    // Best effort (a few hundred bytes fit any socket buffer); under TLS
                    // these raw bytes would break the stream, so the connection just closes.
                    let _ = self.inner.try_write(&head_timeout_answer());
                }
                Some(io::Error::new(io::ErrorKind::TimedOut, what))
            }
            Poll::Pending => None,
        }
    }
}

impl ConnIo {
    /// What one poll of the socket means for the deadlines: progress on
    /// success (`read` bytes of it read), the deadline's error while pending
    /// past it.
    fn account<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
        read: impl FnOnce(&T) -> usize,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Ready(Ok(v)) => {
                self.progressed(read(&v));
                Poll::Ready(Ok(v))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match self.check_deadline(cx) {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
        }
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        this.account(cx, polled, |()| read)
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.account(cx, polled, |_| 0)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.account(cx, polled, |_| 0)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A request body that fails with `TimedOut` once its deadline has passed,
/// and says (`read`) whether it was read to its end.
struct DeadlineBody<B> {
    inner: B,
    timeout: Duration,
    sleep: Pin<Box<Sleep>>,
    read: Arc<AtomicBool>,
}

impl<B: HttpBody> DeadlineBody<B> {
    fn new(inner: B, timeout: Duration, read: Arc<AtomicBool>) -> Self {
        read.store(inner.is_end_stream(), Ordering::Relaxed);
        Self { inner, timeout, sleep: Box::pin(tokio::time::sleep(timeout)), read }
    }
}

impl<B> HttpBody for DeadlineBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                if frame.is_none() || this.inner.is_end_stream() {
                    this.read.store(true, Ordering::Relaxed);
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => match this.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    let msg = format!("request body not received within http.body_read_timeout ({:?})", this.timeout);
                    Poll::Ready(Some(Err(Box::new(io::Error::new(io::ErrorKind::TimedOut, msg)))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}
