//! The handshake state machines (`Initiator` / `Responder::on_frame`) at every step: byte 0
//! picks the machine and step, the rest is frames with 2-byte lengths (see
//! `baton_reliability::fuzzing::handshake`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| baton_reliability::fuzzing::handshake(data));
