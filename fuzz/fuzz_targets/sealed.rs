//! Bytes on an inter-node connection: plain handshake framing or sealed
//! Noise records of an established session, decoded as a node does; and
//! any frame sealed by one end must reach the other whole.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let frames = ringstore_net::fuzz::connection_bytes(data);
    // Sealed records cannot be forged: only plain framing yields frames.
    if data.first().is_some_and(|b| b & 1 == 1) {
        assert_eq!(frames, 0, "a forged sealed record was accepted");
    }
    ringstore_net::fuzz::sealed_round_trip(data);
});
