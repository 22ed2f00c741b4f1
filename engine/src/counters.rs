//! Process-wide media counters for metrics (`/metrics`): frames in and out, late frames,
//! underruns and barge-ins over every call this process has run.
//!
//! The DSP workers add each call's counter deltas after servicing it — a handful of relaxed
//! atomic adds per call per wake-up, never per sample — so scraping costs the media path
//! nothing and needs no lock.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::call::CallStats;

static CALLER_FRAMES: AtomicU64 = AtomicU64::new(0);
static AGENT_FRAMES: AtomicU64 = AtomicU64::new(0);
static LATE_FRAMES: AtomicU64 = AtomicU64::new(0);
static UNDERRUNS: AtomicU64 = AtomicU64::new(0);
static BARGE_INS: AtomicU64 = AtomicU64::new(0);
static SUPPRESSED: AtomicU64 = AtomicU64::new(0);
static TALK_OVERS: AtomicU64 = AtomicU64::new(0);
static CALLS_STARTED: AtomicU64 = AtomicU64::new(0);
static CALLS_ENDED: AtomicU64 = AtomicU64::new(0);

/// A snapshot of the process-wide counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineCounters {
    /// VAD frames of caller audio classified.
    pub caller_frames: u64,
    /// 20 ms agent frames sent to transports.
    pub agent_frames: u64,
    pub late_frames: u64,
    pub underruns: u64,
    pub barge_ins: u64,
    pub suppressed_barge_ins: u64,
    pub talk_overs: u64,
    pub calls_started: u64,
    pub calls_ended: u64,
}

/// Reads the counters.
pub fn snapshot() -> EngineCounters {
    EngineCounters {
        caller_frames: CALLER_FRAMES.load(Relaxed),
        agent_frames: AGENT_FRAMES.load(Relaxed),
        late_frames: LATE_FRAMES.load(Relaxed),
        underruns: UNDERRUNS.load(Relaxed),
        barge_ins: BARGE_INS.load(Relaxed),
        suppressed_barge_ins: SUPPRESSED.load(Relaxed),
        talk_overs: TALK_OVERS.load(Relaxed),
        calls_started: CALLS_STARTED.load(Relaxed),
        calls_ended: CALLS_ENDED.load(Relaxed),
    }
}

/// Adds what changed between `before` and `now` (one call's stats).
pub(crate) fn add_delta(before: &CallStats, now: &CallStats) {
    fn add(c: &AtomicU64, a: u64, b: u64) {
        if b > a {
            c.fetch_add(b - a, Relaxed);
        }
    }
    add(&CALLER_FRAMES, before.vad_frames, now.vad_frames);
    add(&AGENT_FRAMES, before.frames_sent, now.frames_sent);
    add(&LATE_FRAMES, before.late_frames, now.late_frames);
    add(&UNDERRUNS, before.underruns, now.underruns);
    add(&BARGE_INS, before.barge_ins, now.barge_ins);
    add(
        &SUPPRESSED,
        before.suppressed_barge_ins,
        now.suppressed_barge_ins,
    );
    add(&TALK_OVERS, before.talk_overs, now.talk_overs);
}

pub(crate) fn call_started() {
    CALLS_STARTED.fetch_add(1, Relaxed);
}

pub(crate) fn call_ended() {
    CALLS_ENDED.fetch_add(1, Relaxed);
}
