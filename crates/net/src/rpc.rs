//! Multiplexed calls with deadlines over handshaken connections.

use crate::budget::ByteBudget;
use crate::handshake::{self, Wire};
use crate::network::{BoxStream, Listener, Network};
use crate::sealed::SealedCodec;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use serde::{de::DeserializeOwned, Serialize};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio_util::codec::Framed;

/// Transport settings shared by the client and the server of one node.
#[derive(Clone, Debug)]
pub struct RpcConfig {
    /// This node's id, sent in the handshake.
    pub node: u64,
    /// The cluster secret both ends must know.
    pub secret: Vec<u8>,
    /// Encrypt frames after the handshake (`internode_encryption`). Both
    /// ends must agree; the handshake authenticates either way.
    pub sealed: bool,
    /// Largest frame sent or accepted; larger frames close the connection.
    pub frame_bytes_max: usize,
    /// Calls in flight per connection; further calls wait (back pressure).
    pub inflight_max: usize,
    /// Bytes of frames one connection holds in each direction: requests
    /// queued to send, requests being answered, replies queued to send.
    /// Further calls (and the reading of further requests) wait. A frame
    /// larger than this takes the whole budget, so it goes alone.
    pub queue_bytes_max: usize,
    /// Injected faults (empty unless a test sets some).
    pub faults: Arc<crate::FaultRules>,
}

/// Why a call failed. Every variant names the peer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RpcError {
    /// No connection could be opened.
    #[error("cannot connect to {addr}: {detail}")]
    Connect {
        /// Peer address.
        addr: String,
        /// OS message.
        detail: String,
    },
    /// The handshake failed (wrong secret, other protocol version).
    #[error("handshake failed: {0}")]
    Handshake(String),
    /// No answer before the deadline.
    #[error("{addr} did not answer within {after_ms} ms")]
    Timeout {
        /// Peer address.
        addr: String,
        /// The deadline.
        after_ms: u64,
    },
    /// The connection broke before the answer came.
    #[error("connection to {addr} closed before it answered")]
    Closed {
        /// Peer address.
        addr: String,
    },
    /// The message is larger than `frame_bytes_max`.
    #[error("message of {bytes} bytes exceeds the {max}-byte frame limit")]
    TooLarge {
        /// Encoded size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
}

/// Answers one request from the peer with the given node id.
pub type Handler<Req, Resp> = Arc<dyn Fn(u64, Req) -> BoxFuture<'static, Resp> + Send + Sync>;

/// Read and write buffer of a connection. Why not tokio-util's default of
/// 8 KiB: the write buffer's size is also where `feed` stops batching and
/// flushes, so with 4 KiB replica objects only two replies went out per
/// write syscall; 64 KiB lets a busy connection send (and its peer read)
/// about fifteen at a time.
const WIRE_BUFFER_BYTES: usize = 64 * 1024;

/// A connection's framing, accepting only handshake-sized frames until
/// [`authenticated`] lifts the limit.
fn wire(stream: BoxStream) -> Wire {
    let codec = SealedCodec::plain(handshake::HANDSHAKE_FRAME_BYTES_MAX);
    Framed::with_capacity(stream, codec, WIRE_BUFFER_BYTES)
}

/// Accept frames up to the configured limit, once the peer proved the
/// cluster secret.
fn authenticated(wire: &mut Wire, cfg: &RpcConfig) {
    wire.codec_mut().set_frame_max(cfg.frame_bytes_max);
}

/// Accept connections on `listener` forever, answering calls with `handler`.
/// Each call runs in its own task; a connection with `inflight_max`
/// unanswered calls stops reading until one finishes.
pub async fn serve<Req, Resp>(
    mut listener: Box<dyn Listener>,
    cfg: RpcConfig,
    handler: Handler<Req, Resp>,
) where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
{
    let keys = handshake::Keys::new(&cfg.secret, cfg.sealed);
    let handshakes = Arc::new(handshake::Handshakes::default());
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = handshakes.enter(&peer) else {
            tracing::debug!(%peer, "too many handshakes in progress; connection closed");
            continue;
        };
        let (cfg, handler, keys) = (cfg.clone(), handler.clone(), keys.clone());
        tokio::spawn(async move {
            if let Err(e) = serve_connection(stream, &cfg, &keys, slot, handler).await {
                tracing::debug!(%peer, error = %e, "inbound connection ended");
            }
        });
    }
}

async fn serve_connection<Req, Resp>(
    stream: BoxStream,
    cfg: &RpcConfig,
    keys: &handshake::Keys,
    slot: handshake::HandshakeSlot,
    handler: Handler<Req, Resp>,
) -> Result<(), RpcError>
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
{
    let mut wire = wire(stream);
    let peer = tokio::time::timeout(
        handshake::HANDSHAKE_TIMEOUT,
        handshake::accept(&mut wire, keys, cfg.node),
    )
    .await
    .map_err(|_| {
        RpcError::Handshake(format!(
            "dialer did not finish the handshake in {:?}",
            handshake::HANDSHAKE_TIMEOUT
        ))
    })??;
    drop(slot);
    authenticated(&mut wire, cfg);
    let (mut sink, mut stream) = wire.split();
    // Bounded by: inflight_max replies, one per running handler.
    let (reply_tx, mut reply_rx) = mpsc::channel::<Outgoing>(cfg.inflight_max);
    let faults = cfg.faults.clone();
    let writer = tokio::spawn(async move {
        write_frames(&mut sink, &mut reply_rx, |_| true, (&faults, peer)).await
    });
    // Request bytes being answered, and reply bytes queued: what a peer's
    // calls can make this node hold for this connection.
    let (requests, replies) = (
        ByteBudget::new(cfg.queue_bytes_max),
        ByteBudget::new(cfg.queue_bytes_max),
    );
    let permits = Arc::new(Semaphore::new(cfg.inflight_max));
    while let Some(frame) = stream.next().await {
        let frame = frame.map_err(|e| RpcError::Handshake(format!("reading a frame: {e}")))?;
        // Held until the request is answered: a peer cannot have more than
        // the budget's worth of requests decoded and in progress here.
        let held = requests.take(frame.len()).await;
        let (id, req): (u64, Req) = match postcard::from_bytes(&frame) {
            Ok(m) => m,
            Err(e) => {
                // Never trust the peer's bytes: drop the connection, keep the node.
                tracing::warn!(peer, error = %e, "malformed request frame; closing connection");
                break;
            }
        };
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        match cfg.faults.verdict(peer) {
            crate::faults::Verdict::Pass => {}
            // Discarded unanswered: the dialer's deadline passes.
            crate::faults::Verdict::Drop => continue,
            crate::faults::Verdict::Delay(d) => {
                let (handler, reply_tx, max, replies) = (
                    handler.clone(),
                    reply_tx.clone(),
                    cfg.frame_bytes_max,
                    replies.clone(),
                );
                tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    let resp = handler(peer, req).await;
                    drop(held);
                    send_reply(&reply_tx, &replies, id, resp, max).await;
                    drop(permit);
                });
                continue;
            }
        }
        let mut answer = handler(peer, req);
        // Why poll once here: most calls (replica reads) finish at their first
        // poll, and answering inline saves a task per call. Only calls that
        // must wait (for a lock, an fsync) get a task of their own; that
        // task polls again at once with its own waker.
        let first_poll = {
            let waker = futures::task::noop_waker();
            answer
                .as_mut()
                .poll(&mut std::task::Context::from_waker(&waker))
        };
        match first_poll {
            std::task::Poll::Ready(resp) => {
                drop(held);
                send_reply(&reply_tx, &replies, id, resp, cfg.frame_bytes_max).await;
                drop(permit);
            }
            std::task::Poll::Pending => {
                let (reply_tx, max, replies) =
                    (reply_tx.clone(), cfg.frame_bytes_max, replies.clone());
                tokio::spawn(async move {
                    let resp = answer.await;
                    drop(held);
                    send_reply(&reply_tx, &replies, id, resp, max).await;
                    drop(permit);
                });
            }
        }
    }
    drop(reply_tx);
    let _ = writer.await;
    Ok(())
}

/// Encode a frame into one allocation of its size. Frames carry whole
/// objects, and a `Vec` grown from empty copied a 4 KiB value about ten
/// times over (with stored objects and S3 records, which now do the same:
/// reallocation fell from 3.65% to 0.92% of the dev cluster's CPU under
/// 4 KiB S3 PUTs; docs/BENCHMARKS.md). `size` is the message's
/// `serialized_size`, which the caller already computed to take its share
/// of the connection's byte budget.
fn encode_frame<T: Serialize>(msg: &T, size: usize) -> postcard::Result<Vec<u8>> {
    postcard::to_extend(msg, Vec::with_capacity(size))
}

async fn send_reply<Resp: Serialize>(
    tx: &mpsc::Sender<Outgoing>,
    budget: &ByteBudget,
    id: u64,
    resp: Resp,
    max: usize,
) {
    let msg = (id, resp);
    let size = match postcard::experimental::serialized_size(&msg) {
        Ok(n) => n,
        Err(e) => return tracing::error!(error = %e, "reply did not encode"),
    };
    if size > max {
        return tracing::error!(len = size, "reply exceeds frame limit; dropped");
    }
    // Before encoding: the reply's bytes exist once there is room for them.
    let permit = budget.take(size).await;
    match encode_frame(&msg, size) {
        Ok(bytes) => {
            let _ = tx
                .send(Outgoing {
                    id,
                    at: tokio::time::Instant::now(),
                    frame: bytes.into(),
                    _permit: permit,
                })
                .await;
        }
        Err(e) => tracing::error!(error = %e, "reply did not encode"),
    }
}

/// A frame waiting for a connection's writer, holding its share of the
/// connection's [`ByteBudget`] until it is written (or skipped).
struct Outgoing {
    /// The call it belongs to.
    id: u64,
    /// When it was queued: an emulated WAN link sends it its latency later.
    at: tokio::time::Instant,
    frame: Bytes,
    _permit: OwnedSemaphorePermit,
}

/// Write frames until the channel closes or the peer goes away. Frames
/// queued together go out in one flush: under load that is one syscall for
/// many calls instead of one each.
///
/// Why the writer yields once before it flushes: the first frame wakes it,
/// and tokio runs a task woken by the running one next (its LIFO slot), so
/// without the yield it flushed before the tasks that were about to queue
/// frames had run: an fsync that answers ten replica writes woke ten
/// tasks, and their replies went out in ten syscalls. One yield lets every
/// task already runnable queue its frame first; when nothing else is
/// runnable it costs one trip through the scheduler. Measured with 4 KiB
/// S3 PUTs on the dev cluster: 5.1 `writev`s per PUT before, 1.6 after;
/// cluster CPU per PUT 408-437 µs before, 309-354 after (docs/BENCHMARKS.md).
///
/// `wanted` says whether a frame's call still waits for it: a caller that
/// gave up (its deadline passed) removed itself, and its frame is dropped
/// unsent. Why: a peer that stops reading (SIGSTOP, a full disk) lets
/// frames pile up here; sent after it resumes, the frames of calls nobody
/// waits for any more (retried hint deliveries of 20 MiB values, say)
/// kept the connection busy for minutes, ahead of every new call.
async fn write_frames<S>(
    sink: &mut S,
    rx: &mut mpsc::Receiver<Outgoing>,
    wanted: impl Fn(u64) -> bool,
    wan: (&crate::FaultRules, u64),
) where
    S: futures::Sink<Bytes> + Unpin,
{
    // The emulated WAN's delay line: frames leave in order, each its
    // link's latency after it was queued.
    let mut released = tokio::time::Instant::now();
    while let Some(out) = rx.recv().await {
        if let Some(link) = wan.0.link(wan.1) {
            released = released.max(out.at + link.sample());
            tokio::time::sleep_until(released).await;
            if wanted(out.id) && sink.send(out.frame).await.is_err() {
                return;
            }
            continue;
        }
        if wanted(out.id) && sink.feed(out.frame).await.is_err() {
            return;
        }
        if feed_queued(sink, rx, &wanted).await.is_err() {
            return;
        }
        tokio::task::yield_now().await;
        if feed_queued(sink, rx, &wanted).await.is_err() {
            return;
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
}

/// Feed every frame already queued, without waiting for more.
async fn feed_queued<S>(
    sink: &mut S,
    rx: &mut mpsc::Receiver<Outgoing>,
    wanted: &impl Fn(u64) -> bool,
) -> Result<(), S::Error>
where
    S: futures::Sink<Bytes> + Unpin,
{
    while let Ok(out) = rx.try_recv() {
        if wanted(out.id) {
            sink.feed(out.frame).await?;
        }
    }
    Ok(())
}

type Pending<Resp> = Arc<Mutex<HashMap<u64, oneshot::Sender<Resp>>>>;

struct Conn<Resp> {
    /// The peer's node id, from the handshake.
    peer: u64,
    tx: mpsc::Sender<Outgoing>,
    /// Bytes of requests queued to be written.
    queued: ByteBudget,
    pending: Pending<Resp>,
    alive: Arc<AtomicBool>,
}

type Slot<Resp> = Arc<tokio::sync::Mutex<Option<Arc<Conn<Resp>>>>>;

/// Calls peers. One connection per peer address, shared by all calls.
pub struct RpcClient<Req, Resp> {
    network: Arc<dyn Network>,
    cfg: RpcConfig,
    keys: handshake::Keys,
    peers: Mutex<HashMap<String, Slot<Resp>>>,
    /// Live connections by address: the lock-free-ish fast path of a call.
    live: RwLock<HashMap<String, Arc<Conn<Resp>>>>,
    next_id: AtomicU64,
    _req: PhantomData<fn(Req)>,
}

/// Removes a call's pending entry when the call ends, however it ends.
struct PendingGuard<Resp> {
    pending: Pending<Resp>,
    id: u64,
}

impl<Resp> Drop for PendingGuard<Resp> {
    fn drop(&mut self) {
        if let Ok(mut p) = self.pending.lock() {
            p.remove(&self.id);
        }
    }
}

impl<Req, Resp> RpcClient<Req, Resp>
where
    Req: Serialize + Send + 'static,
    Resp: DeserializeOwned + Send + 'static,
{
    /// A client dialing through `network`.
    pub fn new(network: Arc<dyn Network>, cfg: RpcConfig) -> Self {
        RpcClient {
            network,
            keys: handshake::Keys::new(&cfg.secret, cfg.sealed),
            cfg,
            peers: Mutex::default(),
            live: RwLock::default(),
            next_id: AtomicU64::new(1),
            _req: PhantomData,
        }
    }

    /// Send `req` to `addr` and wait for the answer, at most `timeout` in
    /// all (connecting included).
    ///
    /// # Errors
    ///
    /// Connection, handshake, size and deadline failures.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future forgets the call; the peer may still act on it.
    pub async fn call(&self, addr: &str, req: Req, timeout: Duration) -> Result<Resp, RpcError> {
        let after_ms = timeout.as_millis() as u64;
        tokio::time::timeout(timeout, self.call_inner(addr, req))
            .await
            .map_err(|_| RpcError::Timeout {
                addr: addr.to_string(),
                after_ms,
            })?
    }

    async fn call_inner(&self, addr: &str, req: Req) -> Result<Resp, RpcError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let msg = (id, req);
        let size = postcard::experimental::serialized_size(&msg)
            .map_err(|e| RpcError::Handshake(e.to_string()))?;
        if size > self.cfg.frame_bytes_max {
            return Err(RpcError::TooLarge {
                bytes: size,
                max: self.cfg.frame_bytes_max,
            });
        }
        let conn = self.connection(addr).await?;
        let verdict = self.cfg.faults.verdict(conn.peer);
        match verdict {
            // Never sent: the caller's deadline passes, as in a partition.
            crate::faults::Verdict::Drop => return std::future::pending().await,
            crate::faults::Verdict::Delay(d) => tokio::time::sleep(d).await,
            crate::faults::Verdict::Pass => {}
        }
        // Encoded once there is room: a caller waiting here holds no
        // frame, so callers to a stalled peer cost nothing but their task.
        let permit = conn.queued.take(size).await;
        let bytes = encode_frame(&msg, size).map_err(|e| RpcError::Handshake(e.to_string()))?;
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = conn.pending.lock() {
            p.insert(id, tx);
        }
        let _guard = PendingGuard {
            pending: conn.pending.clone(),
            id,
        };
        let closed = || RpcError::Closed {
            addr: addr.to_string(),
        };
        let out = Outgoing {
            id,
            at: tokio::time::Instant::now(),
            frame: bytes.into(),
            _permit: permit,
        };
        conn.tx.send(out).await.map_err(|_| closed())?;
        let reply = rx.await.map_err(|_| closed())?;
        if let crate::faults::Verdict::Delay(d) = verdict {
            tokio::time::sleep(d).await;
        }
        Ok(reply)
    }

    async fn connection(&self, addr: &str) -> Result<Arc<Conn<Resp>>, RpcError> {
        let live = self.live.read().ok().and_then(|l| l.get(addr).cloned());
        if let Some(c) = live.filter(|c| c.alive.load(Ordering::Acquire)) {
            return Ok(c);
        }
        let slot = {
            let mut peers = self
                .peers
                .lock()
                .map_err(|_| RpcError::Closed { addr: addr.into() })?;
            peers.entry(addr.to_string()).or_default().clone()
        };
        let mut slot = slot.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| c.alive.load(Ordering::Acquire)) {
            return Ok(c.clone());
        }
        let stream = self
            .network
            .connect(addr)
            .await
            .map_err(|e| RpcError::Connect {
                addr: addr.to_string(),
                detail: e.to_string(),
            })?;
        let mut wire = wire(stream);
        let peer = tokio::time::timeout(
            handshake::HANDSHAKE_TIMEOUT,
            handshake::dial(&mut wire, &self.keys, self.cfg.node),
        )
        .await
        .map_err(|_| {
            RpcError::Handshake(format!(
                "{addr} did not finish the handshake in {:?}",
                handshake::HANDSHAKE_TIMEOUT
            ))
        })??;
        authenticated(&mut wire, &self.cfg);
        let conn = Arc::new(self.spawn_connection(wire, peer));
        *slot = Some(conn.clone());
        if let Ok(mut live) = self.live.write() {
            live.insert(addr.to_string(), conn.clone());
        }
        Ok(conn)
    }

    fn spawn_connection(&self, wire: Wire, peer: u64) -> Conn<Resp> {
        let (mut sink, mut stream) = wire.split();
        // Bounded by: inflight_max frames waiting to be written.
        let (tx, mut rx) = mpsc::channel::<Outgoing>(self.cfg.inflight_max);
        let pending: Pending<Resp> = Arc::default();
        let alive = Arc::new(AtomicBool::new(true));
        let alive_w = alive.clone();
        let pending_w = pending.clone();
        let faults = self.cfg.faults.clone();
        tokio::spawn(async move {
            let wanted = |id| pending_w.lock().is_ok_and(|p| p.contains_key(&id));
            write_frames(&mut sink, &mut rx, wanted, (&faults, peer)).await;
            alive_w.store(false, Ordering::Release);
        });
        let (pending_r, alive_r) = (pending.clone(), alive.clone());
        tokio::spawn(async move {
            while let Some(Ok(frame)) = stream.next().await {
                let Ok((id, resp)) = postcard::from_bytes::<(u64, Resp)>(&frame) else {
                    tracing::warn!("malformed reply frame; closing connection");
                    break;
                };
                let waiter = pending_r.lock().ok().and_then(|mut p| p.remove(&id));
                if let Some(w) = waiter {
                    let _ = w.send(resp);
                }
            }
            alive_r.store(false, Ordering::Release);
            // Dropping the senders fails every call still waiting here.
            if let Ok(mut p) = pending_r.lock() {
                p.clear();
            }
        });
        Conn {
            peer,
            tx,
            queued: ByteBudget::new(self.cfg.queue_bytes_max),
            pending,
            alive,
        }
    }
}
