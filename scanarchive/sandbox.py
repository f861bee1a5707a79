"""Engine processes (Tesseract, pdftoppm, the RapidOCR worker): no network, no telemetry, no stray files.

Two layers, both applied by the code that starts an engine (``runner.run_engine``
and the RapidOCR pool):

* :func:`engine_env`: telemetry switched off (ONNX Runtime 1.32 otherwise looks
  up a Microsoft telemetry host and writes ``~/.cache/Microsoft/…``), and HOME,
  the XDG folders and TMPDIR pointed into the caller's private 0700 work folder,
  so that anything a library caches lands there and is removed with it.
* :func:`wrap`: the engine runs in its own empty network namespace (only a
  loopback interface, down), through util-linux's ``unshare``: ``unshare --net``
  as root, ``unshare --user --map-current-user --net`` otherwise. ``unshare``
  execs the engine in place (same pid, same process group), so timeouts and
  kills work as before. Not ``unshare -r``: that maps the user to root inside, so
  the process's /proc files stay owned by the user and a same-user process can
  read a non-dumpable worker's memory after all (tried; --map-current-user keeps
  /proc/PID/mem root-owned for a non-dumpable process).

If no variant works here (no ``unshare``, user namespaces off, a container that
forbids them), engines still run, and the log (once) and ``status`` say plainly
that the OCR engines are not network-isolated on this machine.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import site
import subprocess
from collections.abc import Mapping, Sequence

log = logging.getLogger(__name__)

#: Set for every engine. ORT: ONNX Runtime's telemetry; OpenCV: no OpenCL (and so no kernel cache in ~/.cache).
NO_TELEMETRY = {
    "ORT_DISABLE_TELEMETRY": "1",
    "OPENCV_OPENCL_RUNTIME": "disabled",
    "OPENCV_OPENCL_CACHE_ENABLE": "0",
    "DO_NOT_TRACK": "1",
}


def engine_env(workdir: str | None, base: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """A copy of `base` (default: os.environ) with telemetry off and, given a workdir, every home-like folder in it."""
    env = dict(os.environ if base is None else base)
    env.update(NO_TELEMETRY)
    if workdir:
        # The user's site-packages (pip install --user) stay importable with HOME moved.
        env.setdefault("PYTHONUSERBASE", site.getuserbase())
        for name in ("HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "TMPDIR", "TMP", "TEMP"):
            env[name] = workdir
    env.update(extra)
    return env


@functools.lru_cache(maxsize=1)
def _prefix() -> tuple[str, ...] | None:
    """The `unshare` command that works on this machine, or None (probed once per process)."""
    exe = shutil.which("unshare")
    if exe is None:
        return None
    variants: list[tuple[str, ...]] = [(exe, "--net")] if os.geteuid() == 0 else []
    variants.append((exe, "--user", "--map-current-user", "--net"))
    for prefix in variants:
        try:
            probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return prefix
    return None


def network_isolated() -> bool:
    """Whether engines run without any network on this machine (what `status` shows)."""
    return _prefix() is not None


@functools.lru_cache(maxsize=1)
def _warn_not_isolated() -> None:
    log.warning(
        "network isolation of the OCR engines is not available on this machine (no working 'unshare --net'); "
        "they run with telemetry switched off, but are not cut off from the network"
    )


def wrap(cmd: Sequence[str]) -> list[str]:
    """`cmd` run in an empty network namespace where the kernel allows it, else `cmd` unchanged (logged once)."""
    prefix = _prefix()
    if prefix is None:
        _warn_not_isolated()
        return list(cmd)
    return [*prefix, *cmd]
