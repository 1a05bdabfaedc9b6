//! Counts every S3 request in the node's recent traffic (`node::traffic`)
//! for the dashboard, by method: GET and HEAD, PUT and POST, DELETE.

use futures::future::BoxFuture;
use hyper::{Method, Request};
use node::traffic::TrafficOp;

/// A service that records how long each request to `inner` took.
#[derive(Clone)]
pub(crate) struct Timed<S> {
    pub(crate) inner: S,
    pub(crate) node: node::Node,
}

fn op_of(method: &Method) -> TrafficOp {
    match *method {
        Method::GET | Method::HEAD => TrafficOp::S3Get,
        Method::PUT | Method::POST => TrafficOp::S3Put,
        Method::DELETE => TrafficOp::S3Delete,
        _ => TrafficOp::Other,
    }
}

impl<S, B> hyper::service::Service<Request<B>> for Timed<S>
where
    S: hyper::service::Service<Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn call(&self, req: Request<B>) -> Self::Future {
        let op = op_of(req.method());
        let started = std::time::Instant::now();
        let fut = self.inner.call(req);
        let node = self.node.clone();
        Box::pin(async move {
            let out = fut.await;
            node.traffic().record(op, started.elapsed());
            out
        })
    }
}
