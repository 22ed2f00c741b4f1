//! The per-turn latency trace: every stage of a turn stamped on the call's clock
//! (time since the call started, from the `now` the shell passes in).

use std::time::Duration;

/// Stages stamped by the shell (the provider side), through [`crate::Input::Stamp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    SttFinal,
    LlmRequest,
    LlmFirstToken,
    FirstSentence,
    TtsRequest,
    TtsFirstAudio,
}

/// One turn: the caller's speech and the agent's reply to it. Turn 0 is the agent's
/// greeting when it speaks first. Times are offsets from the start of the call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TurnTrace {
    pub turn: u32,
    pub speech_start: Option<Duration>,
    pub speech_end: Option<Duration>,
    pub turn_end: Option<Duration>,
    pub stt_final: Option<Duration>,
    pub llm_request: Option<Duration>,
    pub llm_first_token: Option<Duration>,
    pub first_sentence: Option<Duration>,
    pub tts_request: Option<Duration>,
    pub tts_first_audio: Option<Duration>,
    pub first_audio_sent: Option<Duration>,
    pub first_playback_ack: Option<Duration>,
    pub playback_done: Option<Duration>,
    pub interrupted: Option<Duration>,
    /// How much of the reply the caller heard, when it was interrupted or finished.
    pub played_ms: Option<u32>,
    /// When the caller's interrupting speech began (set with `interrupted`).
    pub barge_in_onset: Option<Duration>,
    /// The reply began while the caller was speaking (not yet long enough to hold the
    /// floor): the agent talked over them.
    pub talk_over: bool,
}

impl TurnTrace {
    pub fn new(turn: u32) -> Self {
        Self {
            turn,
            ..Default::default()
        }
    }

    /// Records a provider-side stage; the first stamp of a stage wins.
    pub fn stamp(&mut self, stage: Stage, at: Duration) {
        let slot = match stage {
            Stage::SttFinal => &mut self.stt_final,
            Stage::LlmRequest => &mut self.llm_request,
            Stage::LlmFirstToken => &mut self.llm_first_token,
            Stage::FirstSentence => &mut self.first_sentence,
            Stage::TtsRequest => &mut self.tts_request,
            Stage::TtsFirstAudio => &mut self.tts_first_audio,
        };
        slot.get_or_insert(at);
    }

    /// Caller speech end → first agent audio sent: what the caller experiences as the
    /// agent's response time.
    pub fn voice_to_voice(&self) -> Option<Duration> {
        Some(self.first_audio_sent?.saturating_sub(self.speech_end?))
    }

    /// Caller onset → playback stopped, for an interrupted reply: how fast barge-in reacted.
    pub fn barge_in_reaction(&self) -> Option<Duration> {
        Some(self.interrupted?.saturating_sub(self.barge_in_onset?))
    }

    /// Turn-end decision → first agent audio sent: the part the engine and providers add
    /// on top of the silence threshold.
    pub fn response_after_turn_end(&self) -> Option<Duration> {
        Some(self.first_audio_sent?.saturating_sub(self.turn_end?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_stamp_wins_and_latencies_derive() {
        let ms = Duration::from_millis;
        let mut t = TurnTrace::new(1);
        t.speech_end = Some(ms(1000));
        t.turn_end = Some(ms(1700));
        t.stamp(Stage::SttFinal, ms(1750));
        t.stamp(Stage::SttFinal, ms(1800));
        t.first_audio_sent = Some(ms(1710));
        assert_eq!(t.stt_final, Some(ms(1750)));
        assert_eq!(t.voice_to_voice(), Some(ms(710)));
        assert_eq!(t.response_after_turn_end(), Some(ms(10)));
    }
}
