//! Opus at 48 kHz in 20 ms frames, wrapping libopus through the `opus` crate.
//!
//! Parley always runs Opus at 48 kHz (its native rate, so libopus does no
//! internal resampling) with 20 ms frames (one packet per engine frame, the
//! usual WebRTC/RTP packetisation). Fixing both here turns most misuse into a
//! cheap length check with a clear [`CodecError::FrameSize`] instead of a
//! libopus `BAD_ARG`.
//!
//! libopus allocates its state once in `*_create`; encoding and decoding
//! work on caller-provided buffers, so the per-frame calls do not allocate.

use crate::error::{CodecError, Result};
use crate::frame::SampleRate;

/// Opus's sample rate in Parley.
pub const OPUS_RATE: SampleRate = SampleRate::Hz48000;
/// Frame duration in milliseconds.
pub const OPUS_FRAME_MS: u32 = 20;
/// Samples per channel in one 20 ms frame at 48 kHz.
pub const OPUS_FRAME_SAMPLES: usize = OPUS_RATE.samples_in(OPUS_FRAME_MS);
/// Largest packet libopus produces for one frame (RFC 6716, §3.2.1), so an
/// output buffer of this size never fails with "buffer too small".
pub const MAX_PACKET_BYTES: usize = 1275;
/// Default encoder complexity: 9 of 10 keeps nearly all of the quality of 10
/// for noticeably less CPU, the usual choice for real-time voice.
pub const DEFAULT_COMPLEXITY: u8 = 9;
/// Default bitrate per channel (bits/s): transparent wideband/fullband speech.
pub const DEFAULT_BITRATE_PER_CHANNEL: u32 = 32_000;

/// Channel layout. Interleaved (L, R, …) for stereo.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Channels {
    /// One channel.
    Mono,
    /// Two interleaved channels.
    Stereo,
}

impl Channels {
    /// Number of channels.
    pub const fn count(self) -> usize {
        match self {
            Channels::Mono => 1,
            Channels::Stereo => 2,
        }
    }

    fn to_opus(self) -> ::opus::Channels {
        match self {
            Channels::Mono => ::opus::Channels::Mono,
            Channels::Stereo => ::opus::Channels::Stereo,
        }
    }
}

/// What the encoder should optimise for (libopus's "application").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Application {
    /// Speech intelligibility: VoIP and conferencing. Parley's default.
    Voip,
    /// Fidelity for music and mixed content.
    Audio,
    /// Lowest algorithmic delay (CELT only, no speech mode).
    LowDelay,
}

impl Application {
    fn to_opus(self) -> ::opus::Application {
        match self {
            Application::Voip => ::opus::Application::Voip,
            Application::Audio => ::opus::Application::Audio,
            Application::LowDelay => ::opus::Application::LowDelay,
        }
    }
}

/// A 48 kHz, 20 ms Opus encoder.
pub struct OpusEncoder {
    inner: ::opus::Encoder,
    channels: Channels,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusEncoder")
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

impl OpusEncoder {
    /// Creates an encoder with complexity [`DEFAULT_COMPLEXITY`] and
    /// [`DEFAULT_BITRATE_PER_CHANNEL`] per channel.
    ///
    /// An explicit bitrate instead of libopus's automatic one, because the
    /// automatic bitrate at 48 kHz is far above what voice needs.
    pub fn new(channels: Channels, application: Application) -> Result<Self> {
        let inner =
            ::opus::Encoder::new(OPUS_RATE.hz(), channels.to_opus(), application.to_opus())?;
        let mut enc = OpusEncoder { inner, channels };
        enc.set_complexity(DEFAULT_COMPLEXITY)?;
        enc.set_bitrate(DEFAULT_BITRATE_PER_CHANNEL * channels.count() as u32)?;
        Ok(enc)
    }

    /// The channel layout this encoder expects.
    pub fn channels(&self) -> Channels {
        self.channels
    }

    /// Samples (all channels) one `encode` call must receive.
    pub fn frame_len(&self) -> usize {
        OPUS_FRAME_SAMPLES * self.channels.count()
    }

    /// Sets the computational complexity, 0 (fastest) to 10 (best).
    pub fn set_complexity(&mut self, complexity: u8) -> Result<()> {
        if complexity > 10 {
            return Err(CodecError::InvalidArgument("complexity must be 0..=10"));
        }
        self.inner.set_complexity(i32::from(complexity))?;
        Ok(())
    }

    /// The current complexity.
    pub fn complexity(&mut self) -> Result<u8> {
        Ok(self.inner.get_complexity()?.clamp(0, 10) as u8)
    }

    /// Sets the target bitrate in bits per second (all channels together);
    /// Opus supports 6 kb/s to 510 kb/s.
    pub fn set_bitrate(&mut self, bits_per_second: u32) -> Result<()> {
        if !(6_000..=510_000).contains(&bits_per_second) {
            return Err(CodecError::InvalidArgument(
                "bitrate must be 6000..=510000 bit/s",
            ));
        }
        self.inner
            .set_bitrate(::opus::Bitrate::Bits(bits_per_second as i32))?;
        Ok(())
    }

    /// The current target bitrate in bits per second.
    pub fn bitrate(&mut self) -> Result<u32> {
        match self.inner.get_bitrate()? {
            ::opus::Bitrate::Bits(b) => Ok(b.max(0) as u32),
            // Only reachable if someone set these through libopus directly.
            ::opus::Bitrate::Max | ::opus::Bitrate::Auto => Ok(0),
        }
    }

    /// Enables in-band forward error correction (LBRR), which lets the
    /// receiver rebuild a lost packet from the next one with
    /// [`OpusDecoder::decode_fec`].
    pub fn set_inband_fec(&mut self, enabled: bool) -> Result<()> {
        self.inner.set_inband_fec(enabled)?;
        Ok(())
    }

    /// Tells the encoder the expected packet loss (0–100 %) so it can spend
    /// bits on FEC accordingly.
    pub fn set_packet_loss_perc(&mut self, percent: u8) -> Result<()> {
        if percent > 100 {
            return Err(CodecError::InvalidArgument("packet loss must be 0..=100 %"));
        }
        self.inner.set_packet_loss_perc(i32::from(percent))?;
        Ok(())
    }

    /// Enables discontinuous transmission (tiny packets during silence).
    pub fn set_dtx(&mut self, enabled: bool) -> Result<()> {
        self.inner.set_dtx(enabled)?;
        Ok(())
    }

    /// Encoder look-ahead in samples per channel at 48 kHz: how much later
    /// the decoded signal appears than the input (312 for VoIP/Audio, 120 for
    /// LowDelay with libopus 1.x).
    pub fn lookahead(&mut self) -> Result<usize> {
        Ok(self.inner.get_lookahead()?.max(0) as usize)
    }

    /// Encodes one 20 ms frame (`960 × channels` interleaved samples) into
    /// `out`; returns the packet length in bytes.
    ///
    /// `out` should hold [`MAX_PACKET_BYTES`]; a smaller buffer works when the
    /// bitrate fits, and libopus reports `BufferTooSmall` otherwise.
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize> {
        let expected = self.frame_len();
        if pcm.len() != expected {
            return Err(CodecError::FrameSize {
                expected,
                actual: pcm.len(),
            });
        }
        if out.is_empty() {
            return Err(CodecError::OutputTooSmall {
                needed: MAX_PACKET_BYTES,
                actual: 0,
            });
        }
        Ok(self.inner.encode(pcm, out)?)
    }

    /// Forgets all history, as at a new stream.
    pub fn reset(&mut self) -> Result<()> {
        self.inner.reset_state()?;
        Ok(())
    }
}

/// A 48 kHz Opus decoder with packet-loss concealment.
pub struct OpusDecoder {
    inner: ::opus::Decoder,
    channels: Channels,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusDecoder")
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

impl OpusDecoder {
    /// Creates a decoder producing `channels` at 48 kHz. Any Opus packet
    /// (mono or stereo, any mode) decodes to this layout.
    pub fn new(channels: Channels) -> Result<Self> {
        let inner = ::opus::Decoder::new(OPUS_RATE.hz(), channels.to_opus())?;
        Ok(OpusDecoder { inner, channels })
    }

    /// The output channel layout.
    pub fn channels(&self) -> Channels {
        self.channels
    }

    /// Samples (all channels) of one 20 ms frame.
    pub fn frame_len(&self) -> usize {
        OPUS_FRAME_SAMPLES * self.channels.count()
    }

    /// Decodes one packet into interleaved `out`; returns samples per channel.
    ///
    /// `out` must hold the packet's duration (960 × channels for Parley's
    /// own 20 ms packets; up to 5760 × channels for a 120 ms packet from
    /// elsewhere). A corrupt packet is an error, never a panic; an empty one
    /// is [`CodecError::EmptyPacket`] so that loss is always explicit.
    pub fn decode(&mut self, packet: &[u8], out: &mut [i16]) -> Result<usize> {
        if packet.is_empty() {
            return Err(CodecError::EmptyPacket);
        }
        Ok(self.inner.decode(packet, out, false)?)
    }

    /// Conceals one lost 20 ms frame (PLC): libopus extrapolates from the
    /// previous packets. Writes `960 × channels` samples; returns 960.
    pub fn decode_lost(&mut self, out: &mut [i16]) -> Result<usize> {
        let out = self.frame_slice(out)?;
        Ok(self.inner.decode(&[], out, false)?)
    }

    /// Rebuilds a lost 20 ms frame from the in-band FEC data carried by the
    /// packet that follows it (`next_packet`). Falls back to concealment
    /// inside libopus if that packet has no FEC. Call this for the lost frame,
    /// then [`decode`](Self::decode) `next_packet` itself as usual.
    pub fn decode_fec(&mut self, next_packet: &[u8], out: &mut [i16]) -> Result<usize> {
        if next_packet.is_empty() {
            return Err(CodecError::EmptyPacket);
        }
        let out = self.frame_slice(out)?;
        Ok(self.inner.decode(next_packet, out, true)?)
    }

    /// Samples per channel the packet will decode to, without decoding it.
    pub fn packet_samples(&self, packet: &[u8]) -> Result<usize> {
        Ok(::opus::packet::get_nb_samples(packet, OPUS_RATE.hz())?)
    }

    /// Forgets all history, as at a new stream.
    pub fn reset(&mut self) -> Result<()> {
        self.inner.reset_state()?;
        Ok(())
    }

    /// Exactly one frame of `out`: concealment and FEC decode as much audio
    /// as the buffer is long, so the buffer length must be the frame length.
    fn frame_slice<'a>(&self, out: &'a mut [i16]) -> Result<&'a mut [i16]> {
        let needed = self.frame_len();
        let actual = out.len();
        out.get_mut(..needed)
            .ok_or(CodecError::OutputTooSmall { needed, actual })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    /// 440 Hz with a few harmonics, at 48 kHz: voiced-speech-like spectrum.
    fn harmonic(n: usize, phase_offset: f64) -> Vec<i16> {
        (0..n)
            .map(|i| {
                let t = i as f64 / 48_000.0;
                let x = 0.5 * (2.0 * PI * 440.0 * t + phase_offset).sin()
                    + 0.25 * (2.0 * PI * 880.0 * t).sin()
                    + 0.12 * (2.0 * PI * 1320.0 * t).sin()
                    + 0.06 * (2.0 * PI * 2200.0 * t).sin();
                (x * 16_000.0) as i16
            })
            .collect()
    }

    /// Round trip through the codec: returns the decoded signal.
    fn round_trip(enc: &mut OpusEncoder, dec: &mut OpusDecoder, pcm: &[i16]) -> Vec<i16> {
        let frame = enc.frame_len();
        let mut packet = [0u8; MAX_PACKET_BYTES];
        let mut out = vec![0i16; pcm.len()];
        for (inp, o) in pcm.chunks_exact(frame).zip(out.chunks_exact_mut(frame)) {
            let n = enc.encode(inp, &mut packet).unwrap();
            assert!(n > 0 && n <= MAX_PACKET_BYTES);
            assert_eq!(dec.decode(&packet[..n], o).unwrap(), OPUS_FRAME_SAMPLES);
        }
        out
    }

    /// Finds the lag maximising normalised correlation; returns (lag, corr).
    fn best_lag(reference: &[f64], decoded: &[f64], max_lag: usize) -> (usize, f64) {
        let len = reference.len() - max_lag;
        let mut best = (0, f64::MIN);
        for lag in 0..max_lag {
            let (mut xy, mut xx, mut yy) = (0.0, 0.0, 0.0);
            for i in 0..len {
                let x = reference[i];
                let y = decoded[i + lag];
                xy += x * y;
                xx += x * x;
                yy += y * y;
            }
            let c = xy / (xx * yy).sqrt().max(1e-9);
            if c > best.1 {
                best = (lag, c);
            }
        }
        best
    }

    fn snr_db(reference: &[f64], decoded: &[f64]) -> f64 {
        let sig: f64 = reference.iter().map(|x| x * x).sum();
        let err: f64 = reference
            .iter()
            .zip(decoded)
            .map(|(x, y)| (x - y) * (x - y))
            .sum();
        10.0 * (sig / err.max(1e-9)).log10()
    }

    #[test]
    fn mono_round_trip_preserves_waveform() {
        let mut enc = OpusEncoder::new(Channels::Mono, Application::Voip).unwrap();
        let mut dec = OpusDecoder::new(Channels::Mono).unwrap();
        assert_eq!(enc.complexity().unwrap(), DEFAULT_COMPLEXITY);
        assert_eq!(enc.bitrate().unwrap(), DEFAULT_BITRATE_PER_CHANNEL);
        let lookahead = enc.lookahead().unwrap();

        let pcm = harmonic(OPUS_FRAME_SAMPLES * 50, 0.0);
        let out = round_trip(&mut enc, &mut dec, &pcm);

        // Skip the first 200 ms while the encoder settles.
        let skip = 9_600;
        let reference: Vec<f64> = pcm[skip..].iter().map(|&s| f64::from(s)).collect();
        let decoded: Vec<f64> = out[skip..].iter().map(|&s| f64::from(s)).collect();
        // A periodic signal correlates at every period (109 samples at
        // 440 Hz), so search less than one period around the expected delay.
        let (lag, corr) = best_lag(&reference, &decoded, lookahead + 50);
        assert!(
            lag.abs_diff(lookahead) <= 8,
            "lag {lag}, lookahead {lookahead}"
        );
        assert!(corr > 0.95, "correlation {corr}");
        let n = reference.len() - lag;
        let snr = snr_db(&reference[..n], &decoded[lag..lag + n]);
        assert!(snr > 10.0, "SNR {snr} dB");
    }

    #[test]
    fn stereo_round_trip_keeps_channels_apart() {
        let mut enc = OpusEncoder::new(Channels::Stereo, Application::Audio).unwrap();
        let mut dec = OpusDecoder::new(Channels::Stereo).unwrap();
        assert_eq!(enc.frame_len(), 1920);
        assert_eq!(enc.bitrate().unwrap(), 2 * DEFAULT_BITRATE_PER_CHANNEL);
        let frames = 40;
        let left = harmonic(OPUS_FRAME_SAMPLES * frames, 0.0);
        // Right is the left channel at half level: the decoder must not
        // collapse the image to mono.
        let mut pcm = Vec::with_capacity(left.len() * 2);
        for &l in &left {
            pcm.push(l);
            pcm.push(l / 4);
        }
        let out = round_trip(&mut enc, &mut dec, &pcm);
        let skip = 9_600;
        let rms = |ch: usize| {
            let v: f64 = out
                .chunks_exact(2)
                .skip(skip)
                .map(|f| f64::from(f[ch]).powi(2))
                .sum();
            (v / (left.len() - skip) as f64).sqrt()
        };
        let ratio = rms(0) / rms(1);
        assert!((3.0..5.0).contains(&ratio), "L/R level ratio {ratio}");
        let l_ref: Vec<f64> = left[skip..].iter().map(|&s| f64::from(s)).collect();
        let l_out: Vec<f64> = out
            .chunks_exact(2)
            .skip(skip)
            .map(|f| f64::from(f[0]))
            .collect();
        let (_, corr) = best_lag(&l_ref, &l_out, enc.lookahead().unwrap() + 50);
        assert!(corr > 0.9, "left correlation {corr}");
    }

    #[test]
    fn wrong_frame_size_is_an_error() {
        let mut enc = OpusEncoder::new(Channels::Mono, Application::Voip).unwrap();
        let mut out = [0u8; MAX_PACKET_BYTES];
        for len in [0, 1, 480, 959, 961, 1920] {
            let err = enc.encode(&vec![0; len], &mut out).unwrap_err();
            assert_eq!(
                err,
                CodecError::FrameSize {
                    expected: 960,
                    actual: len
                }
            );
        }
        assert!(matches!(
            enc.encode(&[0; 960], &mut []),
            Err(CodecError::OutputTooSmall { .. })
        ));
        let mut stereo = OpusEncoder::new(Channels::Stereo, Application::Voip).unwrap();
        assert!(stereo.encode(&[0; 960], &mut out).is_err());
        assert!(stereo.encode(&[0; 1920], &mut out).is_ok());
    }

    #[test]
    fn bad_settings_are_errors() {
        let mut enc = OpusEncoder::new(Channels::Mono, Application::LowDelay).unwrap();
        assert!(enc.set_complexity(11).is_err());
        assert!(enc.set_bitrate(1_000).is_err());
        assert!(enc.set_bitrate(600_000).is_err());
        assert!(enc.set_packet_loss_perc(101).is_err());
        enc.set_complexity(5).unwrap();
        assert_eq!(enc.complexity().unwrap(), 5);
        enc.set_bitrate(16_000).unwrap();
        assert_eq!(enc.bitrate().unwrap(), 16_000);
        enc.set_dtx(true).unwrap();
        enc.set_inband_fec(true).unwrap();
        enc.set_packet_loss_perc(10).unwrap();
        enc.reset().unwrap();
        assert!(enc.lookahead().unwrap() < 312);
    }

    #[test]
    fn bad_packets_are_errors_not_panics() {
        let mut dec = OpusDecoder::new(Channels::Mono).unwrap();
        let mut out = [0i16; OPUS_FRAME_SAMPLES];
        assert_eq!(dec.decode(&[], &mut out), Err(CodecError::EmptyPacket));
        // Code 3 (arbitrary frame count) with a count of zero frames.
        assert!(dec.decode(&[0x03, 0x00], &mut out).is_err());
        // A 120 ms packet (code 3, 6 × 20 ms CELT frames) cannot fit in one
        // 20 ms buffer.
        let mut big = vec![0xF8 | 0x03, 0x06];
        big.extend_from_slice(&[0u8; 30]);
        assert!(dec.decode(&big, &mut out).is_err());
        assert!(dec.decode(&[0xF8], &mut []).is_err());
        // Garbage must never panic; the decoder must stay usable afterwards.
        let mut x: u32 = 0x1234_5678;
        for len in 1..200 {
            let packet: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = dec.decode(&packet, &mut out);
        }
        let mut enc = OpusEncoder::new(Channels::Mono, Application::Voip).unwrap();
        let mut packet = [0u8; MAX_PACKET_BYTES];
        let n = enc.encode(&[0; 960], &mut packet).unwrap();
        assert_eq!(dec.packet_samples(&packet[..n]).unwrap(), 960);
        assert_eq!(dec.decode(&packet[..n], &mut out).unwrap(), 960);
    }

    #[test]
    fn packet_loss_concealment_continues_the_signal() {
        let mut enc = OpusEncoder::new(Channels::Mono, Application::Voip).unwrap();
        enc.set_inband_fec(true).unwrap();
        enc.set_packet_loss_perc(20).unwrap();
        let mut dec = OpusDecoder::new(Channels::Mono).unwrap();
        let pcm = harmonic(OPUS_FRAME_SAMPLES * 20, 0.0);
        let mut packets = Vec::new();
        for f in pcm.chunks_exact(OPUS_FRAME_SAMPLES) {
            let mut p = [0u8; MAX_PACKET_BYTES];
            let n = enc.encode(f, &mut p).unwrap();
            packets.push(p[..n].to_vec());
        }
        let mut out = [0i16; OPUS_FRAME_SAMPLES];
        for p in &packets[..10] {
            dec.decode(p, &mut out).unwrap();
        }
        // Packet 10 is lost: concealment must produce a frame of sound, not
        // silence, since the signal was steady.
        assert_eq!(dec.decode_lost(&mut out).unwrap(), OPUS_FRAME_SAMPLES);
        let rms = |s: &[i16]| {
            (s.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / s.len() as f64).sqrt()
        };
        assert!(rms(&out) > 1_000.0, "PLC rms {}", rms(&out));
        // Packet 12 lost, recovered from packet 13's FEC.
        dec.decode(&packets[11], &mut out).unwrap();
        assert_eq!(
            dec.decode_fec(&packets[13], &mut out).unwrap(),
            OPUS_FRAME_SAMPLES
        );
        assert!(rms(&out) > 1_000.0);
        dec.decode(&packets[13], &mut out).unwrap();

        // Concealment needs a whole frame of output.
        assert!(matches!(
            dec.decode_lost(&mut [0; 100]),
            Err(CodecError::OutputTooSmall { .. })
        ));
        assert_eq!(dec.decode_fec(&[], &mut out), Err(CodecError::EmptyPacket));
        // A longer buffer is fine: only one frame is written.
        let mut long = [7i16; 1200];
        assert_eq!(dec.decode_lost(&mut long).unwrap(), OPUS_FRAME_SAMPLES);
        assert_eq!(long[1199], 7);
        dec.reset().unwrap();
    }
}
