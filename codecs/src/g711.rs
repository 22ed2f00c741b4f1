//! ITU-T G.711 μ-law and A-law companding.
//!
//! Decoding is a lookup in a 256-entry table built at compile time by a
//! `const fn` from the standard's segment/mantissa formula, so there is no
//! start-up cost and no branch on the hot path. Encoding computes the segment
//! from the position of the highest set bit (`leading_zeros`) instead of a
//! linear search or a 16–64 KiB table: it is branch-light and cache-friendly.
//!
//! Bit-exact with the ITU-T G.191 reference (`g711.c`): negative inputs are
//! quantised from their ones' complement (`!x`), which is what makes the
//! quantiser symmetric around the decision thresholds. Decoded values are the
//! standard's 13/14-bit levels left-justified in 16 bits (μ-law ±32124,
//! A-law ±32256).
//!
//! Slice functions process `min(input.len(), output.len())` samples and return
//! that count, so a length mismatch never panics on the audio path.

/// μ-law bias (33 in the 14-bit domain, 132 = 0x84 once left-justified).
const ULAW_BIAS: i32 = 0x84;
/// Largest 14-bit magnitude μ-law can represent, after adding the bias.
const ULAW_CLIP: i32 = 0x1FFF;

/// Decodes one μ-law code with the G.711 formula. Used only to build the table.
const fn ulaw_decode_formula(code: u8) -> i16 {
    // Codes are transmitted inverted, so that an idle line (0xFF) has many
    // ones; undo that first.
    let u = !code;
    let mantissa = (u & 0x0F) as i32;
    let segment = ((u & 0x70) >> 4) as i32;
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << segment) - ULAW_BIAS;
    if u & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// Decodes one A-law code with the G.711 formula. Used only to build the table.
const fn alaw_decode_formula(code: u8) -> i16 {
    // Even bits are inverted on the line (XOR 0x55) for clock recovery.
    let a = code ^ 0x55;
    let mantissa = (a & 0x0F) as i32;
    let segment = ((a & 0x70) >> 4) as i32;
    // Segment 0 and 1 share a step of 16; from segment 2 on the step doubles
    // and an implicit leading one (0x100 after the shift) is added. The +8
    // reconstructs at the middle of the quantisation interval.
    let magnitude = match segment {
        0 => (mantissa << 4) + 8,
        _ => ((mantissa << 4) + 0x108) << (segment - 1),
    };
    // In A-law a set sign bit means positive.
    if a & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

const fn build_table(alaw: bool) -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = if alaw {
            alaw_decode_formula(i as u8)
        } else {
            ulaw_decode_formula(i as u8)
        };
        i += 1;
    }
    table
}

/// μ-law code → 16-bit linear sample.
pub static ULAW_TO_LINEAR: [i16; 256] = build_table(false);
/// A-law code → 16-bit linear sample.
pub static ALAW_TO_LINEAR: [i16; 256] = build_table(true);

/// Decodes one μ-law code.
#[inline]
pub fn ulaw_to_linear(code: u8) -> i16 {
    ULAW_TO_LINEAR[code as usize]
}

/// Decodes one A-law code.
#[inline]
pub fn alaw_to_linear(code: u8) -> i16 {
    ALAW_TO_LINEAR[code as usize]
}

/// Index of the highest set bit of a non-zero value.
#[inline]
fn high_bit(x: u32) -> u32 {
    31 - x.leading_zeros()
}

/// Encodes one 16-bit sample as μ-law.
///
/// Exactly the G.191 quantiser: the 14-bit magnitude (ones' complement for
/// negatives) plus the bias 33 is split into a 3-bit segment (highest set bit)
/// and the 4 bits below it; values past the top level clip to it.
#[inline]
pub fn linear_to_ulaw(sample: i16) -> u8 {
    let (magnitude, sign_mask) = if sample < 0 {
        (i32::from(!sample) >> 2, 0x7F)
    } else {
        (i32::from(sample) >> 2, 0xFF)
    };
    // magnitude + 33 >= 33 > 0, so high_bit is defined and >= 5.
    let biased = (magnitude + (ULAW_BIAS >> 2)).min(ULAW_CLIP) as u32;
    let segment = high_bit(biased) - 5;
    let mantissa = (biased >> (segment + 1)) & 0x0F;
    (((segment << 4) | mantissa) as u8) ^ sign_mask
}

/// Encodes one 16-bit sample as A-law.
///
/// Exactly the G.191 quantiser: the 12-bit magnitude (ones' complement for
/// negatives) keeps 4 mantissa bits below its highest set bit; segments 0
/// and 1 are linear.
#[inline]
pub fn linear_to_alaw(sample: i16) -> u8 {
    let (magnitude, sign) = if sample < 0 {
        ((i32::from(!sample) >> 4) as u32, 0x00)
    } else {
        ((i32::from(sample) >> 4) as u32, 0x80)
    };
    // magnitude <= 2047, so the segment is at most 7.
    let code = if magnitude < 16 {
        magnitude
    } else {
        let segment = high_bit(magnitude) - 3;
        (segment << 4) | ((magnitude >> (segment - 1)) & 0x0F)
    };
    ((code as u8) | sign) ^ 0x55
}

/// Decodes μ-law bytes; returns the number of samples written.
pub fn decode_ulaw(input: &[u8], output: &mut [i16]) -> usize {
    let n = input.len().min(output.len());
    for (o, &c) in output[..n].iter_mut().zip(&input[..n]) {
        *o = ulaw_to_linear(c);
    }
    n
}

/// Encodes samples as μ-law; returns the number of bytes written.
pub fn encode_ulaw(input: &[i16], output: &mut [u8]) -> usize {
    let n = input.len().min(output.len());
    for (o, &s) in output[..n].iter_mut().zip(&input[..n]) {
        *o = linear_to_ulaw(s);
    }
    n
}

/// Decodes A-law bytes; returns the number of samples written.
pub fn decode_alaw(input: &[u8], output: &mut [i16]) -> usize {
    let n = input.len().min(output.len());
    for (o, &c) in output[..n].iter_mut().zip(&input[..n]) {
        *o = alaw_to_linear(c);
    }
    n
}

/// Encodes samples as A-law; returns the number of bytes written.
pub fn encode_alaw(input: &[i16], output: &mut [u8]) -> usize {
    let n = input.len().min(output.len());
    for (o, &s) in output[..n].iter_mut().zip(&input[..n]) {
        *o = linear_to_alaw(s);
    }
    n
}

/// μ-law code of digital silence (positive zero).
pub const ULAW_SILENCE: u8 = 0xFF;
/// A-law code of digital silence (smallest positive level, +8).
pub const ALAW_SILENCE: u8 = 0xD5;

#[cfg(test)]
mod tests {
    use super::*;

    /// The μ-law segment (0..=7) of a code.
    fn ulaw_segment(code: u8) -> u32 {
        u32::from((!code & 0x70) >> 4)
    }

    fn alaw_segment(code: u8) -> u32 {
        u32::from(((code ^ 0x55) & 0x70) >> 4)
    }

    #[test]
    fn ulaw_reference_values() {
        // Values from the G.711 decoding rule / G.191 reference tables.
        let cases: [(u8, i16); 14] = [
            (0x00, -32124),
            (0x01, -31100),
            (0x0F, -16764),
            (0x10, -15996),
            (0x70, -120),
            (0x7E, -8),
            (0x7F, 0),
            (0x80, 32124),
            (0x81, 31100),
            (0x8F, 16764),
            (0xEF, 132),
            (0xF0, 120),
            (0xFE, 8),
            (0xFF, 0),
        ];
        for (code, value) in cases {
            assert_eq!(ulaw_to_linear(code), value, "code {code:#04x}");
        }
    }

    #[test]
    fn alaw_reference_values() {
        let cases: [(u8, i16); 14] = [
            (0x00, -5504),
            (0x01, -5248),
            (0x02, -6016),
            (0x03, -5760),
            (0x2A, -32256),
            (0x55, -8),
            (0x54, -24),
            (0x80, 5504),
            (0xAA, 32256),
            (0xD5, 8),
            (0xD4, 24),
            (0xC5, 264),
            (0xC4, 280),
            (0xAB, 31232),
        ];
        for (code, value) in cases {
            assert_eq!(alaw_to_linear(code), value, "code {code:#04x}");
        }
    }

    #[test]
    fn encode_reference_values() {
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_ulaw(-1), 0x7F);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(linear_to_ulaw(32124), 0x80);
        assert_eq!(linear_to_ulaw(-32124), 0x00);
        assert_eq!(linear_to_ulaw(8), 0xFE);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(linear_to_alaw(-1), 0x55);
        assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
        assert_eq!(linear_to_alaw(8), 0xD5);
        assert_eq!(linear_to_alaw(16), 0xD4);
        assert_eq!(ULAW_SILENCE, linear_to_ulaw(0));
        assert_eq!(ALAW_SILENCE, linear_to_alaw(0));
    }

    #[test]
    fn tables_match_formula() {
        for c in 0..=255u8 {
            assert_eq!(ULAW_TO_LINEAR[c as usize], ulaw_decode_formula(c));
            assert_eq!(ALAW_TO_LINEAR[c as usize], alaw_decode_formula(c));
        }
    }

    #[test]
    fn ulaw_code_round_trip() {
        for c in 0..=255u8 {
            let v = ulaw_to_linear(c);
            let back = linear_to_ulaw(v);
            // Negative zero is the only code not reproduced: it canonicalises
            // to positive zero.
            let expect = if c == 0x7F { 0xFF } else { c };
            assert_eq!(back, expect, "code {c:#04x} -> {v}");
            assert_eq!(ulaw_to_linear(back), v);
        }
    }

    #[test]
    fn alaw_code_round_trip() {
        // A-law has no negative zero: every code survives.
        for c in 0..=255u8 {
            let v = alaw_to_linear(c);
            assert_eq!(linear_to_alaw(v), c, "code {c:#04x} -> {v}");
        }
    }

    #[test]
    fn quantisation_is_monotonic_and_bounded() {
        let mut last_u = i16::MIN;
        let mut last_a = i16::MIN;
        for x in i16::MIN..=i16::MAX {
            let cu = linear_to_ulaw(x);
            let u = ulaw_to_linear(cu);
            assert!(u >= last_u, "μ-law not monotonic at {x}");
            last_u = u;
            // Error at most one step of the segment (half a step inside the
            // range, a bit more at the clipping ends).
            let step = 8i32 << ulaw_segment(cu);
            assert!(
                (i32::from(u) - i32::from(x)).abs() <= step,
                "μ-law error too big at {x}: {u}"
            );

            let ca = linear_to_alaw(x);
            let a = alaw_to_linear(ca);
            assert!(a >= last_a, "A-law not monotonic at {x}");
            last_a = a;
            let step = 16i32 << alaw_segment(ca).saturating_sub(1);
            assert!(
                (i32::from(a) - i32::from(x)).abs() <= step,
                "A-law error too big at {x}: {a}"
            );
        }
    }

    #[test]
    fn decode_tables_are_monotonic_within_sign() {
        // Positive μ-law codes 0xFF down to 0x80 decode to increasing values;
        // negative codes 0x7F down to 0x00 to decreasing ones.
        for c in 0x81..=0xFFu8 {
            assert!(ulaw_to_linear(c - 1) > ulaw_to_linear(c));
        }
        for c in 0x01..=0x7Fu8 {
            assert!(ulaw_to_linear(c - 1) < ulaw_to_linear(c));
        }
        // Symmetry.
        for c in 0..=0x7Fu8 {
            assert_eq!(ulaw_to_linear(c), -ulaw_to_linear(c | 0x80));
            assert_eq!(alaw_to_linear(c), -alaw_to_linear(c | 0x80));
        }
    }

    #[test]
    fn segment_boundaries() {
        // μ-law: the first level of each segment is (132 << s) - 132 and the
        // last is (252 << s) - 132 (mantissa 0 and 15).
        for s in 0..8u8 {
            let first = !(s << 4) | 0x80; // positive, mantissa 0
            let last = !((s << 4) | 0x0F) | 0x80;
            assert_eq!(i32::from(ulaw_to_linear(first)), (132 << s) - 132);
            assert_eq!(i32::from(ulaw_to_linear(last)), (252 << s) - 132);
        }
        // Across a boundary the gap is half the old step plus half the new
        // one: (264 - 252) << (s - 1).
        for s in 1..8u8 {
            let prev_last = ulaw_to_linear(!(((s - 1) << 4) | 0x0F) | 0x80);
            let first = ulaw_to_linear(!(s << 4) | 0x80);
            assert_eq!(i32::from(first - prev_last), 12 << (s - 1));
        }
        // A-law: segment s >= 1 starts at 264 << (s-1) (mantissa 0).
        for s in 1..8u8 {
            let code = ((s << 4) | 0x80) ^ 0x55;
            assert_eq!(i32::from(alaw_to_linear(code)), 264 << (s - 1));
        }
        // Encoder thresholds: 12-bit magnitude 31 is the top of segment 1,
        // 32 the bottom of segment 2.
        assert_eq!(alaw_segment(linear_to_alaw(31 << 4)), 1);
        assert_eq!(alaw_segment(linear_to_alaw(32 << 4)), 2);
        // μ-law: biased magnitude 63 is segment 0, 64 segment 1, i.e.
        // 14-bit magnitude 30 / 31.
        assert_eq!(ulaw_segment(linear_to_ulaw(30 << 2)), 0);
        assert_eq!(ulaw_segment(linear_to_ulaw(31 << 2)), 1);
    }

    #[test]
    fn slices_process_min_len() {
        let pcm = [0i16, 1000, -1000, 32767, -32768];
        let mut codes = [0u8; 3];
        assert_eq!(encode_ulaw(&pcm, &mut codes), 3);
        let mut out = [0i16; 10];
        assert_eq!(decode_ulaw(&codes, &mut out), 3);
        assert_eq!(out[0], 0);
        assert!((out[1] - 1000).abs() <= 32);
        assert!((out[2] + 1000).abs() <= 32);
        assert_eq!(&out[3..], &[0; 7]);

        let mut codes = [0u8; 8];
        assert_eq!(encode_alaw(&pcm, &mut codes), 5);
        let mut out = [0i16; 2];
        assert_eq!(decode_alaw(&codes, &mut out), 2);
        assert_eq!(out, [8, 1008]);
        assert_eq!(decode_alaw(&[], &mut out), 0);
        assert_eq!(encode_alaw(&pcm, &mut []), 0);
    }
}
