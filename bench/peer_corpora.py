"""Peer corpora: every test resource Pillow, OCRmyPDF and pikepdf publish, through ingest and the watcher.

    .venv/bin/python bench/peer_corpora.py [--corpus pillow|ocrmypdf|pikepdf|all] [--limit N] [--cache DIR]

The source distributions are fetched at run time with
`pip download --no-binary :all: --no-deps NAME` into the cache
(~/.cache/scanarchive-corpora, or --cache); they are never part of this
repository. Their test-resource folders (Pillow: Tests/images, OCRmyPDF and
pikepdf: tests/resources) are extracted there too, and every regular file in
them, whatever it is (images, PDFs, text, fonts, hOCR, ICC profiles …), is
hostile input for scanarchive:

1. ingest: each file is copied to a work folder and given to its own
   `scanarchive ingest` subprocess (--batch N to give several at once), with a
   wall-clock limit (--file-timeout). Each file must end as a record (its
   SHA-256 in the catalog, the copy removed), as "already archived" (same bytes
   as an earlier file), or refused with a plain reason and left untouched.
2. watch: all files are dropped at once into the drop folder of a
   `scanarchive watch` subprocess; when the folder is empty and nothing is in
   progress (the catalog's journal, as `status --json` reports it) the watcher
   gets SIGTERM. Each file must end as a record or in the quarantine with a
   reason and a failed/<name>.txt note.

Anything else is "lost"; exit code 70, a signal, a traceback, or the watcher's
"unexpected <Error>" is a crash; running past the limit (or stalling) is a
hang. The exit status is 1 if anything was lost, crashed or hung.
The archive's ingest.ocr_timeout_seconds is set to --ocr-timeout (60 s).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scanarchive.intake.settle import ignored  # noqa: E402
from tests.kits.helpers import ingest_docs  # noqa: E402
from tests.kits.watchkit import catalog_rows, set_config  # noqa: E402

DEFAULT_CACHE = Path.home() / ".cache" / "scanarchive-corpora"
INTERNAL_ERROR = 70
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@dataclass(frozen=True)
class Corpus:
    key: str  # what --corpus takes
    package: str  # the PyPI name
    folder: str  # the test-resource folder inside the sdist


CORPORA: dict[str, Corpus] = {
    "pillow": Corpus("pillow", "pillow", "Tests/images"),
    "ocrmypdf": Corpus("ocrmypdf", "ocrmypdf", "tests/resources"),
    "pikepdf": Corpus("pikepdf", "pikepdf", "tests/resources"),
}


@dataclass(frozen=True)
class CorpusFile:
    index: int
    rel: str  # path inside the test-resource folder
    path: Path  # the extracted copy (never handed to scanarchive itself)
    size: int
    sha256: str

    @property
    def flat(self) -> str:
        """A unique, flat, harmless file name for the work and drop folders."""
        name = f"{self.index:04d}-" + re.sub(r"[^A-Za-z0-9._-]+", "_", self.rel.replace("/", "__"))
        return name + "_" if ignored(name) else name  # e.g. "x.tmp": the watcher would rightly skip it


@dataclass
class Outcome:
    rel: str
    kind: str  # record | duplicate | rejected | crash | flaky (a crash that did not happen again) | hang | lost
    detail: str = ""  # record id(s), or the message
    reason_kind: str = ""  # the message with numbers and paths generalised, for grouping
    seconds: float | None = None
    exit_code: int | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class ModeResult:
    mode: str
    outcomes: dict[str, Outcome]  # by rel
    wall_seconds: float
    records_in_catalog: int
    warnings: Counter[str] = field(default_factory=Counter)  # distinct log warnings (generalised) -> count
    problems: list[str] = field(default_factory=list)  # anything wrong outside one file's outcome


# --- fetching -----------------------------------------------------------------


def find_sdist(cache: Path, package: str) -> Path | None:
    found = [p for p in cache.glob("*.tar.gz") if re.fullmatch(rf"{package}-[0-9][^-]*\.tar\.gz", p.name, re.I)]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def fetch(corpora: list[Corpus], cache: Path) -> dict[str, Path]:
    cache.mkdir(parents=True, exist_ok=True)
    missing = [c.package for c in corpora if find_sdist(cache, c.package) is None]
    if missing:
        print(f"fetching the source distributions of {', '.join(missing)} into {cache} …", flush=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps", "-d", str(cache)]
        subprocess.run([*cmd, *missing], check=True, stdout=subprocess.DEVNULL)
    sdists = {}
    for corpus in corpora:
        sdist = find_sdist(cache, corpus.package)
        if sdist is None:
            raise SystemExit(f"pip did not leave a source distribution of {corpus.package} in {cache}")
        sdists[corpus.key] = sdist
    return sdists


def extract(sdist: Path, folder: str, cache: Path) -> tuple[str, Path]:
    """The test-resource folder of an sdist, extracted once under the cache; (sdist stem, folder)."""
    stem = sdist.name.removesuffix(".tar.gz")
    dest = cache / "extracted" / stem
    done = dest / ".complete"
    if not done.exists():
        shutil.rmtree(dest, ignore_errors=True)
        prefix = f"{stem}/{folder}/"
        with tarfile.open(sdist) as tar:
            for member in tar:
                # regular files only; no links, no device nodes, no paths outside the folder
                if not member.isfile() or not member.name.startswith(prefix) or ".." in member.name.split("/"):
                    continue
                source = tar.extractfile(member)
                if source is None:
                    continue
                target = dest / member.name[len(stem) + 1 :]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(source.read())
        dest.mkdir(parents=True, exist_ok=True)
        done.write_text("")
    return stem, dest / folder


def corpus_files(folder: Path, limit: int | None) -> list[CorpusFile]:
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
    if limit is not None and limit < len(paths):  # evenly spread, so every subfolder is sampled
        paths = [paths[i * len(paths) // limit] for i in range(limit)]
    files = []
    for n, path in enumerate(paths):
        data = path.read_bytes()
        files.append(
            CorpusFile(n, path.relative_to(folder).as_posix(), path, len(data), hashlib.sha256(data).hexdigest())
        )
    return files


# --- one archive ----------------------------------------------------------------


def scanarchive_cmd(archive: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "scanarchive", "--archive", str(archive), *args]


@dataclass
class Children:
    """How every scanarchive subprocess runs: its environment and working folder."""

    env: dict[str, str]
    cwd: Path


CHILD = Children(dict(os.environ), Path.cwd())


def child_env() -> dict[str, str]:
    return CHILD.env


def snapshot_code(work_root: Path) -> str:
    """Copy scanarchive/ (with its data) once, and run every subprocess from the copy.

    A run takes hours; the copy keeps one version of the code for all of it, even
    if the working tree is edited meanwhile. Returns a short fingerprint of the copy.
    """
    code = work_root / "code"
    env = {k: v for k, v in os.environ.items() if k not in ("SCANARCHIVE_ARCHIVE", "SCANARCHIVE_PASSPHRASE_FILE")}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(code), *filter(None, [os.environ.get("PYTHONPATH")])])
    probe = "import scanarchive, scanarchive.cli.main, scanarchive.ingest.pipeline; print(scanarchive.__file__)"
    for attempt in range(8):
        shutil.rmtree(code, ignore_errors=True)
        for part in ("scanarchive",):
            shutil.copytree(ROOT / part, code / part, ignore=shutil.ignore_patterns("__pycache__"))
        check = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=work_root, check=False
        )
        if check.returncode == 0 and Path(check.stdout.strip()).is_relative_to(code):
            break
        print(f"the scanarchive code does not import as it is (being edited?); trying again ({attempt + 1})")
        time.sleep(15)
    else:
        raise SystemExit("scanarchive/ did not import cleanly; nothing was run")
    CHILD.env, CHILD.cwd = env, work_root  # set once, before any scanarchive subprocess runs
    digest = hashlib.sha256()
    for path in sorted(p for p in code.rglob("*") if p.is_file()):
        digest.update(path.relative_to(code).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def new_archive(root: Path, ocr_timeout: float) -> Path:
    root.mkdir(parents=True)
    secret = root / "passphrase"
    secret.write_text("peer corpora bench\n")
    secret.chmod(0o600)  # a passphrase file others can read is refused
    archive = root / "archive"
    subprocess.run(
        scanarchive_cmd(archive, "init", "--passphrase-file", str(secret), "--kdf-seconds", "0.02"),
        check=True,
        capture_output=True,
        env=child_env(),
        cwd=CHILD.cwd,
    )
    set_config(archive, ocr_timeout_seconds=ocr_timeout)
    return archive


def record_shas(archive: Path) -> dict[str, list[str]]:
    """source SHA-256 -> record ids."""
    out: dict[str, list[str]] = {}
    for rid, sha in catalog_rows(archive, "SELECT id, source_sha256 FROM records"):
        out.setdefault(str(sha), []).append(str(rid))
    return out


def generalise(message: str) -> str:
    """A message with its file paths, ids and numbers generalised, to group like with like."""
    text = re.sub(UUID, "ID", message)
    text = re.sub(r"\d+(\.\d+)?", "N", text)
    return re.sub(r"(?<!\S)/\S+", "PATH", text)  # paths, not "(/SMask)"


def kill_group(proc: subprocess.Popen[Any]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


# --- mode 1: ingest -----------------------------------------------------------------


@dataclass
class _Run:
    code: int | None  # None: killed at the wall-clock limit
    out: str
    err: str
    seconds: float


def run_limited(cmd: list[str], timeout: float) -> _Run:
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
        cwd=CHILD.cwd,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        code = None
    return _Run(code, out or "", err or "", time.perf_counter() - started)


def parse_ingest(run: _Run, paths: dict[str, Path]) -> dict[str, Outcome]:
    """Per file (flat name -> outcome) from one `ingest --json` run; files without one are left out
    (a run killed at its limit has printed only the files finished before the ones still running)."""
    found: dict[str, Outcome] = {}
    names = {str(path): name for name, path in paths.items()}
    for doc in ingest_docs(run.out, strict=False):
        name = names.get(doc["file"])
        if name is None:
            continue
        ids = " ".join(record["id"] for record in doc["records"])
        if doc["outcome"] == "duplicate":
            found[name] = Outcome("", "duplicate", ids)
        elif doc["outcome"] == "archived":
            found[name] = Outcome("", "record", ids, seconds=doc["seconds"])
            if any(record["ocr_failed_pages"] for record in doc["records"]):
                found[name].notes.append("archived with pages OCR could not read")
        else:  # refused or failed: the message, as on stderr after the file's path
            message = doc["error"]["message"]
            found[name] = Outcome("", "rejected", message, generalise(message))
    return found


def warnings_of(text: str) -> Counter[str]:
    return Counter(
        generalise(line.split(": ", 2)[2])
        for line in text.splitlines()
        if line.startswith(("scanarchive: WARNING: ", "scanarchive: ERROR: "))
    )


def debug_traceback(source: Path, ocr_timeout: float, timeout: float) -> tuple[bool, str]:
    """Run a crashing file again, alone, with `ingest --debug --keep-source` on a copy in a scratch
    archive: (did it crash again, the traceback or the output)."""
    with tempfile.TemporaryDirectory(prefix="sa-peer-repro-") as tmp:
        try:
            scratch = new_archive(Path(tmp) / "a", ocr_timeout)
        except subprocess.CalledProcessError as exc:
            return False, f"could not make a scratch archive to reproduce it: {exc.stderr!s}"[-3000:]
        copy = Path(tmp) / source.name
        shutil.copyfile(source, copy)
        run = run_limited(scanarchive_cmd(scratch, "--debug", "ingest", "--keep-source", str(copy)), timeout)
    again = run.code is None or run.code == INTERNAL_ERROR or run.code < 0 or "internal error" in run.err
    lines = run.err.replace(str(copy), source.name).splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("Traceback")), max(0, len(lines) - 30))
    return again, f"exit {run.code} when run again alone with --debug:\n" + "\n".join(lines[start:][-40:])


def run_ingest(files: list[CorpusFile], work: Path, opts: argparse.Namespace) -> ModeResult:
    archive = new_archive(work / "ingest", opts.ocr_timeout)
    src = work / "ingest-src"
    src.mkdir()
    for f in files:
        shutil.copyfile(f.path, src / f.flat)
    first_of: dict[str, str] = {}  # sha -> rel of the first file with these bytes
    outcomes: dict[str, Outcome] = {}
    warnings: Counter[str] = Counter()
    problems: list[str] = []
    started = time.perf_counter()

    def one_batch(batch: list[CorpusFile]) -> None:
        paths = {f.flat: src / f.flat for f in batch}
        run = run_limited(
            scanarchive_cmd(archive, "ingest", "--json", *[str(p) for p in paths.values()]),
            opts.file_timeout + (len(batch) - 1) * opts.file_timeout / 4,
        )
        warnings.update(warnings_of(run.err))
        parsed = parse_ingest(run, paths)
        clean = run.code is not None and run.code >= 0 and run.code != INTERNAL_ERROR and "Traceback" not in run.err
        if len(batch) > 1 and (not clean or len(parsed) < len(batch)):
            shas = record_shas(archive)
            for f in batch:  # find the culprit: every file without an outcome again, on its own
                if f.flat in parsed:
                    settle(f, parsed[f.flat], run, False)
                elif not (src / f.flat).exists() and f.sha256 in shas:  # archived before the run stopped
                    settle(f, Outcome("", "record", " ".join(shas[f.sha256])), run, False)
                else:
                    one_batch([f])
            return
        for f in batch:
            outcome = parsed.get(f.flat)
            if outcome is None or not clean:
                outcome = failure(f, run)
            settle(f, outcome, run, len(batch) == 1)

    def failure(f: CorpusFile, run: _Run) -> Outcome:
        if run.code is None:
            return Outcome("", "hang", f"no result within {opts.file_timeout:.0f} s; the process was killed")
        internal = re.search(r"internal error \((\w+)\)", run.err)
        if run.code == INTERNAL_ERROR or internal or "Traceback" in run.err or run.code < 0:
            what = internal.group(1) if internal else f"exit {run.code}"
            again, trace = debug_traceback(f.path, opts.ocr_timeout, opts.file_timeout)
            first = "stderr of the failing run:\n" + run.err[-2000:]
            kind = "crash" if again else "flaky"
            return Outcome("", kind, f"internal error ({what})", f"internal error ({what})", notes=[first, trace])
        return Outcome("", "lost", f"exit {run.code} and no message for this file")

    def settle(f: CorpusFile, outcome: Outcome, run: _Run, single: bool) -> None:
        """Check the outcome against the disk and the catalog; duplicates are named as such."""
        outcome.rel = f.rel
        if single:  # one file, one process: its exit code and wall time are the file's own
            outcome.exit_code, outcome.seconds = run.code, run.seconds
            if outcome.kind == "rejected" and run.code != 5:  # not InputRejected: say which error it was
                outcome.reason_kind = f"[exit {run.code}] {outcome.reason_kind}"
        copy = src / f.flat
        shas = record_shas(archive)
        earlier = first_of.get(f.sha256)
        if outcome.kind in ("record", "duplicate"):
            if f.sha256 not in shas:
                outcome.kind, outcome.detail = "lost", f"reported as record {outcome.detail} but not in the catalog"
            elif copy.exists():
                outcome.notes.append("archived, but the source file was not removed")
            if outcome.kind == "duplicate" and earlier is None:
                outcome.notes.append("'already archived' without an earlier file with the same bytes")
            if outcome.kind == "record" and earlier is not None:
                outcome.notes.append(f"a second record for the bytes of {earlier}")
        elif outcome.kind == "rejected":
            if not copy.exists():
                outcome.kind, outcome.detail = "lost", f"refused ({outcome.detail}) but the file is gone"
            elif hashlib.sha256(copy.read_bytes()).hexdigest() != f.sha256:
                outcome.notes.append("refused, but the file was changed")
            if not re.search(r"[A-Za-z]{3,}", outcome.detail) or "internal error" in outcome.detail:
                outcome.notes.append("the reason is not a plain message")
        elif outcome.kind == "hang" and f.sha256 in shas:
            outcome.notes.append("it was archived before the process was killed")
        if outcome.kind in ("duplicate", "rejected") and earlier is not None:
            outcome.notes.append(f"same bytes as {earlier}")
        first_of.setdefault(f.sha256, f.rel)
        outcomes[f.rel] = outcome
        if opts.verbose:
            print(f"  ingest {f.rel}: {outcome.kind} {outcome.detail[:100]}", flush=True)

    for start in range(0, len(files), opts.batch):
        one_batch(files[start : start + opts.batch])
    wall = time.perf_counter() - started
    count = len(catalog_rows(archive, "SELECT id FROM records"))
    expected = sum(len(o.detail.split()) for o in outcomes.values() if o.kind == "record")
    if count != expected:
        problems.append(f"ingest: {count} records in the catalog, but {expected} reported")
    return ModeResult("ingest", outcomes, wall, count, warnings, problems)


# --- mode 2: the watcher --------------------------------------------------------------


@dataclass
class _LogLine:
    at: float
    text: str


class _Reader(threading.Thread):
    """Reads the watcher's log as it is written, stamping each line with the time it arrived."""

    def __init__(self, stream: IO[str], log: Path) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.lines: list[_LogLine] = []
        self.log = log

    def run(self) -> None:
        with self.log.open("a") as out:
            for line in self.stream:
                self.lines.append(_LogLine(time.perf_counter(), line.rstrip("\n")))
                out.write(line)
                out.flush()


@contextmanager
def watcher(archive: Path, drop: Path, log: Path) -> Iterator[tuple[subprocess.Popen[str], _Reader]]:
    proc = subprocess.Popen(
        scanarchive_cmd(archive, "watch", "--drop", str(drop)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=child_env(),
        cwd=CHILD.cwd,
        start_new_session=True,
    )
    assert proc.stdout is not None
    reader = _Reader(proc.stdout, log)
    reader.start()
    try:
        yield proc, reader
    finally:
        if proc.poll() is None:
            kill_group(proc)
        reader.join(timeout=10)


def journal(archive: Path) -> list[tuple[str, str, int, str]]:
    """(source name, state, attempts, last error) of every claim still in progress."""
    rows = catalog_rows(archive, "SELECT source_name, state, attempts, last_error FROM journal")
    return [(str(a), str(b), int(str(c)), str(d)) for a, b, c, d in rows]


def candidates(drop: Path) -> list[Path]:
    return [p for p in drop.iterdir() if p.is_file() and not ignored(p.name)]


def run_watch(files: list[CorpusFile], work: Path, opts: argparse.Namespace) -> ModeResult:
    root = work / "watch"
    archive = new_archive(root, opts.ocr_timeout)
    set_config(archive, settle_seconds=0.5, rescan_seconds=2, retry_base_seconds=1, retry_max_seconds=4)
    drop, staging = root / "drop", root / "staging"
    drop.mkdir()
    staging.mkdir()
    for f in files:
        shutil.copyfile(f.path, staging / f.flat)
    problems: list[str] = []
    hung = False
    with watcher(archive, drop, root / "watch.log") as (proc, reader):
        deadline = time.monotonic() + 60
        while not any("watching the drop folder" in line.text for line in reader.lines):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the watcher did not start; see {root / 'watch.log'}")
            time.sleep(0.1)
        started = time.perf_counter()
        for f in files:  # a burst, each file appearing whole (as a scanner's rename does)
            os.rename(staging / f.flat, drop / f.flat)
        last_change, last_seen = time.monotonic(), None
        while True:
            time.sleep(0.5)
            if proc.poll() is not None:
                problems.append(f"the watcher stopped by itself with exit code {proc.returncode}")
                break
            left = candidates(drop)
            claims = journal(archive)
            stuck = [c for c in claims if (c[3].startswith("unexpected") and c[2] >= 2) or c[2] >= 5]
            seen = (len(left), tuple(claims), len(catalog_rows(archive, "SELECT id FROM records")))
            if seen != last_seen:
                last_seen, last_change = seen, time.monotonic()
            if not left and len(stuck) == len(claims):
                break  # done: everything is a record, quarantined, or stuck (counted below)
            if time.monotonic() - last_change > opts.file_timeout:
                hung = True
                problems.append(f"the watcher made no progress for {opts.file_timeout:.0f} s")
                break
        wall = time.perf_counter() - started
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=opts.file_timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            code = None
            problems.append("the watcher did not stop within the limit after SIGTERM")
        if code not in (0, None):
            problems.append(f"the watcher exited with code {code} after SIGTERM (0 expected)")
    status = json.loads(
        subprocess.run(
            scanarchive_cmd(archive, "status", "--json"),
            capture_output=True,
            text=True,
            check=True,
            env=child_env(),
            cwd=CHILD.cwd,
        ).stdout
    )
    log = [line for line in reader.lines if line.at >= started]
    if any("Traceback" in line.text for line in reader.lines):
        problems.append(f"the watcher's log has a traceback: {root / 'watch.log'}")
    outcomes = account_watch(files, archive, drop, hung)
    times = completion_gaps(archive, log, started)
    first_of = {f.sha256: f.rel for f in reversed(files)}
    for f in files:  # the time goes to the first file with those bytes
        if first_of[f.sha256] == f.rel:
            outcomes[f.rel].seconds = times.get(f.sha256)
    quarantined = len(catalog_rows(archive, "SELECT id FROM quarantine"))
    if status["in_progress"] != sum(1 for o in outcomes.values() if o.kind in ("crash", "hang")):
        problems.append(f"status --json reports {status['in_progress']} scan(s) still in progress")
    if status["quarantined"] != quarantined:
        problems.append("status --json and the catalog disagree on the quarantine")
    return ModeResult(
        "watch", outcomes, wall, int(status["records"]), warnings_of("\n".join(x.text for x in log)), problems
    )


def account_watch(files: list[CorpusFile], archive: Path, drop: Path, hung: bool) -> dict[str, Outcome]:
    shas = record_shas(archive)
    unread = {
        str(r[0]) for r in catalog_rows(archive, "SELECT source_sha256 FROM records WHERE ocr_failed_pages != ''")
    }
    quarantine = {
        str(sha): (str(reason), str(note))
        for sha, reason, note in catalog_rows(archive, "SELECT source_sha256, reason, note_path FROM quarantine")
    }
    in_journal = {c[0]: c for c in journal(archive)}
    left = {p.name for p in drop.iterdir() if p.is_file()}
    seen: set[str] = set()
    outcomes: dict[str, Outcome] = {}
    for f in files:
        earlier = f.sha256 in seen
        seen.add(f.sha256)
        if f.flat in in_journal:
            _, state, attempts, error = in_journal[f.flat]
            if error.startswith("unexpected"):
                what = f"internal error ({error.split()[-1]})"  # "unexpected ValueError" -> ValueError
                o = Outcome(f.rel, "crash", what, what)
            else:
                o = Outcome(f.rel, "hang", f"still in progress ({state}, {attempts} attempts: {error or 'no error'})")
        elif f.flat in left:
            o = Outcome(f.rel, "hang" if hung else "lost", "still in the drop folder")
        elif f.sha256 in shas:
            o = Outcome(f.rel, "duplicate" if earlier else "record", " ".join(shas[f.sha256]))
            if f.sha256 in unread and not earlier:
                o.notes.append("archived with pages OCR could not read")
        elif f.sha256 in quarantine:
            reason, note = quarantine[f.sha256]
            o = Outcome(f.rel, "rejected", reason, generalise(reason))
            if earlier:
                o.notes.append("same bytes as an earlier file")
            text = Path(note).read_text() if note and Path(note).is_file() else ""
            if not re.search(r"(?m)^Reason: \S", text):
                o.notes.append("quarantined without a failed/ note giving the reason")
            if not re.search(r"[A-Za-z]{3,}", reason) or reason.startswith("unexpected"):
                o.notes.append("the reason is not a plain message")
        else:
            o = Outcome(f.rel, "lost", "neither a record, nor quarantined, nor in the drop folder or journal")
        outcomes[f.rel] = o
    return outcomes


def completion_gaps(archive: Path, log: list[_LogLine], started: float) -> dict[str, float]:
    """Seconds between one finished scan and the one before (the watcher works one scan at a time),
    keyed by the SHA-256 of the scan, found from its record or quarantine id."""
    sha_of = {str(i): str(s) for i, s in catalog_rows(archive, "SELECT id, source_sha256 FROM records")}
    sha_of.update({str(i): str(s) for i, s in catalog_rows(archive, "SELECT id, source_sha256 FROM quarantine")})
    events: list[tuple[float, str]] = []
    for line in log:
        m = re.search(rf"INFO: (?:record|quarantined) ({UUID}):", line.text) or re.search(
            rf"INFO: claim {UUID}: already archived as record ({UUID})", line.text
        )
        if m and m.group(1) in sha_of:
            sha = sha_of[m.group(1)]
            if events and events[-1][1] == sha and "record" in line.text:
                continue  # the next record of the same stack
            events.append((line.at, sha))
    gaps: dict[str, float] = {}
    previous = started
    for at, sha in events:
        gaps.setdefault(sha, at - previous)
        previous = at
    return gaps


# --- report -----------------------------------------------------------------------


def summarise(corpus: Corpus, stem: str, files: list[CorpusFile], results: list[ModeResult]) -> bool:
    """Print the corpus's table; True if nothing was lost, crashed or hung."""
    size = sum(f.size for f in files)
    print(f"\n== {corpus.key}: {stem}, {corpus.folder}: {len(files)} files, {size / 1e6:.1f} MB")
    names = [r.mode for r in results]
    print(f"{'':<44}" + "".join(f"{n:>12}" for n in names))

    def row(label: str, values: list[str]) -> None:
        print(f"{label:<44}" + "".join(f"{v:>12}" for v in values))

    def count(r: ModeResult, *kinds: str) -> int:
        return sum(1 for o in r.outcomes.values() if o.kind in kinds)

    row("files tried", [str(len(r.outcomes)) for r in results])
    row("records (catalog)", [str(r.records_in_catalog) for r in results])
    row("files archived", [str(count(r, "record")) for r in results])
    row("duplicates of an earlier file", [str(count(r, "duplicate")) for r in results])
    row("rejected (ingest) / quarantined (watch)", [str(count(r, "rejected")) for r in results])
    row("lost", [str(count(r, "lost")) for r in results])
    row("crashes / internal errors", [str(count(r, "crash", "flaky")) for r in results])
    row("  of which did not happen again alone", [str(count(r, "flaky")) for r in results])
    row("hangs (over the limit or stuck)", [str(count(r, "hang")) for r in results])
    row(
        "archived, some pages not OCR'd",
        [
            str(sum(1 for o in r.outcomes.values() if o.notes and o.kind == "record" and "OCR" in o.notes[0]))
            for r in results
        ],
    )
    row("wall time (s)", [f"{r.wall_seconds:.0f}" for r in results])
    for r in results:
        timed = [o for o in r.outcomes.values() if o.seconds is not None]
        if timed:
            slow = max(timed, key=lambda o: o.seconds or 0.0)
            print(f"  {r.mode}: longest for one file {slow.seconds:.1f} s ({slow.rel}, {slow.kind})")
    kinds: Counter[tuple[str, str]] = Counter()
    examples: dict[str, str] = {}
    for r in results:
        for o in r.outcomes.values():
            if o.kind in ("rejected", "crash", "flaky"):
                kinds[(o.reason_kind, r.mode)] += 1
                examples.setdefault(o.reason_kind, o.detail)
    if kinds:
        print("  reasons (generalised)" + " " * 22 + "".join(f"{n:>12}" for n in names))
        for reason in sorted({k for k, _ in kinds}, key=lambda k: -sum(kinds[(k, n)] for n in names)):
            print(f"    {reason[:100]}")
            row("", [str(kinds[(reason, n)]) for n in names])
    ok = True
    for r in results:
        for o in r.outcomes.values():
            if o.kind in ("lost", "crash", "flaky", "hang"):
                ok = False
                print(f"  {r.mode}: {o.kind.upper()} {o.rel}: {o.detail}")
                for note in o.notes:
                    print("    " + note.replace("\n", "\n    "))
            elif o.notes and not (o.kind == "record" and o.notes == ["archived with pages OCR could not read"]):
                print(f"  {r.mode}: note on {o.rel} ({o.kind}): {'; '.join(o.notes)}")
        for problem in r.problems:
            ok = False
            print(f"  {r.mode}: PROBLEM: {problem}")
        for warning, n in sorted(r.warnings.items()):
            print(f"  {r.mode}: log line x{n}: {warning[:140]}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", choices=[*CORPORA, "all"], default="all")
    parser.add_argument("--limit", type=int, metavar="N", help="only N files of each corpus, evenly spread")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, metavar="DIR", help=f"default {DEFAULT_CACHE}")
    parser.add_argument("--mode", choices=["ingest", "watch", "both"], default="both")
    parser.add_argument("--batch", type=int, default=1, metavar="N", help="files per ingest command (default 1)")
    parser.add_argument("--ocr-timeout", type=float, default=60, metavar="S", help="ingest.ocr_timeout_seconds")
    parser.add_argument(
        "--file-timeout", type=float, default=300, metavar="S", help="wall-clock limit for one file (default 300)"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write every file's outcome here")
    parser.add_argument("--keep", action="store_true", help="keep the work folders (archives, logs)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each file's outcome as it comes")
    opts = parser.parse_args()
    if opts.batch < 1 or (opts.limit is not None and opts.limit < 1):
        parser.error("--batch and --limit must be at least 1")
    chosen = list(CORPORA.values()) if opts.corpus == "all" else [CORPORA[opts.corpus]]
    sdists = fetch(chosen, opts.cache.expanduser())
    report: dict[str, Any] = {}
    ok = True
    work_root = Path(tempfile.mkdtemp(prefix="sa-peer-"))
    try:
        fingerprint = snapshot_code(work_root)
        print(f"scanarchive code copied to {work_root / 'code'} (fingerprint {fingerprint})", flush=True)
        report["code_fingerprint"] = fingerprint
        for corpus in chosen:
            stem, folder = extract(sdists[corpus.key], corpus.folder, opts.cache.expanduser())
            files = corpus_files(folder, opts.limit)
            work = work_root / corpus.key
            work.mkdir()
            print(f"{corpus.key}: {len(files)} files from {stem}/{corpus.folder} (work folder {work})", flush=True)
            results = []
            if opts.mode in ("ingest", "both"):
                results.append(run_ingest(files, work, opts))
                print(f"{corpus.key}: ingest done in {results[-1].wall_seconds:.0f} s", flush=True)
            if opts.mode in ("watch", "both"):
                results.append(run_watch(files, work, opts))
                print(f"{corpus.key}: watch done in {results[-1].wall_seconds:.0f} s", flush=True)
            ok = summarise(corpus, stem, files, results) and ok
            report[corpus.key] = {
                "sdist": stem,
                "folder": corpus.folder,
                "files": [{"rel": f.rel, "size": f.size, "sha256": f.sha256} for f in files],
                **{
                    r.mode: {
                        "wall_seconds": r.wall_seconds,
                        "records_in_catalog": r.records_in_catalog,
                        "problems": r.problems,
                        "log_lines": dict(r.warnings),
                        "outcomes": [asdict(o) for o in r.outcomes.values()],
                    }
                    for r in results
                },
            }
    finally:
        if opts.keep:
            print(f"\nwork folders kept in {work_root}")
        else:
            shutil.rmtree(work_root, ignore_errors=True)
        if opts.json:
            opts.json.write_text(json.dumps(report, indent=1))
    print("\nall files accounted for: nothing lost, no crash, no hang" if ok else "\nFAILED: see above")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
