#!/usr/bin/env bash
# Installs the models and native libraries of Parley's embedded offline providers.
#
#   scripts/models.sh [DIR]     DIR defaults to $PARLEY_MODELS, else ./models
#
# Idempotent: skips whatever is already in place (delete DIR/moonshine to reinstall).
# Only package registries are used, and only here, at install time; the server never
# downloads anything and never needs Python.
#
# What goes where:
#   DIR/moonshine/   STT `local`: from the PyPI wheel moonshine-voice==0.0.73 (MIT):
#                    libmoonshine.so, the ONNX Runtime it links against (same folder:
#                    libmoonshine's RPATH is $ORIGIN, and Parley also loads ONNX Runtime
#                    first by absolute path), and the tiny-en model (encoder_model.ort,
#                    decoder_model_merged.ort, tokenizer.bin). Later versions of the
#                    wheel no longer ship the model: keep the pin.
#   (system)         TTS `local`: flite's shared libraries from the Debian package
#                    libflite1 (scripts/deps.sh installs it); this script only checks them.
#   DIR/MANIFEST     what was installed, with versions and checksums.
set -euo pipefail

MOONSHINE_VERSION="0.0.73"
MOONSHINE_MODEL="tiny-en"
FLITE_LIBS=(libflite.so.1 libflite_usenglish.so.1 libflite_cmulex.so.1 libflite_cmu_us_slt.so.1)

say() { echo "models: $*" >&2; }
die() { echo "models: error: $*" >&2; exit 1; }

DIR="${1:-${PARLEY_MODELS:-./models}}"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
say "installing into $DIR"

# ---------------------------------------------------------------- moonshine (STT)
MS="$DIR/moonshine"
MS_FILES=(libmoonshine.so "$MOONSHINE_MODEL/encoder_model.ort" "$MOONSHINE_MODEL/decoder_model_merged.ort" "$MOONSHINE_MODEL/tokenizer.bin")

moonshine_complete() {
  [[ -f "$MS/VERSION" && "$(cat "$MS/VERSION")" == "$MOONSHINE_VERSION" ]] || return 1
  local f
  for f in "${MS_FILES[@]}"; do [[ -s "$MS/$f" ]] || return 1; done
  compgen -G "$MS/libonnxruntime*.so*" >/dev/null || return 1
}

if moonshine_complete; then
  say "moonshine $MOONSHINE_VERSION already installed in $MS (skipped)"
else
  PIP=()
  if command -v pip3 >/dev/null 2>&1; then PIP=(pip3)
  elif command -v pip >/dev/null 2>&1; then PIP=(pip)
  elif command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then PIP=(python3 -m pip)
  else die "pip is needed at install time to fetch moonshine-voice from PyPI (apt-get install python3-pip)"
  fi
  command -v unzip >/dev/null 2>&1 || die "unzip is needed (apt-get install unzip)"

  WORK="$(mktemp -d "${TMPDIR:-/tmp}/parley-models.XXXXXX")"
  trap 'rm -rf "$WORK"' EXIT
  say "fetching moonshine-voice==$MOONSHINE_VERSION from PyPI (about 56 MB)"
  # The wheel is tagged manylinux_2_34_x86_64; ask for that platform explicitly so pip
  # on an older-looking interpreter still picks it. --no-deps: only the files matter.
  "${PIP[@]}" download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --platform manylinux_2_34_x86_64 --python-version 3.11 --implementation py \
    --dest "$WORK" "moonshine-voice==$MOONSHINE_VERSION" >&2 \
    || die "pip download moonshine-voice==$MOONSHINE_VERSION failed"
  WHEEL="$(compgen -G "$WORK/moonshine_voice-$MOONSHINE_VERSION-*.whl" | head -n1)"
  [[ -n "$WHEEL" ]] || die "no moonshine-voice wheel was downloaded"

  say "unpacking $(basename "$WHEEL")"
  unzip -q "$WHEEL" 'moonshine_voice/libmoonshine.so' "moonshine_voice/assets/$MOONSHINE_MODEL/*" \
    'moonshine_voice.libs/*' 'moonshine_voice-*.dist-info/licenses/*' -d "$WORK/x"

  STAGE="$DIR/.moonshine.partial"
  rm -rf "$STAGE"
  mkdir -p "$STAGE/$MOONSHINE_MODEL"
  cp "$WORK/x/moonshine_voice/libmoonshine.so" "$STAGE/"
  cp "$WORK/x/moonshine_voice.libs/"libonnxruntime*.so* "$STAGE/"
  cp "$WORK/x/moonshine_voice/assets/$MOONSHINE_MODEL/"{encoder_model.ort,decoder_model_merged.ort,tokenizer.bin} "$STAGE/$MOONSHINE_MODEL/"
  cp "$WORK"/x/moonshine_voice-*.dist-info/licenses/LICENSE "$STAGE/LICENSE" 2>/dev/null || true
  echo "$MOONSHINE_VERSION" >"$STAGE/VERSION"

  # libmoonshine.so names its ONNX Runtime by a hashed soname and finds it through
  # RPATH $ORIGIN; check that the copy beside it is the one it wants.
  if command -v readelf >/dev/null 2>&1; then
    NEEDED="$(readelf -d "$STAGE/libmoonshine.so" | sed -n 's/.*Shared library: \[\(libonnxruntime[^]]*\)\].*/\1/p')"
    [[ -n "$NEEDED" && -f "$STAGE/$NEEDED" ]] || die "libmoonshine.so needs '$NEEDED', not found in the wheel"
  fi
  if command -v ldd >/dev/null 2>&1 && ldd "$STAGE/libmoonshine.so" | grep -q 'not found'; then
    ldd "$STAGE/libmoonshine.so" >&2
    die "libmoonshine.so has unresolved libraries (see above)"
  fi

  rm -rf "$MS"
  mv "$STAGE" "$MS"
  say "moonshine $MOONSHINE_VERSION installed in $MS"
fi

# ---------------------------------------------------------------- flite (TTS)
flite_missing=()
for lib in "${FLITE_LIBS[@]}"; do
  if ! { /sbin/ldconfig -p 2>/dev/null || ldconfig -p 2>/dev/null || true; } | grep -qE "^[[:space:]]*${lib//./\\.} "; then
    flite_missing+=("$lib")
  fi
done
if ((${#flite_missing[@]})); then
  say "warning: flite libraries missing: ${flite_missing[*]}"
  say "  TTS 'local' needs the Debian package libflite1: run scripts/deps.sh (or apt-get install libflite1)"
else
  say "flite libraries present (Debian libflite1)"
fi

# ---------------------------------------------------------------- manifest
FLITE_VERSION="$(dpkg-query -W -f='${Version}' libflite1 2>/dev/null || echo missing)"
{
  echo "# Parley embedded offline providers: installed by scripts/models.sh. Do not edit."
  echo "stt.local       moonshine-voice $(cat "$MS/VERSION") (PyPI wheel, MIT), model $MOONSHINE_MODEL"
  echo "tts.local       flite (Debian libflite1 $FLITE_VERSION, system libraries), default voice cmu_us_slt"
  echo "llm.local       built in (no files)"
  echo
  echo "# sha256  path (relative to this folder)"
  (cd "$DIR" && find moonshine -type f ! -name VERSION | LC_ALL=C sort | xargs sha256sum)
} >"$DIR/MANIFEST.partial"
mv "$DIR/MANIFEST.partial" "$DIR/MANIFEST"
say "wrote $DIR/MANIFEST"
say "done"
