//! Sample-format and channel conversion.
//!
//! Plain loops on purpose: they auto-vectorise, need no extra dependency,
//! and make the rounding and saturation rules explicit. Slice functions
//! process `min(len)` of their arguments and return how many output samples
//! they wrote, so a length mismatch is never a panic on the audio path.

/// Scale between `i16` and `f32`: full scale is ±1.0 with −32768 ↦ −1.0.
///
/// Dividing by 32768 (not 32767) makes the mapping exact and symmetric in
/// the sense that every `i16` survives `f32` and back unchanged.
const SCALE: f32 = 32768.0;

/// One sample, `i16` → `f32` in [−1.0, 1.0).
#[inline]
pub fn sample_to_f32(s: i16) -> f32 {
    f32::from(s) / SCALE
}

/// One sample, `f32` → `i16`, rounding to nearest and saturating.
///
/// Saturation (not wrap-around) matters because resampler and codec output
/// routinely overshoots ±1.0 slightly on loud input; wrapping would turn that
/// into a full-scale click. NaN maps to 0.
#[inline]
pub fn sample_to_i16(x: f32) -> i16 {
    // `as` from float saturates at the integer bounds and maps NaN to 0.
    (x * SCALE).round() as i16
}

/// Converts `input` to `f32`; returns the number of samples written.
pub fn i16_to_f32(input: &[i16], output: &mut [f32]) -> usize {
    let n = input.len().min(output.len());
    for (o, &i) in output[..n].iter_mut().zip(&input[..n]) {
        *o = sample_to_f32(i);
    }
    n
}

/// Converts `input` to `i16` (rounded, saturating); returns the number of samples written.
pub fn f32_to_i16(input: &[f32], output: &mut [i16]) -> usize {
    let n = input.len().min(output.len());
    for (o, &i) in output[..n].iter_mut().zip(&input[..n]) {
        *o = sample_to_i16(i);
    }
    n
}

/// Averages interleaved stereo `input` (L, R, L, R, …) into mono `output`.
///
/// Averaging rather than summing keeps the result in range without
/// saturation; a trailing odd sample (half a frame) is ignored. Returns the
/// number of mono samples written: `min(input.len() / 2, output.len())`.
pub fn downmix_stereo(input: &[i16], output: &mut [i16]) -> usize {
    let n = (input.len() / 2).min(output.len());
    for (o, lr) in output[..n].iter_mut().zip(input.chunks_exact(2)) {
        // i32 sum cannot overflow; division truncates toward zero, which is
        // symmetric for positive and negative signals.
        *o = ((i32::from(lr[0]) + i32::from(lr[1])) / 2) as i16;
    }
    n
}

/// Duplicates mono `input` into interleaved stereo `output`.
///
/// Returns the number of mono samples consumed (= stereo frames written):
/// `min(input.len(), output.len() / 2)`.
pub fn upmix_mono(input: &[i16], output: &mut [i16]) -> usize {
    let n = input.len().min(output.len() / 2);
    for (o, &s) in output.chunks_exact_mut(2).zip(&input[..n]) {
        o[0] = s;
        o[1] = s;
    }
    n
}

/// Averages `channels` interleaved channels into mono; returns mono samples written.
///
/// The general form of [`downmix_stereo`] for WAV files with any channel
/// count. `channels == 0` writes nothing.
pub fn downmix(input: &[i16], channels: usize, output: &mut [i16]) -> usize {
    if channels == 0 {
        return 0;
    }
    let n = (input.len() / channels).min(output.len());
    for (o, frame) in output[..n].iter_mut().zip(input.chunks_exact(channels)) {
        let sum: i64 = frame.iter().map(|&s| i64::from(s)).sum();
        *o = (sum / channels as i64) as i16;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn i16_f32_round_trip_is_exact_for_all_values() {
        for s in i16::MIN..=i16::MAX {
            assert_eq!(sample_to_i16(sample_to_f32(s)), s);
        }
        assert_eq!(sample_to_f32(i16::MIN), -1.0);
        assert_eq!(sample_to_f32(0), 0.0);
        assert!(sample_to_f32(i16::MAX) < 1.0);
    }

    #[test]
    fn f32_to_i16_saturates_and_rounds() {
        assert_eq!(sample_to_i16(1.0), i16::MAX);
        assert_eq!(sample_to_i16(2.5), i16::MAX);
        assert_eq!(sample_to_i16(-1.0), i16::MIN);
        assert_eq!(sample_to_i16(-7.0), i16::MIN);
        assert_eq!(sample_to_i16(f32::INFINITY), i16::MAX);
        assert_eq!(sample_to_i16(f32::NEG_INFINITY), i16::MIN);
        assert_eq!(sample_to_i16(f32::NAN), 0);
        // 0.6 / 32768 rounds up to 1, 0.4 / 32768 down to 0.
        assert_eq!(sample_to_i16(0.6 / 32768.0), 1);
        assert_eq!(sample_to_i16(0.4 / 32768.0), 0);
        assert_eq!(sample_to_i16(-0.6 / 32768.0), -1);
    }

    #[test]
    fn slices_process_min_len() {
        let input = [0i16, 16384, -16384, 32767];
        let mut f = [9.0f32; 3];
        assert_eq!(i16_to_f32(&input, &mut f), 3);
        assert_eq!(f, [0.0, 0.5, -0.5]);
        let mut back = [0i16; 8];
        assert_eq!(f32_to_i16(&f, &mut back), 3);
        assert_eq!(&back[..3], &input[..3]);
        assert_eq!(i16_to_f32(&[], &mut f), 0);
    }

    #[test]
    fn stereo_mono() {
        let stereo = [100i16, 200, -32768, -32768, 32767, 32767, 1, -2, 5];
        let mut mono = [0i16; 8];
        assert_eq!(downmix_stereo(&stereo, &mut mono), 4);
        assert_eq!(&mono[..4], &[150, -32768, 32767, 0]);
        let mut short = [0i16; 2];
        assert_eq!(downmix_stereo(&stereo, &mut short), 2);

        let mut st = [0i16; 7];
        assert_eq!(upmix_mono(&[1, 2, 3, 4, 5], &mut st), 3);
        assert_eq!(&st[..6], &[1, 1, 2, 2, 3, 3]);
        assert_eq!(st[6], 0);

        // Up then down is the identity.
        let m: Vec<i16> = (-50..50).map(|x| x * 300).collect();
        let mut s = vec![0; 200];
        upmix_mono(&m, &mut s);
        let mut d = vec![0; 100];
        downmix_stereo(&s, &mut d);
        assert_eq!(d, m);
    }

    #[test]
    fn downmix_any_channels() {
        let three = [3i16, 6, 9, -3, -6, -9, 1];
        let mut out = [0i16; 4];
        assert_eq!(downmix(&three, 3, &mut out), 2);
        assert_eq!(&out[..2], &[6, -6]);
        assert_eq!(downmix(&three, 0, &mut out), 0);
        assert_eq!(downmix(&three, 1, &mut out), 4);
        assert_eq!(out, [3, 6, 9, -3]);
    }
}
