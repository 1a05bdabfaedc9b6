//! The causal-context decoder (`X-Riak-Vclock`, client input): any text
//! decodes or fails, and what decodes re-encodes to the same context.
//! Half the inputs are sent as they are; the other half as the base64 of
//! a valid version byte and the input, so the postcard decoder behind the
//! base64 layer sees every shape too.
#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use ringstore_causal::{decode_context, encode_context};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = if mode % 2 == 0 {
        match std::str::from_utf8(rest) {
            Ok(t) => t.to_string(),
            Err(_) => return,
        }
    } else {
        base64::engine::general_purpose::STANDARD.encode([&[1u8][..], rest].concat())
    };
    if let Ok(vv) = decode_context(&text) {
        assert_eq!(decode_context(&encode_context(&vv)), Ok(vv));
    }
});
