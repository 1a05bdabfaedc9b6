//! Parsing what clients send: path segments, query parameters, headers.
//! Everything here turns malformed input into an [`ApiError`] (a 4xx with
//! a message), never a panic.

use crate::error::ApiError;
use bytes::Bytes;
use causal::{decode_context, VersionVector};
use cluster::QuorumValue;
use node::{BKey, RequestOptions};
use store::{BUCKET_BYTES_MAX, KEY_BYTES_MAX, TYPE_BYTES_MAX};

/// Query parameters as the router hands them over.
pub(crate) type Pairs = axum::extract::Query<Vec<(String, String)>>;

/// Path parameters as owned pairs, still percent-encoded.
pub(crate) fn raw(p: &axum::extract::RawPathParams) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Decode one path segment as Riak does (mochiweb's unquote): `%XX`
/// escapes, and `+` as a space, which is what `quote_plus` clients send.
pub(crate) fn decode_segment(what: &str, raw: &str, max: usize) -> Result<Bytes, ApiError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        ApiError::bad(format!("{what} {raw:?} has a malformed %-escape"))
                    })?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    if out.is_empty() {
        return Err(ApiError::bad(format!("{what} must not be empty")));
    }
    if out.len() > max {
        return Err(ApiError::bad(format!(
            "{what} is {} bytes; the limit is {max}",
            out.len()
        )));
    }
    Ok(Bytes::from(out))
}

/// The (type, bucket, key) named by a path, from its raw parameters.
pub(crate) fn bkey(params: &[(String, String)]) -> Result<BKey, ApiError> {
    let (t, b) = bucket(params)?;
    let raw = param(params, "key")?;
    Ok(BKey {
        bucket_type: t,
        bucket: b,
        key: decode_segment("key", raw, KEY_BYTES_MAX)?,
    })
}

/// The (type, bucket) named by a path.
pub(crate) fn bucket(params: &[(String, String)]) -> Result<(Bytes, Bytes), ApiError> {
    let t = match params.iter().find(|(k, _)| k == "type") {
        Some((_, raw)) => decode_segment("bucket type", raw, TYPE_BYTES_MAX)?,
        None => Bytes::from_static(b"default"),
    };
    let b = decode_segment("bucket", param(params, "bucket")?, BUCKET_BYTES_MAX)?;
    Ok((t, b))
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Result<&'a str, ApiError> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| ApiError::bad(format!("missing path parameter {name}")))
}

/// Query parameters that matter to the key-value API.
#[derive(Debug, Default)]
pub(crate) struct Query {
    pub(crate) options: RequestOptions,
    pub(crate) returnbody: bool,
    pub(crate) vtag: Option<String>,
    pub(crate) deletedvclock: bool,
    pub(crate) keys: Option<String>,
    pub(crate) buckets: Option<String>,
}

fn quorum(name: &str, v: &str) -> Result<Option<QuorumValue>, ApiError> {
    let q: QuorumValue = v
        .parse()
        .map_err(|e: String| ApiError::bad(format!("{name}: {e}")))?;
    Ok(Some(q))
}

fn boolean(name: &str, v: &str) -> Result<bool, ApiError> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ApiError::bad(format!(
            "{name}={v:?}: expected true or false"
        ))),
    }
}

/// Parse the query string. Unknown parameters are ignored, as Riak does.
pub(crate) fn query(pairs: &[(String, String)]) -> Result<Query, ApiError> {
    let mut q = Query::default();
    for (k, v) in pairs {
        let o = &mut q.options;
        match k.as_str() {
            "r" => o.r = quorum(k, v)?,
            "w" => o.w = quorum(k, v)?,
            "dw" => o.dw = quorum(k, v)?,
            "pr" => o.pr = quorum(k, v)?,
            "pw" => o.pw = quorum(k, v)?,
            "rw" => o.rw = quorum(k, v)?,
            "notfound_ok" => o.notfound_ok = Some(boolean(k, v)?),
            "basic_quorum" => o.basic_quorum = Some(boolean(k, v)?),
            "timeout" => {
                let ms: u64 = v
                    .parse()
                    .map_err(|_| ApiError::bad(format!("timeout={v:?}: expected milliseconds")))?;
                o.timeout_ms = (ms > 0).then_some(ms);
            }
            "returnbody" => q.returnbody = boolean(k, v)?,
            "vtag" => q.vtag = Some(v.clone()),
            "deletedvclock" => q.deletedvclock = boolean(k, v)?,
            "keys" => q.keys = Some(v.clone()),
            "buckets" => q.buckets = Some(v.clone()),
            _ => {}
        }
    }
    Ok(q)
}

/// The client's causal context, if it sent one.
pub(crate) fn context(headers: &axum::http::HeaderMap) -> Result<Option<VersionVector>, ApiError> {
    match headers.get("x-riak-vclock") {
        None => Ok(None),
        Some(v) => {
            let text = v
                .to_str()
                .map_err(|_| ApiError::bad("X-Riak-Vclock is not ASCII".to_string()))?;
            decode_context(text)
                .map(Some)
                .map_err(|e| ApiError::bad(e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_decode_like_riak() {
        assert_eq!(
            &decode_segment("key", "a+b%2Fc", 100).unwrap()[..],
            b"a b/c"
        );
        assert!(decode_segment("key", "bad%zz", 100).is_err());
        assert!(decode_segment("key", "%4", 100).is_err());
        assert!(decode_segment("key", "", 100).is_err());
        assert!(decode_segment("key", "abc", 2).is_err());
    }

    #[test]
    fn query_rejects_garbage() {
        let p = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        assert!(query(&p("r", "lots")).is_err());
        assert!(query(&p("returnbody", "yes")).is_err());
        assert!(query(&p("timeout", "-1")).is_err());
        assert_eq!(
            query(&p("w", "3")).unwrap().options.w,
            Some(QuorumValue::Number(3))
        );
        assert!(query(&p("whatever", "x")).is_ok());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]

        /// Any path segment decodes within its limit or is refused.
        #[test]
        fn any_segment_decodes_within_its_limit_or_fails(raw in ".{0,80}", max in 0usize..64) {
            if let Ok(b) = decode_segment("key", &raw, max) {
                proptest::prop_assert!(!b.is_empty() && b.len() <= max);
            }
        }

        /// Any query string, with the names the API knows and others.
        #[test]
        fn any_query_parses_or_fails(
            pairs in proptest::collection::vec((
                proptest::prop_oneof![
                    proptest::strategy::Just("r".to_string()), proptest::strategy::Just("w".to_string()),
                    proptest::strategy::Just("dw".to_string()), proptest::strategy::Just("pr".to_string()),
                    proptest::strategy::Just("timeout".to_string()), proptest::strategy::Just("returnbody".to_string()),
                    proptest::strategy::Just("vtag".to_string()), proptest::strategy::Just("notfound_ok".to_string()),
                    ".{0,12}",
                ],
                ".{0,24}",
            ), 0..6),
        ) {
            let _ = query(&pairs);
        }

        /// Any `X-Riak-Vclock` header value.
        #[test]
        fn any_context_header_parses_or_fails(value in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120)) {
            if let Ok(v) = axum::http::HeaderValue::from_bytes(&value) {
                let mut headers = axum::http::HeaderMap::new();
                headers.insert("x-riak-vclock", v);
                let _ = context(&headers);
            }
        }
    }
}
