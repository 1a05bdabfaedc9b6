//! Gossip datagrams as the failure detector's socket receives them from
//! anyone: framing, decryption and the replay window. Without the key no
//! input may be accepted; none may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    assert!(!ringstore_net::fuzz::gossip_packet(data), "a forged datagram was accepted");
});
