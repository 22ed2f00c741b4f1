//! Endpointing on the generated fixtures: turn boundaries against ground truth.

mod common;

use parley_engine::{CallConfig, Event};

const TOLERANCE_S: f64 = 0.060;

fn assert_turns_match(name: &str, cfg: CallConfig) {
    let truth = common::truth(name);
    let rec = common::Sim::new(cfg, common::ulaw_fixture(name)).run();
    let turns = rec.turns();
    assert_eq!(
        turns.len(),
        truth.len(),
        "{name}: turns {turns:?} vs truth {truth:?}"
    );
    for (got, want) in turns.iter().zip(&truth) {
        assert!(
            (got.0 - want.0).abs() <= TOLERANCE_S && (got.1 - want.1).abs() <= TOLERANCE_S,
            "{name}: turn {got:?} vs truth {want:?}"
        );
    }
}

#[test]
fn clean_speech_gives_two_turns_at_the_true_boundaries() {
    assert_turns_match("turns", CallConfig::default());
}

#[test]
fn noisy_speech_at_30_db_snr_gives_the_same_two_turns() {
    assert_turns_match("turns_noisy", CallConfig::default());
}

#[test]
fn noise_alone_gives_no_turn_and_no_speech() {
    let rec = common::Sim::new(CallConfig::default(), common::ulaw_fixture("noise")).run();
    assert!(rec.turns().is_empty(), "{:?}", rec.events);
    assert!(
        rec.first(|e| matches!(e, Event::SpeechStarted { .. }))
            .is_none(),
        "{:?}",
        rec.events
    );
}

#[test]
fn turn_ends_one_silence_threshold_after_speech() {
    let rec = common::Sim::new(CallConfig::default(), common::ulaw_fixture("turns")).run();
    for (ms, e) in &rec.events {
        if let Event::TurnEnded { speech_end, .. } = e {
            let waited = *ms as i64 - speech_end.as_millis() as i64;
            // 700 ms of silence, decided on a 20 ms frame boundary.
            assert!(
                (700..=720).contains(&waited),
                "turn end {waited} ms after speech"
            );
        }
    }
}
