//! Serving connections with bounds an outsider cannot push past: a cap on
//! open connections (one over the cap gets a JSON 503 and is closed at
//! once, so idle clients cannot use up the agent's descriptors), a time
//! limit on reading a request's head that also closes keep-alive
//! connections idle between requests (hyper's `header_read_timeout`, which
//! starts whenever the connection waits for a head), and a JSON body on
//! every error answer, hyper's own included (431 for oversized headers, 400
//! for malformed framing), which hyper writes without a body.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Bounds of the HTTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Connections open at once (default 256; the usual descriptor limit
    /// is 1024, and the agent needs descriptors for disks and programs).
    pub max_connections: usize,
    /// Time to send a request's head, and to start the next one on a
    /// keep-alive connection (default 15 s).
    pub header_read_timeout: Duration,
    /// Largest request head, in bytes (default 64 KiB); hyper answers 431
    /// past it.
    pub max_head_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 256,
            header_read_timeout: Duration::from_secs(15),
            max_head_bytes: 64 * 1024,
        }
    }
}

/// Accepts and serves connections until `stop` resolves, then lets the
/// open ones finish for up to `grace`.
pub(crate) async fn serve_connections<L>(
    mut listener: L,
    app: axum::Router,
    limits: HttpLimits,
    stop: impl Future<Output = ()>,
    grace: Duration,
) where
    L: axum::serve::Listener,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_head_bytes.max(8192));
    tokio::pin!(stop);
    loop {
        let (io, _addr) = tokio::select! {
            biased;
            () = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Over the cap: answer and close at once, off the accept loop.
            tokio::spawn(refuse(io, limits.max_connections));
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        let conn = builder.serve_connection(TokioIo::new(JsonFaults::new(io)), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("connection ended: {e}");
            }
            drop(slot);
        });
    }
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after stop; closing them");
    }
}

/// The answer to a connection over the cap.
async fn refuse<I: AsyncWrite + Unpin>(mut io: I, cap: usize) {
    let body = serde_json::json!({
        "faultcode": "Server",
        "faultstring": format!("503 Service Unavailable: the agent serves at most {cap} connections at once; retry later"),
    })
    .to_string();
    let reply = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    // A peer that does not read gets nothing: the write is bounded.
    let _ = tokio::time::timeout(Duration::from_secs(1), io.write_all(reply.as_bytes())).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), io.shutdown()).await;
}

/// The connection's stream, with hyper's own bodiless error answers
/// (status ≥ 400 with `content-length: 0`) given a JSON body. The agent's
/// own error answers always carry one, so only hyper's are rewritten.
struct JsonFaults<T> {
    inner: T,
    /// Bytes of a rewritten answer still to write.
    pending: Vec<u8>,
}

impl<T> JsonFaults<T> {
    fn new(inner: T) -> Self {
        JsonFaults {
            inner,
            pending: Vec::new(),
        }
    }
}

/// hyper's answer head in `buf`, rewritten with a JSON body, if `buf` is one.
fn rewrite_bodiless_error(buf: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(buf).ok()?;
    let rest = text.strip_prefix("HTTP/1.1 ")?;
    let status: u16 = rest.get(..3)?.parse().ok()?;
    if status < 400 || !text.ends_with("\r\n\r\n") {
        return None;
    }
    let head = &text[..text.len() - 4];
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let headers: Vec<&str> = lines.collect();
    if !headers
        .iter()
        .any(|h| h.eq_ignore_ascii_case("content-length: 0"))
    {
        return None;
    }
    let reason = status_line.get("HTTP/1.1 ".len()..).unwrap_or_default();
    let faultcode = if status >= 500 { "Server" } else { "Client" };
    let body = serde_json::json!({"faultcode": faultcode, "faultstring": reason}).to_string();
    let mut out = format!("{status_line}\r\n");
    for h in headers {
        let name = h.split(':').next().unwrap_or_default();
        if name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("content-type")
            || name.eq_ignore_ascii_case("connection")
        {
            continue;
        }
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str(&format!(
        "content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ));
    Some(out.into_bytes())
}

impl<T: AsyncWrite + Unpin> JsonFaults<T> {
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            let n = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending.drain(..n);
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonFaults<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonFaults<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_pending(cx))?;
        if let Some(rewritten) = rewrite_bodiless_error(buf) {
            self.pending = rewritten;
            // What hyper wrote is taken; the rewritten answer goes out
            // before anything else, starting now.
            let _ = self.poll_pending(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    // Not vectored: hyper then writes each answer head in one buffer, which
    // is what the rewrite looks at.
    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bodiless_errors_are_rewritten() {
        let hyper_431 = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Sat, 05 Dec 2026 00:00:00 GMT\r\n\r\n";
        let out = String::from_utf8(rewrite_bodiless_error(hyper_431).unwrap()).unwrap();
        assert!(
            out.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{out}"
        );
        assert!(out.contains("content-type: application/json\r\n"), "{out}");
        let body = out.split("\r\n\r\n").nth(1).unwrap();
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["faultcode"], "Client");
        assert_eq!(v["faultstring"], "431 Request Header Fields Too Large");
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert!(rewrite_bodiless_error(ok).is_none());
        let ours = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 52\r\n\r\n";
        assert!(rewrite_bodiless_error(ours).is_none());
    }
}
