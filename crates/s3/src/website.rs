//! The website endpoint: browsers fetch a bucket's public objects with
//! plain, unsigned GETs, as from any web server.
//!
//! Its own listener (`web`, port 9001 by default) picks the bucket by
//! `Host`: `BUCKET.<web_domain>`, a configured alias, or a bucket named
//! like the host (S3's convention for custom domains). A bucket is served
//! only when its owner gave it a website configuration (PutBucketWebsite),
//! and an object only when the bucket's ACL or policy, or the object's
//! own ACL, lets anyone read it. Then it behaves like S3's website
//! endpoints: index documents for `/` paths (and a 302 from `/dir` to
//! `/dir/`), an error document, redirects (all requests, routing rules,
//! per-object `x-amz-website-redirect-location`), stored content headers
//! returned as uploaded (gzip stays gzip), `ETag` and `Last-Modified`
//! with conditional GETs (304 carries the ETag), single byte ranges,
//! `HEAD`, and the bucket's CORS rules.
//!
//! It reads through the same quorum paths and caches as the S3 API; an
//! answer costs one object read (two for a missing `/dir` index), with
//! bucket settings from the cache.

use crate::access::ReadByAcl;
use crate::blocks::read_range;
use crate::records::{Data, ObjectRecord};
use crate::service::RingS3;
use crate::settings::{BucketView, Redirect, Website};
use futures::future::BoxFuture;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use node::NearbyRead;
use s3s::dto::StreamingBlob;
use s3s::Body;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// The website endpoint over one node.
#[derive(Clone)]
pub struct WebsiteService {
    s3: RingS3,
    domain: Arc<str>,
    aliases: Arc<HashMap<String, String>>,
    /// Object reads from the local replica when it can vouch for itself
    /// (`None`: quorum reads).
    nearby: Option<NearbyRead>,
}

/// A redirect or an error, before it becomes a response.
enum Outcome {
    Object(Box<ObjectRecord>),
    Redirect(u16, String),
    Error(u16, &'static str, String),
}

impl WebsiteService {
    /// Serve the buckets of `s3` under `domain`, and `aliases` (host →
    /// bucket).
    pub fn new(s3: RingS3, domain: &str, aliases: HashMap<String, String>) -> Self {
        let aliases = aliases
            .into_iter()
            .map(|(h, b)| (h.to_ascii_lowercase(), b))
            .collect();
        WebsiteService {
            s3,
            domain: domain.to_ascii_lowercase().into(),
            aliases: Arc::new(aliases),
            nearby: None,
        }
    }

    /// Read objects with `nearby` reads (`None`: quorum reads).
    #[must_use]
    pub fn with_nearby_read(mut self, nearby: Option<NearbyRead>) -> Self {
        self.nearby = nearby;
        self
    }

    /// The bucket a `Host` header names.
    pub fn bucket_of(&self, host: &str) -> Option<String> {
        let name = match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        }
        .to_ascii_lowercase();
        if let Some(b) = self.aliases.get(&name) {
            return Some(b.clone());
        }
        let bucket = match name
            .strip_suffix(&*self.domain)
            .and_then(|b| b.strip_suffix('.'))
        {
            Some(b) => b.to_string(),
            None => name,
        };
        (!bucket.is_empty()).then_some(bucket)
    }

    async fn handle(self, req: Request<hyper::body::Incoming>) -> Response<Body> {
        let (parts, _body) = req.into_parts();
        if !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
            let mut r = page(
                405,
                "MethodNotAllowed",
                "the website endpoint answers GET, HEAD and OPTIONS".into(),
            );
            r.headers_mut().insert(
                header::ALLOW,
                HeaderValue::from_static("GET, HEAD, OPTIONS"),
            );
            return r;
        }
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let Some(bucket) = self.bucket_of(host) else {
            return page(
                404,
                "NoSuchBucket",
                "the Host header names no bucket".into(),
            );
        };
        let view = match self.view(&bucket).await {
            Ok(v) => v,
            Err(r) => return *r,
        };
        if parts.method == Method::OPTIONS {
            return crate::cors::preflight(view.cors.as_deref(), &parts.headers);
        }
        let Some(site) = view.website.clone() else {
            return page(
                404,
                "NoSuchWebsiteConfiguration",
                format!("bucket {bucket} has no website configuration"),
            );
        };
        let outcome = self
            .resolve(&bucket, &view, &site, parts.uri.path(), host)
            .await;
        let mut resp = self
            .respond(
                &bucket,
                &view,
                &site,
                outcome,
                &parts.method,
                &parts.headers,
            )
            .await;
        if let Some(cors) = &view.cors {
            if let Some((rule, allow)) =
                crate::cors::for_request(cors, &parts.method, &parts.headers)
            {
                crate::cors::actual_headers(&rule, &allow, resp.headers_mut());
            }
        }
        resp
    }

    async fn view(&self, bucket: &str) -> Result<std::sync::Arc<BucketView>, Box<Response<Body>>> {
        let failed = |e: s3s::S3Error| {
            let status = e.status_code().map_or(503, |s| s.as_u16());
            let code = if status == 404 {
                "NoSuchBucket"
            } else {
                "ServiceUnavailable"
            };
            Box::new(page(
                status,
                code,
                e.message()
                    .unwrap_or("the bucket could not be read")
                    .to_string(),
            ))
        };
        self.s3.bucket(bucket).await.map_err(failed)?;
        self.s3.settings.view(bucket).await.map_err(failed)
    }

    /// What a path resolves to: an object, a redirect or an error.
    async fn resolve(
        &self,
        bucket: &str,
        view: &BucketView,
        site: &Website,
        path: &str,
        host: &str,
    ) -> Outcome {
        if let Some(r) = &site.redirect_all {
            return Outcome::Redirect(301, location(r, host, path.trim_start_matches('/')));
        }
        let Ok(decoded) = percent_encoding::percent_decode_str(path).decode_utf8() else {
            return Outcome::Error(
                400,
                "InvalidURI",
                "the path is not UTF-8 once decoded".into(),
            );
        };
        let mut key = decoded.trim_start_matches('/').to_string();
        if let Some(rule) = site.routing_rules.iter().find(|r| {
            r.http_error_code_returned_equals.is_none()
                && r.key_prefix_equals
                    .as_ref()
                    .is_none_or(|p| key.starts_with(p.as_str()))
        }) {
            return Outcome::Redirect(code_of(&rule.redirect), redirect_to(rule, &key, host));
        }
        let is_dir = key.is_empty() || key.ends_with('/');
        if let (true, Some(suffix)) = (is_dir, &site.index_suffix) {
            key.push_str(suffix);
        }
        match self.readable(bucket, view, &key).await {
            Ok(Some(r)) => return Outcome::Object(Box::new(r)),
            Ok(None) => {}
            Err(o) => return o,
        }
        // `/dir` whose `/dir/index.html` exists: S3 sends the browser there.
        if let (false, Some(suffix)) = (is_dir, &site.index_suffix) {
            let index = format!("{key}/{suffix}");
            if let Ok(Some(_)) = self.readable(bucket, view, &index).await {
                return Outcome::Redirect(302, format!("/{}/", path.trim_start_matches('/')));
            }
        }
        let status = if view.anyone_may_list() { 404 } else { 403 };
        let code = if status == 404 {
            "NoSuchKey"
        } else {
            "AccessDenied"
        };
        self.error(
            site,
            &key,
            status,
            code,
            format!("no public object {key} in bucket {bucket}"),
            host,
        )
    }

    /// The object at `key` if anyone may read it; `Ok(None)` if absent.
    async fn readable(
        &self,
        bucket: &str,
        view: &BucketView,
        key: &str,
    ) -> Result<Option<ObjectRecord>, Outcome> {
        let record = match self.s3.object_read(bucket, key, self.nearby).await {
            Ok(r) => r,
            Err(e) => {
                return Err(Outcome::Error(
                    503,
                    "ServiceUnavailable",
                    e.message().unwrap_or("read failed").to_string(),
                ))
            }
        };
        let by_acl = ReadByAcl {
            key: None,
            may_list: false,
        };
        match record {
            Some(r) if view.anyone_may_read(key) || by_acl.allows(r.extra.acl) => Ok(Some(r)),
            Some(_) => Err(Outcome::Error(
                403,
                "AccessDenied",
                format!("object {key} is not public"),
            )),
            None => Ok(None),
        }
    }

    /// An error, unless a routing rule redirects it.
    fn error(
        &self,
        site: &Website,
        key: &str,
        status: u16,
        code: &'static str,
        msg: String,
        host: &str,
    ) -> Outcome {
        let status_text = status.to_string();
        let rule = site.routing_rules.iter().find(|r| {
            r.http_error_code_returned_equals.as_deref() == Some(status_text.as_str())
                && r.key_prefix_equals
                    .as_ref()
                    .is_none_or(|p| key.starts_with(p.as_str()))
        });
        match rule {
            Some(rule) => Outcome::Redirect(code_of(&rule.redirect), redirect_to(rule, key, host)),
            None => Outcome::Error(status, code, msg),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn respond(
        &self,
        bucket: &str,
        view: &BucketView,
        site: &Website,
        outcome: Outcome,
        method: &Method,
        headers: &HeaderMap,
    ) -> Response<Body> {
        match outcome {
            Outcome::Object(r) => match &r.extra.website_redirect {
                Some(to) => redirect(301, to),
                None => self.object(*r, method, headers, None),
            },
            Outcome::Redirect(code, to) => redirect(code, &to),
            Outcome::Error(status, code, msg) => {
                // The error document, if the owner set one and it is public.
                if let (Some(key), 400..=499) = (&site.error_key, status) {
                    if let Ok(Some(doc)) = self.readable(bucket, view, key).await {
                        return self.object(doc, method, &HeaderMap::new(), Some(status));
                    }
                }
                page(status, code, msg)
            }
        }
    }

    /// An object's response: conditions, range, headers, body.
    fn object(
        &self,
        r: ObjectRecord,
        method: &Method,
        req: &HeaderMap,
        status: Option<u16>,
    ) -> Response<Body> {
        let etag = format!("\"{}\"", r.etag);
        let modified_s = r.modified_ms / 1000;
        if let Some(code) = conditions(req, &r.etag, modified_s) {
            let mut resp = empty(code);
            if code == 304 {
                set(resp.headers_mut(), header::ETAG, &etag);
                set(
                    resp.headers_mut(),
                    header::LAST_MODIFIED,
                    &http_date(modified_s * 1000),
                );
            }
            return resp;
        }
        let range = match status {
            Some(_) => None,
            None => match byte_range(req, r.size) {
                Ok(range) => range,
                Err(()) => {
                    let mut resp = page(
                        416,
                        "InvalidRange",
                        "the range is outside the object".into(),
                    );
                    set(
                        resp.headers_mut(),
                        header::CONTENT_RANGE,
                        &format!("bytes */{}", r.size),
                    );
                    return resp;
                }
            },
        };
        let span = range.clone().unwrap_or(0..r.size);
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = match (status, &range) {
            (Some(s), _) => StatusCode::from_u16(s).unwrap_or(StatusCode::NOT_FOUND),
            (None, Some(_)) => StatusCode::PARTIAL_CONTENT,
            (None, None) => StatusCode::OK,
        };
        let h = resp.headers_mut();
        content_headers(h, &r);
        set(h, header::ETAG, &etag);
        set(h, header::LAST_MODIFIED, &http_date(r.modified_ms));
        set(h, header::ACCEPT_RANGES, "bytes");
        set(
            h,
            header::CONTENT_LENGTH,
            &(span.end - span.start).to_string(),
        );
        if let Some(range) = &range {
            set(
                h,
                header::CONTENT_RANGE,
                &format!(
                    "bytes {}-{}/{}",
                    range.start,
                    range.end.saturating_sub(1),
                    r.size
                ),
            );
        }
        if method == Method::GET {
            *resp.body_mut() = match &r.data {
                Data::Inline(bytes) => {
                    Body::from(bytes.slice(span.start as usize..span.end as usize))
                }
                Data::Blocks(_) => Body::from(StreamingBlob::wrap(read_range(
                    &self.s3.catalog,
                    &r.data,
                    span,
                ))),
            };
        }
        resp
    }
}

impl hyper::service::Service<Request<hyper::body::Incoming>> for WebsiteService {
    type Response = Response<Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<'static, Result<Response<Body>, std::convert::Infallible>>;

    fn call(&self, req: Request<hyper::body::Incoming>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(req).await) })
    }
}

fn set(h: &mut HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

fn http_date(ms: u64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(ms))
}

fn content_headers(h: &mut HeaderMap, r: &ObjectRecord) {
    let c = &r.headers;
    set(
        h,
        header::CONTENT_TYPE,
        c.content_type.as_deref().unwrap_or("binary/octet-stream"),
    );
    for (name, v) in [
        (header::CONTENT_ENCODING, &c.content_encoding),
        (header::CONTENT_DISPOSITION, &c.content_disposition),
        (header::CONTENT_LANGUAGE, &c.content_language),
        (header::CACHE_CONTROL, &c.cache_control),
    ] {
        if let Some(v) = v {
            set(h, name, v);
        }
    }
    if let Some(ms) = r.extra.expires_ms {
        set(h, header::EXPIRES, &http_date(ms.max(0) as u64));
    }
    for (k, v) in &c.user_meta {
        let name = header::HeaderName::from_bytes(format!("x-amz-meta-{k}").as_bytes());
        if let (Ok(name), Some(v)) = (name, crate::meta_bytes::header_value(v)) {
            h.insert(name, v);
        }
    }
}

fn empty(status: u16) -> Response<Body> {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    r
}

/// RFC 9110 §13.2.2: the status a GET's conditions answer, if not 200.
fn conditions(h: &HeaderMap, etag: &str, modified_s: u64) -> Option<u16> {
    let get = |n: header::HeaderName| h.get(n).and_then(|v| v.to_str().ok());
    let tag_in = |list: &str| {
        list.split(',')
            .map(str::trim)
            .any(|t| t == "*" || t.trim_start_matches("W/").trim_matches('"') == etag)
    };
    let date = |v: &str| {
        httpdate::parse_http_date(v)
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs())
    };
    if let Some(m) = get(header::IF_MATCH) {
        if !tag_in(m) {
            return Some(412);
        }
    } else if let Some(since) = get(header::IF_UNMODIFIED_SINCE).and_then(date) {
        if modified_s > since {
            return Some(412);
        }
    }
    if let Some(m) = get(header::IF_NONE_MATCH) {
        if tag_in(m) {
            return Some(304);
        }
    } else if let Some(since) = get(header::IF_MODIFIED_SINCE).and_then(date) {
        if modified_s <= since {
            return Some(304);
        }
    }
    None
}

/// One `bytes=` range: `Ok(None)` for none (or one this does not parse,
/// which HTTP says to ignore), `Err` when it lies outside the object.
fn byte_range(h: &HeaderMap, size: u64) -> Result<Option<std::ops::Range<u64>>, ()> {
    let Some(spec) = h
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
    else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let (start, end) = match (a.parse::<u64>().ok(), b.parse::<u64>().ok()) {
        (Some(s), Some(e)) if s <= e => (s, (e + 1).min(size)),
        (Some(s), None) if b.is_empty() => (s, size),
        (None, Some(n)) if a.is_empty() && n > 0 => (size.saturating_sub(n), size),
        _ => return Ok(None),
    };
    if start >= size {
        return Err(());
    }
    Ok(Some(start..end))
}

fn code_of(r: &Redirect) -> u16 {
    r.http_redirect_code
        .as_deref()
        .and_then(|c| c.parse().ok())
        .filter(|c| (300..400).contains(c))
        .unwrap_or(301)
}

/// `protocol://host/key` of a redirect (this host and http by default).
fn location(r: &Redirect, host: &str, key: &str) -> String {
    let proto = r.protocol.as_deref().unwrap_or("http");
    let to = r.host_name.as_deref().unwrap_or(host);
    format!("{proto}://{to}/{key}")
}

fn redirect_to(rule: &crate::settings::RoutingRule, key: &str, host: &str) -> String {
    let r = &rule.redirect;
    let key = if let Some(k) = &r.replace_key_with {
        k.clone()
    } else if let Some(p) = &r.replace_key_prefix_with {
        let prefix = rule.key_prefix_equals.as_deref().unwrap_or("");
        format!("{p}{}", key.strip_prefix(prefix).unwrap_or(key))
    } else {
        key.to_string()
    };
    location(r, host, &key)
}

fn redirect(code: u16, to: &str) -> Response<Body> {
    let mut r = empty(code);
    set(r.headers_mut(), header::LOCATION, to);
    r
}

/// An HTML error page, as S3's website endpoints give.
fn page(status: u16, code: &str, message: String) -> Response<Body> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let title = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let html = format!(
        "<html><head><title>{title}</title></head><body><h1>{title}</h1><ul><li>Code: {}</li><li>Message: {}</li></ul></body></html>\n",
        esc(code),
        esc(&message)
    );
    let mut r = Response::new(Body::from(html));
    *r.status_mut() = status;
    set(
        r.headers_mut(),
        header::CONTENT_TYPE,
        "text/html; charset=utf-8",
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn conditional_gets_follow_rfc_9110() {
        let (tag, t) = ("abc", 1_700_000_000);
        let later = http_date((t + 10) * 1000);
        let earlier = http_date((t - 10) * 1000);
        assert_eq!(
            conditions(&headers(&[("if-none-match", "\"abc\"")]), tag, t),
            Some(304)
        );
        assert_eq!(
            conditions(&headers(&[("if-none-match", "\"zzz\"")]), tag, t),
            None
        );
        assert_eq!(
            conditions(&headers(&[("if-modified-since", &later)]), tag, t),
            Some(304)
        );
        assert_eq!(
            conditions(&headers(&[("if-modified-since", &earlier)]), tag, t),
            None
        );
        assert_eq!(
            conditions(&headers(&[("if-match", "\"zzz\"")]), tag, t),
            Some(412)
        );
        assert_eq!(
            conditions(&headers(&[("if-unmodified-since", &earlier)]), tag, t),
            Some(412)
        );
        // If-None-Match wins over If-Modified-Since.
        assert_eq!(
            conditions(
                &headers(&[("if-none-match", "\"zzz\""), ("if-modified-since", &later)]),
                tag,
                t
            ),
            None
        );
    }

    #[test]
    fn ranges_parse_like_http() {
        let r = |v: &str| byte_range(&headers(&[("range", v)]), 100);
        assert_eq!(r("bytes=0-9"), Ok(Some(0..10)));
        assert_eq!(r("bytes=90-"), Ok(Some(90..100)));
        assert_eq!(r("bytes=-5"), Ok(Some(95..100)));
        assert_eq!(r("bytes=95-500"), Ok(Some(95..100)));
        assert_eq!(r("bytes=100-"), Err(()));
        assert_eq!(r("bytes=0-1,5-6"), Ok(None));
        assert_eq!(r("lines=1-2"), Ok(None));
        assert_eq!(r("bytes=9-2"), Ok(None));
    }
}
