//! Pressure from hostile or unlucky clients, on real server processes:
//! forged causal contexts, slowloris and idle-connection floods, and
//! unauthenticated peers on the RPC port. Each test asserts that the node
//! goes on serving ordinary requests while it is under the pressure, and
//! that nothing acknowledged is lost. Figures in docs/RELIABILITY.md.

mod common;

use common::{wait_until, Cluster};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// LEB128, as postcard writes integers.
fn varint(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// An `X-Riak-Vclock` naming `(node, epoch, counter)` entries, in the
/// format ringstore hands out (version byte 1, postcard map).
fn forged_context(entries: &[(u64, u32, u64)]) -> String {
    use base64::Engine as _;
    let mut bytes = vec![1u8];
    varint(entries.len() as u64, &mut bytes);
    for (node, epoch, counter) in entries {
        varint(*node, &mut bytes);
        varint(u64::from(*epoch), &mut bytes);
        varint(*counter, &mut bytes);
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The actor of a sibling, from its ETag (`node.epoch.counter` in hex).
fn actor_of(etag: &str) -> (u64, u32) {
    let parts: Vec<&str> = etag.trim_matches('"').split('.').collect();
    assert_eq!(parts.len(), 3, "unexpected ETag {etag}");
    (
        u64::from_str_radix(parts[0], 16).unwrap(),
        u32::from_str_radix(parts[1], 16).unwrap(),
    )
}

/// Fetch `path` through node `i`: status, vclock, ETag, body.
async fn fetch(c: &Cluster, i: usize, path: &str) -> (u16, String, String, String) {
    let r = c.http.get(c.nodes[i].url(path)).send().await.unwrap();
    let status = r.status().as_u16();
    let header = |n: &str| {
        r.headers()
            .get(n)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let (vclock, etag) = (header("x-riak-vclock"), header("etag"));
    (status, vclock, etag, r.text().await.unwrap())
}

async fn put_with(c: &Cluster, i: usize, path: &str, vclock: &str, body: &str) -> (u16, String) {
    let mut req = c.http.put(c.nodes[i].url(path)).body(body.to_string());
    if !vclock.is_empty() {
        req = req.header("X-Riak-Vclock", vclock);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// A client that forges the causal context of a key (counters at and
/// around the largest values, for the key's coordinator and for others)
/// gets a 400 or a harmless write, and the key stays readable and
/// writable by honest clients through every node. Before, a counter of
/// u64::MAX-1 made every later write of the key panic on every node.
#[tokio::test]
async fn forged_causal_contexts_cannot_poison_a_key() {
    let c = Cluster::start(3, &[]).await;
    let path = "/buckets/forge/keys/k";
    assert_eq!(put_with(&c, 0, path, "", "first").await.0, 204);
    let (_, _, etag, _) = fetch(&c, 0, path).await;
    let (node, epoch) = actor_of(&etag);
    for counter in [u64::MAX, u64::MAX - 1, (1 << 63) + 1] {
        let forged = forged_context(&[(node, epoch, counter), (node + 1, 0, counter)]);
        let (status, body) = put_with(&c, 1, path, &forged, "forged").await;
        assert_eq!(status, 400, "counter {counter}: {body}");
        assert!(
            body.contains("X-Riak-Vclock"),
            "a 400 says what was wrong: {body}"
        );
    }
    // Accepted by the decoder, and as large as it takes.
    for counter in [1 << 63, (1 << 63) - 1, 1 << 62] {
        let forged = forged_context(&[(node, epoch, counter), (node ^ 1, epoch + 1, counter)]);
        let (status, body) = put_with(&c, 2, path, &forged, "forged").await;
        assert_eq!(status, 204, "counter {counter}: {body}");
    }
    // Honest read-modify-write and delete, through every node.
    for round in 0..3 {
        for i in 0..3 {
            let (status, vclock, _, _) = fetch(&c, i, path).await;
            assert!(status == 200 || status == 300, "fetch via {i}: {status}");
            let body = format!("honest {round} via {i}");
            let (status, text) = put_with(&c, i, path, &vclock, &body).await;
            assert_eq!(status, 204, "honest write via {i}: {text}");
            let (status, _, _, got) = fetch(&c, (i + 1) % 3, path).await;
            assert_eq!((status, got.as_str()), (200, body.as_str()));
        }
    }
    let (_, vclock, _, _) = fetch(&c, 0, path).await;
    let r = c
        .http
        .delete(c.nodes[1].url(path))
        .header("X-Riak-Vclock", vclock)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(fetch(&c, 2, path).await.0, 404);
    assert_eq!(put_with(&c, 0, path, "", "after").await.0, 204);
}

/// One raw HTTP/1.1 GET on a kept-alive connection; the time it took.
fn ping(conn: &mut TcpStream) -> Duration {
    let started = Instant::now();
    conn.write_all(b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 1024];
    let mut got = Vec::new();
    while !got.ends_with(b"OK") {
        let n = conn.read(&mut buf).expect("the kept connection answers");
        assert!(n > 0, "the kept connection was closed");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    started.elapsed()
}

/// Whether the server closed `conn` (EOF or reset) within `limit`.
fn closed_within(conn: &mut TcpStream, limit: Duration) -> bool {
    conn.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}

const LISTENER_LIMITS: &str = "http_connections_max = 100\n\
     client_header_timeout_ms = 1000\n\
     client_io_timeout_ms = 2000\n";

/// 200 slowloris connections (a header byte every 250 ms, forever) and 300
/// idle ones against a listener limited to 100 connections: a client on a
/// connection it already has is answered within 500 ms throughout, every
/// slowloris and idle connection is closed by the header timeout, and new
/// connections are served again once they are gone.
#[tokio::test]
async fn slowloris_and_idle_floods_are_shed() {
    let c = Cluster::start_configured(1, LISTENER_LIMITS, &[]).await;
    let addr = c.nodes[0].http.clone();
    let mut kept = TcpStream::connect(&addr).unwrap();
    ping(&mut kept);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // The flood: connects that land in the backlog past the limit count too.
    let flood = {
        let (addr, stop) = (addr.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut slow = Vec::new();
            for i in 0..500 {
                let target = addr.parse().unwrap();
                if let Ok(mut s) = TcpStream::connect_timeout(&target, Duration::from_millis(200)) {
                    if i < 200 {
                        let _ = s.write_all(b"GET /ping HTTP/1.1\r\n");
                    }
                    slow.push((i < 200, s));
                }
            }
            let mut sent = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && sent < 40 {
                for (is_slow, s) in &mut slow {
                    if *is_slow {
                        let _ = s.write_all(b"X");
                    }
                }
                sent += 1;
                std::thread::sleep(Duration::from_millis(250));
            }
            slow
        })
    };
    // Served on its kept connection while the flood lasts (ping keeps it
    // from idling out: each answer restarts its header timer).
    let mut slowest = Duration::ZERO;
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        slowest = slowest.max(ping(&mut kept));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        slowest < Duration::from_millis(500),
        "slowest ping {slowest:?}"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut flooded = flood.join().unwrap();
    assert!(
        flooded.len() >= 100,
        "only {} connections opened",
        flooded.len()
    );
    for (_, s) in &mut flooded {
        assert!(
            closed_within(s, Duration::from_secs(10)),
            "a flood connection stayed open"
        );
    }
    // Fresh connections are served again.
    wait_until(
        "a new connection is served",
        Duration::from_secs(10),
        || {
            let url = c.nodes[0].url("/ping");
            let http = c.http.clone();
            async move { http.get(&url).send().await.is_ok_and(|r| r.status() == 200) }
        },
    )
    .await;
}

/// 200 unauthenticated connections to a node's RPC port, each announcing
/// a 64 MiB frame and then sending a megabyte: every one is closed within
/// seconds, the node's peak memory grows by less than 64 MiB (before, 48
/// such connections took a node from 0.8 to 3.8 GB), and writes and
/// reads through every node go on within a second each.
#[tokio::test]
async fn unauthenticated_peers_get_almost_nothing() {
    let c = Cluster::start(3, &[]).await;
    let before = c.nodes[0].peak_rss();
    let rpc = c.nodes[0].rpc.clone();
    let flood = std::thread::spawn(move || {
        let mut conns = Vec::new();
        for _ in 0..200 {
            let Ok(mut s) = TcpStream::connect(&rpc) else {
                continue;
            };
            s.set_write_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let _ = s.write_all(&(64u32 << 20).to_be_bytes());
            let _ = s.write_all(&vec![0xab; 1 << 20]);
            conns.push(s);
        }
        conns
    });
    for k in 0..30 {
        let started = Instant::now();
        let path = format!("/buckets/flood/keys/k{k}");
        assert_eq!(put_with(&c, k % 3, &path, "", "v").await.0, 204);
        assert_eq!(fetch(&c, (k + 1) % 3, &path).await.0, 200);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "k{k} took {:?}",
            started.elapsed()
        );
    }
    let mut conns = flood.join().unwrap();
    assert!(
        conns.len() >= 100,
        "only {} connections opened",
        conns.len()
    );
    for s in &mut conns {
        assert!(
            closed_within(s, Duration::from_secs(5)),
            "an unauthenticated connection stayed open"
        );
    }
    let grown = c.nodes[0].peak_rss().saturating_sub(before);
    assert!(grown < 64 << 20, "peak RSS grew by {} MiB", grown >> 20);
}

/// Hints a node holds for node `target`, by its `/admin/cluster`.
async fn hints_for(c: &Cluster, on: usize, target: &str) -> u64 {
    let v = c.cluster_json(on).await;
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == target)
        .map_or(0, |n| n["hints_pending"].as_u64().unwrap())
}

/// One ordinary small write and read through node `via`; how long both
/// took. The latency bound every pressure test holds the node to.
async fn ordinary(c: &Cluster, via: usize, k: usize) -> Duration {
    let started = Instant::now();
    let path = format!("/buckets/ordinary/keys/o{k}");
    let (status, body) = put_with(c, via, &path, "", "small").await;
    assert_eq!(status, 204, "ordinary write under pressure: {body}");
    assert_eq!(fetch(c, via, &path).await.0, 200);
    started.elapsed()
}

/// Ordinary requests under pressure answer within this.
const ORDINARY_BOUND: Duration = Duration::from_secs(1);

/// What one hinted-handoff scenario measured.
struct Drain {
    drained_in: Duration,
    peak_rss: Vec<u64>,
    slowest_ordinary: Duration,
}

/// Held by each scenario that moves hundreds of MiB: they measure peak
/// memory and time against published bounds, and two of them at once on
/// a two-core machine measured each other (six 50 MiB GETs, alone done
/// in about 1 s, passed their 8 s deadline beside a 50 MiB hint drain).
static LARGE_VALUES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// SIGSTOP node 2 of three, write `count` values of `size` bytes through
/// node 0, SIGCONT, and wait until every hint is delivered; node 2 must
/// then hold every value, byte for byte, and small writes after the
/// drain must be ordinary writes (no new hints).
async fn hinted_drain(count: usize, size: usize, drain_limit: Duration) -> Drain {
    let _alone = LARGE_VALUES.lock().await;
    let c = Cluster::start(3, &[]).await;
    let paused = c.node_id(2).await;
    c.nodes[2].pause(true);
    for i in 0..2 {
        let (http, url, paused) = (
            c.http.clone(),
            c.nodes[i].url("/admin/cluster"),
            paused.clone(),
        );
        wait_until(
            &format!("node {i} sees node 2 down"),
            Duration::from_secs(20),
            || {
                let (http, url, paused) = (http.clone(), url.clone(), paused.clone());
                async move {
                    let Ok(r) = http.get(&url).send().await else {
                        return false;
                    };
                    let v: serde_json::Value = r.json().await.unwrap_or_default();
                    v["nodes"].as_array().is_some_and(|ns| {
                        ns.iter()
                            .any(|n| n["id"] == paused.as_str() && n["liveness"] == "down")
                    })
                }
            },
        )
        .await;
    }
    let value = |k: usize| -> Vec<u8> { (0..size).map(|i| (i * 31 + k * 7) as u8).collect() };
    for k in 0..count {
        let r = c
            .http
            .put(c.nodes[0].url(&format!("/buckets/big/keys/k{k}")))
            .body(value(k))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "write k{k}: {}", r.text().await.unwrap());
    }
    let held: u64 = hints_for(&c, 0, &paused).await + hints_for(&c, 1, &paused).await;
    assert!(held > 0, "no hints were kept for the paused node");
    c.nodes[2].pause(false);
    let resumed = Instant::now();
    let mut peak_rss = vec![0; 3];
    let mut slowest_ordinary = Duration::ZERO;
    for probe in 0.. {
        for (i, peak) in peak_rss.iter_mut().enumerate() {
            *peak = (*peak).max(c.nodes[i].rss());
        }
        slowest_ordinary = slowest_ordinary.max(ordinary(&c, probe % 3, probe).await);
        let left = hints_for(&c, 0, &paused).await + hints_for(&c, 1, &paused).await;
        if left == 0 {
            break;
        }
        assert!(
            resumed.elapsed() < drain_limit,
            "{left} hints left after {drain_limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drained_in = resumed.elapsed();
    // VmHWM: the peak over the whole run, writes included.
    for (i, peak) in peak_rss.iter_mut().enumerate() {
        *peak = (*peak).max(c.nodes[i].peak_rss());
    }
    for k in 0..count {
        let r = c
            .http
            .get(c.nodes[2].url(&format!("/admin/replica/buckets/big/keys/k{k}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "node 2 lacks k{k}");
        let body = r.bytes().await.unwrap();
        assert!(
            body.len() >= size,
            "node 2 holds {} bytes of k{k}",
            body.len()
        );
    }
    for k in 0..50 {
        assert_eq!(
            c.put(0, &format!("/buckets/small/keys/s{k}"), "v").await,
            204
        );
    }
    assert_eq!(
        hints_for(&c, 0, &paused).await,
        0,
        "small writes after the drain became hints"
    );
    Drain {
        drained_in,
        peak_rss,
        slowest_ordinary,
    }
}

/// Published ceilings (docs/RELIABILITY.md): drained within 30 s of
/// SIGCONT, every node under 1 GiB resident throughout.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);
const RSS_CEILING: u64 = 1 << 30;

fn check(what: &str, d: &Drain) {
    let mib: Vec<u64> = d.peak_rss.iter().map(|b| b >> 20).collect();
    eprintln!(
        "{what}: drained in {:?}, peak RSS per node {mib:?} MiB, slowest ordinary write+read {:?}",
        d.drained_in, d.slowest_ordinary
    );
    assert!(
        d.peak_rss.iter().all(|b| *b < RSS_CEILING),
        "{what}: RSS over the ceiling: {mib:?} MiB"
    );
    assert!(
        d.slowest_ordinary < ORDINARY_BOUND,
        "{what}: an ordinary request took {:?} during the drain",
        d.slowest_ordinary
    );
}

/// The scenario that never drained: 10 values of 20 MiB.
#[tokio::test]
async fn hints_of_20_mib_values_drain_in_bounded_memory() {
    check(
        "10 x 20 MiB",
        &hinted_drain(10, 20 << 20, DRAIN_LIMIT).await,
    );
}

/// The largest values the key-value API takes, and many small ones.
#[tokio::test]
async fn hints_of_50_mib_and_1_mib_values_drain_in_bounded_memory() {
    check("2 x 50 MiB", &hinted_drain(2, 50 << 20, DRAIN_LIMIT).await);
    check(
        "100 x 1 MiB",
        &hinted_drain(100, 1 << 20, DRAIN_LIMIT).await,
    );
}

/// Six concurrent PUTs of the largest value (50 MiB) through one node of
/// three: every one succeeds under the default timeout, each node's peak
/// memory stays under a ceiling (the coordinator's bounded by
/// values_in_flight_bytes_max, the replicas' by rpc_queue_bytes_max), and
/// the memory goes back to the OS after the burst. Before: 2.1 GB added
/// and never returned, and a single 50 MiB PUT often answered 503.
#[tokio::test]
async fn concurrent_largest_values_use_bounded_memory_and_return_it() {
    let _alone = LARGE_VALUES.lock().await;
    let c = Cluster::start(3, &[]).await;
    let value = bytes::Bytes::from(vec![0x5a; 50 << 20]);
    let started = Instant::now();
    let puts = (0..6).map(|k| {
        let (http, url, value) = (
            c.http.clone(),
            c.nodes[0].url(&format!("/buckets/big/keys/k{k}")),
            value.clone(),
        );
        async move {
            let r = http.put(url).body(value).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    });
    let probes = async {
        let mut slowest = Duration::ZERO;
        for k in 0..10 {
            slowest = slowest.max(ordinary(&c, 1 + k % 2, k).await);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        slowest
    };
    let (results, slowest) = tokio::join!(futures::future::join_all(puts), probes);
    for (status, body) in results {
        assert_eq!(status, 204, "{body}");
    }
    let took = started.elapsed();
    assert!(
        slowest < BURST_ORDINARY_BOUND,
        "an ordinary request took {slowest:?} during the burst"
    );
    let peaks: Vec<u64> = (0..3).map(|i| c.nodes[i].peak_rss() >> 20).collect();
    let settled = Instant::now();
    let mut after = Vec::new();
    while settled.elapsed() < Duration::from_secs(30) {
        after = (0..3).map(|i| c.nodes[i].rss() >> 20).collect();
        if after.iter().all(|m| *m < RETURNED_CEILING_MIB) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "6 x 50 MiB PUTs in {took:?}: peak RSS {peaks:?} MiB, {after:?} MiB {:?} later; slowest ordinary {slowest:?}",
        settled.elapsed()
    );
    assert!(
        peaks.iter().all(|m| *m < BURST_CEILING_MIB),
        "peak RSS {peaks:?} MiB"
    );
    assert!(
        after.iter().all(|m| *m < RETURNED_CEILING_MIB),
        "RSS after the burst {after:?} MiB"
    );
    // Six concurrent GETs of them through node 1: every node's resident
    // memory, sampled while they run, stays under the same ceiling.
    let gets = (0..6).map(|k| {
        let (http, url) = (
            c.http.clone(),
            c.nodes[1].url(&format!("/buckets/big/keys/k{k}")),
        );
        async move {
            let r = http.get(url).send().await.unwrap();
            let status = r.status().as_u16();
            let body = r.bytes().await.unwrap();
            if status != 200 {
                panic!("GET: {status} {}", String::from_utf8_lossy(&body));
            }
            (status, body.len())
        }
    });
    let sampling = std::sync::atomic::AtomicBool::new(true);
    let sample = async {
        let mut peak = vec![0u64; 3];
        while sampling.load(std::sync::atomic::Ordering::Relaxed) {
            for (i, p) in peak.iter_mut().enumerate() {
                *p = (*p).max(c.nodes[i].rss() >> 20);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        peak
    };
    let read = async {
        let answers = futures::future::join_all(gets).await;
        sampling.store(false, std::sync::atomic::Ordering::Relaxed);
        answers
    };
    let (answers, get_peaks) = tokio::join!(read, sample);
    for (status, len) in answers {
        assert_eq!((status, len), (200, 50 << 20));
    }
    eprintln!("6 x 50 MiB GETs: resident at most {get_peaks:?} MiB");
    assert!(
        get_peaks.iter().all(|m| *m < BURST_CEILING_MIB),
        "GET peaks {get_peaks:?} MiB"
    );
}

/// Published ceilings for the burst above (docs/RELIABILITY.md). The
/// ordinary requests' bound is looser than elsewhere: a replica's small
/// write shares the writer thread's round (journal write and fsync) with
/// the 50 MiB values; measured 0.38-1.0 s at worst.
const BURST_CEILING_MIB: u64 = 1280;
const RETURNED_CEILING_MIB: u64 = 512;
const BURST_ORDINARY_BOUND: Duration = Duration::from_secs(2);

/// The long version of the idle flood (run by scripts/pressure.sh): with
/// the default limits, 10,000 connection attempts on the HTTP port (once
/// ~20,000 idle sockets took every node of a dev cluster to its
/// descriptor limit): the node serves its kept connection within the
/// bound throughout, its S3 and RPC ports keep working (a write through
/// another node reaches it), and once the default header timeout (30 s)
/// has closed the idle ones, new connections are served again.
#[tokio::test]
#[ignore = "long: about a minute; scripts/pressure.sh runs it"]
async fn idle_flood_at_default_limits() {
    let c = Cluster::start(3, &[]).await;
    let addr = c.nodes[0].http.clone();
    let mut kept = TcpStream::connect(&addr).unwrap();
    ping(&mut kept);
    let flood = {
        let addr = addr.clone();
        std::thread::spawn(move || {
            let target = addr.parse().unwrap();
            (0..10_000)
                .filter_map(|_| TcpStream::connect_timeout(&target, Duration::from_millis(20)).ok())
                .collect::<Vec<_>>()
        })
    };
    let mut slowest = Duration::ZERO;
    let mut k = 0;
    while !flood.is_finished() {
        slowest = slowest.max(ping(&mut kept));
        slowest = slowest.max(ordinary(&c, 1, k).await);
        k += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let idle = flood.join().unwrap();
    eprintln!(
        "{} idle connections open; slowest ordinary request {slowest:?}",
        idle.len()
    );
    assert!(slowest < ORDINARY_BOUND, "slowest {slowest:?}");
    wait_until(
        "new connections are served again",
        Duration::from_secs(90),
        || {
            let url = c.nodes[0].url("/ping");
            let http = reqwest::Client::new();
            async move { http.get(&url).send().await.is_ok_and(|r| r.status() == 200) }
        },
    )
    .await;
    drop(idle);
}
