//! A handshake's first frame, as a listener reads it from anyone who
//! connects: a postcard `Hello` carrying a Noise message. Without the
//! cluster secret no input may be accepted; none may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The fuzzer does not know the key, so acceptance means a forgery.
    assert_eq!(ringstore_net::fuzz::hello_frame(data), None, "a forged hello was accepted");
});
