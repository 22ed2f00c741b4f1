//! The lock-free hand-off between network tasks and the DSP thread that owns a call.
//!
//! Per call, four single-producer single-consumer rings (`ringbuf`), no locks, no
//! allocation after creation:
//! - caller audio (network → DSP), raw samples at the call's input rate;
//! - agent audio (TTS task → DSP), raw samples at the output rate;
//! - inbox (network → DSP): small messages that give the agent audio its utterance, and
//!   marks, DTMF, stamps, hang-up, in order;
//! - outbox (DSP → network): the core's [`Output`]s.
//!
//! Producers wake the DSP thread with [`std::thread::Thread::unpark`] (a futex wake, no
//! lock) so a frame is handled as soon as it lands; the DSP thread wakes the network task
//! through an [`AtomicWaker`] (lock-free) when it has pushed outputs.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::Thread;

use atomic_waker::AtomicWaker;

use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};

use crate::call::Output;
use crate::trace::Stage;

/// A message for the call core that is not caller audio.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum InMsg {
    /// The next `len` samples of the agent-audio ring belong to `utterance`.
    AgentAudio {
        utterance: u32,
        len: u32,
    },
    AgentAudioEnd {
        utterance: u32,
    },
    CancelAgentAudio {
        utterance: u32,
    },
    MarkAck(u64),
    Dtmf(char),
    /// A provider stage and when the network side saw it happen.
    Stamp(Stage, std::time::Instant),
    Hangup,
}

/// Ring sizes for one call.
#[derive(Debug, Clone, Copy)]
pub struct RingSizes {
    pub caller_samples: usize,
    pub agent_samples: usize,
    pub inbox: usize,
    pub outbox: usize,
}

impl RingSizes {
    /// Half a second of caller audio, four seconds of agent audio, at `in_hz`/`out_hz`.
    pub fn for_rates(in_hz: u32, out_hz: u32) -> Self {
        Self {
            caller_samples: in_hz as usize / 2,
            agent_samples: out_hz as usize * 4,
            inbox: 256,
            outbox: 32,
        }
    }
}

/// The network side of a call's rings.
pub struct NetworkEnd {
    caller: HeapProd<i16>,
    agent: HeapProd<i16>,
    inbox: HeapProd<InMsg>,
    outbox: HeapCons<Output>,
    dsp: Thread,
    waker: Arc<AtomicWaker>,
    /// Set when this end is dropped: the DSP side then frees the call, whatever state it
    /// is in and whatever outputs it still holds (nobody will read them).
    closed: Arc<AtomicBool>,
    /// Caller samples dropped because the DSP side fell behind.
    pub dropped_caller_samples: u64,
}

impl Drop for NetworkEnd {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Release);
        self.dsp.unpark();
    }
}

/// The DSP side of a call's rings.
pub struct DspEnd {
    pub(crate) caller: HeapCons<i16>,
    pub(crate) agent: HeapCons<i16>,
    pub(crate) inbox: HeapCons<InMsg>,
    pub(crate) outbox: HeapProd<Output>,
    pub(crate) waker: Arc<AtomicWaker>,
    closed: Arc<AtomicBool>,
}

/// Makes the rings of one call whose DSP state lives on thread `dsp`.
pub fn rings(sizes: RingSizes, dsp: Thread) -> (NetworkEnd, DspEnd) {
    let (caller_tx, caller_rx) = HeapRb::new(sizes.caller_samples).split();
    let (agent_tx, agent_rx) = HeapRb::new(sizes.agent_samples).split();
    let (inbox_tx, inbox_rx) = HeapRb::new(sizes.inbox).split();
    let (outbox_tx, outbox_rx) = HeapRb::new(sizes.outbox).split();
    let waker = Arc::new(AtomicWaker::new());
    let closed = Arc::new(AtomicBool::new(false));
    (
        NetworkEnd {
            caller: caller_tx,
            agent: agent_tx,
            inbox: inbox_tx,
            outbox: outbox_rx,
            dsp,
            waker: waker.clone(),
            closed: closed.clone(),
            dropped_caller_samples: 0,
        },
        DspEnd {
            caller: caller_rx,
            agent: agent_rx,
            inbox: inbox_rx,
            outbox: outbox_tx,
            waker,
            closed,
        },
    )
}

/// The DSP side is not keeping up: a ring is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{ring} ring full")]
pub struct Full {
    pub ring: &'static str,
}

impl NetworkEnd {
    /// Hands caller audio to the DSP thread. Audio that does not fit is dropped and
    /// counted: late caller audio is worth less than keeping the call real-time.
    pub fn send_caller_audio(&mut self, samples: &[i16]) -> usize {
        let n = self.caller.push_slice(samples);
        self.dropped_caller_samples += (samples.len() - n) as u64;
        self.dsp.unpark();
        n
    }

    /// Room for agent audio, in samples.
    pub fn agent_audio_room(&self) -> usize {
        if self.inbox.is_full() {
            0
        } else {
            self.agent.vacant_len()
        }
    }

    /// Hands agent audio to the DSP thread; all or nothing.
    pub fn send_agent_audio(&mut self, utterance: u32, samples: &[i16]) -> Result<(), Full> {
        if self.agent.vacant_len() < samples.len() {
            return Err(Full {
                ring: "agent audio",
            });
        }
        if self.inbox.is_full() {
            return Err(Full { ring: "inbox" });
        }
        self.agent.push_slice(samples);
        let msg = InMsg::AgentAudio {
            utterance,
            len: samples.len() as u32,
        };
        // Cannot fail: checked above, and only this side pushes.
        let _ = self.inbox.try_push(msg);
        self.dsp.unpark();
        Ok(())
    }

    /// Sends a control message (end of agent audio, mark, DTMF, stamp, hang-up).
    pub fn send(&mut self, msg: InMsg) -> Result<(), Full> {
        self.inbox
            .try_push(msg)
            .map_err(|_| Full { ring: "inbox" })?;
        self.dsp.unpark();
        Ok(())
    }

    /// Next output of the call core, if any.
    pub fn recv(&mut self) -> Option<Output> {
        self.outbox.try_pop()
    }

    /// Waits until the call core has an output.
    pub fn ready(&mut self) -> Ready<'_> {
        Ready { net: self }
    }
}

/// Future of [`NetworkEnd::ready`].
pub struct Ready<'a> {
    net: &'a mut NetworkEnd,
}

impl Future for Ready<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let net = &mut self.get_mut().net;
        if !net.outbox.is_empty() {
            return Poll::Ready(());
        }
        net.waker.register(cx.waker());
        // Re-check: an output may have landed between the check and the registration.
        if net.outbox.is_empty() {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    }
}

impl DspEnd {
    /// Tells the network side that outputs are waiting.
    /// The network side is gone (its task ended): the call can be freed.
    pub(crate) fn network_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn wake_network(&self) {
        self.waker.wake();
    }
}
