//! Config loading: `${VAR}` substitution with a fixed environment, size parsing, and
//! `config::load` of the input written to a file (YAML parsing, unknown-key detection, the key
//! index for line numbers, validation).
#![no_main]

use libfuzzer_sys::fuzz_target;
use paratime_node::config::{load, parse_size, substitute_env};
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let env = |k: &str| match k {
            "PT_FUZZ_SET" => Some("value".to_string()),
            "PT_FUZZ_EMPTY" => Some(String::new()),
            _ => None,
        };
        let _ = substitute_env(text, env);
        if let Some(first) = text.lines().next() {
            let _ = parse_size(first);
        }
    }
    let mut file = tempfile::NamedTempFile::new().expect("fuzz harness: temporary file");
    file.write_all(data).expect("fuzz harness: write");
    file.flush().expect("fuzz harness: flush");
    let _ = load(file.path());
});
