//! Call recording: a stereo WAV (caller left, agent right) written while the call runs,
//! by a writer thread fed through a bounded channel, so a slow disk never stalls the call
//! and nothing is held in memory beyond a few frames.
//!
//! The caller track is continuous. Agent audio is placed on the caller's sample clock at
//! the moment it was sent, so the two tracks line up as the caller heard them (within the
//! transport's lead).

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;

enum Chunk {
    Caller(Vec<i16>),
    Agent(Vec<i16>),
}

/// Writes one call's recording. Dropping it (or [`Recorder::finish`]) completes the file.
pub struct Recorder {
    tx: Option<SyncSender<Chunk>>,
    writer: Option<JoinHandle<std::io::Result<u64>>>,
    path: PathBuf,
    /// Chunks dropped because the writer fell behind.
    pub dropped: u64,
}

impl Recorder {
    /// Creates `path` (and its folder) and starts the writer.
    pub fn create(path: &Path, sample_rate: u32) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = BufWriter::new(File::create(path)?);
        file.write_all(&parley_codecs::wav::pcm16_header(sample_rate, 2, u32::MAX))?;
        // About ten seconds of 20 ms chunks of both sides.
        let (tx, rx) = sync_channel(1000);
        let writer = std::thread::Builder::new()
            .name("parley-recorder".into())
            .spawn(move || write_loop(file, rx))?;
        Ok(Self {
            tx: Some(tx),
            writer: Some(writer),
            path: path.to_path_buf(),
            dropped: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn send(&mut self, c: Chunk) {
        if let Some(tx) = &self.tx {
            if let Err(TrySendError::Full(_)) = tx.try_send(c) {
                self.dropped += 1;
            }
        }
    }

    /// Caller audio, in arrival order.
    pub fn caller(&mut self, samples: &[i16]) {
        self.send(Chunk::Caller(samples.to_vec()));
    }

    /// Agent audio as it is sent.
    pub fn agent(&mut self, samples: &[i16]) {
        self.send(Chunk::Agent(samples.to_vec()));
    }

    /// Completes the file; returns the samples per channel written.
    pub fn finish(mut self) -> std::io::Result<u64> {
        self.close()
    }

    fn close(&mut self) -> std::io::Result<u64> {
        self.tx.take();
        match self.writer.take() {
            Some(w) => w
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("recorder thread panicked"))),
            None => Ok(0),
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

fn write_loop(mut file: BufWriter<File>, rx: Receiver<Chunk>) -> std::io::Result<u64> {
    // Agent samples waiting for the caller clock to reach them: (caller position, samples).
    let mut caller_pos: u64 = 0;
    let mut agent_next: u64 = 0;
    let mut agent: std::collections::VecDeque<i16> = std::collections::VecDeque::new();
    let mut agent_start: u64 = 0;
    let mut frame = [0u8; 4];
    for chunk in rx.iter() {
        match chunk {
            Chunk::Agent(samples) => {
                // Starts where the caller clock is now, or right after what is queued.
                if agent.is_empty() {
                    agent_start = caller_pos.max(agent_next);
                }
                agent_next = agent_start + agent.len() as u64 + samples.len() as u64;
                agent.extend(samples);
            }
            Chunk::Caller(samples) => {
                for s in samples {
                    let a = if caller_pos >= agent_start {
                        let v = agent.pop_front();
                        if v.is_some() {
                            agent_start += 1;
                        }
                        v.unwrap_or(0)
                    } else {
                        0
                    };
                    frame[..2].copy_from_slice(&s.to_le_bytes());
                    frame[2..].copy_from_slice(&a.to_le_bytes());
                    file.write_all(&frame)?;
                    caller_pos += 1;
                }
            }
        }
    }
    // The rest of the agent's audio after the caller went quiet.
    while let Some(a) = agent.pop_front() {
        frame[..2].copy_from_slice(&0i16.to_le_bytes());
        frame[2..].copy_from_slice(&a.to_le_bytes());
        file.write_all(&frame)?;
        caller_pos += 1;
    }
    let data_len = caller_pos * 4;
    let mut file = file.into_inner().map_err(|e| e.into_error())?;
    // Patch the RIFF and data sizes now that they are known.
    file.seek(SeekFrom::Start(4))?;
    file.write_all(&((36 + data_len).min(u32::MAX as u64) as u32).to_le_bytes())?;
    file.seek(SeekFrom::Start(40))?;
    file.write_all(&(data_len.min(u32::MAX as u64) as u32).to_le_bytes())?;
    file.sync_all()?;
    Ok(caller_pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_line_up_and_the_header_is_complete() {
        let dir = std::env::temp_dir().join(format!("parley-rec-{}", std::process::id()));
        let path = dir.join("call.wav");
        let mut r = Recorder::create(&path, 8000).unwrap();
        r.caller(&[1; 160]);
        r.agent(&[7; 320]); // sent when the caller clock is at 160
        r.caller(&[2; 160]);
        r.caller(&[3; 160]);
        assert_eq!(r.finish().unwrap(), 480);
        let wav = parley_codecs::wav::parse(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!((wav.sample_rate, wav.channels), (8000, 2));
        let left: Vec<i16> = wav.samples.chunks(2).map(|f| f[0]).collect();
        let right: Vec<i16> = wav.samples.chunks(2).map(|f| f[1]).collect();
        assert_eq!(left.len(), 480);
        assert!(left[..160].iter().all(|&s| s == 1) && left[320..].iter().all(|&s| s == 3));
        assert!(right[..160].iter().all(|&s| s == 0));
        assert!(right[160..480].iter().all(|&s| s == 7));
        let _ = std::fs::remove_dir_all(dir);
    }
}
