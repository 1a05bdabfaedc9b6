//! # Client-facing HTTP listeners, with a limit on everything
//!
//! The key-value/admin listener and the S3 listener both serve HTTP/1.1
//! to clients we do not control, so both go through [`serve_http`], which
//! owns the limits a hostile or broken client could otherwise exhaust:
//!
//! - **Open connections** ([`ListenerLimits::connections_max`]): when the
//!   limit is reached the listener stops accepting (new connections wait
//!   in the kernel's backlog, then time out at the client) and logs it
//!   once; every connection already open keeps being served. Why not
//!   accept and close: that needs a file descriptor per refused
//!   connection, the very thing that runs out (an idle-socket flood once
//!   took a whole dev cluster down at the process's descriptor limit).
//! - **Request heads** ([`ListenerLimits::header_timeout`]): a request's
//!   line and headers must arrive within this long of the connection
//!   being ready for them (hyper's header timer). It starts when the
//!   previous answer is written, so it is also the idle keep-alive
//!   timeout, and it closes slowloris connections that send a byte a
//!   second forever.
//! - **Stalled transfers** ([`ListenerLimits::io_timeout`]): a connection
//!   that is waiting to read (a body, or the next request) and has moved
//!   no byte either way for this long is closed ([`StallGuard`]). A
//!   request being worked on is not waiting to read, so a slow quorum is
//!   never cut short by it.
//! - **Panics**: a panic in a request's handler is caught, logged with
//!   the method and path, and answered 500; the connection and the node
//!   go on ([`CatchPanic`]).
//! - **TLS handshakes** (when the listener has a [`TlsAcceptor`]): must
//!   finish within the header timeout, and hold a connection slot like
//!   any connection.

use futures::FutureExt;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::io;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};

pub use crate::tls::TlsAcceptor;

/// The limits of one client-facing listener (docs/CONFIG.md).
#[derive(Clone, Debug)]
pub struct ListenerLimits {
    /// Names the listener in log lines ("http", "s3").
    pub name: &'static str,
    /// Most connections open at once.
    pub connections_max: usize,
    /// Longest wait for a complete request head, idle time included.
    pub header_timeout: Duration,
    /// Longest time a connection waiting to read may move no byte.
    pub io_timeout: Duration,
}

/// Serve `service` on `listener` with `limits`, over TLS if `tls` is
/// given, until the task is dropped.
pub async fn serve_http<S, B>(
    listener: tokio::net::TcpListener,
    limits: ListenerLimits,
    tls: Option<TlsAcceptor>,
    service: S,
) where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + From<String> + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    assert!(
        limits.connections_max > 0,
        "connections_max must be positive"
    );
    let slots = Arc::new(Semaphore::new(limits.connections_max));
    let service = CatchPanic(service);
    loop {
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                tracing::warn!(
                    listener = limits.name,
                    limit = limits.connections_max,
                    "connection limit reached; new connections wait until open ones close \
                     (raise {}_connections_max if clients need more)",
                    limits.name
                );
                let Ok(p) = slots.clone().acquire_owned().await else {
                    return;
                };
                tracing::info!(listener = limits.name, "below the connection limit again");
                p
            }
        };
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // EMFILE and the like: give the process a moment to close
                // something instead of spinning on the same error.
                tracing::warn!(listener = limits.name, error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Why: an answer is headers then body in separate writes; with
        // Nagle on, the body waits for the client's delayed ACK (~40 ms).
        let _ = stream.set_nodelay(true);
        let (service, limits, tls) = (service.clone(), limits.clone(), tls.clone());
        tokio::spawn(async move {
            let stream = StallGuard::new(stream, limits.io_timeout);
            match tls {
                None => serve_connection(stream, &limits, service).await,
                Some(tls) => {
                    let handshake = tokio::time::timeout(limits.header_timeout, tls.accept(stream));
                    match handshake.await {
                        Ok(Ok(stream)) => serve_connection(stream, &limits, service).await,
                        Ok(Err(e)) => {
                            tracing::debug!(listener = limits.name, error = %e, "TLS handshake failed")
                        }
                        Err(_) => {
                            tracing::debug!(listener = limits.name, "TLS handshake timed out")
                        }
                    }
                }
            }
            drop(permit);
        });
    }
}

/// Serve HTTP/1.1 requests on one accepted connection until it closes.
async fn serve_connection<I, S, B>(io: I, limits: &ListenerLimits, service: S)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(TokioIo::new(io), service);
    if let Err(e) = conn.await {
        tracing::debug!(listener = limits.name, error = %e, "connection ended with an error");
    }
}

/// A service whose handler panics are answered 500 instead of ending the
/// connection with no answer.
#[derive(Clone)]
pub struct CatchPanic<S>(pub S);

impl<S, B> hyper::service::Service<Request<Incoming>> for CatchPanic<S>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>>,
    S::Future: Send + 'static,
    B: From<String>,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<B>, S::Error>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let what = format!("{} {}", req.method(), req.uri().path());
        let answer = self.0.call(req);
        Box::pin(async move {
            match AssertUnwindSafe(answer).catch_unwind().await {
                Ok(r) => r,
                Err(panic) => {
                    let why = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".into());
                    tracing::error!(request = %what, panic = %why, "request handler panicked; answered 500");
                    let mut resp = Response::new(B::from(format!(
                        "internal error while handling {what}; the node logged it and goes on serving. \
                         Please report it with the node's log.\n"
                    )));
                    *resp.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
                    Ok(resp)
                }
            }
        })
    }
}

/// A connection that fails reads with `TimedOut` once it has waited to
/// read for `timeout` with no byte moved either way since the last one.
pub struct StallGuard<T> {
    inner: T,
    timeout: Duration,
    last_progress: Instant,
    timer: Pin<Box<Sleep>>,
}

impl<T> StallGuard<T> {
    /// Guard `inner`; the clock starts now.
    pub fn new(inner: T, timeout: Duration) -> Self {
        let now = Instant::now();
        StallGuard {
            inner,
            timeout,
            last_progress: now,
            timer: Box::pin(tokio::time::sleep_until(now + timeout)),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StallGuard<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.last_progress = Instant::now();
                }
                Poll::Ready(r)
            }
            Poll::Pending => {
                // Why the timer is moved only once it fires: resetting it at
                // every pending read put a timer-wheel update on every
                // request of a busy connection. A timer that fires early
                // (progress was made since it was set) is re-armed for the
                // real deadline; one that fires late cannot, since progress
                // only moves the deadline later.
                loop {
                    match self.timer.as_mut().poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(()) => {
                            let deadline = self.last_progress + self.timeout;
                            if Instant::now() >= deadline {
                                return Poll::Ready(Err(io::Error::new(
                                    io::ErrorKind::TimedOut,
                                    "no byte moved on the connection for the io timeout",
                                )));
                            }
                            self.timer.as_mut().reset(deadline);
                        }
                    }
                }
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StallGuard<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.last_progress = Instant::now();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.last_progress = Instant::now();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_times_out_and_a_talking_one_does_not() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut guarded = StallGuard::new(server, Duration::from_secs(10));
        let mut buf = [0u8; 8];
        // A byte every 6 s keeps it open past the 10 s timeout.
        for _ in 0..3 {
            let send = async {
                tokio::time::sleep(Duration::from_secs(6)).await;
                client.write_all(b"x").await.unwrap();
            };
            let (n, ()) = tokio::join!(guarded.read(&mut buf), send);
            assert_eq!(n.unwrap(), 1);
        }
        let started = Instant::now();
        let err = guarded.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }

    /// A handler that panics gets a 500 with a message, and the same
    /// connection goes on to serve the next request.
    #[tokio::test]
    async fn a_panicking_handler_is_answered_500() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
            assert!(req.uri().path() != "/boom", "handler bug");
            Ok::<_, std::convert::Infallible>(Response::new(String::from("fine")))
        });
        let limits = ListenerLimits {
            name: "test",
            connections_max: 4,
            header_timeout: Duration::from_secs(5),
            io_timeout: Duration::from_secs(5),
        };
        let server = tokio::spawn(serve_http(listener, limits, None, service));
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        async fn answer(conn: &mut tokio::net::TcpStream, path: &str) -> String {
            let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
            conn.write_all(req.as_bytes()).await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 512];
            while !got.ends_with(b"fine") && !got.ends_with(b"log.\n") {
                let n = conn.read(&mut buf).await.unwrap();
                assert!(
                    n > 0,
                    "connection closed: {}",
                    String::from_utf8_lossy(&got)
                );
                got.extend_from_slice(&buf[..n]);
            }
            String::from_utf8(got).unwrap()
        }
        let boom = answer(&mut conn, "/boom").await;
        assert!(boom.starts_with("HTTP/1.1 500"), "{boom}");
        assert!(boom.contains("GET /boom"), "{boom}");
        let fine = answer(&mut conn, "/fine").await;
        assert!(fine.starts_with("HTTP/1.1 200"), "{fine}");
        server.abort();
    }
}
