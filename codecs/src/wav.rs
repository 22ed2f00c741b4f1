//! WAV (RIFF/WAVE) bytes in and out.
//!
//! Parsing works on a byte slice: reading the file is the caller's job, which
//! keeps this crate free of I/O and lets tests build files in memory. The
//! parser is lenient where real files are sloppy and strict where guessing
//! would produce noise:
//!
//! - unknown chunks (`LIST`, `fact`, `cue `, …) are skipped, including the
//!   pad byte that follows an odd-sized chunk;
//! - a `data` chunk whose size is `0xFFFFFFFF` or runs past the end of the
//!   buffer (a WAV captured from a stream, or cut short) yields the samples
//!   that are present, whole frames only;
//! - a missing or malformed `fmt `, a missing `data`, or a format other than
//!   those below is a [`WavError`], never a panic.
//!
//! Supported: PCM 8-bit (unsigned), 16, 24 and 32-bit; IEEE float 32/64;
//! A-law (format 6) and μ-law (format 7); and `WAVE_FORMAT_EXTENSIBLE`
//! wrapping any of them. Every format is converted to `i16`, Parley's
//! sample type: wider integers keep their top 16 bits, floats are rounded
//! and saturated.

use crate::convert::{downmix, sample_to_i16};
use crate::g711::{alaw_to_linear, ulaw_to_linear};

const FORMAT_PCM: u16 = 1;
const FORMAT_IEEE_FLOAT: u16 = 3;
const FORMAT_ALAW: u16 = 6;
const FORMAT_MULAW: u16 = 7;
const FORMAT_EXTENSIBLE: u16 = 0xFFFE;

/// Sample encoding of the `data` chunk, as found in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WavFormat {
    /// 8-bit unsigned PCM (128 = silence).
    Pcm8,
    /// 16-bit signed PCM.
    Pcm16,
    /// 24-bit signed PCM, packed in 3 bytes.
    Pcm24,
    /// 32-bit signed PCM.
    Pcm32,
    /// 32-bit IEEE float, ±1.0 full scale.
    Float32,
    /// 64-bit IEEE float, ±1.0 full scale.
    Float64,
    /// G.711 A-law.
    ALaw,
    /// G.711 μ-law.
    MuLaw,
}

impl WavFormat {
    /// Bytes per sample of one channel.
    pub const fn bytes_per_sample(self) -> usize {
        match self {
            WavFormat::Pcm8 | WavFormat::ALaw | WavFormat::MuLaw => 1,
            WavFormat::Pcm16 => 2,
            WavFormat::Pcm24 => 3,
            WavFormat::Pcm32 | WavFormat::Float32 => 4,
            WavFormat::Float64 => 8,
        }
    }

    fn from_tag(tag: u16, bits: u16) -> Option<Self> {
        Some(match (tag, bits) {
            (FORMAT_PCM, 8) => WavFormat::Pcm8,
            (FORMAT_PCM, 16) => WavFormat::Pcm16,
            (FORMAT_PCM, 24) => WavFormat::Pcm24,
            (FORMAT_PCM, 32) => WavFormat::Pcm32,
            (FORMAT_IEEE_FLOAT, 32) => WavFormat::Float32,
            (FORMAT_IEEE_FLOAT, 64) => WavFormat::Float64,
            (FORMAT_ALAW, 8) => WavFormat::ALaw,
            (FORMAT_MULAW, 8) => WavFormat::MuLaw,
            _ => return None,
        })
    }
}

/// Why a WAV could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WavError {
    /// The bytes do not start with a `RIFF` header.
    #[error("not a RIFF file")]
    NotRiff,
    /// A RIFF file, but not of form `WAVE`.
    #[error("RIFF file is not WAVE")]
    NotWave,
    /// No `fmt ` chunk before the end of the file.
    #[error("missing fmt chunk")]
    MissingFmt,
    /// No `data` chunk.
    #[error("missing data chunk")]
    MissingData,
    /// The `fmt ` chunk is too short or inconsistent.
    #[error("malformed fmt chunk: {0}")]
    BadFmt(&'static str),
    /// A format tag / bit depth this parser does not decode.
    #[error("unsupported WAV format: tag {format_tag:#06x}, {bits} bits")]
    Unsupported {
        /// `wFormatTag` (or the sub-format of an extensible header).
        format_tag: u16,
        /// `wBitsPerSample`.
        bits: u16,
    },
}

/// A decoded WAV file.
#[derive(Clone, Debug, PartialEq)]
pub struct Wav {
    /// Sample rate in hertz (any rate; resampling is the caller's choice).
    pub sample_rate: u32,
    /// Number of interleaved channels (≥ 1).
    pub channels: u16,
    /// Interleaved samples, converted to `i16`.
    pub samples: Vec<i16>,
    /// The encoding the file used.
    pub format: WavFormat,
}

impl Wav {
    /// Samples per channel.
    pub fn frames(&self) -> usize {
        self.samples.len() / usize::from(self.channels.max(1))
    }

    /// Duration in seconds.
    pub fn duration_secs(&self) -> f64 {
        self.frames() as f64 / f64::from(self.sample_rate.max(1))
    }

    /// The audio as mono, averaging the channels of each frame.
    pub fn to_mono(&self) -> Vec<i16> {
        if self.channels <= 1 {
            return self.samples.clone();
        }
        let mut mono = vec![0; self.frames()];
        downmix(&self.samples, usize::from(self.channels), &mut mono);
        mono
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

struct Fmt {
    format: WavFormat,
    channels: u16,
    sample_rate: u32,
}

fn parse_fmt(body: &[u8]) -> Result<Fmt, WavError> {
    let short = WavError::BadFmt("shorter than 16 bytes");
    let mut tag = u16_at(body, 0).ok_or(short.clone())?;
    let channels = u16_at(body, 2).ok_or(short.clone())?;
    let sample_rate = u32_at(body, 4).ok_or(short.clone())?;
    let bits = u16_at(body, 14).ok_or(short)?;
    if tag == FORMAT_EXTENSIBLE {
        // cbSize(2) validBits(2) channelMask(4) then the sub-format GUID,
        // whose first two bytes are the ordinary format tag.
        tag = u16_at(body, 24).ok_or(WavError::BadFmt("extensible header too short"))?;
    }
    if channels == 0 {
        return Err(WavError::BadFmt("zero channels"));
    }
    if sample_rate == 0 {
        return Err(WavError::BadFmt("zero sample rate"));
    }
    let format = WavFormat::from_tag(tag, bits).ok_or(WavError::Unsupported {
        format_tag: tag,
        bits,
    })?;
    Ok(Fmt {
        format,
        channels,
        sample_rate,
    })
}

/// Parses a WAV file held in memory.
pub fn parse(bytes: &[u8]) -> Result<Wav, WavError> {
    if bytes.get(0..4) != Some(b"RIFF") {
        return Err(WavError::NotRiff);
    }
    if bytes.get(8..12) != Some(b"WAVE") {
        return Err(WavError::NotWave);
    }
    // The RIFF size is ignored: streamed files carry 0 or 0xFFFFFFFF there.
    let mut fmt = None;
    let mut data: Option<&[u8]> = None;
    let mut pos = 12usize;
    while let (Some(id), Some(size)) = (bytes.get(pos..pos + 4), u32_at(bytes, pos + 4)) {
        let start = pos + 8;
        // A chunk running past the end (streamed or truncated) holds what is left.
        let end = start.saturating_add(size as usize).min(bytes.len());
        let body = &bytes[start..end];
        match id {
            b"fmt " => fmt = Some(parse_fmt(body)?),
            b"data" if data.is_none() => data = Some(body),
            _ => {}
        }
        if fmt.is_some() && data.is_some() {
            break;
        }
        // Chunks are word aligned: an odd size is followed by a pad byte.
        pos = match start.checked_add(size as usize + (size as usize & 1)) {
            Some(next) => next,
            None => break,
        };
    }
    let fmt = fmt.ok_or(WavError::MissingFmt)?;
    let data = data.ok_or(WavError::MissingData)?;

    let width = fmt.format.bytes_per_sample();
    let frame = width * usize::from(fmt.channels);
    // Whole frames only: a torn last frame would shift the channels.
    let data = &data[..data.len() / frame * frame];
    let samples: Vec<i16> = match fmt.format {
        WavFormat::Pcm8 => data.iter().map(|&b| (i16::from(b) - 128) << 8).collect(),
        WavFormat::Pcm16 => data
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect(),
        // Keep the top 16 bits; the arithmetic shift floors, as a DAC would truncate.
        WavFormat::Pcm24 => data
            .chunks_exact(3)
            .map(|c| (i32::from_le_bytes([0, c[0], c[1], c[2]]) >> 16) as i16)
            .collect(),
        WavFormat::Pcm32 => data
            .chunks_exact(4)
            .map(|c| (i32::from_le_bytes([c[0], c[1], c[2], c[3]]) >> 16) as i16)
            .collect(),
        WavFormat::Float32 => data
            .chunks_exact(4)
            .map(|c| sample_to_i16(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        WavFormat::Float64 => data
            .chunks_exact(8)
            .map(|c| {
                let v = f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
                sample_to_i16(v as f32)
            })
            .collect(),
        WavFormat::ALaw => data.iter().map(|&b| alaw_to_linear(b)).collect(),
        WavFormat::MuLaw => data.iter().map(|&b| ulaw_to_linear(b)).collect(),
    };
    Ok(Wav {
        sample_rate: fmt.sample_rate,
        channels: fmt.channels,
        samples,
        format: fmt.format,
    })
}

/// The 44-byte header of a canonical 16-bit PCM WAV whose data chunk is
/// `data_len` bytes.
///
/// For streaming, write this first and the samples after it. When the
/// length is not known up front, pass `u32::MAX`: [`parse`] (and most
/// players) then read to the end of the file; or seek back and rewrite the
/// header once the stream ends.
pub fn pcm16_header(sample_rate: u32, channels: u16, data_len: u32) -> [u8; 44] {
    let block_align = channels.saturating_mul(2);
    let byte_rate = sample_rate.saturating_mul(u32::from(block_align));
    let mut h = [0u8; 44];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&data_len.saturating_add(36).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&FORMAT_PCM.to_le_bytes());
    h[22..24].copy_from_slice(&channels.to_le_bytes());
    h[24..28].copy_from_slice(&sample_rate.to_le_bytes());
    h[28..32].copy_from_slice(&byte_rate.to_le_bytes());
    h[32..34].copy_from_slice(&block_align.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_len.to_le_bytes());
    h
}

/// A complete 16-bit PCM WAV file of interleaved `samples`.
///
/// Data beyond 4 GiB cannot be described by a RIFF header; its length is
/// then recorded as `u32::MAX` (read-to-end), like a streamed file.
pub fn write_pcm16(sample_rate: u32, channels: u16, samples: &[i16]) -> Vec<u8> {
    let data_len = u32::try_from(samples.len() * 2).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(&pcm16_header(sample_rate, channels, data_len));
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `fmt ` chunk body.
    fn fmt_body(tag: u16, channels: u16, rate: u32, bits: u16, extensible: bool) -> Vec<u8> {
        let align = channels * bits / 8;
        let mut f = Vec::new();
        f.extend_from_slice(&(if extensible { FORMAT_EXTENSIBLE } else { tag }).to_le_bytes());
        f.extend_from_slice(&channels.to_le_bytes());
        f.extend_from_slice(&rate.to_le_bytes());
        f.extend_from_slice(&(rate * u32::from(align)).to_le_bytes());
        f.extend_from_slice(&align.to_le_bytes());
        f.extend_from_slice(&bits.to_le_bytes());
        if extensible {
            f.extend_from_slice(&22u16.to_le_bytes()); // cbSize
            f.extend_from_slice(&bits.to_le_bytes()); // valid bits
            f.extend_from_slice(&0u32.to_le_bytes()); // channel mask
            f.extend_from_slice(&tag.to_le_bytes()); // GUID starts with the tag
            f.extend_from_slice(&[
                0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
            ]);
        }
        f
    }

    fn chunk(id: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut c = id.to_vec();
        c.extend_from_slice(&(body.len() as u32).to_le_bytes());
        c.extend_from_slice(body);
        if body.len() % 2 == 1 {
            c.push(0);
        }
        c
    }

    fn riff(chunks: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = chunks.concat();
        let mut f = b"RIFF".to_vec();
        f.extend_from_slice(&(body.len() as u32 + 4).to_le_bytes());
        f.extend_from_slice(b"WAVE");
        f.extend_from_slice(&body);
        f
    }

    fn simple(tag: u16, channels: u16, bits: u16, data: &[u8], extensible: bool) -> Vec<u8> {
        riff(&[
            chunk(b"fmt ", &fmt_body(tag, channels, 8000, bits, extensible)),
            chunk(b"data", data),
        ])
    }

    #[test]
    fn pcm16_round_trip() {
        let samples: Vec<i16> = (0..1000)
            .map(|i| ((i * 97) % 65536 - 32768) as i16)
            .collect();
        let bytes = write_pcm16(16_000, 2, &samples);
        assert_eq!(bytes.len(), 44 + 2000);
        assert_eq!(&bytes[..44], &pcm16_header(16_000, 2, 2000));
        let wav = parse(&bytes).unwrap();
        assert_eq!(wav.sample_rate, 16_000);
        assert_eq!(wav.channels, 2);
        assert_eq!(wav.format, WavFormat::Pcm16);
        assert_eq!(wav.samples, samples);
        assert_eq!(wav.frames(), 500);
        assert!((wav.duration_secs() - 500.0 / 16_000.0).abs() < 1e-12);
    }

    #[test]
    fn header_fields() {
        let h = pcm16_header(48_000, 1, 960);
        assert_eq!(u32_at(&h, 4), Some(996));
        assert_eq!(u32_at(&h, 28), Some(96_000));
        assert_eq!(u16_at(&h, 32), Some(2));
        assert_eq!(u32_at(&h, 40), Some(960));
        // Unknown length saturates instead of wrapping.
        assert_eq!(u32_at(&pcm16_header(8000, 1, u32::MAX), 4), Some(u32::MAX));
    }

    #[test]
    fn each_format_decodes() {
        let check = |tag, bits, data: &[u8], format, expect: &[i16]| {
            for extensible in [false, true] {
                let wav = parse(&simple(tag, 1, bits, data, extensible)).unwrap();
                assert_eq!(wav.format, format);
                assert_eq!(wav.samples, expect, "{format:?} extensible={extensible}");
            }
        };
        check(
            1,
            8,
            &[0, 128, 255, 64],
            WavFormat::Pcm8,
            &[-32768, 0, 32512, -16384],
        );
        check(
            1,
            16,
            &[0x00, 0x80, 0xFF, 0x7F, 0x01, 0x00],
            WavFormat::Pcm16,
            &[-32768, 32767, 1],
        );
        check(
            1,
            24,
            &[
                0x00, 0x00, 0x80, 0xFF, 0xFF, 0x7F, 0x00, 0x34, 0x12, 0xFF, 0xFF, 0xFF,
            ],
            WavFormat::Pcm24,
            &[-32768, 32767, 0x1234, -1],
        );
        check(
            1,
            32,
            &[
                0, 0, 0, 0x80, 0xFF, 0xFF, 0xFF, 0x7F, 0x00, 0x00, 0x34, 0x12,
            ],
            WavFormat::Pcm32,
            &[-32768, 32767, 0x1234],
        );
        let f32s: Vec<u8> = [0.5f32, -1.0, 2.0, 0.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        check(3, 32, &f32s, WavFormat::Float32, &[16384, -32768, 32767, 0]);
        let f64s: Vec<u8> = [-0.25f64, 1.5]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        check(3, 64, &f64s, WavFormat::Float64, &[-8192, 32767]);
        check(
            6,
            8,
            &[0xD5, 0xAA, 0x2A],
            WavFormat::ALaw,
            &[8, 32256, -32256],
        );
        check(
            7,
            8,
            &[0xFF, 0x80, 0x00],
            WavFormat::MuLaw,
            &[0, 32124, -32124],
        );
    }

    #[test]
    fn skips_unknown_chunks_and_padding() {
        let bytes = riff(&[
            chunk(b"LIST", b"INFOISFT\x05\x00\x00\x00test\x00"), // odd size
            chunk(b"fmt ", &fmt_body(1, 2, 44_100, 16, false)),
            chunk(b"fact", &[1, 2, 3]), // odd size, padded
            chunk(b"data", &[1, 0, 2, 0, 3, 0, 4, 0]),
            chunk(b"LIST", b"trailing"),
        ]);
        let wav = parse(&bytes).unwrap();
        assert_eq!(wav.sample_rate, 44_100);
        assert_eq!(wav.samples, [1, 2, 3, 4]);
        assert_eq!(wav.to_mono(), [1, 3]);
    }

    #[test]
    fn fmt_after_data_is_found() {
        let bytes = riff(&[
            chunk(b"data", &[5, 0, 6, 0]),
            chunk(b"fmt ", &fmt_body(1, 1, 8000, 16, false)),
        ]);
        assert_eq!(parse(&bytes).unwrap().samples, [5, 6]);
    }

    #[test]
    fn streamed_and_truncated_data() {
        // data size 0xFFFFFFFF: read to the end.
        let mut bytes = pcm16_header(8000, 1, u32::MAX).to_vec();
        bytes.extend_from_slice(&[1, 0, 2, 0, 3]);
        let wav = parse(&bytes).unwrap();
        assert_eq!(wav.samples, [1, 2], "torn last sample dropped");
        // Declared longer than present.
        let mut bytes = pcm16_header(8000, 2, 1000).to_vec();
        bytes.extend_from_slice(&[1, 0, 2, 0, 3, 0]);
        let wav = parse(&bytes).unwrap();
        assert_eq!(wav.samples, [1, 2], "torn last stereo frame dropped");
        // Empty data.
        let wav = parse(&pcm16_header(8000, 1, 0)).unwrap();
        assert!(wav.samples.is_empty());
        assert_eq!(wav.to_mono(), Vec::<i16>::new());
    }

    #[test]
    fn clear_errors() {
        assert_eq!(parse(b""), Err(WavError::NotRiff));
        assert_eq!(parse(b"RIFX\0\0\0\0WAVE"), Err(WavError::NotRiff));
        assert_eq!(parse(b"RIFF\0\0\0\0AVI "), Err(WavError::NotWave));
        assert_eq!(parse(b"RIFF\0\0\0\0WAVE"), Err(WavError::MissingFmt));
        assert_eq!(
            parse(&riff(&[chunk(b"data", &[0, 0])])),
            Err(WavError::MissingFmt)
        );
        assert_eq!(
            parse(&riff(&[chunk(b"fmt ", &fmt_body(1, 1, 8000, 16, false))])),
            Err(WavError::MissingData)
        );
        assert_eq!(
            parse(&simple(2, 1, 4, &[0; 4], false)),
            Err(WavError::Unsupported {
                format_tag: 2,
                bits: 4
            })
        );
        assert_eq!(
            parse(&simple(1, 1, 12, &[0; 4], true)),
            Err(WavError::Unsupported {
                format_tag: 1,
                bits: 12
            })
        );
        assert!(matches!(
            parse(&simple(1, 0, 16, &[0; 4], false)),
            Err(WavError::BadFmt(_))
        ));
        assert!(matches!(
            parse(&riff(&[chunk(b"fmt ", &[1, 0, 1, 0]), chunk(b"data", &[])])),
            Err(WavError::BadFmt(_))
        ));
        let mut ext = fmt_body(1, 1, 8000, 16, true);
        ext.truncate(20);
        assert!(matches!(
            parse(&riff(&[chunk(b"fmt ", &ext), chunk(b"data", &[])])),
            Err(WavError::BadFmt(_))
        ));
        assert_eq!(WavError::NotRiff.to_string(), "not a RIFF file");
        assert!(WavError::Unsupported {
            format_tag: 0x55,
            bits: 0
        }
        .to_string()
        .contains("0x0055"));
    }

    #[test]
    fn malformed_input_never_panics() {
        let mut bytes = riff(&[
            chunk(b"LIST", b"abc"),
            chunk(b"fmt ", &fmt_body(3, 2, 8000, 32, true)),
            chunk(b"data", &[0x11; 64]),
        ]);
        for len in 0..=bytes.len() {
            let _ = parse(&bytes[..len]);
        }
        // Huge chunk sizes and corrupted bytes everywhere.
        for i in 0..bytes.len() {
            let orig = bytes[i];
            for v in [0x00, 0x01, 0x7F, 0x80, 0xFF] {
                bytes[i] = v;
                let _ = parse(&bytes);
            }
            bytes[i] = orig;
        }
        assert!(parse(&bytes).is_ok());
    }

    #[test]
    fn to_mono_averages() {
        let wav = Wav {
            sample_rate: 8000,
            channels: 3,
            samples: vec![3, 6, 9, -30, 0, 0],
            format: WavFormat::Pcm16,
        };
        assert_eq!(wav.to_mono(), [6, -10]);
    }
}
