//! `ha-manager status` as the agent reads it: any text, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    corodrill::fuzz::ha_manager(data);
});
