//! The call core's handling of odd and hostile inputs: it answers with an error or drops
//! and counts, and keeps working.

use std::time::{Duration, Instant};

use parley_engine::{Call, CallConfig, Event, Input, InputError, Output, TurnState};

fn drain(call: &mut Call) -> Vec<Output> {
    std::iter::from_fn(|| call.poll_output()).collect()
}

#[test]
fn time_going_backwards_is_refused() {
    let t0 = Instant::now();
    let mut call = Call::new(CallConfig::default(), t0).unwrap();
    call.handle_input(t0 + Duration::from_millis(40), Input::Timeout)
        .unwrap();
    assert_eq!(
        call.handle_input(t0 + Duration::from_millis(20), Input::Timeout),
        Err(InputError::TimeWentBackwards)
    );
    call.handle_input(
        t0 + Duration::from_millis(60),
        Input::CallerAudio(&[0; 160]),
    )
    .unwrap();
}

#[test]
fn odd_sized_caller_audio_is_reassembled_into_frames() {
    let t0 = Instant::now();
    let mut call = Call::new(CallConfig::default(), t0).unwrap();
    for i in 0..100u64 {
        // 7, 1, 333 … samples at a time.
        let n = [7usize, 1, 333, 160, 0][(i % 5) as usize];
        call.handle_input(
            t0 + Duration::from_millis(i),
            Input::CallerAudio(&vec![0; n]),
        )
        .unwrap();
    }
    // 20 × (7+1+333+160) = 10020 samples = 62 full 20 ms frames at 8 kHz.
    assert_eq!(call.stats.vad_frames, 62);
}

#[test]
fn inputs_after_hangup_are_refused_and_the_trace_is_flushed() {
    let t0 = Instant::now();
    let mut call = Call::new(CallConfig::default(), t0).unwrap();
    call.handle_input(
        t0,
        Input::AgentAudio {
            utterance: 1,
            samples: &[100; 4000],
        },
    )
    .unwrap();
    drain(&mut call);
    call.handle_input(t0 + Duration::from_millis(200), Input::Hangup)
        .unwrap();
    let outs = drain(&mut call);
    assert!(outs
        .iter()
        .any(|o| matches!(o, Output::Event(Event::TurnTrace(_)))));
    assert_eq!(call.state(), TurnState::Ended);
    assert_eq!(
        call.handle_input(
            t0 + Duration::from_millis(220),
            Input::CallerAudio(&[0; 160])
        ),
        Err(InputError::Ended)
    );
    assert_eq!(call.poll_timeout(), None);
}

#[test]
fn audio_for_a_new_utterance_waits_and_stale_audio_is_dropped() {
    let t0 = Instant::now();
    let mut call = Call::new(CallConfig::default(), t0).unwrap();
    call.handle_input(
        t0,
        Input::AgentAudio {
            utterance: 1,
            samples: &[100; 4000],
        },
    )
    .unwrap();
    assert!(call
        .handle_input(
            t0,
            Input::AgentAudio {
                utterance: 2,
                samples: &[1; 10]
            }
        )
        .is_err());
    call.handle_input(t0, Input::CancelAgentAudio { utterance: 1 })
        .unwrap();
    let outs = drain(&mut call);
    assert!(
        outs.iter().any(|o| matches!(o, Output::Clear)),
        "was playing: clear"
    );
    assert!(outs.iter().any(|o| matches!(
        o,
        Output::Event(Event::PlaybackCancelled { utterance: 1, .. })
    )));
    // Late TTS audio of the cancelled utterance goes nowhere.
    call.handle_input(
        t0,
        Input::AgentAudio {
            utterance: 1,
            samples: &[100; 800],
        },
    )
    .unwrap();
    assert!(drain(&mut call)
        .iter()
        .all(|o| !matches!(o, Output::Audio(_))));
    // The next utterance plays.
    call.handle_input(
        t0,
        Input::AgentAudio {
            utterance: 2,
            samples: &[100; 800],
        },
    )
    .unwrap();
    assert!(drain(&mut call)
        .iter()
        .any(|o| matches!(o, Output::Audio(_))));
}

#[test]
fn idle_and_max_duration_timers_fire_once() {
    let t0 = Instant::now();
    let cfg = CallConfig {
        max_idle: Some(Duration::from_secs(5)),
        max_duration: Some(Duration::from_secs(8)),
        ..Default::default()
    };
    let mut call = Call::new(cfg, t0).unwrap();
    assert_eq!(call.poll_timeout(), Some(t0 + Duration::from_secs(5)));
    let mut idle = 0;
    let mut max = 0;
    for s in 1..=10 {
        call.handle_input(t0 + Duration::from_secs(s), Input::Timeout)
            .unwrap();
        for o in drain(&mut call) {
            match o {
                Output::Event(Event::IdleTimeout) => idle += 1,
                Output::Event(Event::MaxDurationReached) => max += 1,
                _ => {}
            }
        }
    }
    assert_eq!((idle, max), (1, 1));
}

#[test]
fn dtmf_is_reported() {
    let t0 = Instant::now();
    let mut call = Call::new(CallConfig::default(), t0).unwrap();
    call.handle_input(t0, Input::Dtmf('5')).unwrap();
    assert!(matches!(
        drain(&mut call)[..],
        [Output::Event(Event::Dtmf { digit: '5' })]
    ));
}

#[test]
fn invalid_settings_are_refused() {
    let mut cfg = CallConfig::default();
    cfg.endpointing.silence_ms = 10;
    assert!(Call::new(cfg, Instant::now()).is_err());
    let mut cfg = CallConfig::default();
    cfg.vad.frame_ms = 25;
    assert!(Call::new(cfg, Instant::now()).is_err());
}
