//! STT `local`'s engine: Moonshine's C library (`libmoonshine.so`, MIT) through its C API,
//! loaded at run time with `dlopen`.
//!
//! `scripts/models.sh` takes the library, the ONNX Runtime it links against and the
//! tiny-en model out of the PyPI wheel `moonshine-voice==0.0.73` into `DIR/moonshine/`.
//! The signatures and structure layouts below are those of that version's
//! `moonshine-c-api.h`, as its Python ctypes wrapper declares them (header version 20000).
//!
//! libmoonshine finds ONNX Runtime through its RPATH (`$ORIGIN`); to not depend on that,
//! [`Moonshine::load`] first loads the ONNX Runtime found beside it by absolute path, so
//! the dynamic linker resolves libmoonshine's dependency (by soname) to the copy already
//! in memory.
//!
//! One transcriber is shared by every stream. The C API returns transcripts in memory
//! owned by the transcriber, valid until its next call, so calls are serialised by a
//! mutex and the text is copied out before it is released.

use std::ffi::{c_char, c_float, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use libloading::Library;

/// `MOONSHINE_HEADER_VERSION` of moonshine-voice 0.0.73.
const HEADER_VERSION: i32 = 20000;
/// `ModelArch.TINY`.
const ARCH_TINY: u32 = 0;
/// The model folder under `DIR/moonshine/`.
pub const MODEL: &str = "tiny-en";
/// Files the transcriber needs, relative to `DIR/moonshine/`.
pub const FILES: &[&str] = &[
    "libmoonshine.so",
    "tiny-en/encoder_model.ort",
    "tiny-en/decoder_model_merged.ort",
    "tiny-en/tokenizer.bin",
];

/// Options the transcriber is loaded with.
///
/// `vad_threshold` 0.01: libmoonshine runs a VAD over the audio it is given and
/// transcribes only the segments it finds. With the default threshold that VAD keeps
/// state across calls (even across transcribers), so the segment's start drifts by tens
/// of milliseconds from one call to the next and tiny-en's words change with it (measured
/// on fixtures/barge_in: "I have a different" one call, "I am a vivant" the next). Parley
/// hands over whole turns that the engine's own endpointer has already cut, so a near-zero
/// threshold — the whole turn is speech — loses nothing and gives the same words every
/// time.
pub const DEFAULT_OPTIONS: &[(&str, &str)] = &[("vad_threshold", "0.01")];

/// `moonshine_option_t`.
#[repr(C)]
struct OptionC {
    name: *const c_char,
    value: *const c_char,
}

/// `transcript_line_t` (88 bytes on LP64; checked below).
#[repr(C)]
struct LineC {
    text: *const c_char,
    audio_data: *const c_float,
    audio_data_count: usize,
    start_time: c_float,
    duration: c_float,
    id: u64,
    is_complete: i8,
    is_updated: i8,
    is_new: i8,
    has_text_changed: i8,
    have_speakers_changed: i8,
    speaker_spans: *const u8,
    speaker_span_count: u64,
    last_transcription_latency_ms: u32,
    words: *const u8,
    word_count: u64,
}

const _: () = assert!(std::mem::size_of::<LineC>() == 88);

/// `transcript_t`.
#[repr(C)]
struct TranscriptC {
    lines: *const LineC,
    line_count: u64,
}

type LoadFn = unsafe extern "C" fn(*const c_char, u32, *const OptionC, u64, i32) -> i32;
type FreeFn = unsafe extern "C" fn(i32);
type TranscribeFn =
    unsafe extern "C" fn(i32, *const c_float, u64, i32, u32, *mut *const TranscriptC) -> i32;
type ErrorFn = unsafe extern "C" fn(i32) -> *const c_char;

/// A loaded Moonshine transcriber (library + model).
pub struct Moonshine {
    handle: i32,
    free: FreeFn,
    transcribe: TranscribeFn,
    error_to_string: ErrorFn,
    /// Serialises calls: see the module docs.
    lock: Mutex<()>,
    _lib: Library,
    _ort: Option<Library>,
}

// SAFETY: the handle is an integer id; every call that uses it holds `lock`.
unsafe impl Send for Moonshine {}
unsafe impl Sync for Moonshine {}

impl std::fmt::Debug for Moonshine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Moonshine")
            .field("handle", &self.handle)
            .finish()
    }
}

/// What is missing in `dir` (`DIR/moonshine`), or `Ok`.
pub fn check_files(dir: &Path) -> Result<(), String> {
    let missing: Vec<_> = FILES.iter().filter(|f| !dir.join(f).is_file()).collect();
    if !missing.is_empty() {
        let list: Vec<String> = missing
            .iter()
            .map(|f| dir.join(f).display().to_string())
            .collect();
        return Err(format!("missing {}", list.join(", ")));
    }
    if onnxruntime(dir).is_none() {
        return Err(format!("no libonnxruntime*.so* in {}", dir.display()));
    }
    Ok(())
}

/// The ONNX Runtime library shipped beside libmoonshine.
fn onnxruntime(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libonnxruntime") && n.contains(".so"))
        })
        .collect();
    found.sort();
    found.into_iter().next()
}

fn error_text(f: ErrorFn, code: i32) -> String {
    // SAFETY: moonshine_error_to_string returns a static string or null.
    let p = unsafe { f(code) };
    if p.is_null() {
        format!("error {code}")
    } else {
        // SAFETY: non-null, NUL-terminated, static.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

impl Moonshine {
    /// Loads libmoonshine and the tiny-en model from `dir` (`DIR/moonshine`). Takes a few
    /// hundred milliseconds: call it once, at start-up.
    ///
    /// Passes [`DEFAULT_OPTIONS`].
    pub fn load(dir: &Path) -> Result<Self, String> {
        Self::load_with_options(dir, DEFAULT_OPTIONS)
    }

    /// Like [`load`](Self::load), passing transcriber options (`moonshine_option_t`
    /// name/value pairs, e.g. `("vad_threshold", "0.5")`).
    pub fn load_with_options(dir: &Path, options: &[(&str, &str)]) -> Result<Self, String> {
        check_files(dir)?;
        let ort_path = onnxruntime(dir);
        let ort = match &ort_path {
            // SAFETY: loading ONNX Runtime runs its initialisers, which have no
            // preconditions.
            Some(p) => Some(
                unsafe { Library::new(p) }
                    .map_err(|e| format!("cannot load {}: {e}", p.display()))?,
            ),
            None => None,
        };
        let lib_path = dir.join("libmoonshine.so");
        // SAFETY: as above.
        let lib = unsafe { Library::new(&lib_path) }
            .map_err(|e| format!("cannot load {}: {e}", lib_path.display()))?;
        /// Resolves a symbol as a function pointer.
        ///
        /// # Safety
        /// `T` must be the symbol's true C signature.
        unsafe fn sym<T: Copy>(lib: &Library, path: &Path, name: &str) -> Result<T, String> {
            lib.get::<T>(name.as_bytes())
                .map(|s| *s)
                .map_err(|e| format!("symbol {name} missing in {}: {e}", path.display()))
        }
        // SAFETY: signatures from moonshine-voice 0.0.73's ctypes declarations.
        let (load, free, transcribe, error_to_string) = unsafe {
            (
                sym::<LoadFn>(&lib, &lib_path, "moonshine_load_transcriber_from_files")?,
                sym::<FreeFn>(&lib, &lib_path, "moonshine_free_transcriber")?,
                sym::<TranscribeFn>(&lib, &lib_path, "moonshine_transcribe_without_streaming")?,
                sym::<ErrorFn>(&lib, &lib_path, "moonshine_error_to_string")?,
            )
        };
        let model = dir.join(MODEL);
        let cpath = CString::new(model.to_string_lossy().as_bytes()).map_err(|e| e.to_string())?;
        let strings: Vec<(CString, CString)> = options
            .iter()
            .map(|(k, v)| Ok((CString::new(*k)?, CString::new(*v)?)))
            .collect::<Result<_, std::ffi::NulError>>()
            .map_err(|e| e.to_string())?;
        let opts: Vec<OptionC> = strings
            .iter()
            .map(|(k, v)| OptionC {
                name: k.as_ptr(),
                value: v.as_ptr(),
            })
            .collect();
        let opts_ptr = if opts.is_empty() {
            std::ptr::null()
        } else {
            opts.as_ptr()
        };
        // SAFETY: valid NUL-terminated path; `opts` and the strings it points into
        // outlive the call.
        let handle = unsafe {
            load(
                cpath.as_ptr(),
                ARCH_TINY,
                opts_ptr,
                opts.len() as u64,
                HEADER_VERSION,
            )
        };
        if handle < 0 {
            return Err(format!(
                "moonshine could not load the model in {}: {}",
                model.display(),
                error_text(error_to_string, handle)
            ));
        }
        Ok(Self {
            handle,
            free,
            transcribe,
            error_to_string,
            lock: Mutex::new(()),
            _lib: lib,
            _ort: ort,
        })
    }

    /// Transcribes 16 kHz mono audio in [-1, 1] (blocking: call it from a blocking
    /// thread). Moonshine segments the audio itself (its VAD); the lines' texts are
    /// joined with spaces.
    pub fn transcribe(&self, audio: &[f32]) -> Result<String, String> {
        if audio.is_empty() {
            return Ok(String::new());
        }
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: *const TranscriptC = std::ptr::null();
        // SAFETY: the audio slice outlives the call; `out` receives a transcript owned by
        // the transcriber, read below while `lock` is still held.
        let code = unsafe {
            (self.transcribe)(
                self.handle,
                audio.as_ptr(),
                audio.len() as u64,
                16_000,
                0,
                &mut out,
            )
        };
        if code != 0 {
            return Err(format!(
                "moonshine transcription failed: {}",
                error_text(self.error_to_string, code)
            ));
        }
        // SAFETY: `out` came from the call above and `lock` is held.
        Ok(unsafe { transcript_text(out) })
    }
}

/// The text of a transcript's lines, joined with spaces.
///
/// # Safety
/// `out` is null or points at a valid `transcript_t`.
unsafe fn transcript_text(out: *const TranscriptC) -> String {
    {
        let mut text = String::new();
        if !out.is_null() {
            // SAFETY: `out` points at a transcript_t with `line_count` lines.
            unsafe {
                let t = &*out;
                if !t.lines.is_null() {
                    for line in std::slice::from_raw_parts(t.lines, t.line_count as usize) {
                        if line.text.is_null() {
                            continue;
                        }
                        let s = CStr::from_ptr(line.text).to_string_lossy();
                        let s = s.trim();
                        if !s.is_empty() {
                            if !text.is_empty() {
                                text.push(' ');
                            }
                            text.push_str(s);
                        }
                    }
                }
            }
        }
        text
    }
}

impl Drop for Moonshine {
    fn drop(&mut self) {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: the handle came from a successful load and is freed once.
        unsafe { (self.free)(self.handle) };
    }
}

/// Whether libmoonshine can be loaded from `dir` (without loading the model), for
/// start-up status.
pub fn check(dir: &Path) -> Result<(), String> {
    check_files(dir)?;
    if let Some(p) = onnxruntime(dir) {
        // SAFETY: as in `load`.
        let _ort =
            unsafe { Library::new(&p) }.map_err(|e| format!("cannot load {}: {e}", p.display()))?;
        let lib_path = dir.join("libmoonshine.so");
        // SAFETY: as in `load`.
        let lib = unsafe { Library::new(&lib_path) }
            .map_err(|e| format!("cannot load {}: {e}", lib_path.display()))?;
        // SAFETY: only checks that the symbol exists.
        unsafe { lib.get::<*const ()>(b"moonshine_transcribe_without_streaming") }
            .map_err(|e| format!("{}: {e}", lib_path.display()))?;
    }
    Ok(())
}
