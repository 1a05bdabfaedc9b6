//! The `ringstore` command: run a node, a local dev cluster, or talk to a
//! cluster. It only parses flags and calls the libraries; every error is
//! printed once, here, and exits 2 (exit 1 means "not found" for `kv get`).

mod bench;
mod bench_s3;
mod cli;
mod dev;
mod heal;
mod join;
mod keys;
mod load;
mod server;
mod transfers;

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
        tokio::runtime::Builder::new_multi_thread()
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
