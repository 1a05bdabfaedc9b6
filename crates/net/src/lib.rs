//! # Inter-node transport
//!
//! Nodes call each other with typed requests over byte streams. This crate
//! owns everything between "a node wants to ask a peer something" and the
//! bytes on a socket, and nothing about what the messages mean: request and
//! response types are parameters, defined by the `node` crate.
//!
//! ## Organization
//!
//! - [`network`]: the seam. [`Network`] connects and binds byte streams;
//!   [`TcpNetwork`] uses real sockets (with `TCP_NODELAY`), [`MemoryNetwork`]
//!   uses in-process pipes so several nodes can run in one test, and a
//!   simulation can bring its own.
//! - `handshake`: both ends prove they know the cluster secret before any
//!   request is read, and agree on session keys (the Noise protocol).
//! - `sealed`: frames on a connection, encrypted and authenticated with
//!   those keys (or plain, when `internode_encryption` is off).
//! - `rpc`: [`RpcClient`] keeps one multiplexed connection per peer, tags
//!   each call with a request id and gives it a deadline; [`serve`] answers
//!   calls, each in its own task, on every accepted connection.
//!
//! - [`datagram`]: sealed datagrams for the failure detector, on UDP or
//!   in memory, under the same fault rules as RPC.
//! - [`replay`]: which of those datagrams are new (pure).
//! - [`faults`]: drop or delay traffic with named peers, for tests.
//! - [`budget`]: a budget of bytes that bounds queued messages (and, in
//!   the `http` crate, large bodies in flight).
//! - [`listen`]: the client-facing HTTP listeners' limits (connections,
//!   header and stall timeouts, panics answered 500).
//! - [`tls`]: those listeners' TLS, from PEM files (rustls).
//!
//! ## Limits
//!
//! Frames above [`RpcConfig::frame_bytes_max`] are refused before decoding;
//! at most [`RpcConfig::inflight_max`] calls wait on one connection.

pub mod budget;
pub mod datagram;
pub mod faults;
#[doc(hidden)]
pub mod fuzz;
mod handshake;
pub mod listen;
pub mod network;
pub mod replay;
mod rpc;
mod sealed;
pub mod tls;

pub use budget::ByteBudget;
pub use datagram::{Datagram, GossipSocket, Inbound, PAYLOAD_BYTES_MAX};
pub use faults::{FaultRules, Link, Rules as FaultRuleSet};
pub use network::{BoxStream, Faults, Listener, MemoryNetwork, Network, TcpNetwork};
pub use rpc::{serve, Handler, RpcClient, RpcConfig, RpcError};
