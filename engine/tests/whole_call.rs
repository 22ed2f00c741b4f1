//! Whole calls driven faster than real time, and the engine-added latency of a reply.

mod common;

use std::time::{Duration, Instant};

use parley_engine::{Call, CallConfig, Event, Input, Output, Stage};

/// Merges truth spans separated by less than the silence threshold: that is what one
/// caller turn is.
fn expected_turns(truth: &[(f64, f64)], silence_s: f64) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    for &(s, e) in truth {
        match out.last_mut() {
            // Compare in whole ms: a gap of exactly the threshold ends the turn.
            Some(last) if ((s - last.1) * 1000.0).round() < silence_s * 1000.0 => last.1 = e,
            _ => out.push((s, e)),
        }
    }
    out
}

#[test]
fn a_60_second_call_runs_faster_than_real_time_with_every_turn_found() {
    let audio = common::ulaw_fixture("long_call");
    assert_eq!(audio.len(), 60 * 8000);
    let want = expected_turns(&common::truth("long_call"), 0.7);
    let wall = Instant::now();
    let rec = common::Sim::new(CallConfig::default(), audio).run();
    let took = wall.elapsed();
    println!(
        "60 s call simulated in {took:?} ({:.0}x real time)",
        60.0 / took.as_secs_f64()
    );
    // The claim is "faster than real time"; the benchmark measures by how much.
    assert!(took < Duration::from_secs(60));
    let got = rec.turns();
    assert_eq!(got.len(), want.len(), "got {got:?}\nwant {want:?}");
    for (g, w) in got.iter().zip(&want) {
        assert!(
            (g.0 - w.0).abs() <= 0.06 && (g.1 - w.1).abs() <= 0.06,
            "turn {g:?} vs truth {w:?}"
        );
    }
}

/// With a zero-latency "provider" that answers the moment the turn ends, the first agent
/// frame leaves the core in the same step: the engine adds nothing beyond the silence
/// threshold and the 20 ms frame it is decided on.
#[test]
fn reply_audio_leaves_in_the_step_the_turn_ends() {
    let t0 = Instant::now();
    let mut call = Call::new(CallConfig::default(), t0).unwrap();
    let audio = common::ulaw_fixture("turns");
    let reply = vec![1000i16; 8000];
    let mut utterance = 0;
    let mut latencies = Vec::new();
    let mut speech_end = None;
    for (i, chunk) in audio.chunks(160).enumerate() {
        let now = t0 + Duration::from_millis(20 * (i as u64 + 1));
        call.handle_input(now, Input::CallerAudio(chunk)).unwrap();
        let mut turn_ended = false;
        while let Some(out) = call.poll_output() {
            match out {
                Output::Event(Event::TurnEnded { speech_end: e, .. }) => {
                    turn_ended = true;
                    speech_end = Some(e);
                }
                Output::Audio(_) => {
                    if let Some(end) = speech_end.take() {
                        latencies.push((now - t0).saturating_sub(end));
                    }
                }
                _ => {}
            }
        }
        if turn_ended {
            utterance += 1;
            for stage in [Stage::SttFinal, Stage::LlmFirstToken, Stage::TtsFirstAudio] {
                call.handle_input(now, Input::Stamp(stage)).unwrap();
            }
            call.handle_input(
                now,
                Input::AgentAudio {
                    utterance,
                    samples: &reply[..1600],
                },
            )
            .unwrap();
            while let Some(out) = call.poll_output() {
                if let Output::Audio(_) = out {
                    if let Some(end) = speech_end.take() {
                        latencies.push((now - t0).saturating_sub(end));
                    }
                }
            }
            call.handle_input(now, Input::AgentAudioEnd { utterance })
                .unwrap();
        }
    }
    assert_eq!(latencies.len(), 2, "{latencies:?}");
    for l in latencies {
        println!("speech end -> first agent frame: {l:?} (silence threshold 700 ms)");
        assert!(
            l >= Duration::from_millis(700) && l <= Duration::from_millis(720),
            "{l:?}"
        );
    }
}

#[test]
fn the_turn_trace_records_each_stage() {
    let t0 = Instant::now();
    let mut call = Call::new(CallConfig::default(), t0).unwrap();
    let audio = common::ulaw_fixture("turns");
    let mut traces = Vec::new();
    let reply = vec![1000i16; 1600];
    let ms = |v: u64| t0 + Duration::from_millis(v);
    for (i, chunk) in audio.chunks(160).enumerate() {
        let now = ms(20 * (i as u64 + 1));
        call.handle_input(now, Input::CallerAudio(chunk)).unwrap();
        let mut ended = false;
        while let Some(out) = call.poll_output() {
            match out {
                Output::Event(Event::TurnEnded { turn: 1, .. }) => ended = true,
                Output::Event(Event::TurnTrace(t)) => traces.push(t),
                Output::Mark(m) => call.handle_input(now, Input::MarkAck(m)).unwrap(),
                _ => {}
            }
        }
        if ended {
            // Providers with known delays: STT 150 ms, LLM 300 ms, TTS 200 ms.
            let base = now;
            let at = |d: u64| base + Duration::from_millis(d);
            call.handle_input(at(150), Input::Stamp(Stage::SttFinal))
                .unwrap();
            call.handle_input(at(150), Input::Stamp(Stage::LlmRequest))
                .unwrap();
            call.handle_input(at(450), Input::Stamp(Stage::LlmFirstToken))
                .unwrap();
            call.handle_input(at(450), Input::Stamp(Stage::TtsRequest))
                .unwrap();
            call.handle_input(
                at(650),
                Input::AgentAudio {
                    utterance: 1,
                    samples: &reply,
                },
            )
            .unwrap();
            call.handle_input(at(650), Input::AgentAudioEnd { utterance: 1 })
                .unwrap();
            // Let the reply play out, acknowledging marks as the transport would.
            let mut t = at(650);
            for _ in 0..40 {
                t += Duration::from_millis(20);
                call.handle_input(t, Input::Timeout).unwrap();
                while let Some(out) = call.poll_output() {
                    match out {
                        Output::Mark(m) => call.handle_input(t, Input::MarkAck(m)).unwrap(),
                        Output::Event(Event::TurnTrace(tr)) => traces.push(tr),
                        _ => {}
                    }
                }
            }
            break;
        }
    }
    assert_eq!(traces.len(), 1, "{traces:?}");
    let tr = traces[0];
    let turn_end = tr.turn_end.unwrap();
    let d = |x: Option<Duration>| x.unwrap() - turn_end;
    assert_eq!(d(tr.stt_final), Duration::from_millis(150));
    assert_eq!(d(tr.llm_first_token), Duration::from_millis(450));
    assert_eq!(d(tr.tts_first_audio), Duration::from_millis(650));
    assert_eq!(d(tr.first_audio_sent), Duration::from_millis(650));
    assert!(tr.first_playback_ack.is_some());
    assert!(tr.playback_done.is_some());
    assert_eq!(tr.played_ms, Some(200));
    assert!((tr.speech_start.unwrap().as_secs_f64() - 0.5).abs() <= 0.06);
    assert!((tr.speech_end.unwrap().as_secs_f64() - 2.0).abs() <= 0.06);
}
