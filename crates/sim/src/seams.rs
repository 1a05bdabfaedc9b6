//! The simulated seams one node incarnation runs on: a clock the nemesis
//! can skew, and a disk and network that die with the incarnation.
//!
//! Why incarnations: `Node::shutdown` aborts a node's background tasks,
//! but a request a peer sent just before the crash may still be running in
//! a handler task. In a real crash that code stops existing. Here it would
//! go on and write into the engine the restarted node now uses, or answer
//! over a connection the peer pooled. So every handle a node gets is tied
//! to one [`Incarnation`]: once it is killed, its engine refuses every
//! operation and its streams and sockets fail, and whatever is left of the
//! old process can do nothing a dead process could not.

use bytes::Bytes;
use futures::future::BoxFuture;
use net::{BoxStream, Datagram, Listener, MemoryNetwork, Network};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use store::{Engine, Entries, MemoryEngine, Space, StoreError};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Wall-clock milliseconds at the simulation's start: a fixed date, so a
/// seed gives the same timestamps on every run.
const EPOCH_MS: u64 = 1_767_225_600_000;

/// One node's wall clock: virtual time since the start plus an offset the
/// nemesis moves (skew and jumps, forwards and back).
pub struct SimClock {
    start: tokio::time::Instant,
    offset_ms: AtomicI64,
}

impl SimClock {
    /// A clock reading the fixed epoch now.
    pub fn new() -> Self {
        SimClock {
            start: tokio::time::Instant::now(),
            offset_ms: AtomicI64::new(0),
        }
    }

    /// Set how far this clock is from true time.
    pub fn set_offset_ms(&self, ms: i64) {
        self.offset_ms.store(ms, Ordering::Relaxed);
    }
}

impl Default for SimClock {
    fn default() -> Self {
        Self::new()
    }
}

impl node::Clock for SimClock {
    fn wall_ms(&self) -> u64 {
        let elapsed = self.start.elapsed().as_millis() as i64;
        let ms = EPOCH_MS as i64 + elapsed + self.offset_ms.load(Ordering::Relaxed);
        ms.max(0) as u64
    }
}

/// Whether one run of a node's "process" is still alive.
#[derive(Clone, Default)]
pub struct Incarnation(Arc<AtomicBool>);

impl Incarnation {
    /// A live incarnation.
    pub fn new() -> Self {
        Incarnation(Arc::new(AtomicBool::new(true)))
    }

    /// End it: every handle made for it fails from now on.
    pub fn kill(&self) {
        self.0.store(false, Ordering::SeqCst);
    }

    fn alive(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    fn check(&self) -> io::Result<()> {
        if self.alive() {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "the process crashed",
            ))
        }
    }
}

/// A node's disk as one incarnation sees it.
pub struct SimEngine {
    disk: Arc<MemoryEngine>,
    life: Incarnation,
}

impl SimEngine {
    /// The disk `disk`, usable while `life` lasts.
    pub fn new(disk: Arc<MemoryEngine>, life: Incarnation) -> Self {
        SimEngine { disk, life }
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.life.alive() {
            Ok(())
        } else {
            Err(StoreError::SyncStopped)
        }
    }
}

impl Engine for SimEngine {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.check()?;
        self.disk.get(space, key)
    }

    fn write(&self, batch: Vec<store::BatchItem>) -> Result<(), StoreError> {
        self.check()?;
        self.disk.write(batch)
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.check()?;
        self.disk.sync()
    }

    fn sync_blocks(&self) -> bool {
        false
    }

    fn scan_prefix(&self, space: Space, prefix: &[u8]) -> Result<Entries, StoreError> {
        self.check()?;
        self.disk.scan_prefix(space, prefix)
    }

    fn count_prefix(&self, space: Space, prefix: &[u8]) -> Result<(u64, u64), StoreError> {
        self.check()?;
        self.disk.count_prefix(space, prefix)
    }

    fn footprint(&self) -> (u64, u64) {
        self.disk.footprint()
    }

    fn first_key_from(&self, space: Space, from: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.check()?;
        self.disk.first_key_from(space, from)
    }

    fn scan_page(
        &self,
        space: Space,
        prefix: &[u8],
        start: store::Start<'_>,
        bytes_max: usize,
    ) -> Result<Entries, StoreError> {
        self.check()?;
        self.disk.scan_page(space, prefix, start, bytes_max)
    }

    fn snapshot(&self) -> Result<Box<dyn store::EngineSnapshot>, StoreError> {
        self.check()?;
        self.disk.snapshot()
    }
}

/// The shared in-memory network as one incarnation sees it.
pub struct SimNetwork {
    net: MemoryNetwork,
    life: Incarnation,
}

impl SimNetwork {
    /// `net` (already placed at the node's address), usable while `life`
    /// lasts.
    pub fn new(net: MemoryNetwork, life: Incarnation) -> Self {
        SimNetwork { net, life }
    }
}

impl Network for SimNetwork {
    fn connect(&self, addr: &str) -> BoxFuture<'static, io::Result<BoxStream>> {
        let (life, dial) = (self.life.clone(), self.net.connect(addr));
        Box::pin(async move {
            life.check()?;
            let inner = dial.await?;
            Ok(Box::new(MortalStream { inner, life }) as BoxStream)
        })
    }

    fn bind(&self, addr: &str) -> BoxFuture<'static, io::Result<Box<dyn Listener>>> {
        let (life, bind) = (self.life.clone(), self.net.bind(addr));
        Box::pin(async move {
            life.check()?;
            let inner = bind.await?;
            Ok(Box::new(MortalListener { inner, life }) as Box<dyn Listener>)
        })
    }

    fn bind_datagram(&self, addr: &str) -> BoxFuture<'static, io::Result<Arc<dyn Datagram>>> {
        let (life, bind) = (self.life.clone(), self.net.bind_datagram(addr));
        Box::pin(async move {
            life.check()?;
            let inner = bind.await?;
            Ok(Arc::new(MortalDatagram { inner, life }) as Arc<dyn Datagram>)
        })
    }
}

struct MortalListener {
    inner: Box<dyn Listener>,
    life: Incarnation,
}

impl Listener for MortalListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxStream, String)>> {
        Box::pin(async move {
            let (inner, peer) = self.inner.accept().await?;
            self.life.check()?;
            let life = self.life.clone();
            Ok((Box::new(MortalStream { inner, life }) as BoxStream, peer))
        })
    }

    fn local_addr(&self) -> String {
        self.inner.local_addr()
    }
}

struct MortalDatagram {
    inner: Arc<dyn Datagram>,
    life: Incarnation,
}

impl Datagram for MortalDatagram {
    fn send_to<'a>(&'a self, data: &'a [u8], addr: &'a str) -> BoxFuture<'a, io::Result<()>> {
        if self.life.alive() {
            self.inner.send_to(data, addr)
        } else {
            Box::pin(async { Ok(()) })
        }
    }

    fn recv_from(&self) -> BoxFuture<'_, io::Result<(Bytes, String)>> {
        Box::pin(async move {
            let got = self.inner.recv_from().await?;
            self.life.check()?;
            Ok(got)
        })
    }

    fn local_addr(&self) -> String {
        self.inner.local_addr()
    }
}

struct MortalStream {
    inner: BoxStream,
    life: Incarnation,
}

impl AsyncRead for MortalStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.life.check()?;
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for MortalStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.life.check()?;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
