//! The embedded offline providers: what an agent gets when it names no provider.
//!
//! Nothing here downloads anything or needs Python at run time. `scripts/models.sh`
//! installs the files into a models folder ([`models_dir`]: `$PARLEY_MODELS`, else
//! `./models`); native libraries are opened with `dlopen` ([`libloading`]) when a provider
//! is constructed, so the build never needs them and a missing one is a clear
//! [`ProviderError::NotConfigured`](crate::providers::ProviderError::NotConfigured), not a
//! link error.
//!
//! - TTS `local` ([`LocalTts`]): flite (Debian `libflite1`), voice `slt` by default.
//! - STT `local` ([`LocalStt`]): Moonshine tiny-en (`DIR/moonshine/`, from the PyPI wheel
//!   `moonshine-voice==0.0.73`).
//! - LLM `local` ([`LocalLlm`]): a rule-and-BM25 responder over the agent's knowledge.
//!
//! [`status`] tells `parley serve` at start-up which of them are ready.

use std::path::{Path, PathBuf};

pub mod bm25;
pub mod flite;
pub mod llm;
pub mod moonshine;
pub mod stt;
pub mod tts;

pub use llm::LocalLlm;
pub use stt::LocalStt;
pub use tts::LocalTts;

/// The models folder: `$PARLEY_MODELS` if set, else `./models`.
pub fn models_dir() -> PathBuf {
    std::env::var_os("PARLEY_MODELS")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("models"))
}

/// Whether one embedded provider can run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderStatus {
    /// "stt", "tts" or "llm".
    pub kind: &'static str,
    /// Provider name and engine, e.g. "local (moonshine tiny-en)".
    pub name: &'static str,
    /// `Err` says what is missing and how to install it.
    pub ready: Result<(), String>,
}

/// Checks each embedded provider's files and libraries without loading models (a
/// `dlopen` each; a few milliseconds), for the start-up log.
pub fn status(models_dir: &Path) -> Vec<ProviderStatus> {
    let hint = format!("run scripts/models.sh {}", models_dir.display());
    vec![
        ProviderStatus {
            kind: "stt",
            name: "local (moonshine tiny-en)",
            ready: moonshine::check(&models_dir.join("moonshine")).map_err(|e| format!("{e}; {hint}")),
        },
        ProviderStatus {
            kind: "tts",
            name: "local (flite)",
            ready: flite::check(models_dir).map_err(|e| {
                format!("{e}; install the Debian package libflite1 (scripts/deps.sh does; scripts/models.sh checks it)")
            }),
        },
        ProviderStatus {
            kind: "llm",
            name: "local (offline responder)",
            ready: Ok(()),
        },
    ]
}
