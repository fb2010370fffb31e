//! Runtime-host protocol frames as the host reads them from a runtime (and a runtime from the
//! host): a stream of length-prefixed CBOR frames through `read_frame`, and the input as one frame
//! body through `decode_body`. Re-encoding a decoded message must be stable: `encode_frame` →
//! `read_frame` → `encode_frame` gives the same bytes (compared as bytes, not with `==`: a
//! `ciborium::Value` may hold a NaN).
#![no_main]

use libfuzzer_sys::fuzz_target;
use paratime_sdk::protocol::{decode_body, encode_frame, read_frame, Message};

fn round_trip(msg: &Message) {
    // Over the frame limit is a legitimate refusal (the decoded input was a body, not a frame).
    let Ok(frame) = encode_frame(msg) else {
        return;
    };
    let back = read_frame(&mut &frame[..]).expect("an encoded frame decodes");
    let again = encode_frame(&back).expect("a decoded frame encodes");
    assert_eq!(frame, again, "message changed in an encode/decode round trip");
}

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = decode_body(data) {
        round_trip(&msg);
    }
    let mut stream = data;
    // At most a few frames: each needs 4 bytes of prefix, so this ends on its own anyway.
    for _ in 0..16 {
        match read_frame(&mut stream) {
            Ok(msg) => round_trip(&msg),
            Err(_) => break,
        }
    }
});
