//! PUTs that do not say how long they are.
//!
//! A client may send a body with `Transfer-Encoding: chunked` and neither
//! `Content-Length` nor `aws-chunked` framing (a streaming upload from a
//! pipe; s3-tests' `test_object_write_with_chunked_transfer_encoding`).
//! S3 takes it. s3s needs the length before it calls us (its signature
//! check and our block writer both size the body up front) and answers
//! 411, so such a PUT is read whole here first, under two bounds:
//!
//! - one body at most [`UNSIZED_PUT_BYTES_MAX`]: past it the client gets a
//!   413 that says to send `Content-Length`;
//! - all such bodies buffered at once at most [`UNSIZED_PUT_BUFFER_BYTES`]:
//!   past it, 503 `SlowDown` (the memory is taken before reading, so a
//!   slow client holds its share, never more).
//!
//! Every other request passes untouched, without a copy.

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use hyper::{Method, Request, Response, StatusCode};
use s3s::Body;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Largest body of a PUT without a length (16 MiB).
pub const UNSIZED_PUT_BYTES_MAX: usize = 16 << 20;
/// Bytes past the limit read and dropped before the 413 (so the client
/// reads the answer); a longer body has its connection closed.
pub const UNSIZED_PUT_DRAIN_BYTES: usize = 64 << 20;
/// Bytes of such bodies buffered at once on one node (64 MiB: four).
pub const UNSIZED_PUT_BUFFER_BYTES: usize = 64 << 20;

/// Whether `req` is a PUT or POST body without a length: chunked, with no
/// `Content-Length` and no `x-amz-decoded-content-length` (aws-chunked
/// framing carries its own length, which s3s reads).
pub fn is_unsized<B>(req: &Request<B>) -> bool {
    let h = req.headers();
    (req.method() == Method::PUT || req.method() == Method::POST)
        && !h.contains_key(CONTENT_LENGTH)
        && !h.contains_key("x-amz-decoded-content-length")
        && h.get(TRANSFER_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
}

/// The memory that buffered bodies share.
#[derive(Clone)]
pub struct UnsizedBuffer {
    bytes: Arc<Semaphore>,
}

impl Default for UnsizedBuffer {
    fn default() -> Self {
        UnsizedBuffer {
            bytes: Arc::new(Semaphore::new(UNSIZED_PUT_BUFFER_BYTES)),
        }
    }
}

impl UnsizedBuffer {
    /// `req` with its body read whole and its length set, or the error
    /// response to send instead.
    pub async fn read_whole(
        &self,
        req: Request<hyper::body::Incoming>,
    ) -> Result<Request<Body>, Response<Body>> {
        // The bound is a const far below u32::MAX.
        let share = u32::try_from(UNSIZED_PUT_BYTES_MAX).unwrap_or(u32::MAX);
        let Ok(_held) = self.bytes.clone().try_acquire_many_owned(share) else {
            return Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "SlowDown",
                "too many uploads without Content-Length at once; retry, or send Content-Length",
            ));
        };
        let (mut parts, mut body) = req.into_parts();
        let mut whole = Vec::new();
        let mut too_large = false;
        let mut read = 0usize;
        // Past the limit the rest is read and dropped (up to
        // UNSIZED_PUT_DRAIN_BYTES), so the client, still sending, gets to
        // read the 413 instead of a reset connection.
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                error(
                    StatusCode::BAD_REQUEST,
                    "IncompleteBody",
                    &format!("the chunked body could not be read: {e}"),
                )
            })?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            read += data.len();
            if read > UNSIZED_PUT_BYTES_MAX {
                too_large = true;
                whole = Vec::new();
            } else {
                whole.extend_from_slice(&data);
            }
            if read > UNSIZED_PUT_BYTES_MAX + UNSIZED_PUT_DRAIN_BYTES {
                break;
            }
        }
        if too_large {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "EntityTooLarge",
                &format!(
                    "a body without Content-Length may be at most {UNSIZED_PUT_BYTES_MAX} \
                     bytes; send Content-Length (or aws-chunked) for larger ones"
                ),
            ));
        }
        let whole = Bytes::from(whole);
        parts.headers.remove(TRANSFER_ENCODING);
        parts
            .headers
            .insert(CONTENT_LENGTH, HeaderValue::from(whole.len()));
        Ok(Request::from_parts(parts, Body::from(whole)))
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
         <Message>{message}</Message></Error>"
    );
    let mut r = Response::new(Body::from(xml));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: Method, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().method(method).uri("/b/k");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn only_chunked_bodies_without_a_length_are_unsized() {
        let te = ("transfer-encoding", "chunked");
        assert!(is_unsized(&req(Method::PUT, &[te])));
        assert!(!is_unsized(&req(
            Method::PUT,
            &[te, ("content-length", "3")]
        )));
        let aws = ("x-amz-decoded-content-length", "3");
        assert!(!is_unsized(&req(Method::PUT, &[te, aws])));
        assert!(!is_unsized(&req(Method::PUT, &[])));
        assert!(!is_unsized(&req(Method::GET, &[te])));
    }
}
