//! # Running the failure detector
//!
//! [`cluster::Detector`] is sans-I/O; this module gives it a socket and a
//! clock. One task owns the detector and reacts, one input at a time, to
//! a packet, a timer falling due, or the announce tick, then carries out
//! what the detector asked for: packets out through the sealed
//! [`net::GossipSocket`], timers into an ordered queue (foca expects
//! them back in deadline order), and the live set published to the node.
//!
//! Every `ANNOUNCE_INTERVAL` the task announces this node to every member
//! of the layout it does not see up. That is how a restarted node, a new
//! member, or the far side of a healed partition is found: SWIM itself
//! never probes a member it declared down.
//!
//! What the node does with the verdicts: `GET /admin/cluster` and
//! `/metrics` report them as liveness; a member declared down is treated
//! like an RPC suspect (writes hand off at once, anti-entropy skips it);
//! a member coming up is trusted again at once and its hints are sent.

use crate::peers::Liveness;
use crate::Node;
use bytes::Bytes;
use cluster::{Detector, DetectorTimer, Peer};
use net::GossipSocket;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How often members not seen up are announced to.
const ANNOUNCE_INTERVAL: Duration = Duration::from_millis(250);
/// Packets waiting for the detector task; more are dropped, as UDP would.
const INBOUND_QUEUE_MAX: usize = 1024;

/// Start the detector on `socket`: one task receives, one runs SWIM.
pub(crate) fn start(node: &Node, socket: GossipSocket, epoch: u32) {
    let socket = Arc::new(socket);
    let me = Peer::first(node.id().0, epoch, socket.local_addr());
    let seed = node.env().seed ^ 0x5157_494d;
    let detector = Detector::new(me, &node.config().detector(), seed);
    let (tx, rx) = mpsc::channel(INBOUND_QUEUE_MAX);
    node.spawn(receive(socket.clone(), tx));
    node.spawn(run(node.clone(), detector, socket, rx));
}

/// Hand sealed packets to the detector task, holding back delayed ones.
async fn receive(socket: Arc<GossipSocket>, tx: mpsc::Sender<Bytes>) {
    loop {
        let inbound = match socket.recv().await {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(error = %e, "gossip socket failed; retrying");
                tokio::time::sleep(ANNOUNCE_INTERVAL).await;
                continue;
            }
        };
        match inbound.delay {
            None => {
                let _ = tx.try_send(inbound.payload);
            }
            Some(d) => {
                let tx = tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    let _ = tx.try_send(inbound.payload);
                });
            }
        }
    }
}

/// Timers in deadline order; the sequence number keeps equal deadlines in
/// the order they were set.
#[derive(Default)]
struct TimerQueue {
    queue: BTreeMap<(Instant, u64), DetectorTimer>,
    seq: u64,
}

impl TimerQueue {
    fn push(&mut self, after: Duration, timer: DetectorTimer) {
        self.seq += 1;
        self.queue.insert((Instant::now() + after, self.seq), timer);
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.queue.first_key_value().map(|((at, _), _)| *at)
    }

    fn pop_due(&mut self) -> Option<DetectorTimer> {
        let (&(at, _), _) = self.queue.first_key_value()?;
        if at > Instant::now() {
            return None;
        }
        self.queue.pop_first().map(|(_, t)| t)
    }
}

async fn run(
    node: Node,
    mut detector: Detector,
    socket: Arc<GossipSocket>,
    mut rx: mpsc::Receiver<Bytes>,
) {
    let mut timers = TimerQueue::default();
    let mut announce = tokio::time::interval(ANNOUNCE_INTERVAL);
    announce.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let deadline = timers.next_deadline();
        let far = Instant::now() + Duration::from_secs(3600);
        let result = tokio::select! {
            // Biased: a fixed polling order, so a simulated run replays exactly.
            biased;
            packet = rx.recv() => match packet {
                Some(p) => detector.handle_data(&p),
                None => return,
            },
            () = tokio::time::sleep_until(deadline.unwrap_or(far)), if deadline.is_some() => {
                let mut result = Ok(());
                while let Some(t) = timers.pop_due() {
                    result = result.and(detector.handle_timer(t));
                }
                result
            }
            _ = announce.tick() => announce_to_unseen(&node, &mut detector),
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "failure detector input ignored");
        }
        carry_out(&node, &mut detector, &socket, &mut timers).await;
    }
}

/// Send, schedule and publish what the detector asked for, until it asks
/// for nothing more (a renewal asks for announcements in turn).
async fn carry_out(
    node: &Node,
    detector: &mut Detector,
    socket: &GossipSocket,
    timers: &mut TimerQueue,
) {
    loop {
        let out = detector.drain();
        if out.send.is_empty() && out.schedule.is_empty() && !out.membership_changed {
            return;
        }
        for (after, t) in out.schedule {
            timers.push(after, t);
        }
        for (peer, data) in out.send {
            if let Err(e) = socket.send(peer.node, &peer.addr, &data).await {
                tracing::debug!(peer = %ring::NodeId(peer.node), error = %e, "gossip packet not sent");
            }
        }
        if out.membership_changed {
            publish(node, detector);
        }
        if out.renewed {
            let generation = detector.me().generation;
            tracing::info!(generation, "peers declared this node down; rejoined");
            if let Err(e) = announce_to_unseen(node, detector) {
                tracing::debug!(error = %e, "announce after rejoin failed");
            }
        }
    }
}

/// Announce this node to every layout member the detector does not see up.
fn announce_to_unseen(node: &Node, detector: &mut Detector) -> Result<(), cluster::DetectorError> {
    let up = detector.up();
    let me = node.id();
    for member in node.layout().members() {
        if member.id == me || up.contains(&member.id.0) {
            continue;
        }
        if let Some(addr) = node.rpc_addr(member.id) {
            detector.announce(member.id.0, &addr)?;
        }
    }
    Ok(())
}

/// Make the detector's verdicts the node's view; trust peers that came up.
fn publish(node: &Node, detector: &Detector) {
    let (up, down) = (detector.up(), detector.down());
    let came_up = node
        .peer_health()
        .publish(Liveness { up, down }, node.uptime_ms());
    for peer in &came_up {
        tracing::info!(peer = %ring::NodeId(*peer), "peer is up");
        node.clear_suspect(ring::NodeId(*peer));
    }
    if !came_up.is_empty() {
        node.hint_book().wake();
    }
}
