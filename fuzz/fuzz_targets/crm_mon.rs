//! `crm_mon --output-as=xml` as the lab and the agent read it: any text,
//! never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    corodrill::fuzz::crm_mon(data);
});
