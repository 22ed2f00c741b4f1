//! Streaming, stateful resampling between 8, 16, 24 and 48 kHz.
//!
//! # Choice of resampler
//!
//! Every supported pair has an exact rational ratio, and real-time voice
//! cares more about latency than about the last dB of stop-band rejection.
//! rubato 5 offers two families:
//!
//! - the synchronous FFT resampler (`rubato::Fft`): excellent quality, but its
//!   delay is half its FFT block, i.e. 10 ms for a 20 ms chunk, per stage. The
//!   G.711 path resamples twice (8→16 in, 16→8 out), so that alone would add
//!   20 ms of mouth-to-ear latency;
//! - the asynchronous resampler (`rubato::Async`), either polynomial (≈4
//!   samples of delay but *no anti-aliasing filter*: audible aliasing when
//!   downsampling, imaging when upsampling) or windowed-sinc.
//!
//! Parley uses `Async` with **sinc** interpolation for every pair, with the
//! ratio fixed and these settings:
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
//! few output samples of start-up padding (see [`Resampler::process`]).
//! Measured latency ([`Resampler::delay_samples`], in output samples):
//!
//! | pair | delay | | pair | delay |
//! |---|---|---|---|---|
//! | 8→16 kHz | 67 (4.2 ms) | | 16→8 kHz | 32 (4.0 ms) |
//! | 8→24 kHz | 101 (4.2 ms) | | 24→8 kHz | 32 (4.0 ms) |
//! | 8→48 kHz | 203 (4.2 ms) | | 48→8 kHz | 32 (4.0 ms) |
//! | 16→24 kHz | 50 (2.1 ms) | | 24→16 kHz | 33 (2.1 ms) |
//! | 16→48 kHz | 101 (2.1 ms) | | 48→16 kHz | 32 (2.0 ms) |
//! | 24→48 kHz | 67 (1.4 ms) | | 48→24 kHz | 32 (1.3 ms) |
//!
//! The tests measure the delay of an impulse for every pair and check it
//! against the reported value.
//!
//! # Real-time use
//!
//! All buffers, including rubato's, are allocated in [`Resampler::new`].
//! [`Resampler::process`] converts `i16` ⇄ `f32` through preallocated
//! scratch buffers and calls rubato's `process_into_buffer` on borrowed
//! slices, so it does not allocate (a test checks this with a counting
//! global allocator).

use crate::convert::{f32_to_i16, i16_to_f32};
use crate::error::{CodecError, Result};
use crate::frame::SampleRate;
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Async, FixedAsync, Resampler as _, SincInterpolationParameters,
    SincInterpolationType, WindowFunction,
};

/// Length of the anti-aliasing filter in samples at the lower of the two rates.
pub const FILTER_TAPS: usize = 64;
/// Sinc phases per input sample: divisible by 2, 3 and 6, so every output
/// position of every supported ratio is an exact phase.
const OVERSAMPLING: usize = 96;
/// Window of the sinc filter.
const WINDOW: WindowFunction = WindowFunction::BlackmanHarris2;
/// Cut-off (−6 dB point) relative to the lower Nyquist frequency.
///
/// Set explicitly: rubato's automatic cut-off for 64 taps (0.79) is flat
/// only to 0.7 × Nyquist (2.8 kHz at 8 kHz, too dull for telephony), and
/// when downsampling it would be derived from the longer input-rate filter.
/// 0.92 keeps the speech band flat and puts aliases ≥ 52 dB down.
const CUTOFF: f32 = 0.92;

enum Engine {
    /// Same rate in and out: a copy, no delay.
    Identity,
    /// Boxed because rubato's state is large and the identity case needs none.
    Sinc(Box<Async<f32>>),
}

/// A streaming mono resampler between two [`SampleRate`]s, taking a fixed
/// number of input samples per call.
pub struct Resampler {
    from: SampleRate,
    to: SampleRate,
    chunk: usize,
    out_len: usize,
    delay: usize,
    engine: Engine,
    scratch_in: Vec<f32>,
    scratch_out: Vec<f32>,
    /// Resampled samples not yet handed out; see [`Resampler::process`].
    fifo: Vec<i16>,
    /// Valid samples at the start of `fifo`.
    fifo_len: usize,
    /// Zeros the FIFO starts with after `new`/`reset` (rubato's first chunk
    /// comes out this much short).
    prefill: usize,
}

impl std::fmt::Debug for Resampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resampler")
            .field("from", &self.from)
            .field("to", &self.to)
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

impl Resampler {
    /// Creates a resampler from `from` to `to` that takes `chunk` input
    /// samples per [`process`](Self::process) call (typically 20 ms:
    /// `from.samples_in(20)`).
    ///
    /// `chunk × to / from` must be a whole number, so that every call
    /// produces the same number of samples ([`output_len`](Self::output_len));
    /// any whole number of milliseconds qualifies.
    pub fn new(from: SampleRate, to: SampleRate, chunk: usize) -> Result<Self> {
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

        if from == to {
            return Ok(Resampler {
                from,
                to,
                chunk,
                out_len,
                delay: 0,
                engine: Engine::Identity,
                scratch_in: Vec::new(),
                scratch_out: Vec::new(),
                fifo: Vec::new(),
                fifo_len: 0,
                prefill: 0,
            });
        }

        let ratio = fout as f64 / fin as f64;
        // FILTER_TAPS at the lower rate; rubato's sinc runs at the input rate.
        let sinc_len = FILTER_TAPS * fin / fin.min(fout);
        let params = SincInterpolationParameters::new(sinc_len, WINDOW)
            .f_cutoff(CUTOFF)
            .oversampling_factor(OVERSAMPLING)
            .interpolation(SincInterpolationType::Nearest);
        let rs = Async::<f32>::new_sinc(ratio, 1.0, &params, chunk, 1, FixedAsync::Input)
            .map_err(|_| CodecError::Resampler("cannot build the sinc resampler"))?;
        let max_out = rs.output_frames_max().max(out_len);
        let mut this = Resampler {
            from,
            to,
            chunk,
            out_len,
            delay: 0,
            engine: Engine::Sinc(Box::new(rs)),
            scratch_in: vec![0.0; chunk],
            scratch_out: vec![0.0; max_out],
            // Room for one chunk's output on top of a full frame's backlog.
            fifo: vec![0; out_len + 2 * max_out],
            fifo_len: 0,
            prefill: 0,
        };
        // rubato's first chunk after a reset is a few samples short (its
        // read position starts one filter length back). Learn by how much
        // with one chunk of silence, then start every stream with that many
        // zeros so each call yields exactly `output_len` samples.
        let first = this.resample_chunk()?;
        this.prefill = out_len.saturating_sub(first);
        this.reset();
        this.delay = (Self::filter_delay(&this.engine) + this.prefill).saturating_sub(1);
        Ok(this)
    }

    /// Input rate.
    pub fn from_rate(&self) -> SampleRate {
        self.from
    }

    /// Output rate.
    pub fn to_rate(&self) -> SampleRate {
        self.to
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
    /// output sample `delay_samples()` (0 for the identity).
    pub fn delay_samples(&self) -> usize {
        self.delay
    }

    /// Resamples one chunk of exactly [`input_len`](Self::input_len) samples
    /// into `output` (at least [`output_len`](Self::output_len) long); returns
    /// the number of samples written, always `output_len`.
    ///
    /// State carries over between calls, so consecutive chunks form one
    /// continuous stream. rubato's first chunk after a reset comes out a few
    /// samples short; an internal FIFO that starts with that many zeros
    /// makes every call, the first included, yield exactly `output_len`
    /// (those zeros are part of [`delay_samples`](Self::delay_samples)).
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
        let Engine::Sinc(rs) = &mut self.engine else {
            return Ok(0);
        };
        let frames_out = self.scratch_out.len();
        let adapter_in = InterleavedSlice::new(&self.scratch_in[..], 1, self.chunk)
            .map_err(|_| CodecError::Resampler("input adapter"))?;
        let mut adapter_out = InterleavedSlice::new_mut(&mut self.scratch_out[..], 1, frames_out)
            .map_err(|_| CodecError::Resampler("output adapter"))?;
        let (_, written) = rs
            .process_into_buffer(&adapter_in, &mut adapter_out, None)
            .map_err(|_| CodecError::Resampler("processing failed"))?;
        Ok(written)
    }

    /// rubato's own latency in output samples.
    fn filter_delay(engine: &Engine) -> usize {
        match engine {
            Engine::Identity => 0,
            Engine::Sinc(rs) => rs.output_delay(),
        }
    }

    /// Clears the filter history, as at the start of a new stream.
    pub fn reset(&mut self) {
        if let Engine::Sinc(rs) = &mut self.engine {
            rs.reset();
            self.fifo[..self.prefill].fill(0);
            self.fifo_len = self.prefill;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;
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

    fn impulse_peak(from: SampleRate, to: SampleRate, chunk_ms: u32) -> (usize, usize) {
        let mut rs = Resampler::new(from, to, from.samples_in(chunk_ms)).unwrap();
        let mut imp = vec![0i16; from.samples_in(100)];
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
        for (from, to) in PAIRS {
            for chunk_ms in [10, 20] {
                let (measured, reported) = impulse_peak(from, to, chunk_ms);
                assert!(
                    measured.abs_diff(reported) <= 1,
                    "{from}->{to} ({chunk_ms} ms): measured {measured}, reported {reported}"
                );
                // Low latency is the point of the design: at most ~4.3 ms.
                assert!(reported * 1000 <= to.hz() as usize * 43 / 10, "{from}->{to}");
            }
        }
    }

    #[test]
    fn sine_keeps_frequency_and_amplitude() {
        let amp = 10_000.0;
        for (from, to) in PAIRS {
            let mut rs = Resampler::new(from, to, from.samples_in(20)).unwrap();
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
            eprintln!("{from}->{to}: SNR vs ideal sine {snr:.1} dB");
            let level = tone_level_db(&out[skip..], to, 1000.0, amp);
            assert!(level.abs() < 0.05, "{from}->{to}: level {level:.3} dB");
        }
    }

    #[test]
    fn speech_band_is_flat_and_aliases_are_rejected() {
        let amp = 16_000.0;
        for (from, to) in PAIRS {
            let low = f64::from(from.min(to).hz());
            let mut rs = Resampler::new(from, to, from.samples_in(20)).unwrap();
            let mut level = |freq: f64, at: f64| {
                rs.reset();
                let input = to_i16(&sine(from, freq, amp, from.samples_in(300), 0));
                let out: Vec<f64> = run(&mut rs, &input).iter().map(|&v| f64::from(v)).collect();
                tone_level_db(&out[to.samples_in(50)..], to, at, amp)
            };
            // Flat to 0.85 × the lower Nyquist (3.4 kHz for 8 kHz).
            let edge = 0.85 * low / 2.0;
            assert!(level(edge, edge) > -1.0, "{from}->{to}: passband edge");
            if to < from {
                // A tone 10 % above the output Nyquist folds back below it.
                let f = 1.1 * low / 2.0;
                let alias = f64::from(to.hz()) - f;
                let l = level(f, alias);
                assert!(l < -80.0, "{from}->{to}: alias at {alias} Hz is {l:.1} dB");
            }
        }
    }

    #[test]
    fn chunked_equals_one_shot() {
        for (from, to) in PAIRS {
            let input = to_i16(&sine(from, 700.0, 12_000.0, from.samples_in(240), 0));
            let mut small = Resampler::new(from, to, from.samples_in(10)).unwrap();
            let mut frame = Resampler::new(from, to, from.samples_in(20)).unwrap();
            let mut whole = Resampler::new(from, to, from.samples_in(240)).unwrap();
            assert_eq!(small.delay_samples(), whole.delay_samples());
            let a = run(&mut small, &input);
            let b = run(&mut frame, &input);
            let c = run(&mut whole, &input);
            assert_eq!(a.len(), c.len());
            for ((x, y), z) in a.iter().zip(&b).zip(&c) {
                assert!((x - z).abs() <= 1 && (y - z).abs() <= 1, "{from}->{to} {x} {y} {z}");
            }
        }
    }

    #[test]
    fn reset_restarts_the_stream() {
        let mut rs = Resampler::new(Hz16000, Hz8000, 320).unwrap();
        let input = to_i16(&sine(Hz16000, 440.0, 9_000.0, 3_200, 0));
        let first = run(&mut rs, &input);
        let second = run(&mut rs, &input);
        assert_ne!(first, second, "state carries over between calls");
        rs.reset();
        assert_eq!(run(&mut rs, &input), first);
    }

    #[test]
    fn identity_is_a_copy() {
        for rate in SampleRate::ALL {
            let mut rs = Resampler::new(rate, rate, rate.samples_in(20)).unwrap();
            assert_eq!(rs.delay_samples(), 0);
            let input: Vec<i16> = (0..rate.samples_in(60)).map(|i| (i * 37) as i16).collect();
            assert_eq!(run(&mut rs, &input), input);
        }
    }

    #[test]
    fn bad_arguments_are_errors() {
        assert!(Resampler::new(Hz16000, Hz8000, 0).is_err());
        // 1 sample at 16 kHz is 1.5 at 24 kHz.
        assert!(Resampler::new(Hz16000, Hz24000, 1).is_err());
        assert!(Resampler::new(Hz48000, Hz16000, 10).is_err());
        assert!(Resampler::new(Hz48000, Hz16000, 12).is_ok());

        let mut rs = Resampler::new(Hz8000, Hz16000, 160).unwrap();
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
        for (from, to) in PAIRS {
            let mut rs = Resampler::new(from, to, from.samples_in(20)).unwrap();
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
            assert_eq!(alloc_counter::allocations(), before, "{from}->{to}");
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
        let up = Resampler::new(Hz8000, crate::FRAME_RATE, 160).unwrap();
        assert_eq!(up.output_len(), crate::FRAME_SAMPLES);
        let down = Resampler::new(crate::FRAME_RATE, Hz8000, crate::FRAME_SAMPLES).unwrap();
        assert_eq!(down.output_len(), 160);
    }
}
