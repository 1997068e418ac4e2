//! Frame decoding: `wire::decode_message` on the bytes, and the bytes as a TCP stream through
//! the length-delimited codec (see `baton_reliability::fuzzing::frame`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| baton_reliability::fuzzing::frame(data));
