//! `.orc` bundle verification and explosion: `Bundle::from_reader` on arbitrary bytes (the zip
//! central directory pre-scan, the zip reader, the manifest JSON, digests, the executable's ELF
//! checks); an accepted bundle is exploded into a fresh directory, which must then pass
//! `verify_exploded` and read back the same manifest, and exploding it again must reuse it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use paratime_node::bundle::{read_exploded_manifest, verify_exploded, Bundle};

/// Small enough to keep iterations fast, large enough for a bundle around `/bin/true`.
const MAX_SIZE: u64 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Ok(bundle) = Bundle::from_reader(std::io::Cursor::new(data.to_vec()), MAX_SIZE) else {
        return;
    };
    let dir = tempfile::tempdir().expect("fuzz harness: temporary directory");
    let exploded = bundle
        .explode(dir.path())
        .expect("an accepted bundle explodes into an empty directory");
    verify_exploded(&exploded, &bundle.manifest).expect("a freshly exploded bundle verifies");
    let manifest = read_exploded_manifest(&exploded).expect("the exploded manifest reads back");
    assert_eq!(manifest, bundle.manifest, "the exploded manifest differs");
    let again = bundle
        .explode(dir.path())
        .expect("exploding an already exploded bundle reuses it");
    assert_eq!(again, exploded);
});
