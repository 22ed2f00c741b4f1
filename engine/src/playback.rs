//! Paced playback of agent audio: a fixed-capacity queue drained in 20 ms frames at
//! real-time pace with a small lead, marks for the transport to echo, and the bookkeeping
//! that says how much of an utterance the caller has actually heard.
//!
//! Clock-free like the rest of the core: every method that needs the time takes `now`.

use std::time::{Duration, Instant};

use ringbuf::storage::Heap;
use ringbuf::traits::{Consumer, Observer, Producer};
use ringbuf::LocalRb;

use crate::config::{PlaybackAck, PlaybackConfig};

/// Largest frame: 20 ms at 48 kHz.
pub const MAX_FRAME_SAMPLES: usize = 960;

/// 20 ms of agent audio at the output rate, ready for the transport.
#[derive(Clone, Copy)]
pub struct AgentFrame {
    samples: [i16; MAX_FRAME_SAMPLES],
    len: u16,
    /// The utterance it belongs to.
    pub utterance: u32,
}

impl AgentFrame {
    pub fn samples(&self) -> &[i16] {
        &self.samples[..self.len as usize]
    }
}

impl std::fmt::Debug for AgentFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentFrame")
            .field("utterance", &self.utterance)
            .field("len", &self.len)
            .finish()
    }
}

#[derive(Debug, Clone, Copy)]
struct Utterance {
    id: u32,
    /// Call-wide sample position of this utterance's first sample.
    base: u64,
    /// The shell said no more audio will come for it.
    audio_done: bool,
    /// Play time of the sample at `anchor_pos`; `None` until (re)started.
    anchor: Option<Instant>,
    anchor_pos: u64,
    /// Samples sent / acknowledged as played, relative to the utterance.
    sent: u64,
    acked: u64,
    acked_at: Option<Instant>,
    /// When the first frame went out.
    started_at: Option<Instant>,
    /// An underrun was reported since the last frame.
    underrun_reported: bool,
}

/// What [`Playback::poll`] produced (the frame inline: no allocation per frame).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy)]
pub enum PlaybackOutput {
    Frame {
        frame: AgentFrame,
        /// First frame of the utterance.
        first: bool,
        /// A mark to send right after the frame (call-wide sample position).
        mark: Option<u64>,
    },
    /// The queue ran dry in the middle of an utterance and the transport has played
    /// everything: the caller hears a gap.
    Underrun { utterance: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    #[error("agent audio queue full: accepted {accepted} samples")]
    QueueFull { accepted: usize },
    #[error("utterance {current} is still playing; utterance {new} must wait for it to finish")]
    Busy { current: u32, new: u32 },
}

/// The outbound side of a call.
pub struct Playback {
    rate: u32,
    frame_samples: usize,
    lead: Duration,
    mark_interval: u64,
    ack: PlaybackAck,
    grace: Duration,
    queue: LocalRb<Heap<i16>>,
    current: Option<Utterance>,
    /// Highest utterance id that has finished (done or interrupted); later audio for it
    /// (a TTS stream still draining after a cancel) is dropped.
    finished_id: Option<u32>,
    total_sent: u64,
    since_mark: u64,
    discarded: u64,
    /// Frames sent more than [`LATE_AFTER`] after their scheduled send time.
    late_frames: u64,
}

/// A frame is late when it leaves more than one frame interval after its scheduled send
/// time (its play time minus the lead): the far end's buffer shrank by a whole frame, and
/// a few more such frames in a row would be heard as a gap.
pub const LATE_AFTER: Duration = Duration::from_millis(20);

impl Playback {
    pub fn new(rate: u32, cfg: &PlaybackConfig) -> Self {
        let frame_samples = (rate / 50) as usize;
        Self {
            rate,
            frame_samples,
            lead: Duration::from_millis(cfg.lead_ms as u64),
            mark_interval: (rate as u64 * cfg.mark_interval_ms as u64 / 1000).max(1),
            ack: cfg.ack,
            grace: Duration::from_millis(cfg.ack_grace_ms as u64),
            queue: LocalRb::new((rate as usize * cfg.queue_ms as usize / 1000).max(frame_samples)),
            current: None,
            finished_id: None,
            total_sent: 0,
            since_mark: 0,
            discarded: 0,
            late_frames: 0,
        }
    }

    fn dur(&self, samples: u64) -> Duration {
        Duration::from_nanos(samples * 1_000_000_000 / self.rate as u64)
    }

    fn samples_in(&self, d: Duration) -> u64 {
        (d.as_nanos() * self.rate as u128 / 1_000_000_000) as u64
    }

    /// Free space in the queue, in samples.
    pub fn capacity_left(&self) -> usize {
        self.queue.vacant_len()
    }

    /// Samples of stale audio dropped so far (for utterances already finished).
    pub fn discarded(&self) -> u64 {
        self.discarded
    }

    /// Frames that left late (see [`LATE_AFTER`]).
    pub fn late_frames(&self) -> u64 {
        self.late_frames
    }

    /// The utterance being played, if any.
    pub fn current(&self) -> Option<u32> {
        self.current.map(|u| u.id)
    }

    /// Whether audio of the current utterance has gone out.
    pub fn is_playing(&self) -> bool {
        self.current.is_some_and(|u| u.started_at.is_some())
    }

    /// When the current utterance's first frame went out.
    pub fn started_at(&self) -> Option<Instant> {
        self.current.and_then(|u| u.started_at)
    }

    /// Queues agent audio for `utterance`.
    pub fn push(&mut self, utterance: u32, samples: &[i16]) -> Result<(), PushError> {
        if self.finished_id.is_some_and(|f| utterance <= f) {
            self.discarded += samples.len() as u64;
            return Ok(());
        }
        match self.current {
            Some(u) if u.id != utterance => {
                return Err(PushError::Busy {
                    current: u.id,
                    new: utterance,
                })
            }
            Some(_) => {}
            None => {
                self.current = Some(Utterance {
                    id: utterance,
                    base: self.total_sent,
                    audio_done: false,
                    anchor: None,
                    anchor_pos: 0,
                    sent: 0,
                    acked: 0,
                    acked_at: None,
                    started_at: None,
                    underrun_reported: false,
                })
            }
        }
        let accepted = self.queue.push_slice(samples);
        if accepted < samples.len() {
            return Err(PushError::QueueFull { accepted });
        }
        Ok(())
    }

    /// No more audio will come for `utterance`.
    pub fn end_of_audio(&mut self, utterance: u32) {
        if let Some(u) = self.current.as_mut().filter(|u| u.id == utterance) {
            u.audio_done = true;
        }
    }

    /// The transport echoed the mark at call-wide position `pos`.
    pub fn ack(&mut self, now: Instant, pos: u64) {
        if let Some(u) = self.current.as_mut() {
            if pos >= u.base {
                let rel = (pos - u.base).min(u.sent);
                if rel >= u.acked {
                    u.acked = rel;
                    u.acked_at = Some(now);
                }
            }
        }
    }

    /// Next time [`Playback::poll`] has something to do.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let u = self.current?;
        let queued = self.queue.occupied_len();
        if queued >= self.frame_samples || (u.audio_done && queued > 0) {
            return Some(match u.anchor {
                Some(a) => (a + self.dur(u.sent - u.anchor_pos))
                    .checked_sub(self.lead)
                    .unwrap_or(now)
                    .max(a),
                None => now,
            });
        }
        let a = u.anchor?;
        let play_end = a + self.dur(u.sent - u.anchor_pos);
        if u.audio_done {
            // Waiting for playback to finish.
            Some(match self.ack {
                PlaybackAck::Sent => play_end,
                PlaybackAck::Marks => play_end + self.grace,
            })
        } else if !u.underrun_reported {
            Some(play_end)
        } else {
            None
        }
    }

    /// Sends the next frame if it is due.
    pub fn poll(&mut self, now: Instant) -> Option<PlaybackOutput> {
        let frame_samples = self.frame_samples;
        let queued = self.queue.occupied_len();
        let rate = self.rate;
        let lead = self.lead;
        let u = self.current.as_mut()?;
        let have_frame = queued >= frame_samples || (u.audio_done && queued > 0);
        if !have_frame {
            if !u.audio_done && !u.underrun_reported {
                if let Some(a) = u.anchor {
                    let play_end = a + Duration::from_nanos(
                        (u.sent - u.anchor_pos) * 1_000_000_000 / rate as u64,
                    );
                    if now >= play_end {
                        // The transport has played all it had: restart the schedule when
                        // audio comes again.
                        u.underrun_reported = true;
                        u.anchor = None;
                        return Some(PlaybackOutput::Underrun { utterance: u.id });
                    }
                }
            }
            return None;
        }
        let anchor = match u.anchor {
            Some(a) => a,
            None => {
                // (Re)start: keep the play-time estimate continuous across underruns.
                u.anchor = Some(now);
                u.anchor_pos = u.sent;
                now
            }
        };
        let due =
            anchor + Duration::from_nanos((u.sent - u.anchor_pos) * 1_000_000_000 / rate as u64);
        if now + lead < due {
            return None;
        }
        // Scheduled send time: `lead` before play time, but never before the anchor (the
        // first frames of a run go out at once to fill the lead).
        let scheduled = due.checked_sub(lead).map_or(anchor, |t| t.max(anchor));
        if now.saturating_duration_since(scheduled) > LATE_AFTER {
            self.late_frames += 1;
        }
        let mut frame = AgentFrame {
            samples: [0; MAX_FRAME_SAMPLES],
            len: frame_samples as u16,
            utterance: u.id,
        };
        // A final partial frame is padded with silence to a whole 20 ms.
        self.queue.pop_slice(&mut frame.samples[..frame_samples]);
        let first = u.started_at.is_none();
        if first {
            u.started_at = Some(now);
        }
        u.sent += frame_samples as u64;
        u.underrun_reported = false;
        self.total_sent += frame_samples as u64;
        self.since_mark += frame_samples as u64;
        let last = u.audio_done && self.queue.is_empty();
        let mark = if self.since_mark >= self.mark_interval || last {
            self.since_mark = 0;
            Some(self.total_sent)
        } else {
            None
        };
        Some(PlaybackOutput::Frame { frame, first, mark })
    }

    /// Samples of the current utterance the caller has heard by `now`.
    pub fn played_samples(&self, now: Instant) -> u64 {
        let Some(u) = self.current else { return 0 };
        let Some(anchor) = u.anchor.or(u.started_at) else {
            return 0;
        };
        // What real-time playback from the anchor would have reached.
        let by_time =
            (u.anchor_pos + self.samples_in(now.saturating_duration_since(anchor))).min(u.sent);
        match self.ack {
            PlaybackAck::Sent => by_time,
            PlaybackAck::Marks => match u.acked_at {
                // Interpolate from the last echoed mark, never past the schedule.
                Some(at) => (u.acked + self.samples_in(now.saturating_duration_since(at)))
                    .min(by_time)
                    .max(u.acked),
                // Nothing echoed yet: the first mark may still be in flight.
                None => by_time,
            },
        }
    }

    pub fn samples_to_ms(&self, samples: u64) -> u32 {
        (samples * 1000 / self.rate as u64) as u32
    }

    /// Whether the current utterance has been played out entirely.
    pub fn is_done(&self, now: Instant) -> bool {
        let Some(u) = self.current else { return false };
        if !u.audio_done || !self.queue.is_empty() {
            return false;
        }
        let Some(a) = u.anchor.or(u.started_at) else {
            // Ended with no audio at all.
            return true;
        };
        let play_end = a + self.dur(u.sent - u.anchor_pos);
        match self.ack {
            PlaybackAck::Sent => now >= play_end,
            PlaybackAck::Marks => u.acked >= u.sent || now >= play_end + self.grace,
        }
    }

    /// Ends the current utterance (played out or interrupted): flushes what is queued and
    /// returns (utterance id, samples heard).
    pub fn finish(&mut self, now: Instant) -> Option<(u32, u64)> {
        let played = self.played_samples(now);
        let u = self.current.take()?;
        self.queue.clear();
        self.since_mark = 0;
        self.finished_id = Some(self.finished_id.map_or(u.id, |f| f.max(u.id)));
        Some((u.id, played))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(ack: PlaybackAck) -> PlaybackConfig {
        PlaybackConfig {
            ack,
            ..Default::default()
        }
    }

    /// Drives playback for `ms` in 1 ms steps, returning send times (ms) and marks.
    fn drive(p: &mut Playback, t0: Instant, from_ms: u64, to_ms: u64) -> (Vec<u64>, Vec<u64>) {
        let mut sends = Vec::new();
        let mut marks = Vec::new();
        for ms in from_ms..to_ms {
            let now = t0 + Duration::from_millis(ms);
            while let Some(out) = p.poll(now) {
                if let PlaybackOutput::Frame { mark, .. } = out {
                    sends.push(ms);
                    marks.extend(mark);
                }
            }
        }
        (sends, marks)
    }

    #[test]
    fn paces_at_real_time_with_the_configured_lead() {
        let t0 = Instant::now();
        let mut p = Playback::new(8000, &cfg(PlaybackAck::Sent));
        p.push(1, &[1000; 8000]).unwrap(); // 1 s
        p.end_of_audio(1);
        let (sends, marks) = drive(&mut p, t0, 0, 2000);
        assert_eq!(sends.len(), 50);
        // 100 ms lead: the first six frames (0..120 ms of audio) go at once…
        assert_eq!(&sends[..6], &[0, 0, 0, 0, 0, 0]);
        // …then one every 20 ms.
        for w in sends[6..].windows(2) {
            assert_eq!(w[1] - w[0], 20);
        }
        assert_eq!(sends[49], 880);
        // Marks every 100 ms of audio, the last one at the end.
        assert_eq!(marks.len(), 10);
        assert_eq!(*marks.last().unwrap(), 8000);
        assert!(p.is_done(t0 + Duration::from_millis(1000)));
        assert!(!p.is_done(t0 + Duration::from_millis(990)));
    }

    #[test]
    fn frames_sent_after_their_slot_are_counted_late() {
        let t0 = Instant::now();
        let mut p = Playback::new(8000, &cfg(PlaybackAck::Sent));
        p.push(1, &[1000; 8000]).unwrap();
        p.end_of_audio(1);
        // On time, polled every millisecond: nothing late.
        drive(&mut p, t0, 0, 300);
        assert_eq!(p.late_frames(), 0);
        // The shell stalls for 100 ms: the frames due meanwhile leave late (their slots
        // passed more than 20 ms ago), then pacing is back on time.
        let (sends, _) = drive(&mut p, t0, 400, 700);
        assert!(sends[0] == 400 && sends[4] == 400, "{sends:?}");
        assert_eq!(p.late_frames(), 4);
    }

    #[test]
    fn played_position_follows_marks() {
        let t0 = Instant::now();
        let mut p = Playback::new(8000, &cfg(PlaybackAck::Marks));
        p.push(1, &[1000; 8000]).unwrap();
        let _ = drive(&mut p, t0, 0, 500);
        // Transport is slow: it has only played 200 ms when we ask at 500 ms.
        p.ack(t0 + Duration::from_millis(480), 1600);
        let played = p.played_samples(t0 + Duration::from_millis(500));
        assert_eq!(played, 1600 + 160); // 200 ms acked + 20 ms since the ack
        let (id, heard) = p.finish(t0 + Duration::from_millis(500)).unwrap();
        assert_eq!((id, heard), (1, 1760));
        // Late audio for the finished utterance is dropped, not queued.
        p.push(1, &[5; 100]).unwrap();
        assert_eq!(p.discarded(), 100);
        assert_eq!(p.current(), None);
    }

    #[test]
    fn underrun_is_reported_and_schedule_restarts() {
        let t0 = Instant::now();
        let mut p = Playback::new(8000, &cfg(PlaybackAck::Sent));
        p.push(1, &[1000; 1600]).unwrap(); // 200 ms
        let (sends, _) = drive(&mut p, t0, 0, 150);
        assert_eq!(sends.len(), 10);
        let mut underrun_at = None;
        for ms in 150..400u64 {
            if let Some(PlaybackOutput::Underrun { .. }) = p.poll(t0 + Duration::from_millis(ms)) {
                underrun_at = Some(ms);
            }
        }
        assert_eq!(underrun_at, Some(200));
        p.push(1, &[1000; 160]).unwrap();
        let (sends, _) = drive(&mut p, t0, 400, 401);
        assert_eq!(sends, vec![400]);
    }

    #[test]
    fn a_second_utterance_waits_for_the_first() {
        let mut p = Playback::new(8000, &cfg(PlaybackAck::Sent));
        p.push(1, &[0; 10]).unwrap();
        assert_eq!(
            p.push(2, &[0; 10]),
            Err(PushError::Busy { current: 1, new: 2 })
        );
    }

    #[test]
    fn full_queue_reports_what_it_took() {
        let mut p = Playback::new(
            8000,
            &PlaybackConfig {
                queue_ms: 100,
                ..Default::default()
            },
        );
        assert_eq!(
            p.push(1, &[0; 1000]),
            Err(PushError::QueueFull { accepted: 800 })
        );
        assert_eq!(p.capacity_left(), 0);
    }
}
