#!/usr/bin/env bash
# Installs the system packages Parley's build, fixtures and tests need (Debian 12).
# Idempotent: does nothing when everything is already there. Called by ./run.sh and
# ./test.sh; run it by hand only if you want to.
set -euo pipefail

PACKAGES=(
  # build: the opus crate builds its bundled libopus with cmake; webrtc-vad with cc
  cmake pkg-config build-essential
  # fixtures: speech synthesis and audio shaping (fixtures/make.sh)
  espeak-ng sox
  # tests: a Postgres client to find the local server
  postgresql-client
  # embedded offline TTS (flite, opened at run time) and what scripts/models.sh uses to
  # fetch the embedded STT model from PyPI
  libflite1 python3-pip unzip
  # tests: headless browser that screenshots the latency waterfall SVG
  # (control/tests/timeline_chromium.rs) and serves as a WebRTC peer
  chromium
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# The embedded offline providers' models (moonshine tiny-en from PyPI; checks flite).
"$(dirname "$0")/models.sh"

if ! command -v cargo >/dev/null 2>&1; then
  echo "deps: cargo not found; install the Rust toolchain (rustup) first" >&2
  exit 1
fi
