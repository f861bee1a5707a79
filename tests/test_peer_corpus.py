"""Peer corpora: files from Pillow's, OCRmyPDF's and pikepdf's test resources, through ingest and the watcher.

tests/data/peer/ holds a small subset (ORIGINS.md says where each file comes
from and under which license); bench/peer_corpora.py runs the full corpora.
Every file must end as a record (or as "already archived", for a file with the
same bytes as another) or be refused / quarantined with a plain reason: never
exit code 70, never a traceback, never lost, never stuck past the timeouts.

Both runs happen once per module (one `ingest` command for all the files, one
watcher for all of them); the per-file tests only read the outcome, so a file
that makes scanarchive crash fails (or, once known, xfails) on its own.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from scanarchive.cli.main import main
from tests.kits.helpers import ingest_docs
from tests.kits.watchkit import catalog_rows, set_config

PEER = Path(__file__).resolve().parent / "data" / "peer"
FILES = sorted(p.name for p in PEER.iterdir() if p.is_file() and p.name != "ORIGINS.md")
OCR_TIMEOUT = 60  # seconds per page (ingest.ocr_timeout_seconds)
FILE_LIMIT = 240.0  # wall-clock seconds for one file before it counts as a hang
DUPLICATES = ("test_combine_caron.png", "test_combine_caron_la.png")  # the same bytes
# file -> words its reason must contain (the rest may be archived or refused, as long as it is plain)
MUST_REFUSE = {
    "graph-encrypted.pdf": "password",
    "invalid.pdf": "damaged",
    "378014596.pdf": "damaged",
    "truncated_image.png": "damaged",
    "truncated_jpeg.jpg": "damaged",
    "png_decompression_dos.png": "",
    "oom-225817ca0f8c663be7ab4b9e717b02c661e66834.tif": "",
    "hopper.gif": "format",
    "Gray.icc": "format",
    "bad_palette_file.gpl": "text",
    "linn.txt": "",
}
# (mode, file) -> why it is known to crash or hang; the test for it is xfail(strict=True) until fixed
KNOWN: dict[tuple[str, str], str] = {}  # none left: hopper.Lab.tif and i_trns.png were fixed


@dataclass
class Outcome:
    kind: str  # record | duplicate | rejected | crash | hang | lost
    detail: str = ""  # record id(s), or the reason
    notes: list[str] = field(default_factory=list)


@dataclass
class Proc:
    code: int | None  # None: killed at the wall-clock limit
    out: str
    err: str


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def plain(reason: str) -> bool:
    """A reason a person can read: words, and not the generic internal-error line."""
    return bool(re.search(r"[A-Za-z]{3,} [A-Za-z]{2,}", reason)) and not re.search(
        r"internal error|unexpected \w+Error|Traceback", reason
    )


def run(argv: list[str], timeout: float) -> Proc:
    """`python -m scanarchive …` in its own process group, killed whole at the limit."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "scanarchive", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "SCANARCHIVE_PASSPHRASE_FILE": ""},
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return Proc(None, out, err)
    return Proc(proc.returncode, out, err)


def new_archive(root: Path) -> Path:
    secret = root / "passphrase.txt"
    secret.write_text("peer corpus passphrase\n")
    secret.chmod(0o600)  # a passphrase file others can read is refused
    archive = root / "archive"
    assert main(["--archive", str(archive), "init", "--passphrase-file", str(secret), "--kdf-seconds", "0.01"]) == 0
    set_config(archive, ocr_timeout_seconds=OCR_TIMEOUT)
    return archive


def records_by_sha(archive: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for rid, sha in catalog_rows(archive, "SELECT id, source_sha256 FROM records"):
        out.setdefault(str(sha), []).append(str(rid))
    return out


def parse_ingest(proc: Proc, paths: dict[str, Path]) -> dict[str, Outcome]:
    """Each file's outcome from one `ingest --json` run (files it printed nothing about are left out)."""
    names = {str(path): name for name, path in paths.items()}
    found: dict[str, Outcome] = {}
    for doc in ingest_docs(proc.out):
        name = names.get(doc["file"])
        if name is None:
            continue
        ids = " ".join(record["id"] for record in doc["records"])
        if doc["outcome"] == "duplicate":
            found[name] = Outcome("duplicate", ids)
        elif doc["outcome"] == "archived":
            found[name] = Outcome("record", ids)
        else:  # refused or failed: the one-line reason, as on stderr
            found[name] = Outcome("rejected", doc["error"]["message"])
    return found


def crashed(proc: Proc) -> str:
    """Why a run counts as a crash, or ''."""
    if proc.code is None:
        return ""
    if proc.code == 70 or proc.code < 0:
        return f"exit code {proc.code}"
    if "Traceback" in proc.err or "internal error" in proc.err:
        return "a traceback or internal error on stderr"
    return ""


# --- ingest: one command for all the files; any file without an outcome runs again alone ------------------


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    root = tmp_path_factory.mktemp("peer-ingest")
    archive = new_archive(root)
    src = root / "src"
    src.mkdir()
    for name in FILES:
        shutil.copyfile(PEER / name, src / name)
    paths = {name: src / name for name in FILES}
    batch = run(["--archive", str(archive), "ingest", "--json", *map(str, paths.values())], FILE_LIMIT * 2)
    outcomes = parse_ingest(batch, paths) if batch.code is not None and not crashed(batch) else {}
    # A crash stops the whole command before it prints the files still in flight: files it archived are
    # gone from src/ and in the catalog; every other file without an outcome runs again, alone.
    archived, seen = records_by_sha(archive), set()
    for name in FILES:
        sha = sha256(PEER / name)
        if name not in outcomes and not paths[name].exists() and sha in archived:
            outcomes[name] = Outcome("duplicate" if sha in seen else "record", " ".join(archived[sha]))
        seen.add(sha)
    for name in FILES:
        if name in outcomes:
            continue
        alone = run(["--archive", str(archive), "ingest", "--json", str(paths[name])], FILE_LIMIT)
        if alone.code is None:
            outcomes[name] = Outcome("hang", f"no result within {FILE_LIMIT:.0f} s")
        elif why := crashed(alone):
            outcomes[name] = Outcome("crash", why, [alone.err[-3000:]])
        else:
            outcomes[name] = parse_ingest(alone, {name: paths[name]}).get(name) or Outcome(
                "lost", f"exit code {alone.code} and no message for it"
            )
    # check every outcome against the disk and the catalog
    shas = records_by_sha(archive)
    for name, outcome in outcomes.items():
        source, sha = paths[name], sha256(PEER / name)
        if outcome.kind in ("record", "duplicate"):
            if sha not in shas or not set(outcome.detail.split()) <= set(shas[sha]):
                outcome.notes.append("reported as archived, but the catalog has no such record for its bytes")
            if source.exists():
                outcome.notes.append("archived, but the source file was not removed")
        elif outcome.kind == "rejected":
            if not source.exists() or sha256(source) != sha:
                outcome.notes.append("refused, but the source file was removed or changed")
            if sha in shas:
                outcome.notes.append("refused, but its bytes are in the catalog")
    count = len(catalog_rows(archive, "SELECT id FROM records"))
    reported = {rid for o in outcomes.values() if o.kind == "record" for rid in o.detail.split()}
    assert count == len(reported), f"{count} records in the catalog, {len(reported)} reported"
    return outcomes


def _params(mode: str) -> list[object]:
    return [
        pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=KNOWN[(mode, name)]))
        if (mode, name) in KNOWN
        else name
        for name in FILES
    ]


@pytest.mark.parametrize("name", _params("ingest"))
def test_ingest_ends_each_file_as_a_record_or_a_plain_refusal(name: str, ingested: dict[str, Outcome]) -> None:
    outcome = ingested[name]
    assert outcome.kind in ("record", "duplicate", "rejected"), f"{outcome.kind}: {outcome.detail} {outcome.notes}"
    assert not outcome.notes, outcome.notes
    if outcome.kind == "rejected":
        assert plain(outcome.detail), f"not a plain reason: {outcome.detail!r}"
    if name in MUST_REFUSE:
        assert outcome.kind == "rejected", f"{name} was archived ({outcome.detail})"
        assert MUST_REFUSE[name] in outcome.detail.lower()


def test_a_page_that_could_not_be_rendered_is_not_called_legible(tmp_path: Path) -> None:
    archive = new_archive(tmp_path)
    scan = tmp_path / "cyclic-toc.pdf"
    shutil.copyfile(PEER / scan.name, scan)
    proc = run(["--archive", str(archive), "ingest", str(scan)], FILE_LIMIT)
    assert proc.code == 0 and "could not be rendered" in proc.out, proc.out + proc.err
    assert "may be shredded" not in proc.out, proc.out


def test_ingest_dedupes_files_with_the_same_bytes(ingested: dict[str, Outcome]) -> None:
    first, second = (ingested[name] for name in DUPLICATES)
    assert sorted([first.kind, second.kind]) == ["duplicate", "record"], (first, second)
    assert first.detail == second.detail, "both name the same record"


# --- the watcher: all the files dropped at once ---------------------------------------------------------


@dataclass
class Watched:
    outcomes: dict[str, Outcome]
    exit_code: int | None
    log: str
    in_progress: int


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory) -> Watched:
    root = tmp_path_factory.mktemp("peer-watch")
    archive = new_archive(root)
    drop, staging = root / "drop", root / "staging"
    drop.mkdir()
    staging.mkdir()
    set_config(
        archive,
        folder=str(drop),
        settle_seconds=0.3,
        rescan_seconds=1,
        retry_base_seconds=0.5,
        retry_max_seconds=2,
    )
    log = root / "watch.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "scanarchive", "--archive", str(archive), "watch"],
            stdout=out,
            stderr=out,
            env={**os.environ, "SCANARCHIVE_PASSPHRASE_FILE": ""},
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while "watching the drop folder" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        for name in FILES:
            shutil.copyfile(PEER / name, staging / name)
            os.rename(staging / name, drop / name)  # each appears whole, as a scanner's rename does
        # done when the drop folder is empty and the journal holds nothing but claims that a bug keeps failing
        last, changed = None, time.monotonic()
        while True:
            time.sleep(0.3)
            left = [p.name for p in drop.iterdir() if p.is_file()]
            claims = catalog_rows(archive, "SELECT source_name, attempts, last_error FROM journal")
            stuck = [c for c in claims if str(c[2]).startswith("unexpected") and int(str(c[1])) >= 2]
            if not left and len(stuck) == len(claims):
                break
            state = (len(left), tuple(claims), len(catalog_rows(archive, "SELECT id FROM records")))
            if state != last:
                last, changed = state, time.monotonic()
            if time.monotonic() - changed > FILE_LIMIT or proc.poll() is not None:
                break
        proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = proc.wait(timeout=FILE_LIMIT)
        except subprocess.TimeoutExpired:
            code = None
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    shas = records_by_sha(archive)
    # a note's path is sealed in the catalog (it carries the scan's name): find it by the entry id it quotes
    notes = {p: p.read_text() for p in (drop / "failed").glob("*.txt")} if (drop / "failed").is_dir() else {}
    quarantine = {
        str(sha): (str(reason), next((str(path) for path, text in notes.items() if str(entry_id) in text), ""))
        for sha, reason, entry_id in catalog_rows(archive, "SELECT source_sha256, reason, id FROM quarantine")
    }
    journal = {str(r[0]): str(r[1]) for r in catalog_rows(archive, "SELECT source_name, last_error FROM journal")}
    remaining = {p.name for p in drop.iterdir() if p.is_file()}
    outcomes: dict[str, Outcome] = {}
    for name in FILES:
        sha = sha256(PEER / name)
        if name in journal:
            error = journal[name]
            kind = "crash" if error.startswith("unexpected") else "hang"
            outcomes[name] = Outcome(kind, f"still in the journal: {error or 'in progress'}")
        elif name in remaining:
            outcomes[name] = Outcome("hang", "still in the drop folder")
        elif sha in shas:
            outcomes[name] = Outcome("record", " ".join(shas[sha]))
        elif sha in quarantine:
            reason, note = quarantine[sha]
            outcome = outcomes[name] = Outcome("rejected", reason)
            text = Path(note).read_text() if note and Path(note).is_file() else ""
            if not re.search(r"(?m)^Reason: \S", text):
                outcome.notes.append(f"no failed/ note with the reason ({note or 'none recorded'})")
        else:
            outcomes[name] = Outcome("lost", "not a record, not quarantined, not in the drop folder or journal")
    in_progress = len(catalog_rows(archive, "SELECT claim_id FROM journal"))
    return Watched(outcomes, code, log.read_text(), in_progress)


@pytest.mark.parametrize("name", _params("watch"))
def test_watcher_ends_each_file_as_a_record_or_in_quarantine_with_a_plain_reason(name: str, watched: Watched) -> None:
    outcome = watched.outcomes[name]
    assert outcome.kind in ("record", "rejected"), f"{outcome.kind}: {outcome.detail}"
    assert not outcome.notes, outcome.notes
    if outcome.kind == "rejected":
        assert plain(outcome.detail), f"not a plain reason: {outcome.detail!r}"
    if name in MUST_REFUSE:
        assert outcome.kind == "rejected", f"{name} was archived ({outcome.detail})"
        assert MUST_REFUSE[name] in outcome.detail.lower()


def test_watcher_dedupes_and_stops_cleanly(watched: Watched) -> None:
    first, second = (watched.outcomes[name] for name in DUPLICATES)
    assert first.kind == second.kind == "record" and first.detail == second.detail, (first, second)
    assert len(first.detail.split()) == 1, "one record for the two files with the same bytes"
    assert watched.exit_code == 0, f"SIGTERM is a clean stop (exit {watched.exit_code})"
    assert "Traceback" not in watched.log


_WATCH_KNOWN = sorted(name for mode, name in KNOWN if mode == "watch")


@pytest.mark.xfail(bool(_WATCH_KNOWN), strict=True, reason=f"known internal errors in the watcher: {_WATCH_KNOWN}")
def test_watcher_hits_no_internal_error_and_leaves_nothing_in_progress(watched: Watched) -> None:
    assert not re.findall(r".*unexpected \w+.*", watched.log)
    assert watched.in_progress == 0, "nothing left in the journal"
