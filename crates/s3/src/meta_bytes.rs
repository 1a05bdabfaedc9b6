//! User metadata that is not ASCII, returned as the bytes that were sent.
//!
//! HTTP header values are bytes, and Python's SDKs (boto3, awscli) send
//! and read them as latin-1: `"Hello World\xe9"` goes out as one byte
//! 0xE9, while the SigV4 signature covers the value's UTF-8 (0xC3 0xA9).
//! s3s leaves a header that is not UTF-8 out of the signature check (so
//! such a PUT failed as `SignatureDoesNotMatch`) and answers non-ASCII
//! values RFC 2047-encoded (`=?UTF-8?B?...?=`), which botocore does not
//! decode. So the S3 layer's front (`cors::CorsLayer`) translates:
//!
//! - on the way in ([`encode_request`]), a value that is not UTF-8 is read
//!   as latin-1 (one character per byte) and handed on as that text's
//!   UTF-8, which is what the client signed; UTF-8 values pass as sent;
//! - on the way out ([`decode_response`] and [`header_value`]), a value
//!   whose characters all fit in a byte is sent as those latin-1 bytes,
//!   which gives a Python client exactly what it stored; anything else
//!   (characters past U+00FF, which only a UTF-8 client can send) stays
//!   RFC 2047, as S3 documents for non-ASCII metadata.

use base64::Engine as _;
use hyper::header::{HeaderMap, HeaderValue};

const PREFIX: &str = "=?UTF-8?B?";
const SUFFIX: &str = "?=";
const META: &str = "x-amz-meta-";

/// Rewrite non-ASCII `x-amz-meta-*` values of a request for s3s.
pub fn encode_request(headers: &mut HeaderMap) {
    for (name, value) in headers.iter_mut() {
        if !name.as_str().starts_with(META) || std::str::from_utf8(value.as_bytes()).is_ok() {
            continue;
        }
        let latin1: String = value.as_bytes().iter().map(|b| char::from(*b)).collect();
        if let Ok(v) = HeaderValue::from_bytes(latin1.as_bytes()) {
            *value = v;
        }
    }
}

/// Send RFC 2047-encoded `x-amz-meta-*` values of a response as bytes
/// where every character fits in one.
pub fn decode_response(headers: &mut HeaderMap) {
    for (name, value) in headers.iter_mut() {
        if !name.as_str().starts_with(META) || !value.as_bytes().starts_with(PREFIX.as_bytes()) {
            continue;
        }
        let decoded = value.to_str().ok().and_then(decode_words);
        if let Some(v) = decoded.as_deref().and_then(latin1_value) {
            *value = v;
        }
    }
}

/// A stored metadata value as a header: its bytes when every character
/// fits in one, else RFC 2047 (as s3s would write it).
pub fn header_value(stored: &str) -> Option<HeaderValue> {
    if let Some(v) = latin1_value(stored) {
        return Some(v);
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(stored.as_bytes());
    HeaderValue::from_str(&format!("{PREFIX}{b64}{SUFFIX}")).ok()
}

/// `s` as one byte per character, if every character fits in a byte and
/// the bytes make a valid header value.
fn latin1_value(s: &str) -> Option<HeaderValue> {
    let bytes: Option<Vec<u8>> = s.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect();
    HeaderValue::from_bytes(&bytes?).ok()
}

/// The text of one or more `=?UTF-8?B?...?=` words.
fn decode_words(s: &str) -> Option<String> {
    let mut bytes = Vec::new();
    for word in s.split_whitespace() {
        let b64 = word.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
        let part = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
        bytes.extend(part);
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(sent: &[u8]) -> Vec<u8> {
        let mut h = HeaderMap::new();
        h.insert("x-amz-meta-m", HeaderValue::from_bytes(sent).unwrap());
        encode_request(&mut h);
        // What s3s stores: the decoded word.
        // What s3s stores: the value's text.
        let stored = h["x-amz-meta-m"].to_str().map(str::to_string);
        let stored = stored
            .unwrap_or_else(|_| String::from_utf8(h["x-amz-meta-m"].as_bytes().to_vec()).unwrap());
        header_value(&stored).unwrap().as_bytes().to_vec()
    }

    #[test]
    fn latin1_values_come_back_as_sent() {
        for sent in [&b"Hello World\xe9"[..], b"Gr\xfc\xdfe", b"plain"] {
            assert_eq!(round_trip(sent), sent);
        }
        // A UTF-8 client's text past latin-1 comes back RFC 2047-encoded.
        let back = round_trip("Grüße 日本".as_bytes());
        assert!(back.starts_with(PREFIX.as_bytes()), "{back:?}");
    }

    #[test]
    fn characters_past_a_byte_stay_rfc_2047() {
        let v = header_value("日本").unwrap();
        assert!(v.to_str().unwrap().starts_with(PREFIX));
        assert_eq!(decode_words(v.to_str().unwrap()).unwrap(), "日本");
        let mut h = HeaderMap::new();
        h.insert("x-amz-meta-m", v.clone());
        decode_response(&mut h);
        assert_eq!(h["x-amz-meta-m"], v);
    }
}
