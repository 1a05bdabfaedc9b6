//! The HTTP key-value API's request parsing, through the real router of a
//! one-node in-memory cluster. The input is a request in a compact text
//! form: a method selector byte, then `path?query`, then header lines,
//! then an empty line and the body. Whatever it is, the answer must come
//! without a panic and must not be a 500: malformed requests are 4xx with
//! a message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, Mutex, OnceLock};
use tower::ServiceExt;

const METHODS: [&str; 6] = ["GET", "PUT", "POST", "DELETE", "HEAD", "OPTIONS"];
/// Inputs served by one node before a fresh one replaces it, so stored
/// values do not pile up over a long run.
const INPUTS_PER_NODE: u32 = 20_000;

struct Served {
    router: axum::Router,
    node: ringstore_node::Node,
    inputs: u32,
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

async fn fresh() -> Served {
    let net = ringstore_net::MemoryNetwork::new();
    let cfg = ringstore_node::NodeConfig {
        rpc: "fuzz:7000".into(),
        ..ringstore_node::NodeConfig::default()
    };
    let env = ringstore_node::Env {
        clock: Arc::new(ringstore_node::SystemClock),
        seed: 1,
        network: Arc::new(net.at("fuzz:7000")),
        engine: Arc::new(ringstore_store::MemoryEngine::new()),
    };
    let node = ringstore_node::Node::start(cfg, env).await.expect("node starts");
    let keys = ringstore_s3::KeyStore::new(ringstore_s3::catalog::Catalog::new(node.clone()));
    Served {
        router: ringstore_http::router(node.clone(), keys),
        node,
        inputs: 0,
    }
}

fn request(data: &[u8]) -> Option<http::Request<axum::body::Body>> {
    let (&m, rest) = data.split_first()?;
    let text = std::str::from_utf8(rest).ok()?;
    let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let target = lines.next()?;
    let mut b = http::Request::builder()
        .method(METHODS[usize::from(m) % METHODS.len()])
        .uri(format!("/{}", target.trim_start_matches('/')));
    for line in lines {
        let (name, value) = line.split_once(':')?;
        b = b.header(name.trim(), value.trim());
    }
    b.body(axum::body::Body::from(body.to_string())).ok()
}

fuzz_target!(|data: &[u8]| {
    static SERVED: OnceLock<Mutex<Option<Served>>> = OnceLock::new();
    let Some(req) = request(data) else {
        return;
    };
    let shown = format!("{} {}", req.method(), req.uri());
    let slot = SERVED.get_or_init(|| Mutex::new(None));
    let mut served = slot.lock().unwrap_or_else(|e| e.into_inner());
    runtime().block_on(async {
        if served.as_ref().is_none_or(|s| s.inputs >= INPUTS_PER_NODE) {
            if let Some(old) = served.take() {
                old.node.shutdown();
            }
            *served = Some(fresh().await);
        }
        let s = served.as_mut().expect("just made");
        s.inputs += 1;
        let resp = s.router.clone().oneshot(req).await.expect("infallible");
        assert_ne!(
            resp.status(),
            http::StatusCode::INTERNAL_SERVER_ERROR,
            "{shown} answered 500"
        );
    });
});
