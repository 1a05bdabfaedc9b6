//! CORS: which web pages may call a bucket from a browser.
//!
//! A bucket's rules ([`CorsConfig`]) answer two things. A preflight
//! (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is
//! answered here from the rules alone, without reaching the S3 layer: 200
//! with the allowed method and headers, or 403 when no rule matches. An
//! actual request with an `Origin` gets the `Access-Control-*` headers of
//! the first matching rule added to its response, whatever its status.
//!
//! [`CorsLayer`] does both in front of the S3 service; the website
//! endpoint calls [`preflight`] and [`actual_headers`] itself.

use crate::meta_bytes;
use crate::settings::{CorsConfig, CorsRule, Settings};
use crate::unsized_put::{self, UnsizedBuffer};
use crate::BucketHost;
use futures::future::BoxFuture;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use s3s::host::S3Host;
use s3s::service::S3Service;
use s3s::Body;

fn allowed_origin<'a>(rule: &CorsRule, origin: &'a str) -> Option<&'a str> {
    rule.allowed_origins.iter().find_map(|o| {
        if o == "*" {
            Some("*")
        } else {
            crate::policy::glob(o, origin).then_some(origin)
        }
    })
}

/// The first rule allowing `origin` to use `method` with `headers`
/// (lower-case names), and the `Access-Control-Allow-Origin` it answers.
pub fn find<'a, 'o>(
    cfg: &'a CorsConfig,
    origin: &'o str,
    method: &str,
    headers: &[String],
) -> Option<(&'a CorsRule, &'o str)> {
    cfg.rules.iter().find_map(|rule| {
        let allow = allowed_origin(rule, origin)?;
        if !rule.allowed_methods.iter().any(|m| m == method) {
            return None;
        }
        let headers_ok = headers.iter().all(|h| {
            rule.allowed_headers
                .iter()
                .any(|a| crate::policy::glob(&a.to_ascii_lowercase(), h))
        });
        headers_ok.then_some((rule, allow))
    })
}

fn set(h: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(HeaderName::from_static(name), v);
    }
}

/// Headers on an actual (non-preflight) response.
pub fn actual_headers(rule: &CorsRule, allow_origin: &str, h: &mut HeaderMap) {
    set(h, "access-control-allow-origin", allow_origin);
    set(
        h,
        "access-control-allow-methods",
        &rule.allowed_methods.join(", "),
    );
    if allow_origin != "*" {
        set(h, "access-control-allow-credentials", "true");
    }
    if !rule.expose_headers.is_empty() {
        set(
            h,
            "access-control-expose-headers",
            &rule.expose_headers.join(", "),
        );
    }
    if let Some(age) = rule.max_age_seconds {
        set(h, "access-control-max-age", &age.to_string());
    }
    h.append(hyper::header::VARY, HeaderValue::from_static("Origin"));
}

/// The request headers a preflight asks for, lower-case.
fn requested_headers(h: &HeaderMap) -> Vec<String> {
    h.get_all("access-control-request-headers")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(Body::from(format!("{text}\n")));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain"),
    );
    r
}

/// Answer a preflight for a bucket with rules `cfg` (None: no CORS
/// configuration).
pub fn preflight(cfg: Option<&CorsConfig>, headers: &HeaderMap) -> Response<Body> {
    let origin = headers
        .get(hyper::header::ORIGIN)
        .and_then(|v| v.to_str().ok());
    let method = headers
        .get("access-control-request-method")
        .and_then(|v| v.to_str().ok());
    let (Some(origin), Some(method)) = (origin, method) else {
        return plain(
            StatusCode::BAD_REQUEST,
            "a CORS preflight needs the Origin and Access-Control-Request-Method headers",
        );
    };
    let Some(cfg) = cfg else {
        return plain(
            StatusCode::FORBIDDEN,
            "CORSResponse: CORS is not enabled for this bucket; set rules with PutBucketCors",
        );
    };
    let wanted = requested_headers(headers);
    let Some((rule, allow)) = find(cfg, origin, method, &wanted) else {
        return plain(
            StatusCode::FORBIDDEN,
            "CORSResponse: this CORS request is not allowed by the bucket's rules",
        );
    };
    let mut r = Response::new(Body::empty());
    let h = r.headers_mut();
    actual_headers(rule, allow, h);
    if !wanted.is_empty() {
        set(h, "access-control-allow-headers", &wanted.join(", "));
    }
    r
}

/// The CORS rule for an actual request, if it has an `Origin` and a rule
/// allows it.
pub fn for_request(
    cfg: &CorsConfig,
    method: &Method,
    headers: &HeaderMap,
) -> Option<(CorsRule, String)> {
    let origin = headers.get(hyper::header::ORIGIN)?.to_str().ok()?;
    let (rule, allow) = find(cfg, origin, method.as_str(), &[])?;
    Some((rule.clone(), allow.to_string()))
}

/// Answers preflights and adds CORS headers in front of the S3 service.
/// Also reads PUTs without a length whole first (`unsized_put`).
#[derive(Clone)]
pub struct CorsLayer {
    inner: S3Service,
    settings: Settings,
    host: std::sync::Arc<BucketHost>,
    unsized_bodies: UnsizedBuffer,
}

impl CorsLayer {
    /// In front of `inner`, with buckets' rules from `settings` and the
    /// bucket of a request found as the S3 service finds it.
    pub(crate) fn new(
        inner: S3Service,
        settings: Settings,
        host: std::sync::Arc<BucketHost>,
    ) -> Self {
        CorsLayer {
            inner,
            settings,
            host,
            unsized_bodies: UnsizedBuffer::default(),
        }
    }

    /// The bucket a request addresses, virtual-host or path style.
    fn bucket_of<B>(&self, req: &Request<B>) -> Option<String> {
        let host = req.headers().get(hyper::header::HOST)?.to_str().ok()?;
        if let Ok(vh) = self.host.parse_host_header(host) {
            if let Some(b) = vh.bucket() {
                return Some(b.to_string());
            }
        }
        let first = req.uri().path().trim_start_matches('/').split('/').next()?;
        (!first.is_empty()).then(|| first.to_string())
    }
}

impl hyper::service::Service<Request<hyper::body::Incoming>> for CorsLayer {
    type Response = Response<Body>;
    type Error = s3s::HttpError;
    type Future = BoxFuture<'static, Result<Response<Body>, s3s::HttpError>>;

    fn call(&self, mut req: Request<hyper::body::Incoming>) -> Self::Future {
        if let Some(refused) = crate::guard::refuse(&req) {
            return Box::pin(async move { Ok(refused) });
        }
        meta_bytes::encode_request(req.headers_mut());
        let no_length = unsized_put::is_unsized(&req);
        // Most requests come from SDKs, not pages: no Origin, no cost.
        let is_preflight = req.method() == Method::OPTIONS;
        let bucket = (is_preflight || req.headers().contains_key(hyper::header::ORIGIN))
            .then(|| self.bucket_of(&req))
            .flatten();
        if bucket.is_none() && !no_length {
            let answer = hyper::service::Service::call(&self.inner, req);
            return Box::pin(async move {
                let mut resp = answer.await?;
                meta_bytes::decode_response(resp.headers_mut());
                Ok(resp)
            });
        }
        let (settings, inner) = (self.settings.clone(), self.inner.clone());
        let buffer = self.unsized_bodies.clone();
        Box::pin(async move {
            let cors = match &bucket {
                Some(b) => match settings.view(b).await {
                    Ok(v) => v.cors.clone(),
                    // The request itself will meet the same failure and say so.
                    Err(_) => None,
                },
                None => None,
            };
            if bucket.is_some() && req.method() == Method::OPTIONS {
                return Ok(preflight(cors.as_deref(), req.headers()));
            }
            let rule = cors.and_then(|c| for_request(&c, req.method(), req.headers()));
            let req = if no_length {
                match buffer.read_whole(req).await {
                    Ok(req) => req,
                    Err(refused) => return Ok(refused),
                }
            } else {
                req.map(Body::from)
            };
            let mut resp = inner.call(req).await?;
            meta_bytes::decode_response(resp.headers_mut());
            if let Some((rule, allow)) = rule {
                actual_headers(&rule, &allow, resp.headers_mut());
            }
            Ok(resp)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> CorsConfig {
        CorsConfig {
            rules: vec![
                CorsRule {
                    allowed_origins: vec!["https://*.example.com".into()],
                    allowed_methods: vec!["GET".into(), "PUT".into()],
                    allowed_headers: vec!["x-amz-*".into(), "content-type".into()],
                    expose_headers: vec!["ETag".into()],
                    max_age_seconds: Some(600),
                    ..CorsRule::default()
                },
                CorsRule {
                    allowed_origins: vec!["*".into()],
                    allowed_methods: vec!["GET".into()],
                    ..CorsRule::default()
                },
            ],
        }
    }

    #[test]
    fn the_first_matching_rule_answers() {
        let c = cfg();
        let (r, allow) =
            find(&c, "https://app.example.com", "PUT", &["x-amz-date".into()]).unwrap();
        assert_eq!(
            (r.max_age_seconds, allow),
            (Some(600), "https://app.example.com")
        );
        assert!(find(&c, "https://app.example.com", "DELETE", &[]).is_none());
        assert!(find(
            &c,
            "https://app.example.com",
            "PUT",
            &["authorization".into()]
        )
        .is_none());
        let (_, allow) = find(&c, "http://other.org", "GET", &[]).unwrap();
        assert_eq!(allow, "*");
        assert!(find(&c, "http://other.org", "PUT", &[]).is_none());
    }

    #[test]
    fn preflights_answer_200_403_or_400() {
        let c = cfg();
        let mut h = HeaderMap::new();
        h.insert(
            "origin",
            HeaderValue::from_static("https://app.example.com"),
        );
        h.insert(
            "access-control-request-method",
            HeaderValue::from_static("PUT"),
        );
        h.insert(
            "access-control-request-headers",
            HeaderValue::from_static("Content-Type, X-Amz-Date"),
        );
        let r = preflight(Some(&c), &h);
        assert_eq!(r.status(), StatusCode::OK);
        let get = |n: &str| r.headers().get(n).unwrap().to_str().unwrap().to_string();
        assert_eq!(
            get("access-control-allow-origin"),
            "https://app.example.com"
        );
        assert_eq!(get("access-control-allow-methods"), "GET, PUT");
        assert_eq!(
            get("access-control-allow-headers"),
            "content-type, x-amz-date"
        );
        assert_eq!(get("access-control-max-age"), "600");
        assert_eq!(preflight(None, &h).status(), StatusCode::FORBIDDEN);
        h.insert(
            "access-control-request-method",
            HeaderValue::from_static("DELETE"),
        );
        assert_eq!(preflight(Some(&c), &h).status(), StatusCode::FORBIDDEN);
        h.remove("origin");
        assert_eq!(preflight(Some(&c), &h).status(), StatusCode::BAD_REQUEST);
    }
}
