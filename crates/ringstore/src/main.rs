//! The `ringstore` command: run a node, a local dev cluster, or talk to a
//! cluster. It only parses flags and calls the libraries; every error is
//! printed once, here, and exits 2 (exit 1 means "not found" for `kv get`).

mod cli;
mod dev;
mod dev_tls;
mod keys;
mod server;
mod transfers;
mod users;

use clap::Parser;
use std::process::ExitCode;

/// Why not the system allocator: under the 4 KiB S3 GET benchmark glibc's
/// malloc and free took about a quarter of the cluster's CPU (replica
/// objects of a few KiB are allocated, copied and freed several times per
/// request, and glibc consolidates its free lists on the hot path);
/// with jemalloc the 4 KiB S3 GET does 19-24% more per second, side by
/// side. mimalloc did as well on GET but cost 64 KiB PUTs a quarter of
/// their throughput; jemalloc about a tenth. Figures in docs/BENCHMARKS.md.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read at its first allocation (`_RJEM_MALLOC_background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0`
/// in the environment still overrides them). Why: a burst of large values
/// (six concurrent 50 MiB PUTs on the dev cluster) left memory the
/// process no longer used resident; jemalloc's default keeps freed pages
/// for 10 s and purges only when the thread that freed them allocates
/// again, so an idle node kept them. Freed pages now go back to the OS
/// after about a second, purged by jemalloc's own thread rather than on
/// the async workers (where the decay purge took 1 percent of the
/// cluster's CPU under S3 PUTs; the background thread measured neutral,
/// docs/BENCHMARKS.md). Figures in docs/RELIABILITY.md.
#[allow(non_upper_case_globals, unsafe_code)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8; CONF_LEN] =
    b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";
const CONF_LEN: usize = 60;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    // s3s=warn: s3s opens an info-level span, its fields formatted with
    // Debug, around every signature check; per-request work nobody reads.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,fjall=warn,lsm_tree=warn,s3s=warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    // Why a load generator runs on one thread: it shares the machine with
    // the cluster it measures, and every CPU cycle it takes is one the
    // cluster does not get. On one thread a request's tasks (the caller
    // and hyper's connection) wake each other without crossing threads.
    // Measured with 4 KiB S3 GETs on the dev cluster (64 clients): the
    // load generator took 24-25% of the machine on two threads, 19% on one
    // (docs/BENCHMARKS.md).
    let mut builder = if args.is_load_generator() {
        tokio::runtime::Builder::new_current_thread()
    } else {
        node_runtime()
    };
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// The runtime of a node: one worker more than the machine has cores,
/// unless `TOKIO_WORKER_THREADS` says otherwise.
///
/// Why one more: a worker is sometimes off its core with tasks queued
/// behind it. fjall holds a keyspace's version lock while it writes and
/// fsyncs the next version file (after each flush and compaction), and a
/// replica read that meets that lock blocks its worker for as long (up to
/// 12.5 ms seen); or the kernel preempts the worker for a writer or
/// compaction thread. With as many workers as cores, that stalls every
/// request queued on it; a spare worker takes them over. Measured on the
/// dev cluster (two cores), five interleaved pairs of 15 s key-value PUTs
/// then 15 s 4 KiB S3 PUTs, 64 clients: S3 PUT p99 31.6 ms against 35.1
/// on average (lower in four pairs), key-value PUT p99 49.4 against 56.2
/// (lower in all five); four workers did no better than three
/// (docs/BENCHMARKS.md).
fn node_runtime() -> tokio::runtime::Builder {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        builder.worker_threads(cores + 1);
    }
    builder
}
