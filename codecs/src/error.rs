//! The error type shared by the codec and resampler wrappers.
//!
//! Errors carry only `Copy` data (numbers and `&'static str`) so that
//! reporting a bad frame on the audio thread never allocates. WAV parsing has
//! its own [`WavError`](crate::wav::WavError) because it is a file-format
//! concern with different failure modes.

/// Why a codec or resampler call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// libopus rejected the call (bad packet, bad argument, buffer too small…).
    ///
    /// Stored as the function name and code rather than `opus::Error` so that
    /// the error stays `Clone + PartialEq` and callers can match on the code.
    #[error("opus {function}: {}", code.description())]
    Opus {
        /// The libopus function that failed.
        function: &'static str,
        /// What went wrong.
        code: ::opus::ErrorCode,
    },
    /// The input did not hold exactly one frame.
    #[error("wrong frame size: expected {expected} samples, got {actual}")]
    FrameSize {
        /// Samples (all channels) a call must receive.
        expected: usize,
        /// Samples it received.
        actual: usize,
    },
    /// The output buffer cannot hold the result.
    #[error("output buffer too small: need {needed} samples, have {actual}")]
    OutputTooSmall {
        /// Samples the call may write.
        needed: usize,
        /// Length of the buffer given.
        actual: usize,
    },
    /// An empty Opus packet was passed to `decode`; loss must be signalled
    /// with `decode_lost` so that it is never done by accident.
    #[error("empty packet (use decode_lost for packet loss)")]
    EmptyPacket,
    /// A parameter is out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// The resampler failed to build or to process a chunk.
    #[error("resampler: {0}")]
    Resampler(&'static str),
}

impl From<::opus::Error> for CodecError {
    fn from(e: ::opus::Error) -> Self {
        CodecError::Opus {
            function: e.function(),
            code: e.code(),
        }
    }
}

/// `Result` with [`CodecError`].
pub type Result<T, E = CodecError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_readable() {
        let e = CodecError::FrameSize {
            expected: 960,
            actual: 10,
        };
        assert_eq!(
            e.to_string(),
            "wrong frame size: expected 960 samples, got 10"
        );
        assert!(CodecError::EmptyPacket.to_string().contains("decode_lost"));
    }
}
