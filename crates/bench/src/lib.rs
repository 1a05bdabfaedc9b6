//! # ringstore's load generators and lab experiments
//!
//! What `ringstore bench` runs, kept out of the server's crate: nothing
//! here is linked into a node's request path, and a node needs none of
//! these dependencies' code paths. The binary parses `ringstore bench`
//! into these flag types and calls their `run`.
//!
//! - [`kv`]: load on the key-value API (`ringstore bench`).
//! - [`s3`]: PUT or GET load on any S3 endpoint (`ringstore bench s3`).
//! - [`heal`]: cut a node off, write, heal, time its catching up
//!   (`ringstore bench heal`).
//! - [`join`]: start a second node and time its handoff
//!   (`ringstore bench join`).
//! - `load`: the closed loop, progress bar and figures under all of them.
//!
//! Like the binary, and unlike the layers below it, this crate reports
//! errors with `anyhow`: it is the command line's tooling, and every
//! error ends as a message to the person who ran it.

pub mod heal;
pub mod join;
pub mod kv;
mod load;
pub mod s3;
