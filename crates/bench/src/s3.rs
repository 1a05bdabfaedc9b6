//! `ringstore bench s3`: PUT or GET load on any S3 endpoint (ringstore's
//! or another store's, for side-by-side figures), objects of one size
//! spread over the given endpoints.
//!
//! Every PUT sends fresh random bytes: ringstore stores identical 1 MiB
//! blocks once, so a repeated payload would measure deduplication, not
//! writing. `get` first writes every object once; `fill` only writes
//! them, for `--preloaded` runs and `list` pages over a large bucket.

use crate::load;
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use client::s3::S3Client;
use rand::RngExt;
use std::path::PathBuf;
use std::time::Duration;

/// What the workers send.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum S3Workload {
    /// PutObject of fresh random bytes.
    Put,
    /// GetObject of objects written before the run, read to their end.
    Get,
    /// Write every object once (`--objects` of them) with a progress bar,
    /// then stop: fills a bucket for the other workloads (`--preloaded`).
    Fill,
    /// ListObjectsV2 pages of 1,000 (`--page` says which) over a filled
    /// bucket.
    List,
}

/// Which listing page `--workload list` asks for.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ListPage {
    /// The first page of keys.
    First,
    /// A page of keys from a random point of the bucket (start-after).
    Middle,
    /// A page of 1,000 "folders" (delimiter `/`; each object name is a
    /// folder of 4, as a video's thumbnails) from a random point.
    Folders,
}

/// Flags of `ringstore bench s3`.
#[derive(clap::Args, Debug)]
pub struct S3BenchFlags {
    /// S3 endpoints to spread requests over (repeatable); without it, the
    /// dev cluster's from --cluster-file.
    #[arg(long = "endpoint")]
    endpoints: Vec<String>,
    /// Access key id (else AWS_ACCESS_KEY_ID, else --cluster-file's).
    #[arg(long, env = "AWS_ACCESS_KEY_ID")]
    access_key_id: Option<String>,
    /// Secret access key (else AWS_SECRET_ACCESS_KEY, else --cluster-file's).
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    secret_access_key: Option<String>,
    /// The cluster.json `ringstore dev` writes: endpoints and a key.
    #[arg(long, default_value = "./ringstore-dev/cluster.json")]
    cluster_file: PathBuf,
    /// Region to sign for.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Bucket to use (created if missing).
    #[arg(long, default_value = "bench")]
    bucket: String,
    /// Workload.
    #[arg(long, value_enum, default_value = "put")]
    workload: S3Workload,
    /// Object size: bytes, or with a KiB or MiB suffix.
    #[arg(long, default_value = "4KiB", value_parser = parse_size)]
    size: u64,
    /// Distinct object names.
    #[arg(long, default_value_t = 10_000)]
    objects: u64,
    /// Concurrent requests in flight.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// How long to measure, in seconds.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// Also print each second's throughput and latency percentiles (on
    /// stderr), to tell a steady tail from stalls.
    #[arg(long)]
    timeline: bool,
    /// The page `--workload list` asks for.
    #[arg(long, value_enum, default_value = "first")]
    page: ListPage,
    /// GET: skip writing the objects first (an earlier run with the same
    /// bucket, size and --objects wrote them), so the server CPU measured
    /// around the run is the GETs' alone.
    #[arg(long)]
    preloaded: bool,
}

/// The largest object the bench sends: it holds one per worker in memory.
const SIZE_MAX: u64 = 1 << 30;

fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, ""),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 4096, 64KiB or 64MiB"))?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown size unit {other:?}; use KiB, MiB or GiB")),
    };
    match n.checked_mul(scale) {
        Some(size) if size <= SIZE_MAX => Ok(size),
        _ => Err(format!("{s} is above the bench's limit of 1 GiB")),
    }
}

/// Endpoints and credentials from the flags, filling gaps from the dev
/// cluster's file.
fn clients(f: &S3BenchFlags) -> Result<Vec<S3Client>> {
    let mut endpoints = f.endpoints.clone();
    let (mut id, mut secret) = (f.access_key_id.clone(), f.secret_access_key.clone());
    if endpoints.is_empty() || id.is_none() || secret.is_none() {
        let text = std::fs::read_to_string(&f.cluster_file).with_context(|| {
            format!(
                "reading {} for endpoints and a key; give --endpoint, --access-key-id and --secret-access-key, or start `ringstore dev`",
                f.cluster_file.display()
            )
        })?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", f.cluster_file.display()))?;
        if endpoints.is_empty() {
            endpoints = v["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n["s3"].as_str().map(str::to_string))
                .collect();
        }
        id = id.or_else(|| v["s3_access_key_id"].as_str().map(str::to_string));
        secret = secret.or_else(|| v["s3_secret_access_key"].as_str().map(str::to_string));
    }
    let (Some(id), Some(secret)) = (id, secret) else {
        bail!("no S3 credentials: give --access-key-id and --secret-access-key");
    };
    if endpoints.is_empty() {
        bail!("no S3 endpoint: give --endpoint");
    }
    Ok(endpoints
        .iter()
        .map(|e| S3Client::new(e, &id, &secret, &f.region))
        .collect())
}

fn random_body(size: u64) -> Bytes {
    let mut buf = vec![0u8; size as usize];
    rand::rng().fill(&mut buf[..]);
    Bytes::from(buf)
}

/// Run `ringstore bench s3` and print its figures.
///
/// # Errors
///
/// Bad flags, or endpoints that do not answer.
pub async fn run(f: S3BenchFlags) -> Result<()> {
    if f.concurrency == 0 || f.objects == 0 {
        bail!("--concurrency and --objects must be positive");
    }
    let clients = clients(&f)?;
    clients[0]
        .create_bucket(&f.bucket)
        .await
        .context("creating the bench bucket")?;
    if f.workload == S3Workload::Fill {
        let started = std::time::Instant::now();
        preload(&clients, &f).await?;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "filled {} with {} objects of {} B in {secs:.1} s ({:.0} PUT/s)",
            f.bucket,
            f.objects,
            f.size,
            f.objects as f64 / secs
        );
        return Ok(());
    }
    if f.workload == S3Workload::Get && !f.preloaded {
        preload(&clients, &f).await?;
    }
    let (bucket, objects, size, workload, page) =
        (f.bucket.clone(), f.objects, f.size, f.workload, f.page);
    let op = move |w: usize| {
        let c = clients[w % clients.len()].clone();
        let bucket = bucket.clone();
        async move {
            let key = object_name(rand::random_range(0..objects));
            match workload {
                S3Workload::Put => c
                    .put_object(&bucket, &key, random_body(size))
                    .await
                    .map(|()| size),
                S3Workload::Get => c.get_object(&bucket, &key).await,
                S3Workload::List => list_page(&c, &bucket, page, &key).await,
                S3Workload::Fill => unreachable!("fill returns before the loop"),
            }
            .map_err(|e| e.to_string())
        }
    };
    let length = Duration::from_secs(f.duration);
    let m = load::closed_loop(f.concurrency, length, f.timeline, op).await?;
    if f.json {
        let mut v = m.json();
        v["workload"] = format!("s3 {:?}", f.workload).to_lowercase().into();
        v["endpoints"] = f.endpoints.clone().into();
        v["concurrency"] = f.concurrency.into();
        v["size"] = f.size.into();
        println!("{v}");
    } else {
        m.print(&format!(
            "S3 {:?} x{} of {} B objects",
            f.workload, f.concurrency, f.size
        ));
    }
    Ok(())
}

/// The name of object `n`: folders of 4 (a video's thumbnails), numbered
/// so that names sort as numbers.
fn object_name(n: u64) -> String {
    format!("v{:08}/t{}", n / 4, n % 4)
}

/// One listing page of 1,000; "bytes" are the entries listed.
async fn list_page(
    c: &S3Client,
    bucket: &str,
    page: ListPage,
    random_key: &str,
) -> Result<u64, client::ClientError> {
    let req = match page {
        ListPage::First => client::s3::ListRequest::default(),
        ListPage::Middle => client::s3::ListRequest {
            start_after: Some(random_key),
            ..Default::default()
        },
        ListPage::Folders => client::s3::ListRequest {
            start_after: Some(random_key),
            delimiter: Some("/"),
            ..Default::default()
        },
    };
    let listed = c.list_objects_v2(bucket, &req).await?;
    Ok((listed.keys.len() + listed.prefixes.len()) as u64)
}

async fn preload(clients: &[S3Client], f: &S3BenchFlags) -> Result<()> {
    let clients = clients.to_vec();
    let (bucket, size) = (f.bucket.clone(), f.size);
    load::each_once(f.objects, f.concurrency.min(64), move |o| {
        let c = clients[o as usize % clients.len()].clone();
        let bucket = bucket.clone();
        async move {
            c.put_object(&bucket, &object_name(o), random_body(size))
                .await
        }
    })
    .await
}
#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse_with_and_without_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("64 k"), Ok(64 << 10));
        assert!(parse_size("2GiB").is_err(), "above the limit");
        assert!(parse_size("4 parsecs").is_err());
        assert!(parse_size("").is_err());
    }
}
