//! Where turn traces go once the engine has stamped them: a bounded queue in front of one
//! writer task that stores them in batches.
//!
//! The media path hands a finished turn over with [`TraceSink::record`], which never waits:
//! when the store falls behind and the queue is full, the trace is dropped and counted
//! (`parley_traces_dropped_total`, and per call in `call_metrics.traces_dropped`). Audio never
//! waits for the database.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::store::traces::{self, TraceRecord};
use crate::store::Db;

/// Traces waiting for the writer before new ones are dropped.
const QUEUE: usize = 8192;
/// Most traces written in one transaction.
const BATCH: usize = 512;

/// The hand-off from calls to the trace writer.
pub struct TraceSink {
    tx: Option<mpsc::Sender<TraceRecord>>,
    /// Span export over OTLP, when an endpoint is configured (off by default).
    otlp: Option<crate::otel::OtlpExporter>,
    written: Arc<AtomicU64>,
    dropped: AtomicU64,
}

impl TraceSink {
    /// Starts the writer on the current tokio runtime; `enabled = false` stores nothing
    /// (`PARLEY_TRACES=off`, used to measure what tracing costs). Turns are also exported
    /// as spans through `otlp` when given.
    pub fn start(db: Db, enabled: bool, otlp: Option<crate::otel::OtlpExporter>) -> Arc<TraceSink> {
        let written = Arc::new(AtomicU64::new(0));
        let tx = enabled.then(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            tokio::spawn(write_loop(db, rx, written.clone()));
            tx
        });
        Arc::new(TraceSink {
            tx,
            otlp,
            written,
            dropped: AtomicU64::new(0),
        })
    }

    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Queues a trace for the store; false (and counted) when it had to be dropped.
    pub fn record(&self, rec: TraceRecord) -> bool {
        let Some(tx) = &self.tx else { return false };
        match tx.try_send(rec) {
            Ok(()) => true,
            Err(_) => {
                self.dropped.fetch_add(1, Relaxed);
                crate::metrics::global().traces_dropped(1);
                false
            }
        }
    }

    /// Hands a turn to the OTLP exporter, if one is configured (never waits).
    pub fn export(&self, spans: impl FnOnce() -> crate::otel::TurnSpans) {
        if let Some(x) = &self.otlp {
            x.export_turn(spans());
        }
    }

    /// Traces stored so far.
    pub fn written(&self) -> u64 {
        self.written.load(Relaxed)
    }

    /// Traces dropped because the queue was full (or the store failed).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }
}

async fn write_loop(db: Db, mut rx: mpsc::Receiver<TraceRecord>, written: Arc<AtomicU64>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let n = batch.len() as u64;
        match traces::insert_batch(&db, &batch).await {
            Ok(()) => {
                written.fetch_add(n, Relaxed);
                crate::metrics::global().traces_written(n);
            }
            Err(e) => {
                tracing::warn!(error = %e, traces = n, "latency traces not stored");
                crate::metrics::global().traces_dropped(n);
            }
        }
        batch.clear();
    }
}
