//! Streaming, stateful resampling between 8, 16, 24 and 48 kHz.
//!
//! # Two kinds of resampler
//!
//! Every supported pair has an exact rational ratio. rubato 5 offers two
//! families, and Parley exposes one of each as a [`ResamplerKind`]:
//!
//! - [`ResamplerKind::LowLatency`] (the default, [`Resampler::new`]): rubato's
//!   asynchronous resampler (`rubato::Async`) with windowed-sinc
//!   interpolation and a fixed ratio. At most 4.3 ms of delay whatever the
//!   chunk, about 6 µs per 20 ms frame for 8→16 kHz. Use it wherever latency is heard: the
//!   outbound, mouth-to-ear path (the G.711 path resamples twice, 8→16 in and
//!   16→8 out, so every millisecond counts double).
//! - [`ResamplerKind::Fft`]: rubato's synchronous FFT resampler
//!   (`rubato::Fft`). Its delay is half its FFT block, and the block is one
//!   chunk, so it adds 10 ms for 20 ms chunks; in exchange it costs about a
//!   third of the sinc resampler (≈1.8 µs per 20 ms frame for 8→16 kHz) and
//!   has a longer, sharper filter. Use it for throughput consumers —
//!   speech-to-text, VAD, recording — where 10 ms does not matter.
//!
//! (rubato's polynomial `Async` interpolators, with ≈4 samples of delay, have
//! *no anti-aliasing filter*: audible aliasing when downsampling, imaging when
//! upsampling. Parley does not use them.)
//!
//! ## LowLatency: exact polyphase sinc
//!
//! `Async` with **sinc** interpolation, the ratio fixed and these settings:
//!
//! - **Nearest** sinc interpolation with an oversampling factor (96) that is a
//!   multiple of every phase count that occurs (2, 3, 6). Each output
//!   sample then lands exactly on a precomputed sinc phase, so the resampler
//!   is an exact polyphase FIR filter at the cost of one dot product per
//!   output sample (cubic interpolation between phases would cost four and
//!   add nothing for exact ratios).
//! - A filter of [`FILTER_TAPS`] = 64 taps measured at the *lower* of the two
//!   rates (so 192 taps at 48 kHz for 48↔16), Blackman-Harris window, cut-off
//!   at 0.92 of the lower Nyquist. Measured response: flat (within 0.6 dB) to
//!   0.85 × Nyquist — 3.4 kHz at 8 kHz, 6.8 kHz at 16 kHz, i.e. the
//!   telephony and wideband speech bands — −3.6 dB at 0.9; aliases and images
//!   from 1.05 × Nyquist are ≥ 52 dB down, from 1.1 × Nyquist > 90 dB down.
//!
//! The filter delay is half its length, 32 samples at the lower rate, plus a
//! few output samples of FIFO padding (see [`Resampler::process`]). It does
//! not depend on the chunk size.
//!
//! ## Fft: one FFT block per chunk
//!
//! `Fft` with both sides fixed and one FFT block per chunk: every call
//! transforms the chunk (zero-padded to twice its length), multiplies by the
//! spectrum of a windowed sinc as long as the chunk (Blackman-Harris
//! window, rubato's automatic cut-off), resizes the spectrum to the output
//! rate and overlap-adds the inverse transform. Output comes out in whole
//! chunks from the first call, so no FIFO is needed.
//!
//! The filter, and hence the delay, scales with the chunk: the delay is
//! **half a chunk**, in output samples `output_len / 2` (10 ms for 20 ms
//! chunks, 5 ms for 10 ms chunks). rubato picks the cut-off so that the stop
//! band starts at the lower Nyquist. Measured for 20 ms chunks (a 20 ms
//! filter, i.e. 160 taps at 8 kHz, 320 at 16 kHz):
//!
//! - with an 8 kHz side: flat (< 0.01 dB) to 0.85 × Nyquist (3.4 kHz),
//!   −2.0 dB at 0.9, −29 dB at 0.95;
//! - with 16 kHz or more on both sides: flat to 0.9 × Nyquist, −2.1 dB at
//!   0.95;
//! - aliases and images from 1.02 × Nyquist are ≥ 96 dB down; a 1 kHz sine
//!   comes out 85–103 dB above the error (42–57 dB for LowLatency).
//!
//! The filter is one chunk long, so shorter chunks widen its transition
//! band: with 10 ms chunks and an 8 kHz side, 0.8 × Nyquist is at −2 dB and
//! 3.4 kHz at −10 dB. Use 20 ms chunks or longer.
//!
//! ## Measured latency
//!
//! [`Resampler::delay_samples`], in output samples, for 20 ms chunks:
//!
//! | pair | LowLatency | Fft | | pair | LowLatency | Fft |
//! |---|---|---|---|---|---|---|
//! | 8→16 kHz | 69 (4.3 ms) | 160 (10 ms) | | 16→8 kHz | 34 (4.3 ms) | 80 (10 ms) |
//! | 8→24 kHz | 103 (4.3 ms) | 240 (10 ms) | | 24→8 kHz | 34 (4.3 ms) | 80 (10 ms) |
//! | 8→48 kHz | 205 (4.3 ms) | 480 (10 ms) | | 48→8 kHz | 34 (4.3 ms) | 80 (10 ms) |
//! | 16→24 kHz | 52 (2.2 ms) | 240 (10 ms) | | 24→16 kHz | 35 (2.2 ms) | 160 (10 ms) |
//! | 16→48 kHz | 103 (2.1 ms) | 480 (10 ms) | | 48→16 kHz | 34 (2.1 ms) | 160 (10 ms) |
//! | 24→48 kHz | 69 (1.4 ms) | 480 (10 ms) | | 48→24 kHz | 34 (1.4 ms) | 240 (10 ms) |
//!
//! The tests measure the delay of an impulse for every pair and both kinds
//! and check it against the reported value and against this table.
//!
//! # Real-time use
//!
//! All buffers, including rubato's (and its FFT plans and scratch), are
//! allocated in [`Resampler::new`] / [`Resampler::with_kind`].
//! [`Resampler::process`] converts `i16` ⇄ `f32` through preallocated
//! scratch buffers and calls rubato's `process_into_buffer` on borrowed
//! slices, so it does not allocate (a test checks this for both kinds with a
//! counting global allocator).

use crate::convert::{f32_to_i16, i16_to_f32};
use crate::error::{CodecError, Result};
use crate::frame::SampleRate;
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Async, Fft, FixedAsync, FixedSync, Resampler as _, SincInterpolationParameters,
    SincInterpolationType, WindowFunction,
};

/// Length of the anti-aliasing filter in samples at the lower of the two rates
/// ([`ResamplerKind::LowLatency`]; the FFT kind's filter is one chunk long).
pub const FILTER_TAPS: usize = 64;
/// Sinc phases per input sample: divisible by 2, 3 and 6, so every output
/// position of every supported ratio is an exact phase.
const OVERSAMPLING: usize = 96;
/// Extra zeros kept in the output FIFO. With ratios like 1:3 the fractional
/// read position is not exact in floating point, so rubato sometimes emits
/// one sample fewer in a chunk and one more in the next; two samples of
/// slack (≤ 0.25 ms) absorb that without ever padding mid-stream.
const FIFO_MARGIN: usize = 2;
/// Window of the sinc filter (both kinds).
const WINDOW: WindowFunction = WindowFunction::BlackmanHarris2;
/// Cut-off (−6 dB point) relative to the lower Nyquist frequency
/// ([`ResamplerKind::LowLatency`] only).
///
/// Set explicitly: rubato's automatic cut-off for 64 taps (0.79) is flat
/// only to 0.7 × Nyquist (2.8 kHz at 8 kHz, too dull for telephony), and
/// when downsampling it would be derived from the longer input-rate filter.
/// 0.92 keeps the speech band flat and puts aliases ≥ 52 dB down.
const CUTOFF: f32 = 0.92;

/// Which rubato resampler a [`Resampler`] runs; see the [module
/// docs](self) for the measured delays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ResamplerKind {
    /// Windowed-sinc polyphase filter (`rubato::Async`): at most 4.3 ms of
    /// delay whatever the chunk size, about 6 µs per 20 ms frame for 8→16 kHz.
    ///
    /// Use it on the outbound, mouth-to-ear path, where every millisecond
    /// is heard (and a G.711 call pays it twice). The default, and what
    /// [`Resampler::new`] builds.
    #[default]
    LowLatency,
    /// FFT overlap-add with one block per chunk (`rubato::Fft`): the delay is
    /// half a chunk (10 ms for 20 ms chunks), the cost about a third of
    /// [`LowLatency`](Self::LowLatency) (≈1.8 µs per 20 ms frame for
    /// 8→16 kHz) and the filter longer and sharper.
    ///
    /// Use it for throughput consumers such as speech-to-text, VAD or
    /// recording, where 10 ms does not matter. Use chunks of 20 ms or more:
    /// the filter is one chunk long, and at 10 ms with an 8 kHz side it
    /// takes 10 dB off 3.4 kHz.
    Fft,
}

enum Engine {
    /// Same rate in and out: a copy, no delay.
    Identity,
    /// Boxed because rubato's state is large and the identity case needs none.
    Sinc(Box<Async<f32>>),
    /// One FFT block per chunk; in and out sizes both fixed.
    Fft(Box<Fft<f32>>),
}

/// A streaming mono resampler between two [`SampleRate`]s, taking a fixed
/// number of input samples per call.
pub struct Resampler {
    from: SampleRate,
    to: SampleRate,
    chunk: usize,
    out_len: usize,
    delay: usize,
    kind: ResamplerKind,
    engine: Engine,
    scratch_in: Vec<f32>,
    scratch_out: Vec<f32>,
    /// Resampled samples not yet handed out; see [`Resampler::process`].
    /// Sinc engine only.
    fifo: Vec<i16>,
    /// Valid samples at the start of `fifo`.
    fifo_len: usize,
    /// Zeros the FIFO starts with after `new`/`reset` (rubato's first chunk
    /// comes out this much short).
    prefill: usize,
    /// Calls that had to pad with silence (must stay 0).
    #[cfg(test)]
    underruns: usize,
}

impl std::fmt::Debug for Resampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resampler")
            .field("from", &self.from)
            .field("to", &self.to)
            .field("kind", &self.kind)
            .field("chunk", &self.chunk)
            .field("output_len", &self.out_len)
            .field("delay_samples", &self.delay)
            .finish()
    }
}

/// Greatest common divisor, for the exact ratio.
fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Runs `rs` on all of `input` into `output`; returns samples written.
fn run_rubato<R: rubato::Resampler<f32>>(
    rs: &mut R,
    input: &[f32],
    output: &mut [f32],
) -> Result<usize> {
    let frames_out = output.len();
    let adapter_in = InterleavedSlice::new(input, 1, input.len())
        .map_err(|_| CodecError::Resampler("input adapter"))?;
    let mut adapter_out = InterleavedSlice::new_mut(output, 1, frames_out)
        .map_err(|_| CodecError::Resampler("output adapter"))?;
    let (_, written) = rs
        .process_into_buffer(&adapter_in, &mut adapter_out, None)
        .map_err(|_| CodecError::Resampler("processing failed"))?;
    Ok(written)
}

impl Resampler {
    /// Creates a [`ResamplerKind::LowLatency`] resampler from `from` to `to`
    /// that takes `chunk` input samples per [`process`](Self::process) call
    /// (typically 20 ms: `from.samples_in(20)`). Same as
    /// [`with_kind`](Self::with_kind) with [`ResamplerKind::LowLatency`].
    ///
    /// `chunk × to / from` must be a whole number, so that every call
    /// produces the same number of samples ([`output_len`](Self::output_len));
    /// any whole number of milliseconds qualifies.
    pub fn new(from: SampleRate, to: SampleRate, chunk: usize) -> Result<Self> {
        Self::with_kind(from, to, chunk, ResamplerKind::LowLatency)
    }

    /// Creates a resampler of the given [`ResamplerKind`] from `from` to `to`
    /// that takes `chunk` input samples per [`process`](Self::process) call.
    ///
    /// The requirements on `chunk` are those of [`new`](Self::new). With
    /// [`ResamplerKind::Fft`] the FFT block is the chunk, so the chunk also
    /// sets the delay (half a chunk) and the filter length; `from == to`
    /// gives a plain copy whatever the kind.
    pub fn with_kind(
        from: SampleRate,
        to: SampleRate,
        chunk: usize,
        kind: ResamplerKind,
    ) -> Result<Self> {
        let (fin, fout) = (from.hz() as usize, to.hz() as usize);
        if chunk == 0 {
            return Err(CodecError::InvalidArgument("chunk must be > 0"));
        }
        let g = gcd(fin, fout);
        if chunk % (fin / g) != 0 {
            return Err(CodecError::InvalidArgument(
                "chunk × output rate / input rate must be a whole number",
            ));
        }
        let out_len = chunk / (fin / g) * (fout / g);
        let mut this = Resampler {
            from,
            to,
            chunk,
            out_len,
            delay: 0,
            kind,
            engine: Engine::Identity,
            scratch_in: Vec::new(),
            scratch_out: Vec::new(),
            fifo: Vec::new(),
            fifo_len: 0,
            prefill: 0,
            #[cfg(test)]
            underruns: 0,
        };
        if from == to {
            return Ok(this);
        }
        match kind {
            ResamplerKind::LowLatency => this.init_sinc()?,
            ResamplerKind::Fft => this.init_fft()?,
        }
        Ok(this)
    }

    /// Sets up the windowed-sinc engine, its scratch buffers and FIFO.
    fn init_sinc(&mut self) -> Result<()> {
        let (fin, fout) = (self.from.hz() as usize, self.to.hz() as usize);
        let ratio = fout as f64 / fin as f64;
        // FILTER_TAPS at the lower rate; rubato's sinc runs at the input rate.
        let sinc_len = FILTER_TAPS * fin / fin.min(fout);
        let params = SincInterpolationParameters::new(sinc_len, WINDOW)
            .f_cutoff(CUTOFF)
            .oversampling_factor(OVERSAMPLING)
            .interpolation(SincInterpolationType::Nearest);
        let rs = Async::<f32>::new_sinc(ratio, 1.0, &params, self.chunk, 1, FixedAsync::Input)
            .map_err(|_| CodecError::Resampler("cannot build the sinc resampler"))?;
        let max_out = rs.output_frames_max().max(self.out_len);
        self.engine = Engine::Sinc(Box::new(rs));
        self.scratch_in = vec![0.0; self.chunk];
        self.scratch_out = vec![0.0; max_out];
        // Room for one chunk's output on top of a full frame's backlog.
        self.fifo = vec![0; self.out_len + 2 * max_out];
        // rubato's first chunk after a reset is a few samples short (its
        // read position starts one filter length back). Learn by how much
        // with one chunk of silence, then start every stream with that many
        // zeros (plus a margin for the ±1 wobble of later chunks) so each
        // call yields exactly `output_len` samples.
        let first = self.resample_chunk()?;
        self.prefill = self.out_len.saturating_sub(first) + FIFO_MARGIN;
        self.reset();
        let filter_delay = match &self.engine {
            Engine::Sinc(rs) => rs.output_delay(),
            _ => 0,
        };
        self.delay = (filter_delay + self.prefill).saturating_sub(1);
        Ok(())
    }

    /// Sets up the FFT engine: one block per chunk, both sides fixed.
    fn init_fft(&mut self) -> Result<()> {
        let (fin, fout) = (self.from.hz() as usize, self.to.hz() as usize);
        // With `FixedSync::Both` rubato rounds the block up to a multiple of
        // `fin / gcd`, which `chunk` already is, so the block is the chunk;
        // one sub-chunk keeps it so.
        let rs = Fft::<f32>::new_custom(fin, fout, self.chunk, 1, 1, WINDOW, FixedSync::Both)
            .map_err(|_| CodecError::Resampler("cannot build the FFT resampler"))?;
        if rs.input_frames_next() != self.chunk || rs.output_frames_next() != self.out_len {
            return Err(CodecError::Resampler("unexpected FFT resampler block size"));
        }
        // Half the block: the filter is a sinc as long as the block, centred.
        self.delay = rs.output_delay();
        self.engine = Engine::Fft(Box::new(rs));
        self.scratch_in = vec![0.0; self.chunk];
        self.scratch_out = vec![0.0; self.out_len];
        Ok(())
    }

    /// Input rate.
    pub fn from_rate(&self) -> SampleRate {
        self.from
    }

    /// Output rate.
    pub fn to_rate(&self) -> SampleRate {
        self.to
    }

    /// The kind this resampler was built with.
    pub fn kind(&self) -> ResamplerKind {
        self.kind
    }

    /// Input samples every [`process`](Self::process) call must receive.
    pub fn input_len(&self) -> usize {
        self.chunk
    }

    /// Output samples a [`process`](Self::process) call produces
    /// (`chunk × to / from`).
    pub fn output_len(&self) -> usize {
        self.out_len
    }

    /// Latency in output samples: an impulse at input sample 0 peaks at
    /// output sample `delay_samples()` (0 for the identity). See the table in
    /// the [module docs](self).
    pub fn delay_samples(&self) -> usize {
        self.delay
    }

    /// Resamples one chunk of exactly [`input_len`](Self::input_len) samples
    /// into `output` (at least [`output_len`](Self::output_len) long); returns
    /// the number of samples written, always `output_len`.
    ///
    /// State carries over between calls, so consecutive chunks form one
    /// continuous stream. With [`ResamplerKind::LowLatency`], rubato's first
    /// chunk after a reset comes out a few samples short; an internal FIFO
    /// that starts with that many zeros makes every call, the first included,
    /// yield exactly `output_len` (those zeros are part of
    /// [`delay_samples`](Self::delay_samples)). [`ResamplerKind::Fft`]
    /// produces exactly one output block per call and needs no FIFO.
    /// Does not allocate.
    pub fn process(&mut self, input: &[i16], output: &mut [i16]) -> Result<usize> {
        if input.len() != self.chunk {
            return Err(CodecError::FrameSize {
                expected: self.chunk,
                actual: input.len(),
            });
        }
        if output.len() < self.out_len {
            return Err(CodecError::OutputTooSmall {
                needed: self.out_len,
                actual: output.len(),
            });
        }
        match &mut self.engine {
            Engine::Identity => {
                output[..self.chunk].copy_from_slice(input);
                Ok(self.chunk)
            }
            Engine::Fft(_) => {
                i16_to_f32(input, &mut self.scratch_in);
                let written = self.resample_chunk()?;
                debug_assert_eq!(written, self.out_len);
                let n = self.out_len;
                f32_to_i16(&self.scratch_out[..n], &mut output[..n]);
                Ok(n)
            }
            Engine::Sinc(_) => {
                i16_to_f32(input, &mut self.scratch_in);
                let written = self.resample_chunk()?;
                // Append to the FIFO. rubato writes `output_len` per call for
                // these exact ratios; the FIFO only absorbs the start-up
                // shortfall (and would absorb a ±1 rounding wobble).
                let room = self.fifo.len() - self.fifo_len;
                let take = written.min(room);
                f32_to_i16(
                    &self.scratch_out[..take],
                    &mut self.fifo[self.fifo_len..self.fifo_len + take],
                );
                self.fifo_len += take;
                // Hand out exactly `output_len`, padding with silence should
                // the FIFO ever run short.
                let n = self.out_len;
                let avail = self.fifo_len.min(n);
                #[cfg(test)]
                if avail < n {
                    self.underruns += 1;
                }
                output[..avail].copy_from_slice(&self.fifo[..avail]);
                output[avail..n].fill(0);
                self.fifo.copy_within(avail..self.fifo_len, 0);
                self.fifo_len -= avail;
                Ok(n)
            }
        }
    }

    /// Runs rubato on `scratch_in` into `scratch_out`; returns samples written.
    fn resample_chunk(&mut self) -> Result<usize> {
        match &mut self.engine {
            Engine::Identity => Ok(0),
            Engine::Sinc(rs) => run_rubato(&mut **rs, &self.scratch_in, &mut self.scratch_out),
            Engine::Fft(rs) => run_rubato(&mut **rs, &self.scratch_in, &mut self.scratch_out),
        }
    }

    /// Clears the filter history, as at the start of a new stream.
    pub fn reset(&mut self) {
        match &mut self.engine {
            Engine::Identity => {}
            Engine::Sinc(rs) => {
                rs.reset();
                self.fifo[..self.prefill].fill(0);
                self.fifo_len = self.prefill;
            }
            Engine::Fft(rs) => rs.reset(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;
    use ResamplerKind::{Fft as FftKind, LowLatency};
    use SampleRate::*;

    const PAIRS: [(SampleRate, SampleRate); 12] = [
        (Hz8000, Hz16000),
        (Hz16000, Hz8000),
        (Hz16000, Hz48000),
        (Hz48000, Hz16000),
        (Hz8000, Hz48000),
        (Hz48000, Hz8000),
        (Hz24000, Hz16000),
        (Hz16000, Hz24000),
        (Hz8000, Hz24000),
        (Hz24000, Hz8000),
        (Hz24000, Hz48000),
        (Hz48000, Hz24000),
    ];

    const KINDS: [ResamplerKind; 2] = [LowLatency, FftKind];

    /// `(from, to, LowLatency delay, Fft delay)` for 20 ms chunks, as in the
    /// module docs' table.
    const DOC_DELAYS: [(SampleRate, SampleRate, usize, usize); 12] = [
        (Hz8000, Hz16000, 69, 160),
        (Hz16000, Hz8000, 34, 80),
        (Hz8000, Hz24000, 103, 240),
        (Hz24000, Hz8000, 34, 80),
        (Hz8000, Hz48000, 205, 480),
        (Hz48000, Hz8000, 34, 80),
        (Hz16000, Hz24000, 52, 240),
        (Hz24000, Hz16000, 35, 160),
        (Hz16000, Hz48000, 103, 480),
        (Hz48000, Hz16000, 34, 160),
        (Hz24000, Hz48000, 69, 480),
        (Hz48000, Hz24000, 34, 240),
    ];

    fn make(from: SampleRate, to: SampleRate, chunk_ms: u32, kind: ResamplerKind) -> Resampler {
        Resampler::with_kind(from, to, from.samples_in(chunk_ms), kind).unwrap()
    }

    /// Runs `input` through `rs` in chunks; returns the concatenated output.
    fn run(rs: &mut Resampler, input: &[i16]) -> Vec<i16> {
        let mut out = Vec::new();
        let mut buf = vec![0i16; rs.output_len()];
        for chunk in input.chunks_exact(rs.input_len()) {
            let n = rs.process(chunk, &mut buf).unwrap();
            assert_eq!(n, rs.output_len());
            out.extend_from_slice(&buf[..n]);
        }
        out
    }

    fn sine(rate: SampleRate, freq: f64, amp: f64, n: usize, delay: usize) -> Vec<f64> {
        (0..n)
            .map(|i| {
                let t = (i as f64 - delay as f64) / f64::from(rate.hz());
                amp * (2.0 * PI * freq * t).sin()
            })
            .collect()
    }

    fn to_i16(x: &[f64]) -> Vec<i16> {
        x.iter().map(|&v| v.round() as i16).collect()
    }

    /// Level of `freq` in `x` relative to a full-amplitude `amp` sine, in dB
    /// (single-bin DFT with a Hann window).
    fn tone_level_db(x: &[f64], rate: SampleRate, freq: f64, amp: f64) -> f64 {
        let n = x.len();
        let (mut re, mut im, mut wsum) = (0.0, 0.0, 0.0);
        for (i, &v) in x.iter().enumerate() {
            let w = 0.5 - 0.5 * (2.0 * PI * i as f64 / n as f64).cos();
            let ph = 2.0 * PI * freq * i as f64 / f64::from(rate.hz());
            re += w * v * ph.cos();
            im += w * v * ph.sin();
            wsum += w;
        }
        20.0 * ((re * re + im * im).sqrt() * 2.0 / wsum / amp).log10()
    }

    /// Output index of the peak of an impulse at input sample 0, and the
    /// reported delay.
    fn impulse_peak(
        from: SampleRate,
        to: SampleRate,
        chunk_ms: u32,
        kind: ResamplerKind,
    ) -> (usize, usize) {
        let mut rs = make(from, to, chunk_ms, kind);
        let mut imp = vec![0i16; from.samples_in(120)];
        imp[0] = 20_000;
        let out = run(&mut rs, &imp);
        let peak = out
            .iter()
            .enumerate()
            .max_by_key(|(_, v)| v.unsigned_abs())
            .unwrap()
            .0;
        (peak, rs.delay_samples())
    }

    #[test]
    fn reported_delay_matches_impulse() {
        for kind in KINDS {
            for (from, to) in PAIRS {
                for chunk_ms in [10, 20, 30] {
                    let (measured, reported) = impulse_peak(from, to, chunk_ms, kind);
                    assert!(
                        measured.abs_diff(reported) <= 1,
                        "{kind:?} {from}->{to} ({chunk_ms} ms): measured {measured}, \
                         reported {reported}"
                    );
                    match kind {
                        // Low latency is the point of the design: at most 4.5 ms.
                        LowLatency => {
                            assert!(reported * 1000 <= to.hz() as usize * 9 / 2, "{from}->{to}")
                        }
                        // The FFT block is the chunk and the filter is centred
                        // in it: the delay is half a chunk by construction.
                        FftKind => assert_eq!(reported, to.samples_in(chunk_ms) / 2),
                    }
                }
            }
        }
    }

    #[test]
    fn documented_delays_are_measured() {
        for (from, to, low, fft) in DOC_DELAYS {
            for (kind, documented) in [(LowLatency, low), (FftKind, fft)] {
                let (measured, reported) = impulse_peak(from, to, 20, kind);
                assert_eq!(reported, documented, "{kind:?} {from}->{to}");
                assert_eq!(measured, documented, "{kind:?} {from}->{to}");
            }
        }
    }

    #[test]
    fn sine_keeps_frequency_and_amplitude() {
        let amp = 10_000.0;
        for kind in KINDS {
            for (from, to) in PAIRS {
                let mut rs = make(from, to, 20, kind);
                let input = to_i16(&sine(from, 1000.0, amp, from.samples_in(300), 0));
                let out: Vec<f64> = run(&mut rs, &input).iter().map(|&v| f64::from(v)).collect();
                let ideal = sine(to, 1000.0, amp, out.len(), rs.delay_samples());
                // Skip the start-up (delay + filter ramp).
                let skip = to.samples_in(20);
                let err: f64 = out[skip..]
                    .iter()
                    .zip(&ideal[skip..])
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum::<f64>()
                    / (out.len() - skip) as f64;
                let snr = 10.0 * ((amp * amp / 2.0) / err).log10();
                assert!(
                    snr > 40.0,
                    "{kind:?} {from}->{to}: SNR vs ideal sine {snr:.1} dB"
                );
                let level = tone_level_db(&out[skip..], to, 1000.0, amp);
                assert!(
                    level.abs() < 0.05,
                    "{kind:?} {from}->{to}: level {level:.3} dB"
                );
            }
        }
    }

    #[test]
    fn speech_band_is_flat_and_aliases_are_rejected() {
        let amp = 16_000.0;
        for kind in KINDS {
            for (from, to) in PAIRS {
                let low = f64::from(from.min(to).hz());
                let mut rs = make(from, to, 20, kind);
                let mut level = |freq: f64, at: f64| {
                    rs.reset();
                    let input = to_i16(&sine(from, freq, amp, from.samples_in(300), 0));
                    let out: Vec<f64> =
                        run(&mut rs, &input).iter().map(|&v| f64::from(v)).collect();
                    tone_level_db(&out[to.samples_in(50)..], to, at, amp)
                };
                // Flat to 0.85 × the lower Nyquist (3.4 kHz for 8 kHz).
                let edge = 0.85 * low / 2.0;
                let l = level(edge, edge);
                assert!(l > -1.0, "{kind:?} {from}->{to}: passband edge {l:.2} dB");
                if to < from {
                    // A tone 10 % above the output Nyquist folds back below it.
                    let f = 1.1 * low / 2.0;
                    let alias = f64::from(to.hz()) - f;
                    let l = level(f, alias);
                    assert!(
                        l < -80.0,
                        "{kind:?} {from}->{to}: alias at {alias} Hz is {l:.1} dB"
                    );
                }
            }
        }
    }

    /// What the module docs claim about the FFT kind's filter, which is
    /// stricter than the shared test above: one chunk long, it is flat through
    /// the band and rejects aliases from just above Nyquist at 20 ms, but a
    /// 10 ms chunk with an 8 kHz side dulls the top of the telephone band.
    #[test]
    fn fft_filter_follows_the_chunk() {
        let amp = 16_000.0;
        let level = |from: SampleRate, to: SampleRate, ms: u32, freq: f64, at: f64| {
            let mut rs = make(from, to, ms, FftKind);
            let input = to_i16(&sine(from, freq, amp, from.samples_in(300), 0));
            let out: Vec<f64> = run(&mut rs, &input).iter().map(|&v| f64::from(v)).collect();
            tone_level_db(&out[to.samples_in(50)..], to, at, amp)
        };
        for (from, to) in PAIRS {
            let low = f64::from(from.min(to).hz());
            let edge = 0.85 * low / 2.0;
            let l = level(from, to, 20, edge, edge);
            assert!(l.abs() < 0.05, "{from}->{to}: 0.85 × Nyquist at {l:.2} dB");
            if to < from {
                let f = 1.02 * low / 2.0;
                let alias = f64::from(to.hz()) - f;
                let l = level(from, to, 20, f, alias);
                assert!(l < -90.0, "{from}->{to}: alias at {alias} Hz is {l:.1} dB");
            }
        }
        let l = level(Hz16000, Hz8000, 10, 3_400.0, 3_400.0);
        assert!(l < -6.0, "10 ms at 8 kHz: 3.4 kHz at {l:.1} dB");
    }

    #[test]
    fn chunked_equals_one_shot() {
        for (from, to) in PAIRS {
            let input = to_i16(&sine(from, 700.0, 12_000.0, from.samples_in(240), 0));
            let mut small = make(from, to, 10, LowLatency);
            let mut frame = make(from, to, 20, LowLatency);
            let mut whole = make(from, to, 240, LowLatency);
            assert_eq!(small.delay_samples(), whole.delay_samples());
            let a = run(&mut small, &input);
            let b = run(&mut frame, &input);
            let c = run(&mut whole, &input);
            assert_eq!(a.len(), c.len());
            for ((x, y), z) in a.iter().zip(&b).zip(&c) {
                assert!(
                    (x - z).abs() <= 1 && (y - z).abs() <= 1,
                    "{from}->{to} {x} {y} {z}"
                );
            }
        }
    }

    /// The FFT counterpart of [`chunked_equals_one_shot`]. The FFT block is
    /// the chunk, so the chunk size sets the filter (its length and cut-off)
    /// and the delay (half a chunk): outputs for different chunk sizes cannot
    /// be sample-identical. Aligned by their reported delays, they must still
    /// agree on a tone well inside every filter's passband, which also shows
    /// that the overlap-add leaves no seams at block boundaries.
    #[test]
    fn fft_chunked_equals_one_shot() {
        for (from, to) in PAIRS {
            let input = to_i16(&sine(from, 700.0, 12_000.0, from.samples_in(480), 0));
            let outs: Vec<(Vec<i16>, usize)> = [10, 20, 240]
                .into_iter()
                .map(|ms| {
                    let mut rs = make(from, to, ms, FftKind);
                    (run(&mut rs, &input), rs.delay_samples())
                })
                .collect();
            let (c, dc) = &outs[2];
            // Compare from the end of the longest start-up ramp (a whole
            // 240 ms block) to the last sample every output has.
            let start = to.samples_in(240);
            let end = c.len() - dc;
            let mut worst = 0;
            for (x, dx) in &outs[..2] {
                for i in start..end {
                    let d = (x[i - dc + dx] - c[i]).abs();
                    worst = worst.max(d);
                }
            }
            assert!(worst <= 1, "{from}->{to}: off by {worst}");
        }
    }

    #[test]
    fn long_streams_never_underrun() {
        for kind in KINDS {
            for (from, to) in PAIRS {
                for chunk_ms in [10, 20, 30] {
                    let mut rs = make(from, to, chunk_ms, kind);
                    let input = vec![1000i16; rs.input_len()];
                    let mut out = vec![0i16; rs.output_len()];
                    for _ in 0..(5_000 / chunk_ms) {
                        assert_eq!(rs.process(&input, &mut out), Ok(rs.output_len()));
                    }
                    assert_eq!(rs.underruns, 0, "{kind:?} {from}->{to} {chunk_ms} ms");
                    assert!(rs.fifo_len <= 2 * FIFO_MARGIN);
                    // A constant comes out as the same constant.
                    assert!(out.iter().all(|&v| v.abs_diff(1000) <= 1), "{kind:?}");
                }
            }
        }
    }

    #[test]
    fn reset_restarts_the_stream() {
        for kind in KINDS {
            let mut rs = make(Hz16000, Hz8000, 20, kind);
            let input = to_i16(&sine(Hz16000, 440.0, 9_000.0, 3_200, 0));
            let first = run(&mut rs, &input);
            let second = run(&mut rs, &input);
            assert_ne!(first, second, "{kind:?}: state carries over between calls");
            rs.reset();
            assert_eq!(run(&mut rs, &input), first, "{kind:?}");
        }
    }

    #[test]
    fn identity_is_a_copy() {
        for kind in KINDS {
            for rate in SampleRate::ALL {
                let mut rs = make(rate, rate, 20, kind);
                assert_eq!(rs.delay_samples(), 0);
                let input: Vec<i16> = (0..rate.samples_in(60)).map(|i| (i * 37) as i16).collect();
                assert_eq!(run(&mut rs, &input), input);
            }
        }
    }

    #[test]
    fn new_is_low_latency() {
        let rs = Resampler::new(Hz8000, Hz16000, 160).unwrap();
        assert_eq!(rs.kind(), LowLatency);
        assert_eq!(ResamplerKind::default(), LowLatency);
        let fft = Resampler::with_kind(Hz8000, Hz16000, 160, FftKind).unwrap();
        assert_eq!(fft.kind(), FftKind);
        assert!(format!("{fft:?}").contains("Fft"));
    }

    #[test]
    fn bad_arguments_are_errors() {
        for kind in KINDS {
            let new = |from, to, chunk| Resampler::with_kind(from, to, chunk, kind);
            assert!(new(Hz16000, Hz8000, 0).is_err());
            assert!(new(Hz16000, Hz16000, 0).is_err());
            // 1 sample at 16 kHz is 1.5 at 24 kHz.
            assert!(new(Hz16000, Hz24000, 1).is_err());
            assert!(new(Hz48000, Hz16000, 10).is_err());
            assert!(new(Hz48000, Hz16000, 12).is_ok());

            let mut rs = new(Hz8000, Hz16000, 160).unwrap();
            assert_eq!(rs.input_len(), 160);
            assert_eq!(rs.output_len(), 320);
            assert_eq!((rs.from_rate(), rs.to_rate()), (Hz8000, Hz16000));
            let mut out = [0i16; 320];
            assert_eq!(
                rs.process(&[0; 159], &mut out),
                Err(CodecError::FrameSize {
                    expected: 160,
                    actual: 159
                })
            );
            assert!(matches!(
                rs.process(&[0; 160], &mut out[..319]),
                Err(CodecError::OutputTooSmall { .. })
            ));
            assert_eq!(rs.process(&[0; 160], &mut out), Ok(320));
            assert!(format!("{rs:?}").contains("delay_samples"));
        }
    }

    mod alloc_counter {
        use std::alloc::{GlobalAlloc, Layout, System};
        use std::cell::Cell;

        thread_local! {
            static COUNT: Cell<usize> = const { Cell::new(0) };
        }

        /// Counts allocations per thread, so tests running in parallel do
        /// not see each other's.
        pub struct Counting;

        unsafe impl GlobalAlloc for Counting {
            unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
                let _ = COUNT.try_with(|c| c.set(c.get() + 1));
                unsafe { System.alloc(layout) }
            }
            unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
                unsafe { System.dealloc(ptr, layout) }
            }
            unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, size: usize) -> *mut u8 {
                let _ = COUNT.try_with(|c| c.set(c.get() + 1));
                unsafe { System.realloc(ptr, layout, size) }
            }
        }

        pub fn allocations() -> usize {
            COUNT.with(|c| c.get())
        }
    }

    #[global_allocator]
    static ALLOC: alloc_counter::Counting = alloc_counter::Counting;

    #[test]
    fn process_does_not_allocate() {
        for kind in KINDS {
            for (from, to) in PAIRS {
                let mut rs = make(from, to, 20, kind);
                let input = to_i16(&sine(from, 1000.0, 8_000.0, from.samples_in(20), 0));
                let mut out = vec![0i16; rs.output_len()];
                // Warm up once (lazy CPU-feature detection and the like).
                rs.process(&input, &mut out).unwrap();
                let before = alloc_counter::allocations();
                for _ in 0..20 {
                    rs.process(&input, &mut out).unwrap();
                }
                rs.reset();
                rs.process(&input, &mut out).unwrap();
                assert_eq!(
                    alloc_counter::allocations(),
                    before,
                    "{kind:?} {from}->{to}"
                );
            }
        }
        // The counter itself works.
        let before = alloc_counter::allocations();
        let v = std::hint::black_box(vec![1u8; 10]);
        drop(v);
        assert!(alloc_counter::allocations() > before);
    }

    #[test]
    fn g711_frame_path_sizes() {
        // 8 kHz G.711 frames in and out of the 16 kHz engine frame.
        for kind in KINDS {
            let up = Resampler::with_kind(Hz8000, crate::FRAME_RATE, 160, kind).unwrap();
            assert_eq!(up.output_len(), crate::FRAME_SAMPLES);
            let down = Resampler::with_kind(crate::FRAME_RATE, Hz8000, crate::FRAME_SAMPLES, kind)
                .unwrap();
            assert_eq!(down.output_len(), 160);
        }
    }
}
