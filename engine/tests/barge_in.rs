//! Barge-in on the generated fixtures: the agent is talking (agent_reply), the caller
//! speaks, hums a backchannel, or there is only noise.

mod common;

use parley_engine::{CallConfig, Event, InterruptionConfig, SuppressReason};

/// The agent starts talking at 200 ms; the caller fixture's truth says when it speaks.
fn sim(caller: &str, cfg: CallConfig) -> common::Record {
    let mut sim = common::Sim::new(cfg, common::ulaw_fixture(caller))
        .with_agent(common::ulaw_fixture("agent_reply"), 200);
    // Run on after the caller's audio until the agent's 4.2 s reply has played out.
    sim.extra_ms = 2000;
    sim.run()
}

fn onset_ms(name: &str) -> u64 {
    (common::truth(name)[0].0 * 1000.0).round() as u64
}

#[test]
fn caller_speech_clears_playback_within_120_ms_of_onset() {
    let rec = sim("barge_in", CallConfig::default());
    let onset = onset_ms("barge_in");
    assert_eq!(rec.clears.len(), 1, "{:?}", rec.events);
    let clear = rec.clears[0];
    assert!(
        clear >= onset && clear <= onset + 120,
        "clear at {clear} ms, onset at {onset} ms"
    );
    // No agent audio goes out after the clear.
    assert!(rec.frames_sent.iter().all(|&t| t <= clear));
    let (_, e) = rec
        .first(|e| matches!(e, Event::Interrupted { .. }))
        .expect("Interrupted event");
    let Event::Interrupted {
        played_ms,
        onset: detected,
        ..
    } = e
    else {
        unreachable!()
    };
    let heard = rec.heard_ms_at_clear.unwrap() as i64;
    assert!(
        (played_ms as i64 - heard).abs() <= 20,
        "played_ms {played_ms} vs heard {heard}"
    );
    assert!((detected.as_millis() as i64 - onset as i64).abs() <= 60);
    // The reply's trace carries the barge-in: onset, stop, and what was heard.
    let (_, t) = rec
        .first(|e| matches!(e, Event::TurnTrace(t) if t.interrupted.is_some()))
        .expect("trace of the interrupted reply");
    let Event::TurnTrace(t) = t else {
        unreachable!()
    };
    assert_eq!(t.barge_in_onset, Some(detected));
    assert_eq!(t.played_ms, Some(played_ms));
    let reaction = t.barge_in_reaction().unwrap().as_millis() as u64;
    assert!(reaction <= 120, "reaction {reaction} ms");
    // The caller began well after the reply did: an interruption, not a talk-over.
    assert!(!t.talk_over);
    // The interruption starts the caller's turn.
    assert_eq!(rec.turns().len(), 1, "{:?}", rec.events);
}

#[test]
fn a_backchannel_does_not_interrupt() {
    let rec = sim("backchannel", CallConfig::default());
    assert!(rec.clears.is_empty(), "{:?}", rec.events);
    assert!(rec
        .first(|e| matches!(e, Event::Interrupted { .. }))
        .is_none());
    assert!(
        rec.first(|e| matches!(
            e,
            Event::BargeInSuppressed {
                reason: SuppressReason::Backchannel,
                ..
            }
        ))
        .is_some(),
        "{:?}",
        rec.events
    );
    // Nor does it become a turn for the agent to answer.
    assert!(rec.turns().is_empty(), "{:?}", rec.events);
    assert!(rec
        .first(|e| matches!(e, Event::PlaybackDone { .. }))
        .is_some());
}

#[test]
fn noise_does_not_interrupt() {
    let rec = sim("noise", CallConfig::default());
    assert!(rec.clears.is_empty(), "{:?}", rec.events);
    assert!(rec
        .first(|e| matches!(e, Event::Interrupted { .. }))
        .is_none());
}

#[test]
fn interruption_disabled_lets_the_agent_finish() {
    let cfg = CallConfig {
        interruption: InterruptionConfig {
            enabled: false,
            ..Default::default()
        },
        ..Default::default()
    };
    let rec = sim("barge_in", cfg);
    assert!(rec.clears.is_empty(), "{:?}", rec.events);
    let (_, done) = rec
        .first(|e| matches!(e, Event::PlaybackDone { .. }))
        .expect("played out");
    let Event::PlaybackDone { played_ms, .. } = done else {
        unreachable!()
    };
    assert!(played_ms >= 4000, "{played_ms}");
}

#[test]
fn speech_inside_the_protection_window_waits_for_its_end() {
    // Agent starts at 200 ms; protect its first 1.1 s, i.e. until 1300 ms. The caller
    // starts at 1000 ms and keeps talking, so the barge-in lands right after 1300 ms.
    let cfg = CallConfig {
        interruption: InterruptionConfig {
            protection_ms: 1100,
            ..Default::default()
        },
        ..Default::default()
    };
    let rec = sim("barge_in", cfg);
    assert_eq!(rec.clears.len(), 1, "{:?}", rec.events);
    assert!((1300..=1340).contains(&rec.clears[0]), "{:?}", rec.clears);
}

#[test]
fn agent_audio_is_paced_in_20_ms_frames_with_a_small_lead() {
    let rec = sim("noise", CallConfig::default());
    let sent = &rec.frames_sent;
    assert_eq!(sent.len(), 4200 / 20);
    // Lead of 100 ms: six frames at once, then one every 20 ms.
    assert!(sent[..6].iter().all(|&t| t == 200));
    for w in sent[6..].windows(2) {
        assert_eq!(w[1] - w[0], 20, "{sent:?}");
    }
}

#[test]
fn a_reply_that_starts_while_the_caller_is_mid_word_is_a_talk_over() {
    // The agent's audio arrives 40 ms after the caller starts: too soon for the endpointer
    // to have given the caller the floor, so playback starts over them.
    let onset = onset_ms("barge_in");
    let mut sim = common::Sim::new(CallConfig::default(), common::ulaw_fixture("barge_in"))
        .with_agent(common::ulaw_fixture("agent_reply"), onset + 40);
    sim.extra_ms = 2000;
    let rec = sim.run();
    let talk_overs: Vec<_> = rec
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::TurnTrace(t) if t.first_audio_sent.is_some() => Some(t.talk_over),
            _ => None,
        })
        .collect();
    assert_eq!(talk_overs, vec![true], "{:?}", rec.events);

    // Starting in silence is not.
    let rec = sim_quiet();
    assert!(rec.events.iter().all(|(_, e)| match e {
        Event::TurnTrace(t) => !t.talk_over,
        _ => true,
    }));
}

fn sim_quiet() -> common::Record {
    sim("barge_in", CallConfig::default())
}
