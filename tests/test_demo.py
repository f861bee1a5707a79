"""The README's first command: the demo runs end to end on synthetic notes, and the command it tells the
user to try next works as printed."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_the_demo_runs_and_its_try_it_yourself_command_works(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    run = subprocess.run(
        [sys.executable, "-m", "scanarchive", "demo", "--dir", str(folder)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    out = run.stdout
    assert "0 damaged" in out, out[-2000:]
    assert "ticked:" in out, "the tick-box search found its sheet"
    (line,) = [
        ln.strip()
        for ln in out.splitlines()
        if ln.strip().endswith("--passphrase-file " + str(folder / "passphrase.txt")) and " search WORD " in ln
    ]
    argv = [a if a != "WORD" else "the" for a in shlex.split(line)]
    if argv[0] == "scanarchive":
        argv = [sys.executable, "-m", "scanarchive", *argv[1:]]
    tried = subprocess.run(
        argv, capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path
    )  # not the checkout
    assert tried.returncode == 0, tried.stderr
