"""Daily use (issue 14, items 4 and 5): search names tick boxes by key or label and never gives a false
all-clear for a typo, lists a client's notes without words; slips that would move destruction dates are
refused (a session date after today, `client set` on a mistyped code); every hint says what to do.

Real scans (synthetic handwriting and a rendered note sheet with ticked boxes), real sealing, real
crypto and the real command line; only OCR is replaced by a recogniser that returns the note's lines.
"""

from __future__ import annotations

import json
import os
import pty
import random
import select
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest
from PIL import ImageDraw

from scanarchive import audit
from scanarchive.archive import filing
from scanarchive.archive.layout import Archive
from scanarchive.archive.query import Box, Boxes
from scanarchive.cli.common import tick_boxes
from scanarchive.demo import synth
from scanarchive.errors import RecordNotFound, UsageError
from scanarchive.ingest import pipeline
from scanarchive.pages import sheets, templates
from scanarchive.retention import clients
from tests.kits.helpers import Run, cli, fake_ocr, render_note

PASSPHRASE = "the passphrase of the daily use tests 9"
TICKED = {"risk.si_denied", "topic.sleep"}


@dataclass
class Notes:
    root: Path
    passphrase_file: Path
    c42: list[str]  # C-0042's notes, oldest first: 2026-01-12, 2026-03-02, 2026-04-01 (the ticked sheet)
    c7: str  # C-0007's note, 2026-02-02


def _note(archive: Archive, folder: Path, seed: int, client: str, day: str) -> str:
    image, lines = render_note(seed=seed, sentences=2, height_in=3.0)
    path = folder / f"scan-{seed}.png"
    image.save(path, dpi=(300, 300))
    result = pipeline.ingest_file(archive, path, client=client, session_date=day, recogniser=fake_ocr(lines))
    return result.records[0].record_id


def _ticked_sheet(archive: Archive, folder: Path, client: str, day: str) -> str:
    """A progress sheet with risk.si_denied and topic.sleep ticked, read back by the real box reader."""
    template = templates.load_all()["progress@1"]  # an old sheet reads as well as a new one
    info = sheets.SheetInfo(archive.config.archive8, client, day, "progress", 1, template.token)
    key = archive.catalog.sheet_key()
    page = sheets.render_sheet(info, key, template=template).convert("L")
    placed, _ = templates.layout(template, sheets.content_top(sheets.encode(info, key)), sheets.MARGIN)
    draw = ImageDraw.Draw(page)
    rng = random.Random(5)
    for box in placed:
        synth.draw_mark(draw, box.x, box.y, templates.BOX, "cross" if box.key in TICKED else "none", rng)
    path = folder / "sheet.png"
    page.save(path, dpi=(300, 300))
    result = pipeline.ingest_file(archive, path, recogniser=fake_ocr(["slept", "better", "this", "week"]))
    (outcome,) = result.records
    assert (outcome.client_code, outcome.session_date) == (client, day), "filed by the sheet's code"
    return outcome.record_id


@pytest.fixture(scope="module")
def master(tmp_path_factory: pytest.TempPathFactory) -> Notes:
    """One archive for the module (ingesting takes seconds); each test gets its own copy."""
    base = tmp_path_factory.mktemp("daily-master")
    passphrase_file = base / "passphrase.txt"
    passphrase_file.write_text(PASSPHRASE + "\n")
    passphrase_file.chmod(0o600)
    root = base / "archive"
    scans = base / "scans"
    scans.mkdir()
    with Archive.create(root, PASSPHRASE, kdf_seconds=0.01) as archive:
        first = _note(archive, scans, 31, "C-0042", "2026-01-12")
        other = _note(archive, scans, 32, "C-0007", "2026-02-02")
        second = _note(archive, scans, 33, "C-0042", "2026-03-02")
        sheet = _ticked_sheet(archive, scans, "C-0042", "2026-04-01")
    return Notes(root, passphrase_file, [first, second, sheet], other)


@pytest.fixture
def notes(master: Notes, tmp_path: Path) -> Notes:
    root = tmp_path / "archive"
    shutil.copytree(master.root, root)
    return Notes(root, master.passphrase_file, master.c42, master.c7)


def _run(capsys: pytest.CaptureFixture[str], notes: Notes, *argv: str | Path) -> Run:
    return cli(capsys, "--archive", notes.root, *argv)


def _search(capsys: pytest.CaptureFixture[str], notes: Notes, *argv: str | Path) -> Run:
    return _run(capsys, notes, "search", *argv, "--passphrase-file", notes.passphrase_file)


def _found(capsys: pytest.CaptureFixture[str], notes: Notes, *argv: str) -> list[str]:
    run = _search(capsys, notes, *argv, "--json")
    assert run.code == 0, run.err
    return [r["record_id"] for r in json.loads(run.out)["results"]]


def _process(
    *argv: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None, stdout: int | None = None
) -> subprocess.CompletedProcess[bytes]:
    """`python -m scanarchive` in its own process, with no terminal on stdin."""
    return subprocess.run(
        [sys.executable, "-m", "scanarchive", *map(str, argv)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if stdout is None else stdout,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=120,
        check=False,
    )


# --- search: tick boxes --------------------------------------------------------------------


def test_a_mistyped_box_is_an_error_naming_the_close_boxes_not_a_false_all_clear(
    notes: Notes, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _search(capsys, notes, "--has", "risk.si_presnt")
    assert run.code == UsageError.exit_code, run.out
    assert "No notes match" not in run.out
    assert "there is no tick box 'risk.si_presnt'" in run.err
    assert "risk.si_present (SI present)" in run.err, "the close key, with its label"
    assert "sheets keys" in run.err
    run = _search(capsys, notes, "--has", "risk.nothing_like_it")
    assert run.code == UsageError.exit_code
    assert "Did you mean: risk.crisis_line (Crisis line given)" in run.err, "no close key: the same group's boxes"


def test_a_box_is_found_by_its_printed_label_in_any_case_and_hits_show_labels(
    notes: Notes, capsys: pytest.CaptureFixture[str]
) -> None:
    sheet = notes.c42[2]
    assert _found(capsys, notes, "--has", "risk.si_denied") == [sheet]
    assert _found(capsys, notes, "--has", "SI denied") == [sheet], "the label on the progress sheet"
    assert _found(capsys, notes, "--has", "si DENIED", "--has", "sleep") == [sheet]
    assert _found(capsys, notes, "--has", "Denied") == [sheet], "the same box's label on the risk sheet"
    assert _found(capsys, notes, "--has", "Work") == []
    run = _search(capsys, notes, "--has", "sleep")
    assert run.code == 0, run.err
    assert "ticked: SI denied, Sleep" in run.out
    assert "risk.si_denied" not in run.out and "topic.sleep" not in run.out
    doc = json.loads(_search(capsys, notes, "slept", "--json").out)["results"][0]
    assert doc["facts"] == ["risk.si_denied", "topic.sleep"] and doc["ticked"] == ["SI denied", "Sleep"]


def test_a_label_on_two_different_boxes_is_an_error_listing_both(
    notes: Notes, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "sheets"
    shutil.copytree(templates.FOLDER, folder)
    (folder / "intake@1.toml").write_text(
        'id = "intake"\nversion = 1\ntitle = "Intake"\n\n[[groups]]\nlabel = "Substance use"\n'
        'boxes = [ { key = "substance.denied", label = "Denied" } ]\n'
    )
    monkeypatch.setattr(templates, "FOLDER", folder)
    run = _search(capsys, notes, "--has", "denied")
    assert run.code == UsageError.exit_code
    assert "risk.si_denied" in run.err and "substance.denied" in run.err
    assert "intake@1" in run.err and "risk@1" in run.err
    assert _found(capsys, notes, "--has", "substance.denied") == []


def test_the_box_listing_names_every_key_of_every_template_with_its_labels() -> None:
    rows = {key: (labels, where) for key, labels, where in tick_boxes().listing()}
    every = {key for t in templates.load_all().values() for key in t.keys}
    assert set(rows) == every
    labels, where = rows["risk.si_denied"]
    assert labels.split(" / ") == ["SI denied", "Denied"], "each wording once, the progress sheet's first"
    assert {"progress@1", "risk@1"} <= set(where.split(", "))
    assert rows["topic.sleep"][0] == "Sleep"
    boxes = Boxes([Box("a.x", "Same", "s@1"), Box("b.y", "same", "t@1")])
    with pytest.raises(UsageError, match="more than one box"):
        boxes.resolve("SAME")


# --- search: listing without words -----------------------------------------------------------


def test_search_without_words_lists_a_clients_notes_or_a_date_range_newest_first(
    notes: Notes, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _found(capsys, notes, "--client", "C-0042") == notes.c42[::-1]
    assert _found(capsys, notes, "--since", "2026-02-01", "--until", "2026-03-31") == [notes.c42[1], notes.c7]
    assert _found(capsys, notes, "--client", "C-0042", "--limit", "2") == notes.c42[:0:-1]
    run = _search(capsys, notes, "--client", "C-0042")
    assert run.code == 0, run.err
    lines = [line for line in run.out.splitlines() if line.strip()[:2].rstrip(".").isdigit()]
    assert [line.split()[1] for line in lines] == notes.c42[::-1]
    assert all("2026-" in line and "progress" in line for line in lines)
    assert "3 note(s)." in run.out
    run = _search(capsys, notes)
    assert run.code == UsageError.exit_code
    assert "the search has no words in it" in run.err and "--client CODE" in run.err


# --- guards --------------------------------------------------------------------------------


def test_a_session_date_after_today_is_refused_unless_allowed(notes: Notes, capsys: pytest.CaptureFixture[str]) -> None:
    record = notes.c7
    run = _run(capsys, notes, "file", record[:8], "--date", "2036-02-02")
    assert run.code == UsageError.exit_code
    assert "after today" in run.err and "--allow-future" in run.err
    with Archive(notes.root) as archive:
        assert archive.catalog.record(record).session_date == "2026-02-02", "nothing was changed"
        with pytest.raises(UsageError, match="after today"):
            filing.file_record(archive, record, session_date="2036-02-02")
    run = _run(capsys, notes, "file", record[:8], "--date", "2036-02-02", "--allow-future")
    assert run.code == 0, run.err
    with Archive(notes.root) as archive:
        assert archive.catalog.record(record).session_date == "2036-02-02"


def test_ingest_refuses_a_session_date_after_today_unless_allowed(
    archive_dir: Path, small_scan: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    future = (date.today() + timedelta(days=400)).isoformat()
    before = small_scan.read_bytes()
    run = cli(capsys, "--archive", archive_dir, "ingest", small_scan, "--client", "C-0042", "--date", future)
    assert run.code == UsageError.exit_code
    assert "after today" in run.err and "--allow-future" in run.err
    assert small_scan.read_bytes() == before, "the scan was not touched"
    with Archive(archive_dir) as archive:
        assert archive.catalog.records() == []
    run = cli(
        capsys, "--archive", archive_dir, "ingest", small_scan, "--client", "C-0042", "--date", future, "--allow-future"
    )
    assert run.code == 0, run.err
    with Archive(archive_dir) as archive:
        assert [r.session_date for r in archive.catalog.records()] == [future]


def test_client_set_on_an_unknown_code_is_refused_and_add_creates(
    notes: Notes, capsys: pytest.CaptureFixture[str]
) -> None:
    pf = ("--passphrase-file", notes.passphrase_file)
    run = _run(capsys, notes, "client", "set", "C-7777", "--born", "1980-01-01", *pf)
    assert run.code == RecordNotFound.exit_code
    assert "there is no client 'C-7777'" in run.err and "client list" in run.err and "client add" in run.err
    assert "C-7777" not in _run(capsys, notes, "client", "list").out
    with Archive(notes.root) as archive, pytest.raises(RecordNotFound, match="nothing was changed"):
        clients.save(
            archive, "C-7777", {"date_of_birth": "1980-01-01"}, create=False, identity=archive.unlock(PASSPHRASE)
        )
    run = _run(capsys, notes, "client", "set", "C-0042", "--born", "1980-01-01", *pf)
    assert run.code == 0, "a client known by its notes can be set"
    assert _run(capsys, notes, "client", "add", "C-7777", "--born", "1980-01-01", *pf).code == 0
    assert _run(capsys, notes, "client", "set", "C-7777", "--born", "1981-01-01", *pf).code == 0


# --- hints -----------------------------------------------------------------------------------


def test_an_unknown_record_id_says_where_ids_are_listed(notes: Notes, capsys: pytest.CaptureFixture[str]) -> None:
    pf = ("--passphrase-file", notes.passphrase_file)
    for verb in (
        ("show", "deadbeef", "-o", notes.root.parent / "x.pdf", *pf),
        ("file", "deadbeef", "--class", "progress"),
    ):
        run = _run(capsys, notes, *verb)
        assert run.code == RecordNotFound.exit_code
        assert "status" not in run.err, "status lists no record ids"
        assert "search --client CODE" in run.err and "inbox" in run.err
    run = _run(capsys, notes, "show", "dead", "--stdout", "--passphrase-file", notes.passphrase_file)
    assert "first 8 characters" in run.err


def test_retention_hints_point_at_the_fix(notes: Notes, capsys: pytest.CaptureFixture[str]) -> None:
    run = _run(capsys, notes, "retention", "use", "us_tx_lcp", "--passphrase-file", notes.passphrase_file)
    assert run.code == 3
    assert "Did you mean us_tx_lpc?" in run.err and "retention presets" in run.err
    assert "Fix or remove" not in run.err, "nothing is wrong with any preset file"
    run = _run(capsys, notes, "retention", "due")
    assert run.code == 3, "no rules: nothing can be judged due, as purge says"
    assert "No record is due" not in run.out
    assert "no retention rules are in force" in run.err and "retention use" in run.err


def test_passwd_asks_for_the_new_passphrase_by_its_own_option(notes: Notes, tmp_path: Path) -> None:
    run = _process(
        "--archive", notes.root, "passwd", "--passphrase-file", notes.passphrase_file, "--kdf-seconds", "0.01"
    )
    err = run.stderr.decode()
    assert run.returncode == UsageError.exit_code
    assert "--new-passphrase-file" in err and "Give --passphrase-file" not in err
    # the variable names the CURRENT passphrase: it never silently becomes the new one too
    env = {"SCANARCHIVE_PASSPHRASE_FILE": str(notes.passphrase_file)}
    run = _process("--archive", notes.root, "passwd", "--kdf-seconds", "0.01", env=env)
    assert run.returncode == UsageError.exit_code, run.stdout
    assert "--new-passphrase-file" in run.stderr.decode()


def _on_a_terminal(argv: list[str], answers: list[str]) -> tuple[int, str]:
    """Run the CLI with a pseudo-terminal as its controlling terminal; answer each prompt in turn."""
    pid, fd = pty.fork()
    if pid == 0:  # the child
        try:
            os.execv(sys.executable, [sys.executable, "-m", "scanarchive", *argv])  # noqa: S606 - no shell wanted
        finally:
            os._exit(127)  # never back into pytest
    output = b""
    deadline = time.monotonic() + 60
    pending = list(answers)
    answered_at = 0  # where the output stood at the last answer: each answer needs a prompt of its own
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
        if pending and output[answered_at:].rstrip().endswith(b":"):
            os.write(fd, pending.pop(0).encode() + b"\n")
            answered_at = len(output)
    else:
        os.kill(pid, signal.SIGKILL)  # still waiting after the deadline: fail, never hang the suite
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


def test_mismatched_passphrases_at_init_say_to_type_the_same_one_twice(tmp_path: Path) -> None:
    root = tmp_path / "new-archive"
    code, out = _on_a_terminal(
        ["--archive", str(root), "init", "--kdf-seconds", "0.01"], ["one passphrase here", "another one there"]
    )
    assert code == UsageError.exit_code, out
    assert "the two passphrases differ" in out
    assert "same passphrase both times" in out and "--help" not in out
    assert not (root / "config.toml").exists()


def test_show_dash_o_dash_writes_to_standard_output_but_never_to_a_terminal(notes: Notes, tmp_path: Path) -> None:
    work = tmp_path / "cwd"
    work.mkdir()
    argv = ("--archive", notes.root, "show", notes.c7[:8], "-o", "-", "--passphrase-file", notes.passphrase_file)
    run = _process(*argv, cwd=work)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(b"%PDF")
    assert list(work.iterdir()) == [], "no plaintext file named '-'"
    leader, follower = pty.openpty()
    try:
        run = _process(*argv, cwd=work, stdout=follower)
    finally:
        os.close(follower)
        os.close(leader)
    assert run.returncode == UsageError.exit_code
    assert "standard output is a terminal" in run.stderr.decode()
    assert list(work.iterdir()) == []


def test_restore_skip_damaged_restores_every_other_note_and_names_the_damaged_one(
    notes: Notes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backup = tmp_path / "backup"
    assert _run(capsys, notes, "backup", backup).code == 0
    with Archive(notes.root) as archive:
        blob = archive.catalog.record(notes.c7).blob_sha256
    path = backup / "objects" / blob[:2] / blob[2:]
    path.chmod(0o600)
    path.write_bytes(path.read_bytes()[:-1] + b"\0")

    run = cli(capsys, "--archive", tmp_path / "r1", "restore", backup)
    assert run.code == 6 and "nothing was restored" in run.err
    assert "--skip-damaged" in run.err, "the default message names the way out"
    assert not (tmp_path / "r1").exists()

    restored = tmp_path / "r2"
    run = cli(capsys, "--archive", restored, "restore", backup, "--skip-damaged")
    assert run.code == 6, "incomplete: a script must notice"
    assert f"record {notes.c7}" in run.out and "Restored 3 of 4 record(s)" in run.out
    pf = ("--passphrase-file", notes.passphrase_file)
    for record in notes.c42:
        out = tmp_path / f"{record}.pdf"
        assert cli(capsys, "--archive", restored, "show", record, "-o", out, *pf).code == 0
        assert out.read_bytes().startswith(b"%PDF")
    run = cli(capsys, "--archive", restored, "verify", *pf)
    assert run.code == 6 and "1 damaged" in run.out, "the missing note is reported, never silently gone"
    entries = [json.loads(line) for line in (restored / "audit.log").read_text().splitlines()]
    restores = [e for e in entries if e["event"] == "restore"]
    assert len(restores) == 1 and restores[0]["damaged"] == [notes.c7] and restores[0]["count"] == 1, restores
    assert audit.verify(audit.log_path(restored)).ok, "the restore continues the backup's chain"
