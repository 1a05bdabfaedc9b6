//! ListObjectsV2 continuation tokens: where the next page starts, sealed.
//!
//! A token is `base64url(version ‖ kind ‖ name ‖ mac)`: `kind` says whether
//! the next page starts after `name` (the last key of the page) or at it
//! (the first key past the page's last common prefix), and `mac` is a
//! keyed BLAKE3 hash, under a key derived from the cluster secret, of the
//! listing's scope (bucket, prefix, delimiter) and of the rest. So:
//!
//! - any node of the cluster opens a token another issued, across
//!   restarts, with no cursor state kept anywhere;
//! - a token altered, truncated, made up, or issued for another bucket,
//!   prefix or delimiter does not open: the client gets a 400, never a
//!   page from somewhere else.
//!
//! The name is visible to whoever holds the token (as S3's, tokens are
//! opaque but not secret); it is a key of the bucket the client is
//! listing.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use node::ListStart;

const VERSION: u8 = 1;
const KIND_AFTER: u8 = 0;
const KIND_AT: u8 = 1;
const MAC_BYTES: usize = 16;
/// Longest token accepted, in characters: a key (at most 1 KiB in S3) and
/// the framing, base64-encoded, with room to spare.
const TOKEN_CHARS_MAX: usize = 4096;
const KEY_CONTEXT: &str = "ringstore 2026-12 s3 listing continuation token";

/// What a token is valid for.
pub(crate) struct Scope<'a> {
    pub(crate) bucket: &'a str,
    pub(crate) prefix: &'a str,
    pub(crate) delimiter: &'a str,
}

/// Why a token does not open.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TokenError {
    /// Longer than any token ringstore issues.
    #[error("it is longer than {TOKEN_CHARS_MAX} characters; pass the NextContinuationToken of the previous page")]
    TooLong,
    /// Not base64url, or too short to hold a version, kind and MAC.
    #[error("it is not a token ringstore issued (malformed); pass the NextContinuationToken of the previous page")]
    Malformed,
    /// A version this node does not know.
    #[error("it has an unknown version; pass a token from this cluster")]
    UnknownVersion,
    /// The MAC does not match: altered, or issued for another listing.
    #[error("it was issued for another bucket, prefix or delimiter, or was altered; list again from the start with the same parameters")]
    WrongScope,
}

fn mac(secret: &[u8], scope: &Scope<'_>, body: &[u8]) -> [u8; MAC_BYTES] {
    let key = blake3::derive_key(KEY_CONTEXT, secret);
    let mut h = blake3::Hasher::new_keyed(&key);
    for field in [scope.bucket, scope.prefix, scope.delimiter] {
        h.update(&(field.len() as u64).to_le_bytes());
        h.update(field.as_bytes());
    }
    h.update(body);
    let mut out = [0; MAC_BYTES];
    out.copy_from_slice(&h.finalize().as_bytes()[..MAC_BYTES]);
    out
}

/// The token for a page that starts at `start`.
pub(crate) fn seal(secret: &[u8], scope: &Scope<'_>, start: &ListStart) -> String {
    let (kind, name) = match start {
        ListStart::After(k) => (KIND_AFTER, k.as_ref()),
        ListStart::At(k) => (KIND_AT, k.as_ref()),
        // A page is never continued from the start; seal it as "after
        // nothing", which is the same place.
        ListStart::First => (KIND_AFTER, &[][..]),
    };
    let mut body = vec![VERSION, kind];
    body.extend_from_slice(name);
    let tag = mac(secret, scope, &body);
    body.extend_from_slice(&tag);
    URL_SAFE_NO_PAD.encode(body)
}

/// Where the page a token continues starts.
pub(crate) fn open(secret: &[u8], scope: &Scope<'_>, token: &str) -> Result<ListStart, TokenError> {
    if token.len() > TOKEN_CHARS_MAX {
        return Err(TokenError::TooLong);
    }
    let raw = URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|_| TokenError::Malformed)?;
    if raw.len() < 2 + MAC_BYTES {
        return Err(TokenError::Malformed);
    }
    let (body, tag) = raw.split_at(raw.len() - MAC_BYTES);
    if body[0] != VERSION {
        return Err(TokenError::UnknownVersion);
    }
    // Why constant time: a client must not learn a valid MAC byte by byte.
    let expected = mac(secret, scope, body);
    if !constant_time_eq(&expected, tag) {
        return Err(TokenError::WrongScope);
    }
    let name = Bytes::copy_from_slice(&body[2..]);
    match body[1] {
        KIND_AFTER if name.is_empty() => Ok(ListStart::First),
        KIND_AFTER => Ok(ListStart::After(name)),
        KIND_AT => Ok(ListStart::At(name)),
        _ => Err(TokenError::Malformed),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: &[u8] = b"cluster secret";

    fn scope(bucket: &str) -> Scope<'_> {
        Scope {
            bucket,
            prefix: "p/",
            delimiter: "/",
        }
    }

    #[test]
    fn tokens_open_where_they_were_sealed() {
        for start in [
            ListStart::After(Bytes::from_static(b"p/k1")),
            ListStart::At(Bytes::from_static(b"p/a0")),
            ListStart::First,
        ] {
            let t = seal(SECRET, &scope("b"), &start);
            assert_eq!(open(SECRET, &scope("b"), &t), Ok(start));
        }
    }

    #[test]
    fn foreign_truncated_and_forged_tokens_are_refused() {
        let t = seal(
            SECRET,
            &scope("b"),
            &ListStart::After(Bytes::from_static(b"p/k")),
        );
        assert_eq!(
            open(SECRET, &scope("other"), &t),
            Err(TokenError::WrongScope)
        );
        assert_eq!(
            open(b"other secret", &scope("b"), &t),
            Err(TokenError::WrongScope)
        );
        assert!(open(SECRET, &scope("b"), &t[..t.len() - 3]).is_err());
        assert_eq!(open(SECRET, &scope("b"), "p/k"), Err(TokenError::Malformed));
        assert_eq!(open(SECRET, &scope("b"), "!!"), Err(TokenError::Malformed));
        assert_eq!(
            open(SECRET, &scope("b"), &"A".repeat(5000)),
            Err(TokenError::TooLong)
        );
    }

    proptest! {
        #[test]
        fn any_string_opens_or_is_refused(s in ".{0,200}") {
            let _ = open(SECRET, &scope("b"), &s);
        }

        #[test]
        fn a_changed_byte_never_opens(at in any::<prop::sample::Index>(), bit in 0u8..8) {
            let t = seal(SECRET, &scope("b"), &ListStart::After(Bytes::from_static(b"p/key")));
            let mut raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
            let i = at.index(raw.len());
            raw[i] ^= 1 << bit;
            prop_assert!(open(SECRET, &scope("b"), &URL_SAFE_NO_PAD.encode(raw)).is_err());
        }
    }
}

/// Entry points for the cargo-fuzz target `token` (fuzz/): a client's
/// ContinuationToken is network input. Not an API.
#[doc(hidden)]
pub mod fuzz {
    use super::*;

    const SCOPE: Scope<'static> = Scope {
        bucket: "photos",
        prefix: "2026/",
        delimiter: "/",
    };

    /// Open `token` as a node would; whether it opened (without the
    /// secret, it never should).
    pub fn open_token(token: &str) -> bool {
        open(b"fuzz secret", &SCOPE, token).is_ok()
    }

    /// A token sealed for `key` opens to the same place, and only in its
    /// own scope.
    pub fn round_trip(key: &[u8]) {
        let start = ListStart::After(Bytes::copy_from_slice(key));
        let token = seal(b"fuzz secret", &SCOPE, &start);
        if token.len() > TOKEN_CHARS_MAX {
            return;
        }
        // "After nothing" is the start of the listing, by design.
        let expected = if key.is_empty() {
            ListStart::First
        } else {
            start
        };
        assert_eq!(open(b"fuzz secret", &SCOPE, &token), Ok(expected));
        let other = Scope {
            bucket: "other",
            ..SCOPE
        };
        assert_eq!(
            open(b"fuzz secret", &other, &token),
            Err(TokenError::WrongScope)
        );
    }
}
