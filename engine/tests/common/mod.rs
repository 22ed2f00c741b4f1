//! Shared helpers for the engine's fixture tests.
#![allow(dead_code)]

use std::path::PathBuf;

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// Caller audio from a fixture's raw 8 kHz μ-law file, decoded to linear PCM.
pub fn ulaw_fixture(name: &str) -> Vec<i16> {
    let path = fixtures_dir().join(format!("{name}.8k.ulaw"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = vec![0i16; bytes.len()];
    parley_codecs::g711::decode_ulaw(&bytes, &mut out);
    out
}

/// Ground truth speech spans of a fixture, from fixtures/truth.json.
pub fn truth(name: &str) -> Vec<(f64, f64)> {
    let text = std::fs::read_to_string(fixtures_dir().join("truth.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v[name]["speech"]
        .as_array()
        .unwrap_or_else(|| panic!("no truth for {name}"))
        .iter()
        .map(|s| (s[0].as_f64().unwrap(), s[1].as_f64().unwrap()))
        .collect()
}

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use parley_engine::{Call, CallConfig, Event, Input, Output};

/// What the simulated transport and caller saw during a run.
#[derive(Debug, Default)]
pub struct Record {
    /// (call time ms, event)
    pub events: Vec<(u64, Event)>,
    /// Call time (ms) of every `clear`.
    pub clears: Vec<u64>,
    /// Call time (ms) each agent frame was sent.
    pub frames_sent: Vec<u64>,
    /// Agent audio the simulated caller actually heard before the first clear, in ms.
    pub heard_ms_at_clear: Option<u64>,
}

impl Record {
    pub fn turns(&self) -> Vec<(f64, f64)> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::TurnEnded {
                    speech_start,
                    speech_end,
                    ..
                } => Some((speech_start.as_secs_f64(), speech_end.as_secs_f64())),
                _ => None,
            })
            .collect()
    }

    pub fn first<F: Fn(&Event) -> bool>(&self, f: F) -> Option<(u64, Event)> {
        self.events.iter().find(|(_, e)| f(e)).copied()
    }
}

/// A deterministic simulation of one call: a caller streaming `caller` audio in 20 ms
/// chunks, a Twilio-like transport that plays agent audio in real time and echoes marks
/// when it reaches them, and an instant TTS that offers `agent` audio as utterance 1 from
/// `agent_at_ms` on. Time advances in 1 ms steps, all made up: no clock is read.
pub struct Sim {
    pub call: Call,
    pub t0: Instant,
    pub caller: Vec<i16>,
    pub agent: Vec<i16>,
    pub agent_at_ms: Option<u64>,
    pub extra_ms: u64,
}

impl Sim {
    pub fn new(cfg: CallConfig, caller: Vec<i16>) -> Self {
        let t0 = Instant::now();
        Self {
            call: Call::new(cfg, t0).unwrap(),
            t0,
            caller,
            agent: Vec::new(),
            agent_at_ms: None,
            extra_ms: 0,
        }
    }

    pub fn with_agent(mut self, agent: Vec<i16>, at_ms: u64) -> Self {
        self.agent = agent;
        self.agent_at_ms = Some(at_ms);
        self
    }

    pub fn run(mut self) -> Record {
        let in_rate = self.call.config().input_rate.hz() as u64;
        let out_rate = self.call.config().output_rate.hz() as u64;
        let chunk = (in_rate / 50) as usize;
        let caller = std::mem::take(&mut self.caller);
        let agent = std::mem::take(&mut self.agent);
        let total_ms = caller.len() as u64 * 1000 / in_rate + self.extra_ms;
        let mut rec = Record::default();
        let mut agent_pos = 0usize;
        let mut agent_done = false;
        // Transport: when its buffered audio ends (ms), and marks waiting to be echoed.
        let mut play_end = 0u64;
        let mut first_play: Option<u64> = None;
        let mut heard_frames_ms = 0u64;
        let mut marks: VecDeque<(u64, u64)> = VecDeque::new();
        let mut cleared = false;
        for ms in 0..=total_ms {
            let now = self.t0 + Duration::from_millis(ms);
            let mut inputs: Vec<Input> = Vec::new();
            if ms > 0 && ms % 20 == 0 {
                let i = ((ms / 20 - 1) as usize) * chunk;
                if i < caller.len() {
                    let end = (i + chunk).min(caller.len());
                    inputs.push(Input::CallerAudio(&caller[i..end]));
                }
            }
            while marks.front().is_some_and(|&(at, _)| at <= ms) {
                let (_, m) = marks.pop_front().unwrap();
                inputs.push(Input::MarkAck(m));
            }
            let offer_agent = self.agent_at_ms.is_some_and(|a| ms >= a) && !agent_done;
            if inputs.is_empty() && !offer_agent {
                inputs.push(Input::Timeout);
            }
            for input in inputs {
                self.call.handle_input(now, input).unwrap();
                self.collect(
                    ms,
                    &mut rec,
                    &mut play_end,
                    &mut first_play,
                    &mut heard_frames_ms,
                    &mut marks,
                    &mut cleared,
                    out_rate,
                );
            }
            if offer_agent {
                let room = self.call.agent_audio_capacity();
                let n = room.min(agent.len() - agent_pos);
                if n > 0 {
                    let samples = &agent[agent_pos..agent_pos + n];
                    agent_pos += n;
                    let _ = self.call.handle_input(
                        now,
                        Input::AgentAudio {
                            utterance: 1,
                            samples,
                        },
                    );
                }
                if agent_pos == agent.len() {
                    agent_done = true;
                    self.call
                        .handle_input(now, Input::AgentAudioEnd { utterance: 1 })
                        .unwrap();
                }
                self.collect(
                    ms,
                    &mut rec,
                    &mut play_end,
                    &mut first_play,
                    &mut heard_frames_ms,
                    &mut marks,
                    &mut cleared,
                    out_rate,
                );
            }
        }
        rec
    }

    #[allow(clippy::too_many_arguments)]
    fn collect(
        &mut self,
        ms: u64,
        rec: &mut Record,
        play_end: &mut u64,
        first_play: &mut Option<u64>,
        heard: &mut u64,
        marks: &mut VecDeque<(u64, u64)>,
        cleared: &mut bool,
        out_rate: u64,
    ) {
        while let Some(out) = self.call.poll_output() {
            match out {
                Output::Audio(f) => {
                    rec.frames_sent.push(ms);
                    if !*cleared {
                        let start = (*play_end).max(ms);
                        first_play.get_or_insert(start);
                        *play_end = start + f.samples().len() as u64 * 1000 / out_rate;
                    }
                }
                Output::Mark(m) => marks.push_back((*play_end, m)),
                Output::Clear => {
                    rec.clears.push(ms);
                    if !*cleared {
                        *cleared = true;
                        // The caller heard everything played up to now.
                        *heard = first_play.map_or(0, |f| ms.min(*play_end).saturating_sub(f));
                        rec.heard_ms_at_clear = Some(*heard);
                        marks.clear();
                    }
                }
                Output::CallerAudio(_) => {}
                Output::Event(e) => rec.events.push((ms, e)),
            }
        }
    }
}
