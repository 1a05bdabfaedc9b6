//! Calls over both networks: answers, wrong secrets, deadlines, garbage.

use futures::FutureExt;
use ringstore_net::{
    serve, Handler, MemoryNetwork, Network, RpcClient, RpcConfig, RpcError, TcpNetwork,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

fn cfg(node: u64, secret: &str) -> RpcConfig {
    RpcConfig {
        node,
        secret: secret.as_bytes().to_vec(),
        sealed: true,
        frame_bytes_max: 1 << 20,
        inflight_max: 64,
        queue_bytes_max: 8 << 20,
        faults: Arc::default(),
    }
}

fn echo() -> Handler<u32, u32> {
    Arc::new(|_peer, n: u32| {
        async move {
            if n == 999 {
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
            n * 2
        }
        .boxed()
    })
}

async fn start(net: Arc<dyn Network>, addr: &str, secret: &str) -> String {
    let listener = net.bind(addr).await.unwrap();
    let local = listener.local_addr();
    tokio::spawn(serve(listener, cfg(1, secret), echo()));
    local
}

#[tokio::test]
async fn calls_over_tcp_and_memory() {
    for net in [
        Arc::new(TcpNetwork) as Arc<dyn Network>,
        Arc::new(MemoryNetwork::new()),
    ] {
        let addr = start(net.clone(), "127.0.0.1:0", "s").await;
        let client = Arc::new(RpcClient::<u32, u32>::new(net, cfg(2, "s")));
        let calls: Vec<_> = (0..100u32)
            .map(|i| {
                let (c, a) = (client.clone(), addr.clone());
                tokio::spawn(async move { c.call(&a, i, Duration::from_secs(2)).await.unwrap() })
            })
            .collect();
        for (i, h) in calls.into_iter().enumerate() {
            assert_eq!(h.await.unwrap(), i as u32 * 2);
        }
    }
}

#[tokio::test]
async fn wrong_secret_is_refused() {
    let net: Arc<dyn Network> = Arc::new(TcpNetwork);
    let addr = start(net.clone(), "127.0.0.1:0", "right").await;
    let client = RpcClient::<u32, u32>::new(net, cfg(2, "wrong"));
    let err = client
        .call(&addr, 1, Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::Handshake(_)), "{err}");
    assert!(err.to_string().contains("cluster secret"), "{err}");
}

#[tokio::test]
async fn slow_peer_hits_the_deadline_and_others_still_answer() {
    let net: Arc<dyn Network> = Arc::new(TcpNetwork);
    let addr = start(net.clone(), "127.0.0.1:0", "s").await;
    let client = RpcClient::<u32, u32>::new(net, cfg(2, "s"));
    let err = client
        .call(&addr, 999, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::Timeout { .. }), "{err}");
    assert_eq!(
        client.call(&addr, 4, Duration::from_secs(2)).await.unwrap(),
        8
    );
}

#[tokio::test]
async fn garbage_does_not_kill_the_server() {
    let net: Arc<dyn Network> = Arc::new(TcpNetwork);
    let addr = start(net.clone(), "127.0.0.1:0", "s").await;
    let mut raw = tokio::net::TcpStream::connect(&addr).await.unwrap();
    raw.write_all(&[0, 0, 0, 5, 1, 2, 3, 4, 5, 0xff, 0xff, 0xff, 0xff])
        .await
        .unwrap();
    drop(raw);
    let client = RpcClient::<u32, u32>::new(net, cfg(2, "s"));
    assert_eq!(
        client.call(&addr, 3, Duration::from_secs(2)).await.unwrap(),
        6
    );
}

#[tokio::test]
async fn unreachable_peer_fails_fast() {
    let client = RpcClient::<u32, u32>::new(Arc::new(TcpNetwork), cfg(2, "s"));
    let err = client
        .call("127.0.0.1:1", 3, Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::Connect { .. }), "{err}");
}

#[tokio::test]
async fn dropped_peer_times_out_and_delayed_peer_is_slow() {
    let net: Arc<dyn Network> = Arc::new(TcpNetwork);
    let listener = net.bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr();
    let server_cfg = cfg(1, "s");
    let server_faults = server_cfg.faults.clone();
    tokio::spawn(serve(listener, server_cfg, echo()));
    let client_cfg = cfg(2, "s");
    let client_faults = client_cfg.faults.clone();
    let client = RpcClient::<u32, u32>::new(net, client_cfg);
    assert_eq!(
        client.call(&addr, 1, Duration::from_secs(2)).await.unwrap(),
        2
    );
    // The client drops the server (node 1): calls are never sent.
    client_faults.set(ringstore_net::FaultRuleSet {
        drop: [1].into(),
        ..Default::default()
    });
    let err = client
        .call(&addr, 1, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::Timeout { .. }), "{err}");
    client_faults.clear();
    // The server drops the client (node 2): requests go unanswered.
    server_faults.set(ringstore_net::FaultRuleSet {
        drop: [2].into(),
        ..Default::default()
    });
    let err = client
        .call(&addr, 1, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::Timeout { .. }), "{err}");
    server_faults.set(ringstore_net::FaultRuleSet {
        delay_ms: [(2, 150)].into(),
        ..Default::default()
    });
    let started = std::time::Instant::now();
    assert_eq!(
        client.call(&addr, 3, Duration::from_secs(2)).await.unwrap(),
        6
    );
    assert!(started.elapsed() >= Duration::from_millis(150));
    server_faults.clear();
    assert_eq!(
        client
            .call(&addr, 4, Duration::from_millis(500))
            .await
            .unwrap(),
        8
    );
}

/// A proxy that forwards one connection and records what the dialer sent.
async fn recording_proxy(target: String) -> (String, Arc<std::sync::Mutex<Vec<u8>>>) {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = sent.clone();
    tokio::spawn(async move {
        let (inbound, _) = listener.accept().await.unwrap();
        let outbound = tokio::net::TcpStream::connect(&target).await.unwrap();
        let (mut in_r, mut in_w) = inbound.into_split();
        let (mut out_r, mut out_w) = outbound.into_split();
        tokio::spawn(async move { tokio::io::copy(&mut out_r, &mut in_w).await });
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = in_r.read(&mut buf).await {
            if n == 0 {
                break;
            }
            record.lock().unwrap().extend_from_slice(&buf[..n]);
            if out_w.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    });
    (addr, sent)
}

#[tokio::test]
async fn recorded_traffic_is_sealed_and_replaying_it_does_nothing() {
    let net: Arc<dyn Network> = Arc::new(TcpNetwork);
    let listener = net.bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr();
    let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let seen = calls.clone();
    let handler: Handler<Vec<u8>, u32> = Arc::new(move |_peer, v: Vec<u8>| {
        seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move { v.len() as u32 }.boxed()
    });
    tokio::spawn(serve(listener, cfg(1, "s"), handler));
    let (proxy, sent) = recording_proxy(addr.clone()).await;
    let client = RpcClient::<Vec<u8>, u32>::new(net, cfg(2, "s"));
    let value = b"a-value-nobody-may-read".repeat(100);
    let got = client
        .call(&proxy, value.clone(), Duration::from_secs(2))
        .await;
    assert_eq!(got.unwrap(), value.len() as u32);
    let recorded = sent.lock().unwrap().clone();
    assert!(
        !recorded.windows(23).any(|w| w == &value[..23]),
        "value in the clear"
    );
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);

    // The same bytes, sent again on a new connection: the listener must
    // not answer, and must close the connection.
    let mut raw = tokio::net::TcpStream::connect(&addr).await.unwrap();
    raw.write_all(&recorded).await.unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read_to_end(&mut raw, &mut rest),
    )
    .await;
    assert!(read.is_ok(), "the listener kept a replayed connection open");
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "replay answered"
    );
}

#[tokio::test]
async fn nodes_that_disagree_on_encryption_say_so() {
    let net: Arc<dyn Network> = Arc::new(TcpNetwork);
    let addr = start(net.clone(), "127.0.0.1:0", "s").await;
    let plain = RpcConfig {
        sealed: false,
        ..cfg(2, "s")
    };
    let err = RpcClient::<u32, u32>::new(net.clone(), plain)
        .call(&addr, 1, Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("internode_encryption"), "{err}");
    // Both plain: the handshake still authenticates, and calls work.
    let listener = net.bind("127.0.0.1:0").await.unwrap();
    let plain_addr = listener.local_addr();
    let server = RpcConfig {
        sealed: false,
        ..cfg(1, "s")
    };
    tokio::spawn(serve(listener, server, echo()));
    let client = RpcClient::<u32, u32>::new(
        net,
        RpcConfig {
            sealed: false,
            ..cfg(2, "s")
        },
    );
    assert_eq!(
        client
            .call(&plain_addr, 4, Duration::from_secs(2))
            .await
            .unwrap(),
        8
    );
}
