//! ELF executables from bundles: the static checks (`bundle::elf::inspect`) on arbitrary bytes; an
//! accepted executable is written to a file and its dependencies are resolved against this host's
//! libraries (`bundle::elf::dependencies`), whose every result must lie under the allow-list.
#![no_main]

use libfuzzer_sys::fuzz_target;
use paratime_node::bundle::elf::{dependencies, inspect, is_allowed_path};
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    if inspect(data).is_err() {
        return;
    }
    let mut file = tempfile::NamedTempFile::new().expect("fuzz harness: temporary file");
    file.write_all(data).expect("fuzz harness: write");
    file.flush().expect("fuzz harness: flush");
    if let Ok(binds) = dependencies(file.path()) {
        for (inside, real) in &binds {
            assert!(is_allowed_path(inside), "bind target outside the allow-list: {inside:?}");
            assert!(is_allowed_path(real), "bind source outside the allow-list: {real:?}");
        }
    }
});
