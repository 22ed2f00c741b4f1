//! A DSP worker: one OS thread that owns many calls and drives them on the real clock.
//!
//! This is the thin shell around the sans-I/O [`Call`]: it reads `Instant::now()`, moves
//! audio and messages between the call's rings ([`crate::handoff`]) and the core, and sleeps
//! until the earliest deadline or until a producer unparks it. Calls are created on the
//! worker thread because webrtc-vad state is neither `Send` nor `Sync`; about one worker per
//! core serves thousands of calls.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use ringbuf::traits::{Consumer, Observer, Producer};

use crate::call::{Call, CallError, Input, Output, TurnState};
use crate::config::CallConfig;
use crate::handoff::{rings, DspEnd, InMsg, NetworkEnd, RingSizes};

/// Longest the worker sleeps when no call has a deadline (new audio unparks it sooner).
const IDLE_TICK: Duration = Duration::from_millis(5);
/// Caller samples handed to the core per input.
const CHUNK: usize = 960;

enum Control {
    Add {
        cfg: Box<CallConfig>,
        end: DspEnd,
        reply: SyncSender<Result<(), CallError>>,
    },
    Shutdown,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("worker thread is gone")]
    Gone,
    #[error("worker control queue is full")]
    Busy,
    #[error(transparent)]
    Call(#[from] CallError),
}

/// Handle to a DSP worker thread. Dropping it stops the thread.
pub struct Worker {
    thread: Thread,
    join: Option<JoinHandle<()>>,
    control: SyncSender<Control>,
    /// Calls the worker holds (updated by its thread after each round).
    calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

struct Slot {
    call: Call,
    end: DspEnd,
    /// An agent-audio message waiting for room in the core's playback queue.
    pending: Option<InMsg>,
    /// Outputs the network side did not take in time.
    dropped_outputs: u64,
    /// The call's counters as last added to the process-wide [`crate::counters`].
    reported: crate::call::CallStats,
}

impl Worker {
    /// Starts a worker thread.
    pub fn spawn(name: &str) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(256);
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = calls.clone();
        let join = thread::Builder::new()
            .name(name.to_string())
            .spawn(move || run(rx, &count))?;
        Ok(Self {
            thread: join.thread().clone(),
            join: Some(join),
            control: tx,
            calls,
        })
    }

    /// Calls this worker holds: live ones, and ended ones whose outputs are still unread.
    pub fn calls(&self) -> usize {
        self.calls.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Creates a call on the worker thread and returns the network side of its rings.
    pub fn add_call(&self, cfg: CallConfig) -> Result<NetworkEnd, WorkerError> {
        let sizes = RingSizes::for_rates(cfg.input_rate.hz(), cfg.output_rate.hz());
        let (net, dsp) = rings(sizes, self.thread.clone());
        let (reply_tx, reply_rx) = sync_channel(1);
        self.control
            .try_send(Control::Add {
                cfg: Box::new(cfg),
                end: dsp,
                reply: reply_tx,
            })
            .map_err(|e| match e {
                TrySendError::Full(_) => WorkerError::Busy,
                TrySendError::Disconnected(_) => WorkerError::Gone,
            })?;
        self.thread.unpark();
        reply_rx.recv().map_err(|_| WorkerError::Gone)??;
        Ok(net)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.control.send(Control::Shutdown);
        self.thread.unpark();
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

fn run(control: Receiver<Control>, count: &std::sync::atomic::AtomicUsize) {
    let mut calls: Vec<Slot> = Vec::new();
    let mut buf = [0i16; CHUNK];
    loop {
        while let Ok(msg) = control.try_recv() {
            match msg {
                Control::Add { cfg, end, reply } => {
                    let result = Call::new(*cfg, Instant::now()).map(|call| {
                        crate::counters::call_started();
                        calls.push(Slot {
                            call,
                            end,
                            pending: None,
                            dropped_outputs: 0,
                            reported: Default::default(),
                        })
                    });
                    let _ = reply.send(result);
                }
                Control::Shutdown => return,
            }
        }
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        for slot in calls.iter_mut() {
            service(slot, now, &mut buf);
            if slot.call.stats != slot.reported {
                crate::counters::add_delta(&slot.reported, &slot.call.stats);
                slot.reported = slot.call.stats;
            }
            if let Some(t) = slot.call.poll_timeout() {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        // A call is dropped once its network side is gone, or once it has ended and the
        // network side has taken all its outputs.
        calls.retain(|s| {
            let keep = !s.end.network_closed()
                && (s.call.state() != TurnState::Ended
                    || !s.end.outbox.is_empty()
                    || s.call.has_output());
            if !keep {
                crate::counters::call_ended();
            }
            keep
        });
        count.store(calls.len(), std::sync::atomic::Ordering::Relaxed);
        let wait = next
            .map(|t| t.saturating_duration_since(Instant::now()))
            .unwrap_or(IDLE_TICK)
            .min(IDLE_TICK);
        if !wait.is_zero() {
            thread::park_timeout(wait);
        }
    }
}

fn service(slot: &mut Slot, now: Instant, buf: &mut [i16; CHUNK]) {
    if slot.call.state() == TurnState::Ended {
        return;
    }
    loop {
        let n = slot.end.caller.pop_slice(&mut buf[..]);
        if n == 0 {
            break;
        }
        let _ = slot.call.handle_input(now, Input::CallerAudio(&buf[..n]));
        drain(slot);
    }
    while let Some(msg) = slot.pending.take().or_else(|| slot.end.inbox.try_pop()) {
        let input_done = match msg {
            InMsg::AgentAudio { utterance, len } => {
                let len = len as usize;
                if slot.call.agent_audio_capacity() < len {
                    // The core's queue is full: keep the message and try again next round.
                    slot.pending = Some(msg);
                    break;
                }
                let mut left = len;
                while left > 0 {
                    let n = slot.end.agent.pop_slice(&mut buf[..left.min(CHUNK)]);
                    if n == 0 {
                        break;
                    }
                    left -= n;
                    let _ = slot.call.handle_input(
                        now,
                        Input::AgentAudio {
                            utterance,
                            samples: &buf[..n],
                        },
                    );
                    drain(slot);
                }
                true
            }
            InMsg::AgentAudioEnd { utterance } => slot
                .call
                .handle_input(now, Input::AgentAudioEnd { utterance })
                .is_ok(),
            InMsg::CancelAgentAudio { utterance } => slot
                .call
                .handle_input(now, Input::CancelAgentAudio { utterance })
                .is_ok(),
            InMsg::MarkAck(m) => slot.call.handle_input(now, Input::MarkAck(m)).is_ok(),
            InMsg::Dtmf(d) => slot.call.handle_input(now, Input::Dtmf(d)).is_ok(),
            InMsg::Stamp(s, at) => slot.call.handle_input(now, Input::StampAt(s, at)).is_ok(),
            InMsg::Hangup => slot.call.handle_input(now, Input::Hangup).is_ok(),
        };
        let _ = input_done;
        drain(slot);
        if slot.call.state() == TurnState::Ended {
            return;
        }
    }
    if slot.call.poll_timeout().is_some_and(|t| t <= now) {
        let _ = slot.call.handle_input(now, Input::Timeout);
    }
    drain(slot);
}

/// Moves the core's outputs into the outbox as room allows. Nothing is dropped: what does
/// not fit stays queued in the core (in order) until the network side catches up — a lost
/// `clear`, mark or event would be worse than late audio.
fn drain(slot: &mut Slot) {
    let mut any = false;
    while !slot.end.outbox.is_full() {
        let Some(out) = slot.call.poll_output() else {
            break;
        };
        any = true;
        if slot.end.outbox.try_push(out).is_err() {
            debug_assert!(false, "outbox checked for room");
            slot.dropped_outputs += 1;
        }
    }
    if any || slot.call.has_output() {
        slot.end.wake_network();
    }
}

/// Several workers, calls spread round-robin: about one per core.
pub struct WorkerPool {
    workers: Vec<Worker>,
    next: std::sync::atomic::AtomicUsize,
}

impl WorkerPool {
    /// Starts `n` workers (at least one).
    pub fn new(n: usize) -> std::io::Result<Self> {
        let workers = (0..n.max(1))
            .map(|i| Worker::spawn(&format!("parley-dsp-{i}")))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            workers,
            next: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// One worker per available core.
    pub fn per_core() -> std::io::Result<Self> {
        Self::new(thread::available_parallelism().map_or(1, |n| n.get()))
    }

    pub fn len(&self) -> usize {
        self.workers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// Creates a call on the next worker.
    pub fn add_call(&self, cfg: CallConfig) -> Result<NetworkEnd, WorkerError> {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.workers.len();
        self.workers[i].add_call(cfg)
    }
}

/// Reads every output currently available from a call's network end.
pub fn drain_outputs(net: &mut NetworkEnd, mut f: impl FnMut(Output)) {
    while let Some(o) = net.recv() {
        f(o);
    }
}
