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

import ctypes
import ctypes.util
import errno
import functools
import logging
import os
import shutil
import site
import stat
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence

log = logging.getLogger(__name__)

#: Set for every engine. ORT: ONNX Runtime's telemetry; OpenCV: no OpenCL (and so no kernel cache in ~/.cache).
NO_TELEMETRY = {
    "ORT_DISABLE_TELEMETRY": "1",
    "OPENCV_OPENCL_RUNTIME": "disabled",
    "OPENCV_OPENCL_CACHE_ENABLE": "0",
    "DO_NOT_TRACK": "1",
}


MMAP_THRESHOLD = 4 << 20


def engine_env(workdir: str | None, base: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """A copy of `base` (default: os.environ) with telemetry off and, given a workdir, every home-like folder in it."""
    env = dict(os.environ if base is None else base)
    env.update(NO_TELEMETRY)
    # glibc raises its mmap threshold to the largest block freed (up to 32 MB), after which an OCR page's
    # big tensors and images come from the heap and, freed, stay there fragmented: a RapidOCR worker peaked
    # at ~305 MB. Fixed at 4 MB, blocks that large are mapped and handed back on free: ~233 MB, at a few
    # percent of speed (bench/memory.py; 128 KB halved the peak again but ran 6x slower).
    env.setdefault("MALLOC_MMAP_THRESHOLD_", str(MMAP_THRESHOLD))
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
    return _inherited or _prefix() is not None


@functools.lru_cache(maxsize=1)
def _warn_not_isolated() -> None:
    log.warning(
        "network isolation of the OCR engines is not available on this machine (no working 'unshare --net'); "
        "they run with telemetry switched off, but are not cut off from the network"
    )


def wrap(cmd: Sequence[str]) -> list[str]:
    """`cmd` run in an empty network namespace where the kernel allows it, else `cmd` unchanged (logged once)."""
    if _inherited:
        return list(cmd)
    prefix = _prefix()
    if prefix is None:
        _warn_not_isolated()
        return list(cmd)
    return [*prefix, *cmd]


# --- the parser child: Landlock and inherited isolation -------------------------------------------------------
#
# Landlock (Linux >= 5.13) is an unprivileged, stackable LSM: a process gives up file-system (and, from ABI 4, TCP)
# rights for itself and everything it later starts; it can never get them back. Used by the parser child
# (``scanarchive.ingest.parser``) through ctypes, so no extra package is needed. Syscall numbers are the same on
# every architecture (they were added after the tables were unified).

_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
PR_SET_NO_NEW_PRIVS = 38

FS_EXECUTE = 1 << 0
FS_WRITE_FILE = 1 << 1
FS_READ_FILE = 1 << 2
FS_READ_DIR = 1 << 3
FS_REMOVE_DIR = 1 << 4
FS_REMOVE_FILE = 1 << 5
FS_MAKE_CHAR = 1 << 6
FS_MAKE_DIR = 1 << 7
FS_MAKE_REG = 1 << 8
FS_MAKE_SOCK = 1 << 9
FS_MAKE_FIFO = 1 << 10
FS_MAKE_BLOCK = 1 << 11
FS_MAKE_SYM = 1 << 12
FS_REFER = 1 << 13  # ABI 2
FS_TRUNCATE = 1 << 14  # ABI 3
NET_BIND_TCP = 1 << 0  # ABI 4
NET_CONNECT_TCP = 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1

READ = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
_FILE_ONLY = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE  # the rights a rule on a non-folder may hold
_ABI1_ALL = (1 << 13) - 1


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class SandboxUnavailable(Exception):
    """This kernel (or container) does not offer the feature; the message says why, in plain words."""


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def landlock_abi() -> int:
    """The Landlock ABI version of this kernel; SandboxUnavailable (with the reason) where there is none."""
    if not sys.platform.startswith("linux"):
        raise SandboxUnavailable("Landlock needs Linux")
    try:
        abi = int(
            _libc().syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
        )
    except (OSError, AttributeError) as exc:
        raise SandboxUnavailable(f"the C library cannot be used ({type(exc).__name__})") from exc
    if abi < 1:
        err = ctypes.get_errno()
        if err == errno.ENOSYS:
            raise SandboxUnavailable(f"this kernel ({os.uname().release}) has no Landlock (Linux 5.13 or later)")
        if err == errno.EOPNOTSUPP:
            raise SandboxUnavailable("Landlock is built into this kernel but switched off (boot option lsm=)")
        raise SandboxUnavailable(f"Landlock cannot be used here ({errno.errorcode.get(err, err)})")
    return abi


def landlock(read_paths: Iterable[str], write_paths: Iterable[str], device_files: Iterable[str] = ()) -> int:
    """Restrict this process (the calling thread; call it before any thread starts) and everything it will
    start: files and folders may be read (and programs run) only beneath `read_paths`; anything may be done
    only beneath `write_paths`; `device_files` (/dev/null) may also be opened for writing. From ABI 4 no TCP
    bind or connect at all, from ABI 6 no abstract Unix socket or signal outside the domain. Sets
    no_new_privs. Returns the ABI used; SandboxUnavailable if nothing could be applied."""
    abi = landlock_abi()
    handled = _ABI1_ALL | (FS_REFER if abi >= 2 else 0) | (FS_TRUNCATE if abi >= 3 else 0)
    attr = _RulesetAttr(handled, (NET_BIND_TCP | NET_CONNECT_TCP) if abi >= 4 else 0, 0)
    if abi >= 6:
        attr.scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    libc = _libc()
    ruleset = int(libc.syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0)))
    if ruleset < 0:
        raise SandboxUnavailable(
            f"a Landlock ruleset could not be made ({errno.errorcode.get(ctypes.get_errno(), '?')})"
        )
    try:
        rules = [(p, READ) for p in read_paths] + [(p, handled) for p in write_paths]
        rules += [(p, FS_READ_FILE | FS_WRITE_FILE) for p in device_files]
        for path, access in rules:
            _add_rule(libc, ruleset, path, access)
        if int(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) != 0:
            raise SandboxUnavailable("no_new_privs could not be set")
        if int(libc.syscall(_SYS_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0))) != 0:
            raise SandboxUnavailable(f"Landlock could not be applied ({errno.errorcode.get(ctypes.get_errno(), '?')})")
    finally:
        os.close(ruleset)
    return abi


def _add_rule(libc: ctypes.CDLL, ruleset: int, path: str, access: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # a folder that is not there needs no rule
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            access &= _FILE_ONLY
        attr = _PathBeneathAttr(access, fd)
        if (
            int(
                libc.syscall(
                    _SYS_ADD_RULE,
                    ctypes.c_int(ruleset),
                    ctypes.c_int(_RULE_PATH_BENEATH),
                    ctypes.byref(attr),
                    ctypes.c_uint32(0),
                )
            )
            != 0
        ):
            raise SandboxUnavailable(
                f"a Landlock rule could not be added ({errno.errorcode.get(ctypes.get_errno(), '?')})"
            )
    finally:
        os.close(fd)


_inherited = False


def mark_isolated() -> None:
    """This process already runs in an empty network namespace (the parser child): the engines it starts
    inherit it, so :func:`wrap` starts them directly instead of nesting another namespace."""
    global _inherited
    _inherited = True
