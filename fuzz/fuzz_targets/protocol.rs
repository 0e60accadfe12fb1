//! The protocol's lines, as the agent reads requests and the controller
//! reads messages: any bytes, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    corodrill_protocol::fuzz_entry(data);
});
