"""Keep the process's memory to itself: no core dumps, no same-user /proc/PID/mem.

:func:`protect_process` runs first in every command (``cli.main.main``: they
hold the identity, plaintext PDFs or page images) and in the RapidOCR worker.

* ``RLIMIT_CORE`` 0 (soft and hard, so it cannot be raised again): a crash
  leaves no core file with the key or a decrypted page. The limit is inherited
  across fork and exec, so Tesseract and pdftoppm, started by ``runner.py``,
  get it too without any pre-exec code.
* ``prctl(PR_SET_DUMPABLE, 0)``: the kernel then refuses ptrace and
  /proc/PID/mem (and most of /proc/PID) to other processes of the same user, and
  writes no core even where systemd-coredump would pipe one. Honest limit: exec
  resets this flag for ordinary binaries, so the exec'd engines (tesseract,
  pdftoppm) are dumpable again and their page images are readable by the same
  user while they run; only the Python worker sets it again for itself.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import resource
import sys

log = logging.getLogger(__name__)

PR_SET_DUMPABLE = 4


def protect_process() -> None:
    """No core dumps and no same-user memory reads for this process; a warning (once) where not supported."""
    # Non-dumpable first: it is the one that closes /proc/PID/mem (the core limit after it, so whoever sees the
    # limit at 0 knows both are in place).
    dumpable_off = _set_not_dumpable()
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError):
        _warn("core dumps could not be switched off")
    if not dumpable_off:
        _warn("this system cannot mark the process non-dumpable (prctl PR_SET_DUMPABLE)")


def _set_not_dumpable() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        # the symbols already loaded (libc among them): ctypes.util.find_library would run ldconfig or gcc first
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


@functools.lru_cache(maxsize=4)
def _warn(what: str) -> None:
    log.warning("%s; another program running as this user may be able to read this process's memory", what)
