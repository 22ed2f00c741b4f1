//! Architecture invariant: the per-frame path does not allocate. A counting global
//! allocator (per thread, so parallel tests do not see each other) watches a call in
//! steady state: caller frames in, agent frames out, marks, barge-in, next turn.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

use parley_codecs::SampleRate;
use parley_engine::{Call, CallConfig, Input, Output, VadConfig};

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCS.with(|c| c.get())
}

#[test]
fn the_counter_sees_allocations() {
    let before = allocations();
    drop(std::hint::black_box(Vec::<u8>::with_capacity(16)));
    assert_eq!(allocations() - before, 1);
}

/// Runs `caller` through a call while the agent talks over it from 200 ms on;
/// returns allocations counted after the first second.
fn steady_state_allocations(cfg: CallConfig, caller: &[i16], agent: &[i16]) -> u64 {
    let t0 = Instant::now();
    let mut call = Call::new(cfg.clone(), t0).unwrap();
    let in_chunk = (cfg.input_rate.hz() / 50) as usize;
    let mut agent_pos = 0;
    let mut utterance = 1;
    let mut before = None;
    for (i, chunk) in caller.chunks(in_chunk).enumerate() {
        let now = t0 + Duration::from_millis(20 * (i as u64 + 1));
        if i == 50 {
            before = Some(allocations());
        }
        call.handle_input(now, Input::CallerAudio(chunk)).unwrap();
        if i >= 10 {
            let room = call.agent_audio_capacity().min(agent.len() - agent_pos);
            if room > 0 {
                let r = call.handle_input(
                    now,
                    Input::AgentAudio {
                        utterance,
                        samples: &agent[agent_pos..agent_pos + room],
                    },
                );
                if r.is_err() {
                    // Previous utterance still finishing: try the next one later.
                } else {
                    agent_pos += room;
                }
            }
            if agent_pos == agent.len() {
                call.handle_input(now, Input::AgentAudioEnd { utterance })
                    .unwrap();
                agent_pos = 0;
                utterance += 1;
            }
        }
        while let Some(out) = call.poll_output() {
            if let Output::Mark(m) = out {
                call.handle_input(now, Input::MarkAck(m)).unwrap();
            }
        }
    }
    let n = allocations() - before.unwrap();
    // The run must have exercised barge-in and playback, or it proves little.
    assert!(
        call.stats.barge_ins > 0 && call.stats.frames_sent > 100,
        "{:?}",
        call.stats
    );
    n
}

#[test]
fn telephony_path_does_not_allocate_per_frame() {
    let caller = common::ulaw_fixture("long_call");
    let agent = common::ulaw_fixture("agent_reply");
    let n = steady_state_allocations(CallConfig::default(), &caller[..20 * 8000], &agent);
    assert_eq!(n, 0, "{n} allocations on the per-frame path");
}

#[test]
fn resampling_and_stt_forwarding_do_not_allocate_per_frame() {
    let caller = common::ulaw_fixture("long_call");
    let agent = common::ulaw_fixture("agent_reply");
    let cfg = CallConfig {
        forward_caller_audio: true,
        vad: VadConfig {
            wideband: true,
            ..Default::default()
        },
        output_rate: SampleRate::Hz8000,
        ..Default::default()
    };
    let n = steady_state_allocations(cfg, &caller[..20 * 8000], &agent);
    assert_eq!(n, 0, "{n} allocations on the per-frame path");
}
