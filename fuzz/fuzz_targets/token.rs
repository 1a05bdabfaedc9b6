//! S3 ListObjectsV2 continuation tokens, which clients send back: any
//! string must open or be refused, never panic, and never open without
//! the cluster's key; a sealed token opens to its own place only.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        assert!(!ringstore_s3::token::fuzz::open_token(text), "a forged token opened");
    }
    ringstore_s3::token::fuzz::round_trip(data);
});
