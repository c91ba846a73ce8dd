# Sourced by the other scripts: installs what Lucid needs on Debian/Ubuntu, when missing.
# System packages: FFmpeg (CLI and -dev libraries), clang/pkg-config for the FFmpeg
# bindings, Mesa's Vulkan drivers (lavapipe runs Lucid where there is no GPU), and an X
# server (Xvfb), xwd and X client libraries for windows; Python's venv for the WebRTC
# tests' peer; Chromium for the web remote's test.
set -euo pipefail

LUCID_PACKAGES=(
  ffmpeg libavcodec-dev libavformat-dev libavutil-dev libavfilter-dev libavdevice-dev
  libswscale-dev libswresample-dev clang libclang-dev pkg-config
  mesa-vulkan-drivers libvulkan1 xvfb xauth x11-apps xdotool
  libx11-6 libxcursor1 libxrandr2 libxi6 libxkbcommon0 libxkbcommon-x11-0
  ca-certificates curl
  # The WebRTC tests' peer (aiortc) runs in a Python venv the tests make themselves.
  python3 python3-venv
  # MIDI input (midir on ALSA).
  libasound2-dev
  # The web remote's test drives a real headless Chromium.
  chromium
)

lucid_install_deps() {
  local missing=()
  for p in "${LUCID_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "installing system packages: ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    echo "installing the Rust toolchain (rustup)" >&2
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain 1.95.0 >&2
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
  fi
  # Builds live outside the clone so repeated runs on one machine are incremental.
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lucid-target}"
}
