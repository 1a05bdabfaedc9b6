//! Requests refused before they reach s3s, with S3's answers where s3s
//! would give another.

use hyper::header::HeaderValue;
use hyper::{Request, Response, StatusCode};
use s3s::Body;

/// Longest life of a presigned URL (S3's limit: 7 days).
pub const PRESIGNED_EXPIRES_MAX_S: i64 = 604_800;

/// A presigned URL whose `X-Amz-Expires` is negative or over 7 days: 403
/// `AccessDenied`, as S3 answers (s3s would answer a negative one 400
/// and take a long one).
pub fn refuse<B>(req: &Request<B>) -> Option<Response<Body>> {
    let query = req.uri().query()?;
    let expires = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("X-Amz-Expires="))?;
    let ok = expires
        .parse::<i64>()
        .is_ok_and(|s| (0..=PRESIGNED_EXPIRES_MAX_S).contains(&s));
    if ok {
        return None;
    }
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code><Message>\
         X-Amz-Expires must be between 0 and {PRESIGNED_EXPIRES_MAX_S} seconds (7 days)</Message></Error>"
    );
    let mut r = Response::new(Body::from(xml));
    *r.status_mut() = StatusCode::FORBIDDEN;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(q: &str) -> Request<()> {
        Request::builder()
            .uri(format!("/b/k?{q}"))
            .body(())
            .unwrap()
    }

    #[test]
    fn presigned_lifetimes_over_7_days_or_negative_are_refused() {
        assert!(refuse(&req("X-Amz-Expires=3600&X-Amz-Signature=x")).is_none());
        assert!(refuse(&req("X-Amz-Expires=604800")).is_none());
        assert_eq!(refuse(&req("X-Amz-Expires=604801")).unwrap().status(), 403);
        assert_eq!(refuse(&req("a=b&X-Amz-Expires=-7")).unwrap().status(), 403);
        assert!(refuse(&req("list-type=2")).is_none());
    }
}
