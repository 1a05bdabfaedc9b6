//! The network seam: how a node opens and accepts byte streams.

use crate::datagram::{Datagram, UdpDatagram};
use bytes::Bytes;
use futures::future::BoxFuture;
use std::collections::{HashMap, HashSet};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;

/// A bidirectional byte stream.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// A boxed stream, whatever carries it.
pub type BoxStream = Box<dyn Stream>;

/// Accepts inbound streams.
pub trait Listener: Send + 'static {
    /// Wait for the next inbound stream and the peer's address.
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxStream, String)>>;
    /// The address peers should dial.
    fn local_addr(&self) -> String;
}

/// Opens outbound streams and binds listeners.
pub trait Network: Send + Sync + 'static {
    /// Connect to `addr` (`host:port`).
    fn connect(&self, addr: &str) -> BoxFuture<'static, io::Result<BoxStream>>;
    /// Listen on `addr` (`host:port`; port 0 picks a free one).
    fn bind(&self, addr: &str) -> BoxFuture<'static, io::Result<Box<dyn Listener>>>;
    /// Open a datagram socket on `addr` (`host:port`).
    fn bind_datagram(&self, addr: &str) -> BoxFuture<'static, io::Result<Arc<dyn Datagram>>>;
}

/// Real TCP. Every socket gets `TCP_NODELAY`: small RPCs must not wait for
/// Nagle's algorithm to meet a delayed ACK.
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpNetwork;

struct TcpListener(tokio::net::TcpListener);

impl Listener for TcpListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxStream, String)>> {
        Box::pin(async move {
            let (s, peer) = self.0.accept().await?;
            s.set_nodelay(true)?;
            Ok((Box::new(s) as BoxStream, peer.to_string()))
        })
    }

    fn local_addr(&self) -> String {
        self.0
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default()
    }
}

impl Network for TcpNetwork {
    fn connect(&self, addr: &str) -> BoxFuture<'static, io::Result<BoxStream>> {
        let addr = addr.to_string();
        Box::pin(async move {
            let s = tokio::net::TcpStream::connect(&addr).await?;
            s.set_nodelay(true)?;
            Ok(Box::new(s) as BoxStream)
        })
    }

    fn bind(&self, addr: &str) -> BoxFuture<'static, io::Result<Box<dyn Listener>>> {
        let addr = addr.to_string();
        Box::pin(async move {
            let l = tokio::net::TcpListener::bind(&addr).await?;
            Ok(Box::new(TcpListener(l)) as Box<dyn Listener>)
        })
    }

    fn bind_datagram(&self, addr: &str) -> BoxFuture<'static, io::Result<Arc<dyn Datagram>>> {
        let addr = addr.to_string();
        Box::pin(async move {
            let s = tokio::net::UdpSocket::bind(&addr).await?;
            Ok(Arc::new(UdpDatagram(s)) as Arc<dyn Datagram>)
        })
    }
}

/// Bytes each in-memory pipe buffers before a writer waits.
const PIPE_BYTES_MAX: usize = 256 * 1024;
/// Inbound streams waiting for `accept` on one in-memory listener.
const BACKLOG_MAX: usize = 128;
/// Datagrams queued on one in-memory socket; more are lost, as with UDP.
const DATAGRAM_QUEUE_MAX: usize = 1024;

type Inbox = mpsc::Sender<(BoxStream, String)>;
type DatagramInbox = mpsc::Sender<(Bytes, String)>;

/// Traffic rules for in-process tests: addresses that cannot reach each
/// other. Shared by every handle of one [`MemoryNetwork`].
#[derive(Default)]
pub struct Faults {
    cut: HashSet<(String, String)>,
}

impl Faults {
    /// Whether traffic from `a` to `b` is blocked.
    pub fn is_cut(&self, a: &str, b: &str) -> bool {
        self.cut.contains(&(a.to_string(), b.to_string()))
    }

    /// Block traffic between `a` and `b`, both ways, on new and open streams.
    pub fn cut(&mut self, a: &str, b: &str) {
        self.cut.insert((a.to_string(), b.to_string()));
        self.cut.insert((b.to_string(), a.to_string()));
    }

    /// Block traffic from `a` to `b` only: datagrams from `b` still reach
    /// `a`. A stream needs both directions, so streams between them fail
    /// as under a symmetric cut, but `b` can still open new ones.
    pub fn cut_one_way(&mut self, a: &str, b: &str) {
        self.cut.insert((a.to_string(), b.to_string()));
    }

    /// Remove every rule.
    pub fn heal(&mut self) {
        self.cut.clear();
    }
}

/// An in-process network: listeners are registered by address and connects
/// are pipes. Clone it to give several nodes the same network; each clone
/// made with [`MemoryNetwork::at`] dials from its own address.
#[derive(Clone, Default)]
pub struct MemoryNetwork {
    listeners: Arc<Mutex<HashMap<String, Inbox>>>,
    datagrams: Arc<Mutex<HashMap<String, DatagramInbox>>>,
    /// Shared fault rules.
    pub faults: Arc<Mutex<Faults>>,
    local: String,
}

impl MemoryNetwork {
    /// A new, empty network.
    pub fn new() -> Self {
        Self::default()
    }

    /// A handle on the same network whose connects come from `addr`.
    pub fn at(&self, addr: &str) -> Self {
        MemoryNetwork {
            local: addr.to_string(),
            ..self.clone()
        }
    }
}

struct MemoryListener {
    rx: mpsc::Receiver<(BoxStream, String)>,
    addr: String,
}

impl Listener for MemoryListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxStream, String)>> {
        Box::pin(async move {
            self.rx
                .recv()
                .await
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "network dropped"))
        })
    }

    fn local_addr(&self) -> String {
        self.addr.clone()
    }
}

impl Network for MemoryNetwork {
    fn connect(&self, addr: &str) -> BoxFuture<'static, io::Result<BoxStream>> {
        let cut = self
            .faults
            .lock()
            .map(|f| f.cut.contains(&(self.local.clone(), addr.to_string())))
            .unwrap_or(false);
        let inbox = self
            .listeners
            .lock()
            .ok()
            .and_then(|l| l.get(addr).cloned());
        let local = self.local.clone();
        let (faults, remote) = (self.faults.clone(), addr.to_string());
        Box::pin(async move {
            let refused = || io::Error::new(io::ErrorKind::ConnectionRefused, "no listener");
            if cut {
                return Err(refused());
            }
            let inbox = inbox.ok_or_else(refused)?;
            let (a, b) = tokio::io::duplex(PIPE_BYTES_MAX);
            let near = FaultStream {
                inner: a,
                faults: faults.clone(),
                local: local.clone(),
                remote: remote.clone(),
            };
            let far = FaultStream {
                inner: b,
                faults,
                local: remote,
                remote: local.clone(),
            };
            inbox
                .send((Box::new(far), local))
                .await
                .map_err(|_| refused())?;
            Ok(Box::new(near) as BoxStream)
        })
    }

    fn bind(&self, addr: &str) -> BoxFuture<'static, io::Result<Box<dyn Listener>>> {
        let (tx, rx) = mpsc::channel(BACKLOG_MAX);
        let result = match self.listeners.lock() {
            Ok(mut l) if !l.contains_key(addr) || l[addr].is_closed() => {
                l.insert(addr.to_string(), tx);
                Ok(Box::new(MemoryListener {
                    rx,
                    addr: addr.to_string(),
                }) as Box<dyn Listener>)
            }
            _ => Err(io::Error::new(io::ErrorKind::AddrInUse, addr.to_string())),
        };
        Box::pin(async move { result })
    }

    fn bind_datagram(&self, addr: &str) -> BoxFuture<'static, io::Result<Arc<dyn Datagram>>> {
        let (tx, rx) = mpsc::channel(DATAGRAM_QUEUE_MAX);
        let result = match self.datagrams.lock() {
            Ok(mut d) if !d.contains_key(addr) || d[addr].is_closed() => {
                d.insert(addr.to_string(), tx);
                Ok(Arc::new(MemoryDatagram {
                    rx: tokio::sync::Mutex::new(rx),
                    addr: addr.to_string(),
                    net: self.clone(),
                }) as Arc<dyn Datagram>)
            }
            _ => Err(io::Error::new(io::ErrorKind::AddrInUse, addr.to_string())),
        };
        Box::pin(async move { result })
    }
}

/// An in-memory datagram socket: a queue registered under its address.
struct MemoryDatagram {
    rx: tokio::sync::Mutex<mpsc::Receiver<(Bytes, String)>>,
    addr: String,
    net: MemoryNetwork,
}

impl Datagram for MemoryDatagram {
    fn send_to<'a>(&'a self, data: &'a [u8], addr: &'a str) -> BoxFuture<'a, io::Result<()>> {
        let cut = self
            .net
            .faults
            .lock()
            .is_ok_and(|f| f.is_cut(&self.addr, addr));
        let inbox = self
            .net
            .datagrams
            .lock()
            .ok()
            .and_then(|d| d.get(addr).cloned());
        if let (false, Some(inbox)) = (cut, inbox) {
            // Like UDP: a full queue or a closed socket loses the packet.
            let _ = inbox.try_send((Bytes::copy_from_slice(data), self.addr.clone()));
        }
        Box::pin(async { Ok(()) })
    }

    fn recv_from(&self) -> BoxFuture<'_, io::Result<(Bytes, String)>> {
        Box::pin(async move {
            self.rx
                .lock()
                .await
                .recv()
                .await
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "network dropped"))
        })
    }

    fn local_addr(&self) -> String {
        self.addr.clone()
    }
}

/// A stream that fails once its two ends are cut apart, so a fault also
/// breaks connections that were open before it.
struct FaultStream<S> {
    inner: S,
    faults: Arc<Mutex<Faults>>,
    local: String,
    remote: String,
}

impl<S> FaultStream<S> {
    fn check(&self) -> io::Result<()> {
        let cut = self
            .faults
            .lock()
            .map(|f| f.is_cut(&self.local, &self.remote))
            .unwrap_or(false);
        if cut {
            Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "cut by fault injection",
            ))
        } else {
            Ok(())
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FaultStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FaultStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
