//! Keys and labels as bit strings, most significant bit first.

/// Bit `i` of `b` (MSB first); bits past the end are 0.
pub fn bit(b: &[u8], i: usize) -> bool {
    b.get(i / 8)
        .is_some_and(|byte| byte & (0x80 >> (i % 8)) != 0)
}

/// Bits `[from, from + len)` of `b`, left-aligned in `ceil(len / 8)` bytes, trailing bits zero.
pub fn extract(b: &[u8], from: usize, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len.div_ceil(8)];
    if from.is_multiple_of(8) {
        let start = from / 8;
        let n = out.len().min(b.len().saturating_sub(start));
        out[..n].copy_from_slice(&b[start..start + n]);
    } else {
        for i in 0..len {
            if bit(b, from + i) {
                out[i / 8] |= 0x80 >> (i % 8);
            }
        }
    }
    if !len.is_multiple_of(8) {
        if let Some(last) = out.last_mut() {
            *last &= 0xffu8 << (8 - len % 8);
        }
    }
    out
}

/// How many leading bits `key` (from bit `from`) and `label` (from bit 0) share, at most
/// `max` bits.
pub fn common_prefix(key: &[u8], from: usize, label: &[u8], max: usize) -> usize {
    let mut i = 0;
    while i < max {
        // A whole byte at a time while both are byte-aligned.
        if (from + i).is_multiple_of(8)
            && i.is_multiple_of(8)
            && i + 8 <= max
            && key.get((from + i) / 8) == label.get(i / 8)
        {
            i += 8;
            continue;
        }
        if bit(key, from + i) != bit(label, i) {
            return i;
        }
        i += 1;
    }
    max
}

/// `a` (`a_bits` bits) followed by `b` (`b_bits` bits).
pub fn concat(a: &[u8], a_bits: usize, b: &[u8], b_bits: usize) -> Vec<u8> {
    let mut out = extract(a, 0, a_bits);
    out.resize((a_bits + b_bits).div_ceil(8), 0);
    for i in 0..b_bits {
        if bit(b, i) {
            let j = a_bits + i;
            out[j / 8] |= 0x80 >> (j % 8);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_extract_and_concat() {
        let k = [0b1011_0011, 0b0101_1111];
        assert!(bit(&k, 0) && !bit(&k, 1) && bit(&k, 15) && !bit(&k, 16));
        assert_eq!(extract(&k, 0, 3), vec![0b1010_0000]);
        assert_eq!(extract(&k, 2, 9), vec![0b1100_1101, 0]);
        assert_eq!(extract(&k, 8, 8), vec![0b0101_1111]);
        assert_eq!(extract(&k, 0, 0), Vec::<u8>::new());
        assert_eq!(common_prefix(&k, 0, &[0b1011_0000], 8), 6);
        assert_eq!(common_prefix(&k, 4, &[0b0011_0101, 0b1000_0000], 12), 9);
        assert_eq!(common_prefix(&k, 0, &k, 16), 16);
        assert_eq!(
            concat(&[0b1010_0000], 3, &[0b1100_0000], 2),
            vec![0b1011_1000]
        );
        assert_eq!(
            concat(&[0b1111_1111], 8, &[0b0000_0001], 8),
            vec![0xff, 0b0000_0001]
        );
    }
}
