//! The DSP worker shell on the real clock: network-side threads feed a call through its
//! SPSC rings, and paced frames, marks and a barge-in come back.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use parley_engine::handoff::InMsg;
use parley_engine::worker::Worker;
use parley_engine::{CallConfig, Event, Output};

#[test]
fn a_call_on_a_worker_plays_paced_audio_and_is_interrupted() {
    let worker = Worker::spawn("dsp-test").unwrap();
    let mut net = worker.add_call(CallConfig::default()).unwrap();
    let agent = common::ulaw_fixture("agent_reply");
    // 0.5 s of silence, then the caller's "wait stop …" from its onset.
    let speech = common::ulaw_fixture("barge_in");
    let mut caller = vec![0i16; 4000];
    caller.extend_from_slice(&speech[8000..8000 + 4000]);

    net.send_agent_audio(1, &agent[..16000]).unwrap();
    net.send(InMsg::AgentAudioEnd { utterance: 1 }).unwrap();

    let start = Instant::now();
    let mut frames = Vec::new();
    let mut clear_at = None;
    let mut interrupted = None;
    let mut sent_chunks = 0;
    while start.elapsed() < Duration::from_secs(3) && interrupted.is_none() {
        // The caller streams in real time, as a transport would.
        let due = (start.elapsed().as_millis() / 20) as usize;
        while sent_chunks < due && sent_chunks * 160 < caller.len() {
            net.send_caller_audio(&caller[sent_chunks * 160..(sent_chunks + 1) * 160]);
            sent_chunks += 1;
        }
        while let Some(out) = net.recv() {
            match out {
                Output::Audio(_) => frames.push(start.elapsed()),
                Output::Mark(m) => net.send(InMsg::MarkAck(m)).unwrap(),
                Output::Clear => clear_at = Some(start.elapsed()),
                Output::Event(Event::Interrupted { played_ms, .. }) => {
                    interrupted = Some(played_ms)
                }
                _ => {}
            }
        }
        thread::sleep(Duration::from_millis(2));
    }
    let clear_at = clear_at.expect("clear");
    let played = interrupted.expect("interrupted");
    // Speech starts 500 ms into the caller stream.
    assert!(clear_at > Duration::from_millis(500), "{clear_at:?}");
    assert!(clear_at < Duration::from_millis(900), "{clear_at:?}");
    assert!((400..900).contains(&played), "played {played} ms");
    // Paced: after the 100 ms lead burst, frames come no faster than real time.
    let span = *frames.last().unwrap() - frames[6];
    assert!(
        span >= Duration::from_millis(20 * (frames.len() as u64 - 8)),
        "{frames:?}"
    );
    assert_eq!(net.dropped_caller_samples, 0);
}

#[test]
fn bad_settings_are_refused_on_the_worker_without_killing_it() {
    let worker = Worker::spawn("dsp-test-2").unwrap();
    let mut bad = CallConfig::default();
    bad.vad.aggressiveness = 9;
    assert!(worker.add_call(bad).is_err());
    assert!(worker.add_call(CallConfig::default()).is_ok());
}

/// Waits up to `secs` for `f` to hold.
fn eventually(secs: u64, f: impl Fn() -> bool) -> bool {
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        if f() {
            return true;
        }
        thread::sleep(Duration::from_millis(5));
    }
    f()
}

#[test]
fn a_call_whose_network_side_is_gone_is_freed() {
    let worker = Worker::spawn("dsp-free").unwrap();
    let mut net = worker.add_call(CallConfig::default()).unwrap();
    // Outputs are waiting (a reply playing) and no hang-up ever comes: the network task
    // just went away.
    net.send_agent_audio(1, &vec![1000i16; 8000]).unwrap();
    net.send(InMsg::AgentAudioEnd { utterance: 1 }).unwrap();
    assert!(eventually(2, || worker.calls() == 1));
    thread::sleep(Duration::from_millis(200));
    drop(net);
    assert!(
        eventually(2, || worker.calls() == 0),
        "the worker still holds {} calls",
        worker.calls()
    );
}

#[test]
fn outputs_wait_for_a_slow_network_side_instead_of_being_dropped() {
    let worker = Worker::spawn("dsp-slow").unwrap();
    let mut net = worker.add_call(CallConfig::default()).unwrap();
    // One second of agent audio: 50 frames, 10 marks, and the events around them.
    net.send_agent_audio(1, &vec![1000i16; 8000]).unwrap();
    net.send(InMsg::AgentAudioEnd { utterance: 1 }).unwrap();
    // The network side stalls for 1.5 s: far more outputs than the outbox holds.
    thread::sleep(Duration::from_millis(1500));
    let mut frames = 0;
    let mut marks = 0;
    let mut done = false;
    let start = Instant::now();
    while !done && start.elapsed() < Duration::from_secs(3) {
        while let Some(out) = net.recv() {
            match out {
                Output::Audio(_) => frames += 1,
                Output::Mark(m) => {
                    marks += 1;
                    net.send(InMsg::MarkAck(m)).unwrap();
                }
                Output::Event(Event::PlaybackDone { .. }) => done = true,
                _ => {}
            }
        }
        thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(frames, 50);
    assert_eq!(marks, 10);
    assert!(done, "no PlaybackDone");
}
