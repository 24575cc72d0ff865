//! The bound on a request head: at most `http.max_header_bytes` bytes and
//! `http.max_headers` header fields, counted on the plaintext stream (above
//! TLS) from the head's first byte to its empty line.
//!
//! ```text
//! read ──► no request in progress? ── count bytes and line ends until "\r\n\r\n" (or "\n\n")
//!            └─ over a limit: write "431 … names the limit" (Connection: close), flush, shut down,
//!               and fail the read so hyper drops the connection without a second answer
//! ```
//!
//! A head is counted only while no request of the connection is being
//! handled and the last one's body was read to its end; bytes of a pipelined
//! next request read while one is in progress, and the next head after a
//! request answered before its body ended (hyper drains that body's rest
//! first, and only hyper knows where it ends), are not: hyper's own buffer
//! limit (set just above `max_header_bytes`) bounds them instead.

use super::ConnState;
use crate::config::HttpConfig;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A stream whose request heads are bounded.
pub(super) struct HeadLimit<I> {
    inner: I,
    state: Arc<ConnState>,
    max_bytes: usize,
    max_fields: usize,
    /// `ConnState::requests` when this head's counting started.
    seen_requests: u64,
    head_bytes: usize,
    /// Line ends seen in this head (the request line's included).
    lines: usize,
    /// 0: in a line; 1: just after `\n`; 2: after `\n\r`.
    newline: u8,
    /// The head's empty line was seen: the rest is body.
    complete: bool,
    /// The `431` being written (bytes already written), once a limit was passed.
    refusing: Option<(Vec<u8>, usize)>,
}

impl<I> HeadLimit<I> {
    pub(super) fn new(inner: I, state: Arc<ConnState>, config: &HttpConfig) -> Self {
        Self {
            inner,
            state,
            max_bytes: config.max_header_bytes,
            max_fields: config.max_headers,
            seen_requests: 0,
            head_bytes: 0,
            lines: 0,
            newline: 0,
            complete: false,
            refusing: None,
        }
    }

    /// Counts `bytes` of a head; `Some(answer)` once a limit is passed.
    fn count(&mut self, bytes: &[u8]) -> Option<Vec<u8>> {
        let requests = self.state.requests.load(Ordering::Relaxed);
        let busy = self.state.in_flight.load(Ordering::Relaxed) > 0 || self.state.unread_body.load(Ordering::Relaxed);
        if busy || requests != self.seen_requests {
            // A request is being handled (these bytes are its body), or one was
            // handed over since: the next head starts fresh.
            self.seen_requests = requests;
            self.head_bytes = 0;
            self.lines = 0;
            self.newline = 0;
            self.complete = false;
            if busy {
                return None;
            }
        }
        if self.complete {
            return None;
        }
        let mut counted = bytes.len();
        for (i, &b) in bytes.iter().enumerate() {
            match (b, self.newline) {
                (b'\n', 1 | 2) => {
                    // The head ends here; the rest of the read is body (or the next request).
                    self.complete = true;
                    counted = i + 1;
                    break;
                }
                (b'\n', _) => {
                    self.newline = 1;
                    self.lines += 1;
                }
                (b'\r', 1) => self.newline = 2,
                (b'\r', _) => {}
                _ => self.newline = 0,
            }
        }
        self.head_bytes += counted;
        // The request line plus the header fields.
        let fields = self.lines.saturating_sub(1);
        let over = if self.head_bytes > self.max_bytes {
            Some(format!(
                "request head (request line and headers) is over the limit of {} bytes (http.max_header_bytes)",
                self.max_bytes
            ))
        } else if fields > self.max_fields {
            Some(format!("request has more than {} header fields (http.max_headers)", self.max_fields))
        } else {
            None
        };
        over.map(|msg| answer_431(&msg))
    }
}

/// The whole `431` answer, closing the connection.
fn answer_431(msg: &str) -> Vec<u8> {
    let body = serde_json::json!({"status": "error", "errorType": "bad_data", "error": msg}).to_string();
    format!(
        "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

impl<I: AsyncRead + AsyncWrite + Unpin> HeadLimit<I> {
    /// Writes the refusal, flushes and shuts the stream down; then fails the read.
    fn poll_refuse(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some((answer, written)) = &mut self.refusing else { return Poll::Ready(Ok(())) };
        while *written < answer.len() {
            match Pin::new(&mut self.inner).poll_write(cx, &answer[*written..]) {
                Poll::Ready(Ok(0)) => break,
                Poll::Ready(Ok(n)) => *written += n,
                Poll::Ready(Err(_)) => break,
                Poll::Pending => return Poll::Pending,
            }
        }
        // Best effort: the client may already be gone.
        if Pin::new(&mut self.inner).poll_flush(cx).is_pending()
            || Pin::new(&mut self.inner).poll_shutdown(cx).is_pending()
        {
            return Poll::Pending;
        }
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "request head over http.max_header_bytes or http.max_headers",
        )))
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> AsyncRead for HeadLimit<I> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.refusing.is_some() {
            return this.poll_refuse(cx);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        let answer = this.count(&buf.filled()[before..]);
        match answer {
            None => Poll::Ready(Ok(())),
            Some(answer) => {
                // hyper never sees the bytes past the limit.
                buf.set_filled(before);
                this.refusing = Some((answer, 0));
                this.poll_refuse(cx)
            }
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for HeadLimit<I> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(max_bytes: usize, max_fields: usize) -> HeadLimit<()> {
        let config = HttpConfig { max_header_bytes: max_bytes, max_headers: max_fields, ..HttpConfig::default() };
        HeadLimit::new((), Arc::new(ConnState::default()), &config)
    }

    #[test]
    fn a_head_within_the_limits_passes_and_its_body_is_not_counted() {
        let mut h = limit(64, 2);
        assert!(h.count(b"POST / HTTP/1.1\r\nHost: x\r\n").is_none());
        assert!(h.count(b"A: b\r\n\r\n").is_none());
        assert!(h.complete);
        // Body bytes after the empty line are not head bytes.
        assert!(h.count(&[b'x'; 1000]).is_none());
    }

    #[test]
    fn too_many_bytes_or_fields_are_refused_naming_the_limit() {
        let mut h = limit(32, 100);
        let answer = h.count(b"GET / HTTP/1.1\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa").unwrap();
        let text = String::from_utf8(answer).unwrap();
        assert!(text.starts_with("HTTP/1.1 431 ") && text.contains("http.max_header_bytes"), "{text}");
        let mut h = limit(1 << 20, 2);
        assert!(h.count(b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n").is_none());
        let text = String::from_utf8(h.count(b"C: 3\r\n").unwrap()).unwrap();
        assert!(text.contains("http.max_headers"), "{text}");
    }

    #[test]
    fn a_head_completed_in_the_read_that_passes_the_limit_is_refused() {
        let mut h = limit(32, 100);
        let answer = h.count(b"GET / HTTP/1.1\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n").unwrap();
        assert!(String::from_utf8(answer).unwrap().contains("http.max_header_bytes"));
    }

    #[test]
    fn each_request_of_a_connection_gets_its_own_count() {
        let mut h = limit(40, 100);
        assert!(h.count(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n").is_none());
        // The first request was handed to the router and answered.
        h.state.requests.fetch_add(1, Ordering::Relaxed);
        assert!(h.count(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n").is_none(), "a fresh count, not 2 x 28 bytes");
    }

    #[test]
    fn the_rest_of_a_body_answered_before_its_end_is_not_a_head() {
        let mut h = limit(64, 100);
        assert!(h.count(b"POST /w HTTP/1.1\r\nContent-Length: 9999\r\n\r\n").is_none());
        // Handed to the router and refused before its body was read.
        h.state.requests.fetch_add(1, Ordering::Relaxed);
        h.state.unread_body.store(true, Ordering::Relaxed);
        assert!(h.count(&[b'#'; 1000]).is_none(), "hyper drains the body's rest");
        // The next request was handed over: counting resumes.
        h.state.requests.fetch_add(1, Ordering::Relaxed);
        h.state.unread_body.store(false, Ordering::Relaxed);
        assert!(h.count(&[b'#'; 1000]).is_some());
    }
}
