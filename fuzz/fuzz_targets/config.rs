//! Config parsing: `Config::from_toml_str` on the bytes as (lossy) UTF-8 text (see
//! `baton_reliability::fuzzing::config`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| baton_reliability::fuzzing::config(data));
