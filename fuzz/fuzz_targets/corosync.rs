//! corosync-quorumtool, corosync-cfgtool and corosync.conf text, as the
//! controller reads them: any text, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    corodrill::fuzz::corosync(data);
});
