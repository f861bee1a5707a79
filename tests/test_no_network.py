"""Nothing leaves the machine, proven at the syscall level (strace), native libraries included.

The netblock in tests/netblock patches Python's sockets only; ONNX Runtime's
telemetry (native code) went around it. Here real commands run under
`strace -f`, engines and all, and the test fails on any AF_INET/AF_INET6
socket and on any file created or opened for writing outside the archive, the
private temp folder, the drop folder and the Tesseract dictionary cache.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.conftest import PASSPHRASE
from tests.kits.helpers import render_note
from tests.kits.watchkit import fast_watch_config, small_scan_bytes, source_hashes, wait_for

TRACED = "socket,connect,sendto,sendmsg,open,openat,creat,mkdir,mkdirat,rename,renameat,renameat2,execve"
WRITE_FLAGS = re.compile(r"\bO_(WRONLY|RDWR|CREAT|TRUNC|APPEND)\b")
STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
DIRFD = re.compile(r"^\w+\((?:AT_FDCWD|\d+)<([^>]*)>")  # openat/mkdirat: the folder a relative path is in (-y)
HARMLESS = ("/dev/null", "/dev/tty", "/dev/pts/", "/proc/")  # devices, and unshare's own uid_map/setgroups


def _strace() -> str:
    exe = shutil.which("strace")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("strace is missing in CI: the no-network proof cannot run (add it with ./dev.sh setup)")
        pytest.skip("STRACE IS NOT INSTALLED: the syscall-level no-network proof did not run (apt-get install strace)")
    return exe


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    (tmp_path / "cache").mkdir(exist_ok=True)  # only cache/scanarchive may be written: not cache/Microsoft
    return {
        **os.environ,
        "PYTHONDONTWRITEBYTECODE": "1",  # no __pycache__ writes in the checkout or the venv
        "XDG_CACHE_HOME": str(tmp_path / "cache"),  # the public Tesseract dictionary cache goes here
        **extra,
    }


def traced_cmd(trace: Path, argv: Sequence[str | Path]) -> list[str]:
    return [_strace(), "-f", "-qq", "-y", "-e", f"trace={TRACED}", "-o", str(trace), *[str(a) for a in argv]]


def run_traced(trace: Path, env: dict[str, str], *argv: str | Path) -> subprocess.CompletedProcess[str]:
    cmd = traced_cmd(trace, [sys.executable, "-m", "scanarchive", *argv])
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=False)


def calls(trace: Path) -> list[str]:
    """Every traced call as one line (strace -f splits concurrent calls into unfinished/resumed halves)."""
    pending: dict[str, str] = {}
    out: list[str] = []
    for line in trace.read_text(errors="replace").splitlines():
        pid, _, rest = line.partition(" ")
        rest = rest.lstrip()
        if rest.endswith("<unfinished ...>"):
            pending[pid] = rest[: -len("<unfinished ...>")]
        elif rest.startswith("<..."):
            out.append(pending.pop(pid, "") + rest.split("resumed>", 1)[-1])
        else:
            out.append(rest)
    return out + list(pending.values())


def violations(trace: Path, allowed: Sequence[Path]) -> list[str]:
    """Internet sockets, and successful writes/creations outside `allowed` (each as the trace line)."""
    roots = [os.path.realpath(p) for p in allowed]
    bad: list[str] = []
    for call in calls(trace):
        name = call.split("(", 1)[0]
        if name == "socket":
            if "AF_INET" in call.split(",", 1)[0]:  # AF_INET and AF_INET6; AF_UNIX/AF_NETLINK never leave the machine
                bad.append(call)
            continue
        if name in ("connect", "sendto", "sendmsg"):
            if "sa_family=AF_INET" in call:
                bad.append(call)
            continue
        if re.search(r"\)\s+=\s+-1 ", call) or name == "execve":
            continue  # failed: nothing was written
        strings = STRING.findall(call)
        if not strings:
            continue
        if name in ("open", "openat"):
            if not WRITE_FLAGS.search(call):
                continue
            targets = [strings[0]]
        elif name.startswith("rename"):
            targets = [strings[-1]]
        else:  # creat, mkdir, mkdirat
            targets = [strings[0]]
        base = DIRFD.search(call)
        for target in targets:
            path = target if target.startswith("/") else os.path.join(base.group(1) if base else "?", target)
            path = os.path.normpath(path)
            if path.startswith(HARMLESS) or path in HARMLESS:
                continue
            real = os.path.realpath(path)
            if not any(real == r or real.startswith(r + os.sep) for r in roots):
                bad.append(call)
    return bad


def _assert_clean(trace: Path, allowed: Sequence[Path]) -> None:
    assert trace.stat().st_size > 0, "strace wrote nothing: the command was not traced"
    bad = violations(trace, allowed)
    assert not bad, "network use or files written outside the archive:\n" + "\n".join(bad[:30])


def test_the_checker_sees_an_internet_socket_and_a_stray_file(tmp_path: Path) -> None:
    """The proof can fail: a process that opens AF_INET sockets and writes elsewhere is caught."""
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    stray = tmp_path / "elsewhere.txt"
    snippet = (
        "import socket, sys\n"
        "socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close()\n"
        "socket.socket(socket.AF_INET6, socket.SOCK_STREAM).close()\n"
        "socket.socket(socket.AF_UNIX).close()\n"
        "open(sys.argv[1] + '/fine.txt', 'w').close()\n"
        "open(sys.argv[2], 'w').close()\n"
    )
    trace = tmp_path / "selftest.trace"
    subprocess.run(traced_cmd(trace, [sys.executable, "-c", snippet, allowed, stray]), check=True, timeout=60)
    bad = violations(trace, [allowed])
    assert sum("socket(AF_INET," in b for b in bad) == 1 and sum("socket(AF_INET6," in b for b in bad) == 1
    assert any("elsewhere.txt" in b for b in bad)
    assert not any("fine.txt" in b or "AF_UNIX" in b for b in bad)


def test_init_ingest_search_purge_use_no_network_and_write_only_the_archive(
    tmp_path: Path, private_tmp: Path, passphrase_file: Path
) -> None:
    archive = tmp_path / "archive"
    drop = tmp_path / "drop"
    drop.mkdir()
    image, lines = render_note(seed=5)
    scan = drop / "note-5.png"
    image.save(scan, dpi=(300, 300))
    env = _env(tmp_path)
    allowed = [archive, private_tmp, drop, tmp_path / "cache" / "scanarchive"]
    word = max((w for line in lines for w in re.findall(r"[A-Za-z]+", line)), key=len)

    steps: list[tuple[str, list[str | Path]]] = [
        ("init", ["init", "--passphrase-file", passphrase_file, "--kdf-seconds", "0.01"]),
        ("ingest", ["ingest", scan]),
        ("search", ["search", word, "--passphrase-file", passphrase_file]),
        ("retention", ["retention", "use", "--passphrase-file", passphrase_file, "apa_2007"]),
        ("purge", ["purge", "--dry-run", "--today", "2026-06-01"]),
    ]
    for name, argv in steps:
        trace = tmp_path / f"{name}.trace"
        proc = run_traced(trace, env, "--archive", archive, *argv)
        assert proc.returncode == 0, f"{name}: {proc.stderr[-2000:]}"
        if name == "ingest":
            assert any("scanarchive.ocr.rapid_worker" in c for c in calls(trace)), "RapidOCR did not run"
        _assert_clean(trace, allowed)
        assert PASSPHRASE not in proc.stdout + proc.stderr


@pytest.mark.slow
def test_watch_for_40_seconds_with_rapidocr_uses_no_network(
    tmp_path: Path, archive_dir: Path, private_tmp: Path
) -> None:
    drop = tmp_path / "scans"
    drop.mkdir()
    fast_watch_config(archive_dir, drop)
    trace = tmp_path / "watch.trace"
    log = tmp_path / "watch.log"
    cmd = traced_cmd(trace, [sys.executable, "-m", "scanarchive", "--archive", archive_dir, "watch"])
    started = time.monotonic()
    with open(log, "wb") as out:
        tracer = subprocess.Popen(cmd, stdout=out, stderr=out, env=_env(tmp_path, SCANARCHIVE_PASSPHRASE_FILE=""))
    try:
        time.sleep(2)
        data, _ = small_scan_bytes(11)
        (drop / "scan.png").write_bytes(data)
        wait_for(lambda: len(source_hashes(archive_dir)) == 1, 120, "the watcher to archive the scan")
        # ONNX Runtime's telemetry fired ~10 s after a worker started: keep watching well past that.
        time.sleep(max(0.0, 40 - (time.monotonic() - started)))
        children = Path(f"/proc/{tracer.pid}/task/{tracer.pid}/children").read_text().split()
        assert children, "the watcher is not running under strace"
        os.kill(int(children[0]), signal.SIGTERM)
        tracer.wait(timeout=60)
    finally:
        if tracer.poll() is None:
            tracer.kill()
            tracer.wait()
    assert time.monotonic() - started >= 40
    assert any("scanarchive.ocr.rapid_worker" in c for c in calls(trace)), "RapidOCR did not run"
    _assert_clean(trace, [archive_dir, private_tmp, drop, tmp_path / "cache" / "scanarchive"])
