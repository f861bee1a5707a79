"""`ingest` reports each file the moment it is done, shows progress, and stops cleanly on Ctrl-C.

The interruption test SIGINTs a real `python -m scanarchive ingest` batch once its first file's outcome
is printed, then checks that what it printed, which scan files are left, the audit log and the catalog
all tell the same story, and that it never claims "nothing was deleted" when a scan was removed.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from scanarchive.errors import Interrupted
from scanarchive.ingest import analyse
from scanarchive.ingest.pipeline import Step
from tests.kits.helpers import cli, cli_process, note_words, render_note, sha256


def _notes(folder: Path, seeds: tuple[int, ...]) -> list[Path]:
    folder.mkdir(exist_ok=True)
    paths = []
    for seed in seeds:
        image, _ = render_note(seed=seed, noise=0, sentences=1, height_in=3)
        path = folder / f"n{seed}.png"
        image.save(path, dpi=(300, 300))
        paths.append(path)
    return paths


def _multipage(path: Path, seeds: range) -> tuple[Path, list[str]]:
    rendered = [render_note(seed=seed, noise=0, sentences=1, height_in=3) for seed in seeds]
    images = [image for image, _ in rendered]
    images[0].save(path, save_all=True, append_images=images[1:], resolution=300)
    return path, [line for _, lines in rendered for line in lines]


def _audit_ingests(archive: Path) -> list[dict[str, object]]:
    run = cli_process("--archive", archive, "audit", "show", "--json")
    assert run.code == 0, run.err
    return [e for e in json.loads(run.out)["entries"] if e["event"] == "ingest"]


@pytest.mark.slow
def test_sigint_after_the_first_file_reports_exactly_what_was_archived(archive_dir: Path, tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    (first,) = _notes(drop, (41,))
    slow, _ = _multipage(drop / "stack.pdf", range(50, 58))  # 8 pages: still being read when the SIGINT comes
    rest = _notes(drop, (42, 43))
    batch = [first, slow, *rest]
    before = {p: sha256(p) for p in batch}
    proc = subprocess.Popen(
        [sys.executable, "-m", "scanarchive", "--archive", str(archive_dir), "ingest", "--jobs", "1", *map(str, batch)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    assert proc.stdout is not None and proc.stderr is not None
    out: list[str] = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # the first file's outcome, printed the moment it was done
        line = proc.stdout.readline()
        assert line, f"ingest ended before its first file was reported: {proc.wait()} {proc.stderr.read()}"
        out.append(line)
        if line.startswith("  The scan file was removed."):
            break
    assert not first.exists(), "the first file's outcome is printed after its source is gone"
    proc.send_signal(signal.SIGINT)
    rest_out, err = proc.communicate(timeout=120)
    out += rest_out.splitlines(keepends=True)
    text = "".join(out)

    assert proc.returncode == Interrupted.exit_code, err
    assert "nothing was deleted" not in err, "a scan was removed: never say nothing was"
    reported = re.findall(r"^(\S+): 1 record sealed and verified", text, re.MULTILINE)
    reported_ids = re.findall(r"^  record ([0-9a-f-]{36}) ", text, re.MULTILINE)
    assert reported[0] == first.name and slow.name not in reported, "stopped inside the second file"
    gone = [p.name for p in batch if not p.exists()]
    assert reported == gone, "exactly the files reported archived have had their scans removed"
    for path in batch:
        if path.exists():
            assert sha256(path) == before[path], f"{path.name} was not archived, so it must be untouched"
            assert path.name in err, "each file not archived is named"
    assert "interrupted" in err and "not archived" in err and first.name in err

    entries = _audit_ingests(archive_dir)
    assert len(entries) == len(reported), "one audit entry per file reported, none for the others"
    assert sorted(r for e in entries for r in e["records"]) == sorted(reported_ids)  # type: ignore[attr-defined]
    assert all(e["source_removed"] is True for e in entries)
    assert cli_process("--archive", archive_dir, "audit", "verify").code == 0
    status = json.loads(cli_process("--archive", archive_dir, "status", "--json").out)
    assert status["records"] == len(reported), "the catalog holds what was reported, nothing half-done"
    leftovers = [p for p in Path(os.environ["SCANARCHIVE_TMPDIR"]).rglob("*")]
    assert not leftovers, f"the stopped parser's private folder is removed: {leftovers}"

    again = cli_process("--archive", archive_dir, "ingest", "--json", *[p for p in batch if p.exists()])
    assert again.code == 0, again.err
    assert {d["outcome"] for d in map(json.loads, again.out.splitlines())} == {"archived"}, "none was half-stored"
    assert json.loads(cli_process("--archive", archive_dir, "status", "--json").out)["records"] == len(batch)


def test_a_folder_is_refused_with_what_to_do_instead(
    archive_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "my scans"
    (note,) = _notes(folder, (44,))
    run = cli(capsys, "--archive", archive_dir, "ingest", folder)
    assert run.code == 5
    assert "is a folder, not a scan file" in run.err
    quoted = shlex.quote(str(folder))
    assert f"scanarchive ingest {quoted}/*.pdf" in run.err and f"watch --drop {quoted} --once" in run.err
    assert "Rescan" not in run.err, "not a scanning problem"
    assert note.exists(), "nothing in the folder was touched"


def test_plain_progress_and_v_stage_timings_without_content(archive_dir: Path, tmp_path: Path) -> None:
    stack, lines = _multipage(tmp_path / "stack.pdf", range(60, 62))
    (single,) = _notes(tmp_path / "more", (45,))
    opts = ("--client", "C-7", "--date", "2026-11-03")
    run = cli_process("-v", "--archive", archive_dir, "ingest", "--jobs", "1", stack, single, *opts)  # not a TTY
    assert run.code == 0, run.err
    err = run.err
    assert "scanarchive: [1/2] stack.pdf: 2 pages" in err  # stderr is not a terminal here: plain lines
    assert "scanarchive: [1/2] stack.pdf: OCR 2 of 2 pages" in err
    assert "scanarchive: 1 of 2 files done" in err and "left" in err
    assert "scanarchive: 2 of 2 files done" in err
    for stage in ("read", "check", "look", "identify", "ocr", "build", "seal", "catalog", "verify", "release"):
        assert re.search(rf"INFO: \[1/2\] stack\.pdf: {stage} \d+\.\d\d s", err), f"-v logs the {stage} stage"
    assert not {w for w in note_words(lines) if w in err.lower()}, "never OCR text in progress or logs"
    assert "C-7" not in err, "never a client code in progress or logs"
    assert run.out.index("stack.pdf:") < run.out.index("n45.png:"), "results in input order"


def test_json_mode_prints_no_progress(archive_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    notes = _notes(tmp_path / "drop", (46, 47))
    run = cli(capsys, "--archive", archive_dir, "ingest", "--json", "--jobs", "2", *notes)
    assert run.code == 0, run.err
    assert "files done" not in run.err and "page" not in run.err
    assert [json.loads(line)["outcome"] for line in run.out.splitlines()] == ["archived", "archived"]


def test_the_parser_child_reports_each_page_it_has_read(archive_dir: Path, tmp_path: Path) -> None:
    from scanarchive.archive.layout import Archive

    path, _ = _multipage(tmp_path / "three.pdf", range(70, 73))
    with Archive(archive_dir) as archive:
        request = analyse.Request(archive.config.ingest, archive.catalog.sheet_key(), archive.config.archive8)
    steps: list[Step] = []
    result = analyse.run(request, path.read_bytes(), on_step=steps.append)  # in the sandboxed child
    assert len(result.records) == 1
    assert [s.stage for s in steps if s.stage != "ocr"] == ["check", "look", "identify", "build"]
    assert [(s.done, s.total) for s in steps if s.stage == "ocr"] == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert steps[0].total == 3 and all(s.seconds >= 0 for s in steps)


def test_a_stop_kills_the_parser_child_and_nothing_is_archived(archive_dir: Path, tmp_path: Path) -> None:
    from scanarchive.archive.layout import Archive
    from scanarchive.ingest.pipeline import ingest_file

    path, _ = _multipage(tmp_path / "five.pdf", range(80, 85))
    before = sha256(path)
    stop = threading.Event()

    def on_step(step: Step) -> None:
        if step.stage == "ocr" and step.done == 1:
            stop.set()  # as the CLI's SIGINT handler does

    with Archive(archive_dir) as archive:
        started = time.monotonic()
        with pytest.raises(Interrupted, match="not archived"):
            ingest_file(archive, path, on_step=on_step, stop=stop)
        assert time.monotonic() - started < 60
        assert archive.catalog.all_by_source(before) == []
    assert sha256(path) == before


@pytest.mark.parametrize(
    "line",
    [
        b'{"step": "exfiltrate", "seconds": 1, "done": 0, "total": 1}',
        b'{"step": "ocr", "seconds": -1, "done": 0, "total": 1}',
        b'{"step": "ocr", "seconds": 1, "done": 99999999, "total": 1}',
        b'{"step": "ocr", "seconds": 1, "done": 1, "total": 1, "text": "a client\'s words"}',
        b'{"step": "ocr", "seconds": NaN, "done": 1, "total": 1}',
        b"not json",
    ],
)
def test_a_progress_line_the_parent_does_not_accept(line: bytes, archive_dir: Path) -> None:
    from scanarchive.config import IngestSettings

    with pytest.raises(analyse.ParserCrashed):
        analyse._progress_line(line, IngestSettings())


def test_a_progress_line_round_trips() -> None:
    from scanarchive.config import IngestSettings

    step = Step("ocr", 1.5, 2, 3)
    assert analyse._progress_line(analyse.encode_step(step).rstrip(b"\n"), IngestSettings()) == step


def test_the_terminal_bar_shows_files_and_pages_and_keeps_result_lines_whole() -> None:
    from scanarchive.cli.progress import IngestProgress

    err, out = io.StringIO(), io.StringIO()
    progress = IngestProgress(["a.pdf", "b.pdf"], "bar", stream=err, out=out)
    with progress.shown():
        progress.step(0, Step("check", 0.1, 0, 4))
        progress.step(0, Step("ocr", 0.0, 0, 4))
        for done in range(1, 5):
            progress.step(0, Step("ocr", done * 0.5, done, 4))
        progress.write("a.pdf: 1 record sealed and verified in 2.0 s")
        progress.finished(0)
    assert "files:" in err.getvalue() and "pages OCR'd: 4/4" in err.getvalue()
    assert out.getvalue() == "a.pdf: 1 record sealed and verified in 2.0 s\n"
