//! Experiment files: parse and validate any text, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    corodrill::fuzz::experiment(data);
});
