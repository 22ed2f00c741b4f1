mod common;
use parley_engine::vad::{SpeechGate, WebRtcVad};

#[test]
#[ignore]
fn explore() {
    for name in ["backchannel", "barge_in", "noise", "turns_noisy", "agent_reply"] {
        let audio = common::ulaw_fixture(name);
        let mut gate = SpeechGate::new(WebRtcVad::new(8000, 20, 3).unwrap(), -55.0, 9.0, 20);
        let mut line = String::new();
        for (i, f) in audio.chunks_exact(160).enumerate() {
            let d = gate.process(f).unwrap();
            if d.speech || d.features.level_db > -60.0 {
                line += &format!("{}:{}{}{:.0}/{:.2} ", i * 20, if d.speech { "S" } else { "." }, if d.open { "o" } else { "c" }, d.features.level_db, d.features.tilt);
            }
        }
        println!("{name}: {line}\n");
    }
}
