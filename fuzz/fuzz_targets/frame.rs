//! The inter-node message decoder: every frame a peer sends after the
//! handshake is decoded as `(u64, Request)` by the listener and as
//! `(u64, Response)` by the dialer. Any bytes must decode or fail, never
//! panic or allocate what the frame merely claims; what decodes must
//! encode again and decode to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringstore_node::proto::{Request, Response};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = postcard::from_bytes::<(u64, Request)>(data) {
        let again = postcard::to_stdvec(&req).expect("a decoded request encodes");
        let back = postcard::from_bytes::<(u64, Request)>(&again).expect("and decodes");
        assert_eq!(format!("{back:?}"), format!("{req:?}"));
    }
    if let Ok(resp) = postcard::from_bytes::<(u64, Response)>(data) {
        let again = postcard::to_stdvec(&resp).expect("a decoded response encodes");
        let back = postcard::from_bytes::<(u64, Response)>(&again).expect("and decodes");
        assert_eq!(format!("{back:?}"), format!("{resp:?}"));
    }
});
