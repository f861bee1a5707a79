"""A normal install works (issue 14, item 1): the wheel built from this checkout, installed into a clean
venv OUTSIDE the checkout (dependencies from the package index), runs init, sheets, ingest, search,
retention presets, purge --dry-run and watch --once from a folder outside the checkout with PYTHONPATH
cleared, so only what the wheel ships is there (`./dev.sh` installs editable, which would hide a
missing data file)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.kits.helpers import note_words, render_note

CHECKOUT = Path(__file__).resolve().parents[1]
PASSPHRASE = "a long passphrase for the wheel test 7"


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["SCANARCHIVE_TMPDIR"] = str(tmp)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(argv: list[str | Path], cwd: Path, env: dict[str, str], timeout: float = 900) -> str:
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False, stdin=subprocess.DEVNULL)  # fmt: skip
    assert proc.returncode == 0, f"{argv[:4]} exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.mark.slow
def test_the_wheel_installed_outside_the_checkout_runs_the_main_commands(tmp_path: Path) -> None:
    assert CHECKOUT not in tmp_path.parents
    env = _env(tmp_path / "sa-tmp")
    work = tmp_path / "work"
    work.mkdir()
    wheels, venv = tmp_path / "wheels", tmp_path / "venv"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, CHECKOUT], work, env)
    [wheel] = wheels.glob("scanarchive-*.whl")
    _run([sys.executable, "-m", "venv", venv], work, env)
    _run([venv / "bin/python", "-m", "pip", "install", "-q", wheel], work, env)

    where = _run([venv / "bin/python", "-c", "import scanarchive; print(scanarchive.__file__)"], work, env).strip()
    assert Path(where).is_relative_to(venv), where
    assert not Path(where).is_relative_to(CHECKOUT)

    exe = venv / "bin/scanarchive"
    archive, drop, secret = tmp_path / "archive", tmp_path / "scans", tmp_path / "pass.txt"
    secret.write_text(PASSPHRASE + "\n")
    secret.chmod(0o600)
    base: list[str | Path] = [exe, "--archive", archive]
    pw: list[str | Path] = ["--passphrase-file", secret]

    assert "Created an encrypted archive" in _run([*base, "init", *pw, "--kdf-seconds", "0.02"], work, env)
    assert (archive / "config.toml").is_file()
    _run([*base, "sheets", "--client", "C-0042", "--date", "2026-11-20", "-o", work / "sheet.pdf"], work, env)
    assert (work / "sheet.pdf").read_bytes().startswith(b"%PDF")
    assert "key" in _run([*base, "sheets", "keys"], work, env).lower()

    image, lines = render_note(seed=11)
    note = work / "note.png"
    image.save(note, dpi=(300, 300))
    out = _run([*base, "ingest", "--client", "C-0042", "--date", "2026-11-20", "--json", note], work, env)
    [doc] = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert doc["outcome"] == "archived", doc
    [record] = [r["id"] for r in doc["records"]]
    assert not note.exists()

    hits = []
    for word in sorted(note_words(lines, min_len=6))[:8]:
        found = json.loads(_run([*base, "search", word, "--json", *pw], work, env))["results"]
        hits += [r["record_id"] for r in found]
    assert record in hits, "no word of the note was found by search"

    presets = _run([*base, "retention", "presets"], work, env)
    assert "apa_2007" in presets
    _run([*base, "retention", "use", "apa_2007", *pw], work, env)
    dry = json.loads(_run([*base, "purge", "--dry-run", "--json"], work, env))
    assert dry["dry_run"] is True

    drop.mkdir()
    image.save(drop / "second.png", dpi=(300, 300))
    (drop / "second.png").write_bytes((drop / "second.png").read_bytes() + b"\0")  # other bytes: not a duplicate
    _run([*base, "watch", "--once", "--drop", drop], work, env, timeout=600)
    assert not (drop / "second.png").exists()
    status = json.loads(_run([*base, "status", "--json"], work, env))
    assert status["records"] == 2
    assert status["watcher"]["last_seen"] is not None
    assert status["last_purge"]["dry_run"] is True
    assert "setup-host" in _run([exe, "completion", "bash"], work, env)
    assert _run([exe, "man"], work, env).startswith(".TH")
