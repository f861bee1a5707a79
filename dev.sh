#!/usr/bin/env bash
# scanarchive developer entry point. Works on a fresh Debian machine:
#   ./dev.sh demo        install what is missing, then run the built-in demo
#   ./dev.sh test        install what is missing, then ruff, mypy and pytest
#   ./dev.sh setup       only install (the developer's .venv, editable)
#   sudo ./dev.sh install [--dry-run] [setup-host options]
#                        install for real: an isolated venv in /opt/scanarchive, scanarchive on PATH,
#                        the accounts, archive, drop folder, systemd units (docs/install.md)
#   sudo ./dev.sh uninstall [--dry-run]
#                        remove what install put on the machine; never the archive or its notes
set -euo pipefail
cd "$(dirname "$0")"

RUNTIME_APT=(python3 python3-venv python3-dev tesseract-ocr tesseract-ocr-eng poppler-utils
             libgl1 libglib2.0-0)  # OpenCV, which RapidOCR (the second OCR engine) imports
DEV_APT=(fonts-dkg-handwriting fonts-breip fonts-femkeklaver fonts-humor-sans  # the demo's synthetic notes
         strace)  # tests/test_no_network.py: the syscall-level proof that nothing leaves the machine
VENV=${SCANARCHIVE_VENV:-.venv}
HOST_VENV=${SCANARCHIVE_HOST_VENV:-/opt/scanarchive/venv}
# The locks apt and dpkg take (tests point this at a file of their own).
read -r -a APT_LOCKS <<<"${SCANARCHIVE_APT_LOCKS:-/var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock /var/cache/apt/archives/lock}"
APT_WAIT_SECONDS=${SCANARCHIVE_APT_WAIT_SECONDS:-1800}

say() { echo "scanarchive: $*"; }

sudo_prefix() {
  if [ "$(id -u)" -eq 0 ]; then echo ""; elif command -v sudo >/dev/null 2>&1; then echo "sudo"; else echo "NONE"; fi
}

lock_held() {  # is one of the apt/dpkg locks held by another process now? (POSIX locks, as dpkg takes them)
  local sudo=$1 f
  for f in "${APT_LOCKS[@]}"; do
    [ -e "$f" ] || continue
    if command -v python3 >/dev/null 2>&1; then
      $sudo python3 -c 'import fcntl, sys
fd = open(sys.argv[1], "a")
try:
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except OSError:
    sys.exit(0)
sys.exit(1)' "$f" && return 0
    elif command -v fuser >/dev/null 2>&1; then
      $sudo fuser "$f" >/dev/null 2>&1 && return 0
    fi
  done
  return 1
}

wait_for_apt() {  # a fresh Debian runs unattended-upgrades at boot: wait for it, saying so, instead of failing
  local sudo=$1 waited=0
  while lock_held "$sudo"; do
    if [ "$waited" -eq 0 ]; then
      say "another program is installing Debian packages right now (after boot this is usually the"
      say "  automatic security updates, unattended-upgrades). Waiting for it to finish; this can take a few minutes…"
    elif [ $((waited % 60)) -eq 0 ]; then
      say "  still waiting for the package manager (${waited} s so far)…"
    fi
    if [ "$waited" -ge "$APT_WAIT_SECONDS" ]; then
      say "the package manager stayed busy for ${waited} s; giving up." >&2
      say "  what to do: wait until 'ps -C apt-get,dpkg,unattended-upgr' shows nothing, then run this again." >&2
      exit 1
    fi
    sleep 2
    waited=$((waited + 2))
  done
  [ "$waited" -eq 0 ] || say "the package manager is free again; going on."
}

need_apt() {
  local missing=() pkg sudo
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  sudo=$(sudo_prefix)
  if [ "$sudo" = "NONE" ]; then
    say "these Debian packages are missing: ${missing[*]}" >&2
    say "  what to do: as root, run: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  say "installing ${#missing[@]} Debian package(s): ${missing[*]}"
  say "  (OCR engines, PDF tools, fonts for the demo; a minute or two on a fresh machine)"
  wait_for_apt "$sudo"
  say "  reading the package lists (apt-get update)…"
  $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
  say "  downloading and installing…"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
  say "  Debian packages installed."
}

need_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating the Python environment $VENV and installing scanarchive's Python packages into it"
    say "  (first run only: OCR, PDF, encryption and test libraries, a few minutes; pip lists each one)"
    python3 -m venv "$VENV"
    if ! "$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar off -e ".[rapidocr,dev]" \
        | { grep -E '^(Collecting|Successfully installed)' || true; }; then
      say "installing the Python packages failed (see above)" >&2
      exit 1
    fi
  else
    say "checking the Python packages in $VENV (quick when nothing changed)…"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[rapidocr,dev]"
  fi
}

setup() { need_apt "${RUNTIME_APT[@]}" "${DEV_APT[@]}"; need_venv; }

has_flag() { local want=$1; shift; for a in "$@"; do [ "$a" = "$want" ] && return 0; done; return 1; }

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    say "'$1' changes the whole machine (accounts, services), so it must run as root." >&2
    say "  what to do: sudo ./dev.sh $1 (add --dry-run to see what it would do)" >&2
    exit 1
  fi
}

host_install() {
  if has_flag --dry-run "$@"; then
    setup
    say "would create $HOST_VENV (an isolated Python environment) and install scanarchive from this checkout into it"
    exec "$VENV/bin/scanarchive" setup-host --program "$HOST_VENV/bin/scanarchive" "$@"
  fi
  need_root install
  need_apt "${RUNTIME_APT[@]}"
  say "installing scanarchive into $HOST_VENV (isolated, like pipx; not editable: a copy of this checkout)"
  [ -x "$HOST_VENV/bin/python" ] || python3 -m venv "$HOST_VENV"
  WHEELS=$(mktemp -d)
  trap 'rm -rf "$WHEELS"' EXIT
  "$HOST_VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null || true
  say "  building the wheel…"
  "$HOST_VENV/bin/python" -m pip wheel -q --disable-pip-version-check --no-deps -w "$WHEELS" .
  local wheel
  wheel=$(ls "$WHEELS"/scanarchive-*.whl)
  say "  installing it and its Python packages (a few minutes the first time)…"
  "$HOST_VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade "$wheel[rapidocr]"
  "$HOST_VENV/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$wheel"
  chmod -R go+rX "$HOST_VENV"  # the service accounts run this program (whatever root's umask was)
  chmod go+rx "$(dirname "$HOST_VENV")"
  say "  installed $("$HOST_VENV/bin/scanarchive" --version)"
  "$HOST_VENV/bin/scanarchive" setup-host "$@"
}

host_uninstall() {
  if has_flag --dry-run "$@"; then
    if [ -x "$HOST_VENV/bin/scanarchive" ]; then
      "$HOST_VENV/bin/scanarchive" setup-host --uninstall --program "$HOST_VENV/bin/scanarchive" "$@"
    fi
    say "would remove $HOST_VENV (the program only; the archive stays)"
    return 0
  fi
  need_root uninstall
  if [ -x "$HOST_VENV/bin/scanarchive" ]; then
    "$HOST_VENV/bin/scanarchive" setup-host --uninstall --program "$HOST_VENV/bin/scanarchive" "$@"
  fi
  rm -rf "$HOST_VENV"
  rmdir "$(dirname "$HOST_VENV")" 2>/dev/null || true
  say "removed $HOST_VENV. The archive, the drop folder and the accounts were kept."
}

case "${1:-}" in
  setup) setup ;;
  demo)  setup; shift; exec "$VENV/bin/scanarchive" demo "$@" ;;
  test)  setup; shift
         "$VENV/bin/ruff" check scanarchive tests bench
         "$VENV/bin/mypy"
         exec "$VENV/bin/python" -m pytest "$@" ;;
  install)   shift; host_install "$@" ;;
  uninstall) shift; host_uninstall "$@" ;;
  wait-for-apt) s=$(sudo_prefix); [ "$s" = NONE ] && s=""; wait_for_apt "$s" ;;  # used by tests/test_install.py
  *) echo "usage: ./dev.sh demo | test | setup | install [--dry-run] | uninstall [--dry-run]" >&2; exit 2 ;;
esac
