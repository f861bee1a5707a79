"""Run one external engine process with a hard timeout.

The engine runs in its own session (process group); on timeout the whole group
gets SIGKILL, so an engine that forks helpers cannot keep our pipes open and
hang the ingest (subprocess.run's own timeout kills only the direct child).

Every engine runs through :mod:`scanarchive.sandbox`: telemetry off, HOME and
caches in the private work folder (`cwd`), and no network where the kernel
allows. Core dumps are off for it because RLIMIT_CORE 0, set by
``hardening.protect_process`` in the parent, is inherited across exec.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence

from scanarchive import sandbox


class EngineTimeout(Exception):
    """The engine did not finish in time and was killed."""


def run_engine(
    cmd: Sequence[str], *, stdin: bytes, timeout: float, cwd: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.Popen(
        sandbox.wrap(cmd),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=sandbox.engine_env(cwd, env),
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        _kill_group(proc)
        raise EngineTimeout(f"{os.path.basename(cmd[0])} did not finish within {timeout:.0f} s") from exc
    except BaseException:
        _kill_group(proc)
        raise
    return subprocess.CompletedProcess(list(cmd), proc.returncode, out, err)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    # The pipes are closed by the kill; collect the zombie without waiting on grandchildren's pipes.
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    proc.wait()
