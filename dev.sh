#!/usr/bin/env bash
# scanarchive developer entry point. Works on a fresh Debian machine:
#   ./dev.sh demo   install what is missing, then run the built-in demo
#   ./dev.sh test   install what is missing, then ruff, mypy and pytest
#   ./dev.sh setup  only install
set -euo pipefail
cd "$(dirname "$0")"

APT_PACKAGES=(python3 python3-venv python3-dev tesseract-ocr tesseract-ocr-eng poppler-utils
              fonts-dkg-handwriting fonts-breip fonts-femkeklaver fonts-humor-sans
              libgl1 libglib2.0-0  # OpenCV, which RapidOCR (the second OCR engine) imports
              strace)  # tests/test_no_network.py: the syscall-level proof that nothing leaves the machine
VENV=${SCANARCHIVE_VENV:-.venv}

need_apt() {
  local missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      echo "scanarchive: these Debian packages are missing: ${missing[*]}" >&2
      echo "  what to do: as root, run: apt-get install ${missing[*]}" >&2
      exit 1
    fi
  fi
  echo "Installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

need_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[rapidocr,dev]"
}

setup() { need_apt; need_venv; }

case "${1:-}" in
  setup) setup ;;
  demo)  setup; shift; exec "$VENV/bin/scanarchive" demo "$@" ;;
  test)  setup; shift
         "$VENV/bin/ruff" check scanarchive tests bench
         "$VENV/bin/mypy"
         exec "$VENV/bin/python" -m pytest "$@" ;;
  *) echo "usage: ./dev.sh demo | test | setup" >&2; exit 2 ;;
esac
