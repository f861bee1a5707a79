"""The parser child (``python -m scanarchive.ingest.parser``): the one process that decodes a scan.

Postfix's privilege separation, for scans: the process that parses hostile input (Pillow, pikepdf/qpdf,
zxing-cpp, img2pdf, pdftoppm, Tesseract, RapidOCR) holds nothing worth stealing and can change nothing.
`ingest/analyse.py` starts it, per file, in its own process group and network namespace
(``sandbox.wrap``), with a fresh private 0700 folder as its working directory. Before it reads a
single byte of the scan, it locks itself down (:func:`lock_down`):

* ``hardening.protect_process()``: not dumpable, no core file;
* Landlock: it may **write, make or remove nothing** except inside its private folder (and write to
  /dev/null); it may **read** (and run programs) only beneath the Python installation and sys.path,
  the folders on PATH, /usr, /lib*, /bin, /sbin, /etc, /proc, /sys, the fontconfig cache and a few
  /dev files — not the user's home, not /tmp, not /srv or /mnt: so not the archive, the drop folder,
  the journal's waiting scans or another process's temp folder. No TCP bind or connect (ABI 4), no
  abstract Unix socket or signal outside itself (ABI 6). Landlock is inherited across fork and exec,
  so every engine it starts is bound by the same rules;
* no network: an empty network namespace (its engines inherit it, so they are not wrapped again);
* RLIMIT_FSIZE 1 GiB and RLIMIT_AS 16 GiB: bounds on a runaway decoder, not tight limits.

It then reads the request (one JSON line: settings, sheet key, archive id prefix, command-line and
file-name metadata — never a path) and the scan's bytes from stdin, says the page count once the check
stage knows it (the parent's deadline depends on it), then a progress line as each stage ends and each page
is OCR'd (``analyse.encode_step``: a stage name, seconds and counts, never content), and writes the answer to
stdout (``analyse.encode_parts``). It never gets the archive's path or a file name. Where the kernel lacks Landlock,
it runs without it and says so in its answer; `status` and `watch` say so to the user.
"""

from __future__ import annotations

import _socket
import contextlib
import errno
import importlib
import json
import os
import resource
import socket
import sys
import threading
from typing import Any, BinaryIO

from scanarchive import hardening, sandbox
from scanarchive.ocr import rapidocr
from scanarchive.pages import templates

FSIZE_LIMIT = 1 << 30
AS_LIMIT = 16 << 30
SYSTEM_READ = ("/usr", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin", "/etc", "/proc", "/sys")
SYSTEM_READ_EXTRA = ("/var/cache/fontconfig", "/usr/local")
DEVICES_READ = ("/dev/zero", "/dev/urandom", "/dev/random")
DEVICES_WRITE = ("/dev/null",)


def read_paths() -> list[str]:
    """Where the child may read: the Python it runs, its import path, PATH, the system folders."""
    paths: list[str] = [*SYSTEM_READ, *SYSTEM_READ_EXTRA, *DEVICES_READ]
    paths += [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, os.path.dirname(sys.executable)]
    paths.append(os.path.dirname(os.path.abspath(hardening.__file__)))  # this package, however it is installed
    paths.append(str(templates.FOLDER))  # tick-box templates, read to locate the boxes of a sheet
    paths += [p for p in sys.path if p]
    paths += [p for p in os.environ.get("PATH", "").split(os.pathsep) if os.path.isabs(p)]
    tessdata = os.environ.get("TESSDATA_PREFIX")
    if tessdata:
        paths.append(tessdata)
    paths += rapidocr.model_folders()  # other RapidOCR models (bench/recall_real.py); the shipped ones: above
    resolved = paths + [os.path.realpath(p) for p in paths]
    return sorted(set(resolved))


def lock_down(workdir: str) -> str:
    """Everything above, before the scan is read; returns what was applied, in the words `status` uses."""
    hardening.protect_process()
    for limit, value in ((resource.RLIMIT_FSIZE, FSIZE_LIMIT), (resource.RLIMIT_AS, AS_LIMIT)):
        with contextlib.suppress(ValueError, OSError):
            _soft, hard = resource.getrlimit(limit)
            if hard == resource.RLIM_INFINITY or hard > value:
                resource.setrlimit(limit, (value, value))
    netns = os.environ.get("SCANARCHIVE_PARSER_NETNS") == "1"
    if netns:
        sandbox.mark_isolated()
    try:
        abi = sandbox.landlock(read_paths(), [workdir], DEVICES_WRITE)
        landlock = f"landlock (ABI {abi})" if abi < 4 else "landlock"
    except sandbox.SandboxUnavailable as exc:
        if netns:
            return f"netns; no landlock: {exc}"
        return f"none: {exc}; no working 'unshare --net'"
    if netns:
        return f"{landlock}+netns"
    return f"{landlock}; no network namespace: no working 'unshare --net'"


def _read_exact(stream: BinaryIO, size: int) -> bytes:
    """`size` bytes, read into one bytes object (a buffered read of n bytes fills one object of n: the scan is
    never held twice while it is read)."""
    data = stream.read(size)
    if len(data) != size:
        raise EOFError
    return data


def _probe(targets: str) -> dict[str, str]:
    """Test hook: what happens when this process tries to write where it must not, or to reach the network."""
    found: dict[str, str] = {}
    for target in filter(None, targets.split("|")):
        planted = os.path.join(os.path.dirname(target), "planted-by-the-parser")
        for name, path, flags in (
            (target, target, os.O_WRONLY | os.O_APPEND),  # an existing file, opened for writing
            (target + "+new", planted, os.O_WRONLY | os.O_CREAT | os.O_EXCL),  # a new file beside it
        ):
            try:
                os.close(os.open(path, flags, 0o600))
                found[name] = "allowed"
            except OSError as exc:
                found[name] = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        key = "inet-" + ("tcp" if kind == socket.SOCK_STREAM else "udp")
        try:
            # _socket, not socket: the syscall itself (a test suite's Python-level net block must not answer)
            sock = _socket.socket(socket.AF_INET, kind)
            try:
                sock.settimeout(3)
                sock.connect(("192.0.2.1", 9))  # TEST-NET-1: never a real host
                if kind == socket.SOCK_DGRAM:
                    sock.send(b"x")
            finally:
                sock.close()
            found[key] = "allowed"
        except OSError as exc:
            found[key] = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
    return found


def main() -> int:
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing a library prints may corrupt the answer stream
    applied = lock_down(os.getcwd())
    # Only now the heavy modules (Pillow, pikepdf, zxing-cpp, NumPy): a thread started by one of them is
    # already bound (Landlock binds the calling thread and what it starts later).
    mod: Any = importlib.import_module("scanarchive.ingest.analyse")
    hook = os.environ.get(mod.ENV_HOOK, "")
    try:
        header = json.loads(stdin.readline(1 << 20))
        data = _read_exact(stdin, int(header.pop("size")))
        request = mod.Request.from_json(header)

        lock = threading.Lock()  # the OCR threads report their pages at once

        def say(line: bytes) -> None:
            with lock:
                stdout.write(line)
                stdout.flush()

        def checked(pages: int) -> None:
            say(json.dumps({"pages": pages}).encode() + b"\n")

        def step(progress: Any) -> None:  # counts and seconds only (analyse.encode_step)
            say(mod.encode_step(progress))

        probes = _probe(hook.removeprefix("probe:")) if hook.startswith("probe:") else {}
        result = mod.analyse(request, data, on_checked=checked, on_step=step, hook=hook)
        result.sandbox, result.probes = applied, probes
        del data  # the scan's bytes live on in `result` only where they are a record's PDF
        answer = mod.encode_parts(result)  # written piece by piece, never joined
    except BaseException as exc:  # every failure goes back as its kind (and, if ours, its message)
        answer = [mod.encode_error(exc)]
    for part in answer:
        stdout.write(part)
    stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
