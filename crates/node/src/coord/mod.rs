//! # The request coordinator, without I/O
//!
//! Every decision a coordinator makes about one request lives here, as
//! plain state machines in foca's style: events in (a replica's reply,
//! the deadline), steps out (wait, answer). The async drivers in `get.rs`
//! and `put.rs` send the calls, run the timers and do what they are told,
//! so each decision is tested by stepping a machine by hand (and by
//! property tests over random reply orders) instead of through a cluster.
//!
//! - [`read`]: quorum reads: `r`/`pr`, `notfound_ok`, `basic_quorum`,
//!   authoritative not-found versus 503, merge, and read repair.
//! - [`write`]: quorum writes: `w`/`dw`/`pw`, sloppy quorum (patience,
//!   fallbacks by zone, hints), late acks, and the answer.

pub(crate) mod read;
pub(crate) mod write;
