//! The checksums current SDKs send with every upload (`x-amz-checksum-*`,
//! in headers or in the trailer of an `aws-chunked` body) and expect back.
//!
//! A PUT or part upload computes every algorithm the client named while
//! streaming the body, then compares with what the client claimed (the
//! trailer is only readable once the body is consumed): a mismatch is
//! `BadDigest` and nothing is stored. A multipart object's checksum is
//! composite, as S3's: the checksum of the concatenated part checksums,
//! suffixed `-N`, with `x-amz-checksum-type: COMPOSITE`; SDKs know not to
//! validate such a value against the bytes. An upload created with
//! checksum type `FULL_OBJECT` (and every CRC64NVME one) gets the CRC of
//! the whole object instead, combined from the parts' CRCs.

use crate::records::Checksums;
use base64::Engine as _;
use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Checksum as _, Crc32, Crc32c, Crc64Nvme, Sha1, Sha256};
use s3s::dto::{Checksum, ChecksumAlgorithm};
use s3s::TrailingHeaders;
use s3s::{s3_error, S3Result};

/// A hasher for every algorithm the client named (by claiming a value or
/// by `x-amz-sdk-checksum-algorithm`).
///
/// # Errors
///
/// An algorithm we do not know.
pub fn hasher_for(
    claimed: &Checksums,
    algorithm: Option<&ChecksumAlgorithm>,
) -> S3Result<ChecksumHasher> {
    let mut h = ChecksumHasher::default();
    let named = algorithm.map(|a| a.as_str().to_ascii_uppercase());
    let wants =
        |alg: &str, claimed: &Option<String>| claimed.is_some() || named.as_deref() == Some(alg);
    if wants("CRC32", &claimed.crc32) {
        h.crc32 = Some(Crc32::new());
    }
    if wants("CRC32C", &claimed.crc32c) {
        h.crc32c = Some(Crc32c::new());
    }
    if wants("SHA1", &claimed.sha1) {
        h.sha1 = Some(Sha1::new());
    }
    if wants("SHA256", &claimed.sha256) {
        h.sha256 = Some(Sha256::new());
    }
    if wants("CRC64NVME", &claimed.crc64nvme) {
        h.crc64nvme = Some(Crc64Nvme::new());
    }
    if let Some(n) = &named {
        if !["CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME"].contains(&n.as_str()) {
            return Err(s3_error!(
                InvalidArgument,
                "checksum algorithm {n} is not supported"
            ));
        }
    }
    Ok(h)
}

/// Add the values a streaming body carried in its trailer.
pub fn add_trailers(claimed: &mut Checksums, trailers: Option<&TrailingHeaders>) {
    let Some(map) = trailers.and_then(TrailingHeaders::take) else {
        return;
    };
    let get = |name: &str| {
        map.get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    claimed.crc32 = claimed.crc32.take().or_else(|| get("x-amz-checksum-crc32"));
    claimed.crc32c = claimed
        .crc32c
        .take()
        .or_else(|| get("x-amz-checksum-crc32c"));
    claimed.sha1 = claimed.sha1.take().or_else(|| get("x-amz-checksum-sha1"));
    claimed.sha256 = claimed
        .sha256
        .take()
        .or_else(|| get("x-amz-checksum-sha256"));
    claimed.crc64nvme = claimed
        .crc64nvme
        .take()
        .or_else(|| get("x-amz-checksum-crc64nvme"));
}

/// Compare what was computed with what the client claimed; the computed
/// values are what gets stored and returned.
///
/// # Errors
///
/// `BadDigest` naming the algorithm that differs.
pub fn verify(computed: Checksum, claimed: &Checksums) -> S3Result<Checksums> {
    let pairs = [
        ("crc32", &computed.checksum_crc32, &claimed.crc32),
        ("crc32c", &computed.checksum_crc32c, &claimed.crc32c),
        ("sha1", &computed.checksum_sha1, &claimed.sha1),
        ("sha256", &computed.checksum_sha256, &claimed.sha256),
        (
            "crc64nvme",
            &computed.checksum_crc64nvme,
            &claimed.crc64nvme,
        ),
    ];
    for (name, got, want) in pairs {
        if let (Some(want), Some(got)) = (want, got) {
            if want != got {
                return Err(s3_error!(
                    BadDigest,
                    "x-amz-checksum-{name} is {want} but the body's is {got}; the upload was corrupted, send it again"
                ));
            }
        }
    }
    Ok(Checksums {
        crc32: computed.checksum_crc32,
        crc32c: computed.checksum_crc32c,
        sha1: computed.checksum_sha1,
        sha256: computed.checksum_sha256,
        crc64nvme: computed.checksum_crc64nvme,
        kind: None,
    })
}

/// The composite checksum of a multipart object from its parts' values:
/// the algorithm over the concatenated decoded part checksums, `-N`.
///
/// # Errors
///
/// A part without a value for the algorithm, or one that is not base64.
pub fn composite(algorithm: &str, parts: &[&Checksums]) -> S3Result<Checksums> {
    let mut raw = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let v = p.value(algorithm).ok_or_else(|| {
            s3_error!(
                InvalidPart,
                "part {} was uploaded without a {algorithm} checksum",
                i + 1
            )
        })?;
        raw.extend(
            base64::engine::general_purpose::STANDARD
                .decode(v)
                .map_err(|_| s3_error!(InvalidPart, "part {} has a malformed checksum", i + 1))?,
        );
    }
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    let value = match algorithm {
        "CRC32" => b64(Crc32::checksum(&raw).as_ref()),
        "CRC32C" => b64(Crc32c::checksum(&raw).as_ref()),
        "SHA1" => b64(Sha1::checksum(&raw).as_ref()),
        "SHA256" => b64(Sha256::checksum(&raw).as_ref()),
        other => {
            return Err(s3_error!(
                InvalidRequest,
                "{other} has no composite form; complete with checksum type FULL_OBJECT"
            ))
        }
    };
    let value = format!("{value}-{}", parts.len());
    Ok(Checksums::one(algorithm, value, "COMPOSITE"))
}

/// The full-object checksum of a multipart object, combined from its
/// parts' CRCs and lengths (CRC(a‖b) from CRC(a), CRC(b) and |b|), so the
/// bytes are never read again.
///
/// # Errors
///
/// An algorithm that is not a CRC (SHA sums do not combine), or a part
/// without a value for it.
pub fn full_object(algorithm: &str, parts: &[(&Checksums, u64)]) -> S3Result<Checksums> {
    let (crc, width) = match algorithm {
        "CRC32" => (crc_fast::CrcAlgorithm::Crc32IsoHdlc, 4),
        "CRC32C" => (crc_fast::CrcAlgorithm::Crc32Iscsi, 4),
        "CRC64NVME" => (crc_fast::CrcAlgorithm::Crc64Nvme, 8),
        other => {
            return Err(s3_error!(
                InvalidRequest,
                "{other} has no full-object form; complete with checksum type COMPOSITE"
            ))
        }
    };
    let mut whole: Option<u64> = None;
    for (i, (sums, len)) in parts.iter().enumerate() {
        let part = sums
            .value(algorithm)
            .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
            .filter(|raw| raw.len() == width)
            .map(|raw| raw.iter().fold(0u64, |acc, b| acc << 8 | u64::from(*b)))
            .ok_or_else(|| {
                s3_error!(
                    InvalidPart,
                    "part {} was uploaded without a valid {algorithm} checksum",
                    i + 1
                )
            })?;
        whole = Some(match whole {
            None => part,
            Some(acc) => crc_fast::checksum_combine(crc, acc, part, *len),
        });
    }
    let bytes = whole.unwrap_or(0).to_be_bytes();
    let value = base64::engine::general_purpose::STANDARD.encode(&bytes[8 - width..]);
    Ok(Checksums::one(algorithm, value, "FULL_OBJECT"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_crc32_matches_s3s_own_crc_of_the_concatenation() {
        let a = Checksums {
            crc32: Some("AAAAAQ==".into()),
            ..Checksums::default()
        };
        let b = Checksums {
            crc32: Some("AAAAAg==".into()),
            ..Checksums::default()
        };
        let c = composite("CRC32", &[&a, &b]).unwrap();
        let want = base64::engine::general_purpose::STANDARD
            .encode(Crc32::checksum(&[0, 0, 0, 1, 0, 0, 0, 2]).as_ref());
        assert_eq!(c.crc32.unwrap(), format!("{want}-2"));
        assert_eq!(c.kind.as_deref(), Some("COMPOSITE"));
        assert!(composite("CRC32", &[&Checksums::default()]).is_err());
    }

    #[test]
    fn full_object_crcs_combine_to_the_crc_of_the_whole() {
        let (a, b) = (vec![7u8; 5 << 20], b"the last part".to_vec());
        let whole = [a.clone(), b.clone()].concat();
        for alg in ["CRC32", "CRC32C", "CRC64NVME"] {
            let sums = |data: &[u8]| {
                let mut h = hasher_for(
                    &Checksums::default(),
                    Some(&ChecksumAlgorithm::from(alg.to_string())),
                )
                .unwrap();
                h.update(data);
                verify(h.finalize(), &Checksums::default()).unwrap()
            };
            let (sa, sb, sw) = (sums(&a), sums(&b), sums(&whole));
            let got = full_object(alg, &[(&sa, a.len() as u64), (&sb, b.len() as u64)]).unwrap();
            let (got, want) = match alg {
                "CRC32" => (got.crc32, sw.crc32),
                "CRC32C" => (got.crc32c, sw.crc32c),
                _ => (got.crc64nvme, sw.crc64nvme),
            };
            assert_eq!(got, want, "{alg}");
        }
        assert!(full_object("SHA256", &[]).is_err());
    }

    #[test]
    fn a_wrong_claim_is_bad_digest_and_a_right_one_is_stored() {
        let mut h = hasher_for(
            &Checksums::default(),
            Some(&ChecksumAlgorithm::from_static("CRC32")),
        )
        .unwrap();
        h.update(b"hello");
        let computed = h.finalize();
        let right = Checksums {
            crc32: computed.checksum_crc32.clone(),
            ..Checksums::default()
        };
        assert_eq!(verify(computed.clone(), &right).unwrap().crc32, right.crc32);
        let wrong = Checksums {
            crc32: Some("AAAAAA==".into()),
            ..Checksums::default()
        };
        assert!(verify(computed, &wrong).is_err());
    }
}
