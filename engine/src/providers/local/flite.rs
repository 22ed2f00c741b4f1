//! TTS `local`: CMU flite through its C API, loaded at run time with `dlopen`.
//!
//! flite comes from Debian (`libflite1`: the engine and its voices as shared libraries);
//! loading it with [`libloading`] keeps it out of the build, so a machine without it
//! still compiles and runs everything else, and [`LocalTts::new`] says what is missing.
//!
//! flite is not thread-safe: `flite_init` and voice registration touch globals, and a
//! voice's feature set is shared by every synthesis that uses it (we set its
//! `duration_stretch` per request). So `flite_init` runs once ([`Once`]) and every
//! synthesis holds one process-wide mutex. That costs little: synthesis runs at roughly
//! 50× real time, and it never runs on the per-frame path, only once per sentence on a
//! blocking thread.
//!
//! flite aborts the process (`cst_error` → `exit`) when asked for a feature that an item
//! lacks, so this module reads features only through `ffeature_*`, which return a default
//! instead.

use std::collections::HashMap;
use std::ffi::{c_char, c_float, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Once, OnceLock};

use libloading::Library;

/// flite's `cst_wave` (cst_wave.h).
#[repr(C)]
struct CstWave {
    kind: *const c_char,
    sample_rate: c_int,
    num_samples: c_int,
    num_channels: c_int,
    samples: *const i16,
}

/// The head of flite's `cst_voice` (cst_voice.h): only `features` is read.
#[repr(C)]
struct CstVoice {
    name: *const c_char,
    features: *mut c_void,
}

type Ptr = *mut c_void;

/// The flite entry points Parley uses, resolved once.
struct Api {
    init: unsafe extern "C" fn() -> c_int,
    synth_text: unsafe extern "C" fn(*const c_char, Ptr) -> Ptr,
    utt_wave: unsafe extern "C" fn(Ptr) -> *const CstWave,
    utt_relation: unsafe extern "C" fn(Ptr, *const c_char) -> Ptr,
    relation_head: unsafe extern "C" fn(Ptr) -> Ptr,
    item_next: unsafe extern "C" fn(Ptr) -> Ptr,
    item_daughter: unsafe extern "C" fn(Ptr) -> Ptr,
    item_last_daughter: unsafe extern "C" fn(Ptr) -> Ptr,
    ffeature_string: unsafe extern "C" fn(Ptr, *const c_char) -> *const c_char,
    ffeature_float: unsafe extern "C" fn(Ptr, *const c_char) -> c_float,
    feat_set_float: unsafe extern "C" fn(Ptr, *const c_char, c_float),
    delete_utterance: unsafe extern "C" fn(Ptr),
}

/// The loaded flite library. Never unloaded (it lives in a static).
struct Flite {
    api: Api,
    /// Where it was loaded from (a path or a soname).
    origin: String,
    _lib: Library,
}

/// One registered voice. The pointer is owned by the voice library, which stays loaded.
struct Voice {
    name: &'static str,
    ptr: *mut CstVoice,
    _lib: Library,
}

// SAFETY: the voice pointer is only dereferenced by flite calls made under `SYNTH`.
unsafe impl Send for Voice {}
unsafe impl Sync for Voice {}

/// The voices Debian's flite ships: (name, library, register function, native rate).
/// `slt` first: the clustergen US English female voice, 16 kHz, the clearest of them.
const VOICES: &[(&str, &str, &str, u32)] = &[
    (
        "slt",
        "libflite_cmu_us_slt.so.1",
        "register_cmu_us_slt",
        16_000,
    ),
    (
        "rms",
        "libflite_cmu_us_rms.so.1",
        "register_cmu_us_rms",
        16_000,
    ),
    (
        "awb",
        "libflite_cmu_us_awb.so.1",
        "register_cmu_us_awb",
        16_000,
    ),
    (
        "kal16",
        "libflite_cmu_us_kal16.so.1",
        "register_cmu_us_kal16",
        16_000,
    ),
    (
        "kal",
        "libflite_cmu_us_kal.so.1",
        "register_cmu_us_kal",
        8_000,
    ),
];

/// The voice used when a request names none.
pub const DEFAULT_VOICE: &str = "slt";

/// Names accepted by [`voice_info`]: `slt`, `cmu_us_slt`, `SLT` all name one voice.
pub fn voice_names() -> impl Iterator<Item = &'static str> {
    VOICES.iter().map(|v| v.0)
}

fn voice_info(name: &str) -> Option<&'static (&'static str, &'static str, &'static str, u32)> {
    let n = name.trim().to_ascii_lowercase();
    let n = n.strip_prefix("cmu_us_").unwrap_or(&n);
    VOICES.iter().find(|v| v.0 == n)
}

/// Native sample rate of a voice, if the name is known.
pub fn voice_rate(name: &str) -> Option<u32> {
    voice_info(name).map(|v| v.3)
}

/// Serialises every call into flite (see the module docs).
static SYNTH: Mutex<()> = Mutex::new(());
static INIT: Once = Once::new();
static FLITE: OnceLock<Flite> = OnceLock::new();
static VOICE_CACHE: OnceLock<Mutex<HashMap<&'static str, Arc<Voice>>>> = OnceLock::new();

/// Candidate places for a library: `DIR/flite/<soname>` (a private copy), then the
/// system's search path.
fn candidates(models_dir: &Path, soname: &str) -> Vec<PathBuf> {
    vec![models_dir.join("flite").join(soname), PathBuf::from(soname)]
}

fn open(models_dir: &Path, soname: &str) -> Result<(Library, String), String> {
    let mut last = String::new();
    for c in candidates(models_dir, soname) {
        if c.components().count() > 1 && !c.exists() {
            continue;
        }
        // SAFETY: loading a shared library runs its initialisers; flite's have no
        // preconditions.
        match unsafe { Library::new(&c) } {
            Ok(lib) => return Ok((lib, c.display().to_string())),
            Err(e) => last = e.to_string(),
        }
    }
    Err(format!("cannot load {soname} ({last})"))
}

/// Resolves a symbol as a plain function pointer.
///
/// # Safety
/// `T` must be the symbol's true C signature.
unsafe fn sym<T: Copy>(lib: &Library, name: &str) -> Result<T, String> {
    lib.get::<T>(name.as_bytes())
        .map(|s| *s)
        .map_err(|e| format!("symbol {name} missing: {e}"))
}

fn flite(models_dir: &Path) -> Result<&'static Flite, String> {
    if let Some(f) = FLITE.get() {
        return Ok(f);
    }
    let (lib, origin) = open(models_dir, "libflite.so.1")?;
    // SAFETY: signatures from flite.h / cst_item.h / cst_utterance.h / cst_relation.h
    // (flite 2.2).
    let api = unsafe {
        Api {
            init: sym(&lib, "flite_init")?,
            synth_text: sym(&lib, "flite_synth_text")?,
            utt_wave: sym(&lib, "utt_wave")?,
            utt_relation: sym(&lib, "utt_relation")?,
            relation_head: sym(&lib, "relation_head")?,
            item_next: sym(&lib, "item_next")?,
            item_daughter: sym(&lib, "item_daughter")?,
            item_last_daughter: sym(&lib, "item_last_daughter")?,
            ffeature_string: sym(&lib, "ffeature_string")?,
            ffeature_float: sym(&lib, "ffeature_float")?,
            feat_set_float: sym(&lib, "flite_feat_set_float")?,
            delete_utterance: sym(&lib, "delete_utterance")?,
        }
    };
    let f = FLITE.get_or_init(|| Flite {
        api,
        origin,
        _lib: lib,
    });
    INIT.call_once(|| {
        let _g = SYNTH.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: flite_init has no arguments and is called once.
        unsafe { (f.api.init)() };
    });
    Ok(f)
}

/// Loads (once) and returns the named voice.
fn voice(models_dir: &Path, name: &str) -> Result<(&'static Flite, Arc<Voice>, u32), String> {
    let f = flite(models_dir)?;
    let Some(&(vname, soname, register, rate)) = voice_info(name) else {
        let known: Vec<_> = voice_names().collect();
        return Err(format!(
            "unknown flite voice '{name}' (available: {})",
            known.join(", ")
        ));
    };
    let cache = VOICE_CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(v) = cache.get(vname) {
        return Ok((f, v.clone(), rate));
    }
    let (lib, _) = open(models_dir, soname)?;
    // SAFETY: `register_cmu_us_*(const char *voxdir)` returns the voice (voxdir unused
    // for compiled-in voices).
    let reg: unsafe extern "C" fn(*const c_char) -> *mut CstVoice = unsafe { sym(&lib, register)? };
    let ptr = {
        let _g = SYNTH.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: flite is initialised; registration is serialised by SYNTH.
        unsafe { reg(std::ptr::null()) }
    };
    if ptr.is_null() {
        return Err(format!("{register} returned no voice"));
    }
    let v = Arc::new(Voice {
        name: vname,
        ptr,
        _lib: lib,
    });
    cache.insert(vname, v.clone());
    Ok((f, v, rate))
}

/// A word and where it is spoken in a synthesized sentence, in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct WordTiming {
    pub text: String,
    pub start_s: f32,
    pub end_s: f32,
}

/// One synthesized sentence.
#[derive(Debug, Clone, Default)]
pub struct Speech {
    pub rate: u32,
    pub samples: Vec<i16>,
    pub words: Vec<WordTiming>,
}

/// A flite voice ready to synthesize. Cheap to clone.
#[derive(Clone)]
pub struct FliteVoice {
    flite: &'static Flite,
    voice: Arc<Voice>,
    rate: u32,
}

impl std::fmt::Debug for FliteVoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FliteVoice")
            .field("voice", &self.voice.name)
            .field("rate", &self.rate)
            .field("library", &self.flite.origin)
            .finish()
    }
}

impl FliteVoice {
    /// Loads flite and the named voice (`slt`, `rms`, `awb`, `kal16`, `kal`; a
    /// `cmu_us_` prefix is accepted). Looks in `models_dir/flite/` first, then the
    /// system library path.
    pub fn load(models_dir: &Path, name: &str) -> Result<Self, String> {
        let (flite, voice, rate) = voice(models_dir, name)?;
        Ok(Self { flite, voice, rate })
    }

    pub fn name(&self) -> &'static str {
        self.voice.name
    }

    /// Native sample rate (16 kHz but for `kal`, 8 kHz).
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Synthesizes `text` (blocking: call it from a blocking thread).
    ///
    /// `speed` > 1 speaks faster (flite's `duration_stretch` = 1 / speed, clamped to
    /// 0.5–2×). Word timings come from flite's own utterance structure: for each token of
    /// the input, the start of its first word's first segment and the end of its last
    /// word's last segment (so "$20" spans "twenty dollars").
    pub fn synthesize(&self, text: &str, speed: f32) -> Result<Speech, String> {
        let clean: String = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let clean = clean.trim();
        if clean.is_empty() {
            return Ok(Speech {
                rate: self.rate,
                ..Default::default()
            });
        }
        let ctext = CString::new(clean).map_err(|e| e.to_string())?;
        let speed = if speed.is_finite() && speed > 0.0 {
            speed.clamp(0.5, 2.0)
        } else {
            1.0
        };
        let api = &self.flite.api;
        let _g = SYNTH.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: all flite calls below run under SYNTH; the voice and the library stay
        // loaded for the life of the process; every item pointer comes from the
        // utterance, which is deleted last.
        unsafe {
            let features = (*self.voice.ptr).features;
            (api.feat_set_float)(features, c"duration_stretch".as_ptr(), 1.0 / speed);
            let utt = (api.synth_text)(ctext.as_ptr(), self.voice.ptr.cast());
            if utt.is_null() {
                return Err("flite_synth_text returned no utterance".into());
            }
            let wave = (api.utt_wave)(utt);
            let mut speech = Speech {
                rate: self.rate,
                ..Default::default()
            };
            if !wave.is_null() && !(*wave).samples.is_null() && (*wave).num_samples > 0 {
                let w = &*wave;
                speech.rate = w.sample_rate as u32;
                let n = w.num_samples as usize * w.num_channels.max(1) as usize;
                let all = std::slice::from_raw_parts(w.samples, n);
                let ch = w.num_channels.max(1) as usize;
                speech.samples = all.iter().step_by(ch).copied().collect();
            }
            let rel = (api.utt_relation)(utt, c"Token".as_ptr());
            let mut item = if rel.is_null() {
                std::ptr::null_mut()
            } else {
                (api.relation_head)(rel)
            };
            while !item.is_null() {
                let first = (api.item_daughter)(item);
                let last = (api.item_last_daughter)(item);
                if !first.is_null() && !last.is_null() {
                    let name = CStr::from_ptr((api.ffeature_string)(item, c"name".as_ptr()))
                        .to_string_lossy()
                        .into_owned();
                    let start = (api.ffeature_float)(
                        first,
                        c"R:SylStructure.daughter1.daughter1.R:Segment.p.end".as_ptr(),
                    );
                    let end = (api.ffeature_float)(
                        last,
                        c"R:SylStructure.daughtern.daughtern.R:Segment.end".as_ptr(),
                    );
                    speech.words.push(WordTiming {
                        text: name,
                        start_s: start.max(0.0),
                        end_s: end.max(start),
                    });
                }
                item = (api.item_next)(item);
            }
            (api.delete_utterance)(utt);
            // Prefer the caller's spelling (with punctuation) when flite kept one token
            // per whitespace-separated word, which is the usual case.
            let original: Vec<&str> = clean.split_whitespace().collect();
            if original.len() == speech.words.len() {
                for (w, o) in speech.words.iter_mut().zip(original) {
                    w.text = o.to_string();
                }
            }
            Ok(speech)
        }
    }
}

/// Whether flite and the default voice load, for start-up status.
pub fn check(models_dir: &Path) -> Result<(), String> {
    FliteVoice::load(models_dir, DEFAULT_VOICE).map(|_| ())
}
