//! The raw ZIP central directory, read for what the zip crate hides: it keeps one entry per name,
//! so two entries with the same name (the last one winning, the manifest included) would pass
//! unseen. Only names are read; every offset and length is bounds-checked against the data.

use super::BundleError;
use std::collections::BTreeSet;
use std::io::{Read, Seek, SeekFrom};

const EOCD: u32 = 0x0605_4b50;
const ZIP64_LOCATOR: u32 = 0x0706_4b50;
const ZIP64_EOCD: u32 = 0x0606_4b50;
const CENTRAL: u32 = 0x0201_4b50;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn bad(what: &str) -> BundleError {
    BundleError::Zip(format!("central directory: {what}"))
}

fn read_at<R: Read + Seek>(r: &mut R, offset: u64, len: u64) -> Result<Vec<u8>, BundleError> {
    let mut buf = Vec::new();
    r.seek(SeekFrom::Start(offset))
        .map_err(|e| BundleError::Zip(e.to_string()))?;
    r.take(len)
        .read_to_end(&mut buf)
        .map_err(|e| BundleError::Zip(e.to_string()))?;
    if buf.len() as u64 != len {
        return Err(bad("truncated"));
    }
    Ok(buf)
}

/// Every entry name in the central directory, in order; a repeated name is refused.
pub(super) fn entry_names<R: Read + Seek>(
    r: &mut R,
    max_size: u64,
) -> Result<Vec<String>, BundleError> {
    let len = r
        .seek(SeekFrom::End(0))
        .map_err(|e| BundleError::Zip(e.to_string()))?;
    let tail_len = len.min(22 + 65_535);
    let tail = read_at(r, len - tail_len, tail_len)?;
    let pos = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&i| u32_at(&tail, i) == Some(EOCD))
        .ok_or_else(|| bad("no end-of-central-directory record"))?;
    let mut count = u64::from(u16_at(&tail, pos + 10).ok_or_else(|| bad("short record"))?);
    let mut size = u64::from(u32_at(&tail, pos + 12).ok_or_else(|| bad("short record"))?);
    let mut offset = u64::from(u32_at(&tail, pos + 16).ok_or_else(|| bad("short record"))?);
    if count == 0xFFFF || size == 0xFFFF_FFFF || offset == 0xFFFF_FFFF {
        let loc = pos
            .checked_sub(20)
            .filter(|l| u32_at(&tail, *l) == Some(ZIP64_LOCATOR))
            .ok_or_else(|| bad("ZIP64 locator missing"))?;
        let at = u64_at(&tail, loc + 8).ok_or_else(|| bad("short ZIP64 locator"))?;
        if at.checked_add(56).is_none_or(|end| end > len) {
            return Err(bad("ZIP64 record outside the file"));
        }
        let rec = read_at(r, at, 56)?;
        if u32_at(&rec, 0) != Some(ZIP64_EOCD) {
            return Err(bad("bad ZIP64 record"));
        }
        count = u64_at(&rec, 32).ok_or_else(|| bad("short ZIP64 record"))?;
        size = u64_at(&rec, 40).ok_or_else(|| bad("short ZIP64 record"))?;
        offset = u64_at(&rec, 48).ok_or_else(|| bad("short ZIP64 record"))?;
    }
    if size > max_size || offset.checked_add(size).is_none_or(|end| end > len) {
        return Err(bad("lies outside the file or over runtime.max_bundle_size"));
    }
    // An entry takes at least 46 bytes: a count the directory cannot hold is a lie.
    if count.saturating_mul(46) > size {
        return Err(bad("more entries than it can hold"));
    }
    let cd = read_at(r, offset, size)?;
    let mut names = Vec::new();
    let mut seen = BTreeSet::new();
    let mut at = 0usize;
    for _ in 0..count {
        if u32_at(&cd, at) != Some(CENTRAL) {
            return Err(bad("bad entry signature"));
        }
        let field = |o| {
            u16_at(&cd, at + o)
                .map(usize::from)
                .ok_or_else(|| bad("short entry"))
        };
        let (n, e, c) = (field(28)?, field(30)?, field(32)?);
        let name = cd
            .get(at + 46..at + 46 + n)
            .ok_or_else(|| bad("name outside the directory"))?;
        let name = String::from_utf8_lossy(name).into_owned();
        if !seen.insert(name.clone()) {
            return Err(BundleError::Duplicate(
                crate::logging::escape_controls(&name).into_owned(),
            ));
        }
        names.push(name);
        at += 46 + n + e + c;
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use std::io::Write;

    fn zip_with(names: &[&str]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for n in names {
            w.start_file(*n, zip::write::SimpleFileOptions::default())
                .expect("start");
            w.write_all(b"x").expect("write");
        }
        w.finish().expect("finish").into_inner()
    }

    #[test]
    fn names_are_read_in_order() {
        let z = zip_with(&["a", "b", "c"]);
        assert_eq!(
            entry_names(&mut Cursor::new(z), 1 << 20).expect("names"),
            ["a", "b", "c"]
        );
    }

    #[test]
    fn a_duplicate_name_is_refused() {
        // Rename "b" to "a" where the headers name it (local header +30, central entry +46).
        let mut z = zip_with(&["a", "b"]);
        let sig = |i: usize, at: usize, s: u32| i >= at && u32_at(&z, i - at) == Some(s);
        let pos: Vec<usize> = (0..z.len())
            .filter(|&i| z[i] == b'b' && (sig(i, 30, 0x0403_4b50) || sig(i, 46, CENTRAL)))
            .collect();
        assert_eq!(pos.len(), 2);
        for p in pos {
            z[p] = b'a';
        }
        match entry_names(&mut Cursor::new(z), 1 << 20) {
            Err(BundleError::Duplicate(n)) => assert_eq!(n, "a"),
            other => panic!("{other:?}"),
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1024)) {
            let _ = entry_names(&mut Cursor::new(bytes), 1 << 20);
        }
    }
}
