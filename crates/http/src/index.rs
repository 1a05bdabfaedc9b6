//! Secondary-index queries, as Riak's HTTP API has them:
//! `GET /buckets/B/index/NAME/VALUE` (equality) and
//! `/buckets/B/index/NAME/START/END` (range), with `/types/T/...` too, the
//! special `$key` and `$bucket` indexes, `max_results` + `continuation`
//! paging, `return_terms`, `term_regex`, and `stream=true` (Riak's
//! `multipart/mixed` parts, a page at a time, in bounded memory).
//!
//! The node answers a page with a coverage query (`node::index_query`);
//! this module turns the URL into encoded term bounds and the pages into
//! Riak's JSON.

use crate::error::ApiError;
use crate::params::{self, raw, Pairs};
use crate::App;
use axum::body::{Body, Bytes};
use axum::extract::{Query, RawPathParams, State};
use axum::response::{IntoResponse, Json, Response};
use base64::Engine as _;
use node::{IndexPageQuery, Page};
use serde_json::{json, Value};
use store::index::{encode_term, split_entry, TermKind};
use store::{ListStart, Listed};

/// Entries in one page when the client gives no `max_results`, and in
/// each streamed part.
const PAGE_DEFAULT: usize = 1000;
/// Largest `max_results` one answer holds (a larger page must stream).
pub const MAX_RESULTS_MAX: usize = 10_000;
/// Longest `term_regex`, in bytes (and the compiled program's bound).
const REGEX_BYTES_MAX: usize = 1024;

/// A parsed index query.
struct IndexRequest {
    query: IndexPageQuery,
    kind: Option<TermKind>,
    max_results: Option<usize>,
    return_terms: bool,
    stream: bool,
    regex: Option<regex::Regex>,
}

pub(crate) async fn query(
    State(app): State<App>,
    path: RawPathParams,
    Query(q): Pairs,
) -> Result<Response, ApiError> {
    let req = parse(&raw(&path), &q)?;
    if req.stream {
        return Ok(stream(app, req));
    }
    let page_max = req.max_results.unwrap_or(PAGE_DEFAULT);
    let page = app
        .node
        .index_page(&IndexPageQuery {
            page_max,
            ..req.query.clone()
        })
        .await?;
    let truncated = page.truncated;
    let (items, last) = results(&req, page);
    let mut body = if req.return_terms {
        json!({ "results": items })
    } else {
        json!({ "keys": items })
    };
    if let (true, Some(_), Some(last)) = (truncated, req.max_results, last) {
        body["continuation"] = json!(continuation(&last));
    } else if truncated && req.max_results.is_none() {
        return Err(ApiError::bad(format!(
            "more than {PAGE_DEFAULT} results: page them with max_results and \
             continuation, or ask for stream=true"
        )));
    }
    Ok(Json(body).into_response())
}

/// The entries of a page as Riak's JSON items, and the page's last name.
fn results(req: &IndexRequest, page: Page) -> (Vec<Value>, Option<Bytes>) {
    let last = page.entries.last().map(|e| e.name().clone());
    let items = page
        .entries
        .into_iter()
        .filter_map(|e| match e {
            Listed::Key { key, .. } => Some(key),
            Listed::Prefix(_) => None,
        })
        .filter_map(|name| term_and_key(req.kind, &name))
        .filter(|(term, _)| req.regex.as_ref().is_none_or(|r| r.is_match(term)))
        .map(|(term, key)| {
            let key = String::from_utf8_lossy(&key).into_owned();
            if req.return_terms {
                json!({ term: key })
            } else {
                json!(key)
            }
        })
        .collect();
    (items, last)
}

/// An entry's term and key (`$key` entries are the key itself).
fn term_and_key(kind: Option<TermKind>, name: &[u8]) -> Option<(String, Bytes)> {
    match kind {
        Some(kind) => split_entry(kind, name),
        None => Some((
            String::from_utf8_lossy(name).into_owned(),
            Bytes::copy_from_slice(name),
        )),
    }
}

fn continuation(last: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(last)
}

/// `stream=true`: a `multipart/mixed` body, one part per page, then a
/// continuation part if `max_results` cut the results short.
fn stream(app: App, req: IndexRequest) -> Response {
    const BOUNDARY: &str = "ringstoreindex";
    let part = |v: Value| {
        Bytes::from(format!(
            "\r\n--{BOUNDARY}\r\nContent-Type: application/json\r\n\r\n{v}"
        ))
    };
    let state = (app, req, Some(0usize));
    let parts = futures::stream::unfold(state, move |(app, mut req, sent)| async move {
        let sent = sent?;
        let left = req
            .max_results
            .map_or(usize::MAX, |m| m.saturating_sub(sent));
        if left == 0 {
            return None;
        }
        let page_max = left.min(PAGE_DEFAULT);
        let q = IndexPageQuery {
            page_max,
            ..req.query.clone()
        };
        let page = match app.node.index_page(&q).await {
            Ok(p) => p,
            Err(e) => {
                let item: Result<Bytes, std::io::Error> =
                    Ok(part(json!({ "error": e.to_string() })));
                return Some((item, (app, req, None)));
            }
        };
        let truncated = page.truncated;
        let count = page.entries.len();
        let (items, last) = results(&req, page);
        let mut text = if req.return_terms {
            part(json!({ "results": items }))
        } else {
            part(json!({ "keys": items }))
        }
        .to_vec();
        let next = match (truncated, last) {
            (true, Some(last)) if count < left => {
                req.query.start = ListStart::After(last);
                Some(sent + count)
            }
            (true, Some(last)) => {
                text.extend_from_slice(&part(json!({ "continuation": continuation(&last) })));
                None
            }
            _ => None,
        };
        if next.is_none() {
            text.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
        }
        Some((Ok(Bytes::from(text)), (app, req, next)))
    });
    let mut resp = Response::new(Body::from_stream(parts));
    if let Ok(v) = format!("multipart/mixed; boundary={BOUNDARY}").parse() {
        resp.headers_mut().insert("content-type", v);
    }
    resp
}

/// The query a URL and its parameters ask for.
fn parse(path: &[(String, String)], q: &[(String, String)]) -> Result<IndexRequest, ApiError> {
    let (bucket_type, bucket) = params::bucket(path)?;
    let segment = |name: &str| {
        path.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| params::decode_segment(name, v, store::index::INDEX_TERM_BYTES_MAX))
            .transpose()
    };
    let index = segment("index")?.unwrap_or_default();
    let index = String::from_utf8(index.to_vec())
        .map_err(|_| ApiError::bad("the index name is not UTF-8".into()))?;
    let first = segment("value")?.or(segment("start")?).unwrap_or_default();
    let end = segment("end")?;
    let text = |b: &Bytes| {
        String::from_utf8(b.to_vec())
            .map_err(|_| ApiError::bad(format!("index term {b:?} is not UTF-8")))
    };
    let (index, kind, lo, hi): (String, Option<TermKind>, Bytes, Option<Bytes>) = match index
        .as_str()
    {
        "$bucket" => ("$key".to_string(), None, Bytes::new(), None),
        "$key" => {
            let hi = end.clone().unwrap_or_else(|| first.clone());
            ("$key".to_string(), None, first.clone(), Some(hi))
        }
        name => {
            let kind = TermKind::of(name).ok_or_else(|| {
                ApiError::bad(format!(
                    "index {name:?} must end in _bin or _int (or be $key or $bucket); \
                     _geo indexes are queried at /buckets/B/geo/NAME"
                ))
            })?;
            if kind == TermKind::Geo {
                return Err(ApiError::bad(format!(
                    "{name} is a _geo index: query it at /buckets/B/geo/{name}?lat=..&lon=..&radius_m=.."
                )));
            }
            let enc =
                |t: &Bytes| encode_term(name, &text(t)?).map_err(|e| ApiError::bad(e.to_string()));
            let lo = enc(&first)?;
            let hi = match &end {
                Some(e) => enc(e)?,
                None => lo.clone(),
            };
            (
                name.to_string(),
                Some(kind),
                Bytes::from(lo),
                Some(Bytes::from(hi)),
            )
        }
    };
    let mut req = IndexRequest {
        query: IndexPageQuery {
            bucket_type,
            bucket,
            index,
            ranges: vec![(lo, hi)],
            start: ListStart::First,
            page_max: PAGE_DEFAULT,
        },
        kind,
        max_results: None,
        return_terms: false,
        stream: false,
        regex: None,
    };
    for (k, v) in q {
        match k.as_str() {
            "max_results" => {
                let n: usize = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_RESULTS_MAX).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad(format!(
                            "max_results must be 1..={MAX_RESULTS_MAX}, not {v:?}"
                        ))
                    })?;
                req.max_results = Some(n);
            }
            "continuation" => {
                let last = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(v)
                    .map_err(|_| {
                        ApiError::bad(format!("continuation {v:?} is not one this API gave"))
                    })?;
                req.query.start = ListStart::After(Bytes::from(last));
            }
            "return_terms" => req.return_terms = v == "true",
            "stream" => req.stream = v == "true",
            "term_regex" => req.regex = Some(term_regex(v)?),
            "timeout" | "pagination_sort" => {}
            other => {
                return Err(ApiError::bad(format!(
                    "unknown index query parameter {other:?} (max_results, continuation, \
                     return_terms, term_regex, stream, timeout)"
                )))
            }
        }
    }
    if req.regex.is_some() && req.kind != Some(TermKind::Bin) && req.query.index != "$key" {
        return Err(ApiError::bad(
            "term_regex applies to _bin indexes and $key only".into(),
        ));
    }
    Ok(req)
}

fn term_regex(v: &str) -> Result<regex::Regex, ApiError> {
    if v.len() > REGEX_BYTES_MAX {
        return Err(ApiError::bad(format!(
            "term_regex is longer than {REGEX_BYTES_MAX} bytes"
        )));
    }
    regex::RegexBuilder::new(v)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| ApiError::bad(format!("term_regex {v:?} does not compile: {e}")))
}
