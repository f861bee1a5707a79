"""The analysis of one scan: every stage that parses the hostile bytes, and nothing that touches the archive.

    check     magic bytes, size, pixel and page limits              (pages.load)
    look      each page once: sheet code, quality, tick boxes       (ingest.identify)
    identify  split where a new sheet starts; whose note            (ingest.identify)
    ocr       every kept page, in engine processes                  (ocr)
    build     each record's PDF, lossless                           (pages.pdf)

Input: the scan's bytes and a :class:`Request` (the ingest settings, the sheet key and the archive's id
prefix to verify sheet codes, what the command line and the file-name pattern say — never a path, never
a file name, never the archive). Output: an :class:`Analysis`. `ingest/pipeline.py` seals, stores and
releases it in the process that holds the archive; :func:`run` does the analysis in the parser child
(``python -m scanarchive.ingest.parser``: Landlock, no network) unless told not to.

The child's answer crosses the boundary as one JSON line plus raw byte sections, never as a pickle (the
parent must not run code the child chose), after progress lines (the page count, then a :class:`Step` as each
stage ends and each page is OCR'd: a stage name, seconds and counts, never content), and every field is
checked on the way in: a child taken over
by a hostile file can still write a wrong record for *that* file, but it cannot make the parent do
anything else. Errors come back as their class name, message and hint and are raised again as the same
typed exception; a child that dies, hangs or answers nonsense is a :class:`ParserCrashed`.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from scanarchive import errors, sandbox
from scanarchive.config import IngestSettings
from scanarchive.errors import InputRejected, ScanarchiveError, TransientError
from scanarchive.fsio import read_fd
from scanarchive.ingest import identify
from scanarchive.names import CLIENT_CODE
from scanarchive.ocr import document, engine, ensemble
from scanarchive.pages import load, pdf, poppler, qc, sheets
from scanarchive.tempdir import ENV_TMPDIR, private_tempdir

log = logging.getLogger(__name__)

#: "off": analyse in the calling process, as before the parser sandbox (for measurements and tests ONLY).
ENV_SWITCH = "SCANARCHIVE_PARSER_SANDBOX"
#: Test-only fault injection in the child (tests/test_parser_sandbox.py): "probe:PATH|PATH..." tries to open
#: each PATH for writing, to make a file beside it, and to connect to the internet, and reports the errno;
#: "kill" makes the child SIGKILL itself after the look stage.
ENV_HOOK = "SCANARCHIVE_PARSER_TEST_HOOK"
ENV_NETNS = "SCANARCHIVE_PARSER_NETNS"  # set by the parent when it started the child in a network namespace
IDENTIFIED_BY = ("sheet", "filename", "command line", "")
MAX_TEXT = 2000  # longest message, note or reason accepted from the child
BLOCK = 1 << 20  # the scan goes to the child, and its answer comes back, in blocks of this size


class ParserCrashed(TransientError):
    """The parser child died, hung or answered nonsense: the scan is kept and tried again (the watcher
    quarantines it after a few attempts, as any unexplained failure)."""


@dataclass(frozen=True)
class Request:
    settings: IngestSettings
    sheet_key: bytes
    archive8: str
    client: str | None = None
    session_date: str | None = None
    record_class: str | None = None
    name_client: str | None = None  # from the configured file-name pattern, found by the parent
    name_date: str | None = None
    retry_if_ocr_timed_out: bool = False

    def to_json(self) -> dict[str, Any]:
        doc = dataclasses.asdict(self)
        doc["settings"]["ocr_engines"] = list(self.settings.ocr_engines)
        doc["sheet_key"] = self.sheet_key.hex()
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Request:
        fields = dict(doc)
        fields["settings"] = IngestSettings(**{**doc["settings"], "ocr_engines": tuple(doc["settings"]["ocr_engines"])})
        fields["sheet_key"] = bytes.fromhex(doc["sheet_key"])
        return cls(**fields)


@dataclass(frozen=True)
class Source:
    """A checked scan file, open (`pipeline.open_source`): its descriptor, its size and SHA-256 as hashed.

    It is read from the descriptor in blocks and never held whole by the archive's process; the child gets
    the bytes on its stdin, never the descriptor (readlink of /proc/self/fd/N would give it the path). What
    is read is hashed again: a file that changed since it was hashed is refused (:func:`changed`)."""

    fd: int
    size: int
    sha256: str


def changed() -> TransientError:
    return TransientError(
        "the file changed while it was being read; nothing was archived",
        hint="Let the scanner finish writing it, then ingest it again.",
    )


def blocks(source: Source) -> Iterator[bytes]:
    """The file's bytes in blocks, hashed on the way; the last step raises :func:`changed` if they are not
    the bytes hashed before (different, shorter or longer)."""
    h = hashlib.sha256()
    offset = 0
    while offset < source.size:
        block = os.pread(source.fd, min(BLOCK, source.size - offset), offset)
        if not block:
            raise changed()
        h.update(block)
        offset += len(block)
        yield block
    if os.pread(source.fd, 1, offset) or h.hexdigest() != source.sha256:
        raise changed()


def read_all(source: Source) -> bytes:
    """The whole file, for the analysis in this process (tests, SCANARCHIVE_PARSER_SANDBOX=off)."""
    try:
        data = read_fd(source.fd, source.size)
    except InputRejected:  # it grew past its size when hashed
        raise changed() from None
    if len(data) != source.size or hashlib.sha256(data).hexdigest() != source.sha256:
        raise changed()
    return data


#: The stages the analysis reports as it goes (`Step.stage`), in order.
STEPS = ("check", "look", "identify", "ocr", "build")


@dataclass(frozen=True)
class Step:
    """How far the analysis of one file has got: a stage's name, the seconds it has taken so far, and counts
    (for "ocr": pages read so far of the pages to read; else pages of the file). Counts and times only,
    never content: this crosses from the parser child and is shown as progress and in `-v` logs."""

    stage: str
    seconds: float
    done: int = 0
    total: int = 0

    def counts(self) -> str:
        """The counts in words, as a log line shows them after the stage's time ("" where it has none): for the
        stages after "identify", `done` counts records (or PDFs) and `total` pages."""
        pages, records = plural(self.total, "page"), plural(self.done, "record")
        return {
            "check": pages,
            "look": pages,
            "identify": records,
            "ocr": pages,
            "duplicate": f"{records} already archived",
            "build": plural(self.done, "PDF"),
            "seal": records,
            "catalog": records,
            "verify": f"{records} read back",
        }.get(self.stage, "")


def plural(count: int, word: str) -> str:
    """'1 page', '2 pages': counts in the words progress lines and -v logs use."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


OnStep = Callable[[Step], None]


@dataclass
class AnalysedRecord:
    outcome: identify.RecordOutcome
    blank: int  # blank pages that followed its pages
    pdf: bytes
    ocr_doc: bytes
    quality: list[qc.PageQc]  # of its pages, in order


@dataclass
class Analysis:
    kind: str
    records: list[AnalysedRecord]
    blank_pages: list[int]
    quality: list[qc.PageQc]  # every page of the file
    verdict: str
    ocr_seconds: float
    sandbox: str = "none: analysed in the archive's process"  # what the child that did it had applied
    probes: dict[str, str] = field(default_factory=dict)  # test hook only


def analyse(
    request: Request,
    data: bytes,
    recogniser: engine.PageRecogniser | None = None,
    *,
    on_checked: Callable[[int], None] | None = None,
    on_step: OnStep | None = None,
    stop: threading.Event | None = None,
    hook: str = "",
) -> Analysis:
    """The pure analysis (no archive). Raises the typed errors the stages raise. `on_checked` hears the page
    count as soon as the check stage knows it (the child tells its parent, which sets its deadline by it);
    `on_step` hears each stage's end and each page OCR'd (:class:`Step`). `stop` (in this process only): once
    set, the next page or stage raises :func:`stopped`."""
    settings = request.settings
    say = on_step or (lambda _step: None)
    began = time.perf_counter()
    _check_stop(stop)
    scan = load.check(data, settings)  # check
    if on_checked is not None:
        on_checked(scan.page_count)
    say(Step("check", time.perf_counter() - began, 0, scan.page_count))
    if scan.kind == "pdf":
        poppler.executable()  # a missing engine is a setup problem: stop before anything is written
    began = time.perf_counter()
    looks = identify.look_at_pages(scan, settings, request.sheet_key, request.archive8)  # look
    say(Step("look", time.perf_counter() - began, 0, scan.page_count))
    if hook == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    _check_stop(stop)
    began = time.perf_counter()
    groups = identify.group_pages(looks)  # identify
    if not groups:
        raise InputRejected("every page of the scan is blank", hint="Check the scanner fed the written side.")
    blank = [look.number for look in looks if look.quality.blank]
    kept = [n for g in groups for n in g.pages]
    orientation = {look.number: look.code.orientation for look in looks if look.code.status is sheets.QrStatus.VALID}
    printed = {look.number: look.printed for look in looks if look.printed}  # printed text: masked, never read
    say(Step("identify", time.perf_counter() - began, len(groups), scan.page_count))
    ocr_started = time.perf_counter()
    with private_tempdir() as tmpdir:  # ocr
        say(Step("ocr", 0.0, 0, len(kept)))
        page_texts = engine.run_pages(
            load.iter_ocr_pages(scan, settings, settings.ocr_timeout_seconds, only=set(kept), turn=orientation),
            _counted(recogniser or ensemble.recogniser(settings, tmpdir, printed), len(kept), ocr_started, say, stop),
            settings.effective_jobs,
        )
    ocr_seconds = time.perf_counter() - ocr_started
    began = time.perf_counter()
    if request.retry_if_ocr_timed_out and page_texts and all(p.status == "timeout" for p in page_texts):
        raise TransientError("OCR timed out on every page; the scan will be tried again later")
    by_page = {p.page: p for p in page_texts}
    for look in looks:
        if look.boxes and look.number in by_page:
            by_page[look.number].boxes = look.boxes

    quality = {look.number: look.quality for look in looks}
    whole_file = len(groups) == 1 and not blank
    records = []
    for group in groups:
        outcome = identify.metadata(
            group, request.client, request.session_date, request.record_class, request.name_client, request.name_date
        )
        record_pdf = pdf.build_pdf(scan, settings, None if whole_file else group.pages)  # build
        texts = []
        for position, number in enumerate(group.pages, start=1):
            text = by_page[number]
            texts.append(document.PageText(position, text.status, text.reason, text.engine, text.words, text.boxes))
        outcome.ocr_failed_pages = [t.page for t in texts if t.status != "ok"]
        ocr_doc = document.to_json(texts, sorted({t.engine for t in texts if t.engine}))
        records.append(AnalysedRecord(outcome, group.blank, record_pdf, ocr_doc, [quality[n] for n in group.pages]))
    say(Step("build", time.perf_counter() - began, len(records), scan.page_count))
    all_quality = [look.quality for look in looks]
    return Analysis(scan.kind, records, blank, all_quality, qc.summary(all_quality, len(kept)), ocr_seconds)


def stopped() -> errors.Interrupted:
    return errors.Interrupted(
        "not archived: stopped before it was sealed (interrupted); the scan file was not changed",
        hint="Run the same command again to archive it; files already archived are recognised, never doubled.",
    )


def _check_stop(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise stopped()


def _counted(
    recognise: engine.PageRecogniser, total: int, started: float, say: OnStep, stop: threading.Event | None
) -> engine.PageRecogniser:
    """The recogniser, telling `say` each time a page is done (the OCR threads call it at once: counted under a
    lock); with `stop`, a page not yet begun once it is set raises :func:`stopped`."""
    lock = threading.Lock()
    done = 0

    def recognise_counted(number: int, page: engine.PageSource) -> document.PageText:
        nonlocal done
        _check_stop(stop)
        text = recognise(number, page)
        with lock:
            done += 1
            say(Step("ocr", time.perf_counter() - started, done, total))
        return text

    return recognise_counted


# --- choosing where it runs -----------------------------------------------------------------------------------


def run(
    request: Request,
    scan: bytes | Source,
    recogniser: engine.PageRecogniser | None = None,
    *,
    on_step: OnStep | None = None,
    stop: threading.Event | None = None,
) -> Analysis:
    """The analysis in the parser child; in this process only with a recogniser (a Python callable, which cannot
    cross a process boundary: tests and benchmarks with a fake OCR) or with SCANARCHIVE_PARSER_SANDBOX=off.
    `scan`: the bytes, or an open :class:`Source` (streamed to the child, never read whole here). `on_step` hears
    how far it has got (:class:`Step`, from the child's progress lines, checked); once `stop` is set the child
    is killed (or, in this process, the next page or stage stops) and :func:`stopped` is raised."""
    if recogniser is not None or os.environ.get(ENV_SWITCH, "") == "off":
        data = scan if isinstance(scan, bytes) else read_all(scan)
        return analyse(request, data, recogniser, on_step=on_step, stop=stop)
    ensemble.warn_if_missing(request.settings)  # here: the child's log goes nowhere
    if isinstance(scan, bytes):
        view = memoryview(scan)
        chunks: Iterator[bytes | memoryview] = (view[i : i + BLOCK] for i in range(0, len(scan), BLOCK))
        return _in_child(request, len(scan), chunks, on_step, stop)
    return _in_child(request, scan.size, blocks(scan), on_step, stop)


@functools.lru_cache(maxsize=1)
def sandbox_status() -> str:
    """What the parser child gets on this machine: "landlock+netns", or what is missing and why
    ("none: …" when it has neither). Shown by `status` and said once when `watch` starts."""
    try:
        abi = sandbox.landlock_abi()
        landlock = f"landlock (ABI {abi})" if abi < 4 else "landlock"
        missing_landlock = ""
    except sandbox.SandboxUnavailable as exc:
        landlock, missing_landlock = "", str(exc)
    netns = sandbox.network_isolated()
    if landlock and netns:
        return f"{landlock}+netns"
    if landlock:
        return f"{landlock}; no network namespace: no working 'unshare --net'"
    if netns:
        return f"netns; no landlock: {missing_landlock}"
    return f"none: {missing_landlock}; no working 'unshare --net'"


def sandboxed() -> bool:
    return sandbox_status().startswith("landlock") and sandbox_status().endswith("+netns")


@functools.lru_cache(maxsize=8)
def _warn_applied(expected: str, applied: str) -> None:
    log.warning("the scan parser was expected to run with %s but ran with %s", expected, applied)


def _deadline_after_check(settings: IngestSettings, pages: int) -> float:
    """Seconds the child may take once it knows the page count: every stage of every page at its own timeout
    (look, render, two engines), one after the other, plus worker starts. A bound on a hang, not a target."""
    return 120.0 + settings.ocr_timeout_seconds * (2 + 4 * pages)


def _in_child(
    request: Request,
    size: int,
    scan: Iterator[bytes | memoryview],
    on_step: OnStep | None = None,
    stop: threading.Event | None = None,
) -> Analysis:
    settings = request.settings
    netns = sandbox.network_isolated()
    with private_tempdir() as workdir:  # the child's only writable place; removed by us, even after a SIGKILL
        env = sandbox.engine_env(str(workdir), PYTHONDONTWRITEBYTECODE="1", MALLOC_ARENA_MAX="4")
        env[ENV_TMPDIR] = str(workdir)  # its own temp folders (OCR, RapidOCR workers) are made inside
        env.pop(ENV_NETNS, None)
        if netns:
            env[ENV_NETNS] = "1"
        proc = subprocess.Popen(
            sandbox.wrap([sys.executable, "-m", "scanarchive.ingest.parser"]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # library chatter could quote the bytes: never shown, never logged
            cwd=str(workdir),
            env=env,
            start_new_session=True,
        )
        try:
            answer = _exchange(proc, request, size, scan, settings, on_step, stop)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)  # it has closed its answer; let it exit by itself
        finally:
            _kill(proc)
    analysis = decode(answer, settings, proc.returncode)  # empties `answer` as it goes
    expected = sandbox_status()
    if analysis.sandbox != expected:
        _warn_applied(expected, analysis.sandbox)
    return analysis


def _exchange(
    proc: subprocess.Popen[bytes],
    request: Request,
    size: int,
    scan: Iterator[bytes | memoryview],
    settings: IngestSettings,
    on_step: OnStep | None = None,
    stop: threading.Event | None = None,
) -> list[bytes]:
    """Send the request and the scan's `size` bytes (taken block by block from `scan`, so the whole scan is never
    held here), collect the answer (the blocks as read, never joined: see :class:`_Body`); SIGKILL the child's
    group past the deadline, or once `stop` is set (the caller's finally kills it; :func:`stopped` is raised).

    Before its answer the child may write progress lines (the page count, then :class:`Step` lines): each is
    checked (:func:`_progress_line`) and passed to `on_step`; the first line that is not one starts the answer."""
    assert proc.stdin is not None and proc.stdout is not None
    header = json.dumps({**request.to_json(), "size": size}).encode() + b"\n"
    outgoing = memoryview(header)
    limit = 64 * 1024 * 1024 + 8 * settings.max_file_mb * 1024 * 1024
    deadline = time.monotonic() + 60.0 + 2 * settings.ocr_timeout_seconds  # the check, until the page count
    started = time.monotonic()
    chunks: list[bytes] = []
    received = 0
    pages_seen = False
    head: bytes | None = b""  # progress lines not yet taken; None once the answer has begun
    win, rout = proc.stdin.fileno(), proc.stdout.fileno()
    os.set_blocking(win, False)
    with selectors.DefaultSelector() as sel:
        sel.register(win, selectors.EVENT_WRITE)
        sel.register(rout, selectors.EVENT_READ)
        while True:
            if stop is not None and stop.is_set():
                raise stopped()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ParserCrashed(
                    f"reading the scan took longer than {deadline - started:.0f} s and was stopped; "
                    "nothing was archived"
                )
            for key, _ in sel.select(remaining if stop is None else min(remaining, STOP_POLL)):
                if key.fd == win:
                    if not outgoing:
                        block = next(scan, None)  # the next block; at the end, raises if the file changed
                        if block is None:
                            sel.unregister(win)
                            proc.stdin.close()
                            continue
                        outgoing = memoryview(block)
                    try:
                        outgoing = outgoing[os.write(win, outgoing) :]
                    except BlockingIOError:
                        continue
                    except BrokenPipeError:  # it stopped reading: its answer (or its death) says why
                        sel.unregister(win)
                        proc.stdin.close()
                    continue
                chunk = os.read(rout, 1 << 20)
                if not chunk:
                    return chunks if head is None else [head]
                if head is not None:  # still in the progress lines
                    head += chunk
                    while head is not None:
                        kind = _preamble(head)
                        if kind is None:  # not yet known: wait for more
                            break
                        if kind == "answer":
                            chunk, head = head, None
                            break
                        end = head.find(b"\n")
                        if end < 0:
                            if len(head) > MAX_PROGRESS_LINE:
                                raise ParserCrashed("the scan reader gave an answer that could not be understood")
                            break
                        line, head = head[:end], head[end + 1 :]
                        if kind == "pages":
                            if pages_seen:
                                raise ParserCrashed("the scan reader gave an answer that could not be understood")
                            pages_seen = True
                            deadline = time.monotonic() + _deadline_after_check(settings, _pages_line(line))
                        else:
                            step = _progress_line(line, settings)
                            if on_step is not None:
                                on_step(step)
                    if head is not None:
                        continue
                chunks.append(chunk)
                received += len(chunk)
                if received > limit:
                    raise ParserCrashed("the scan reader's answer was larger than any record could be")


STOP_POLL = 0.2  # seconds between looks at `stop` while the child works
MAX_PROGRESS_LINE = 4096
_PAGES, _STEP = b'{"pages"', b'{"step"'


def _preamble(head: bytes) -> str | None:
    """What the child's output starts with: a "pages" or "step" progress line, the "answer", or None while too
    little has come to tell."""
    for prefix, kind in ((_PAGES, "pages"), (_STEP, "step")):
        if head.startswith(prefix):
            return kind
    if any(prefix.startswith(head) for prefix in (_PAGES, _STEP)):
        return None
    return "answer"


def _progress_line(line: bytes, settings: IngestSettings) -> Step:
    """One progress line from the child, every field checked: a stage name from STEPS, seconds, two counts."""
    try:
        doc = json.loads(line)
        stage, seconds, done, total = doc["step"], doc["seconds"], doc["done"], doc["total"]
        if set(doc) != {"step", "seconds", "done", "total"} or stage not in STEPS:
            raise _Bad
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 0 <= seconds <= 1e7:
            raise _Bad
        return Step(stage, float(seconds), _int(done, settings.max_pages), _int(total, settings.max_pages))
    except (_Bad, ValueError, KeyError, TypeError) as exc:
        raise ParserCrashed("the scan reader gave an answer that could not be understood") from exc


def encode_step(step: Step) -> bytes:
    """A progress line, as the child writes it before its answer."""
    doc = {"step": step.stage, "seconds": round(step.seconds, 3), "done": step.done, "total": step.total}
    return json.dumps(doc).encode() + b"\n"


def _pages_line(line: bytes) -> int:
    try:
        doc = json.loads(line)
        pages = doc["pages"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ParserCrashed("the scan reader gave an answer that could not be understood") from exc
    if not isinstance(pages, int) or isinstance(pages, bool) or pages < 0:
        raise ParserCrashed("the scan reader gave an answer that could not be understood")
    return pages


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the child, and any engine it left behind
    except (ProcessLookupError, PermissionError):
        proc.kill()
    for stream in (proc.stdin, proc.stdout):
        if stream is not None and not stream.closed:
            stream.close()
    proc.wait()


def _death(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        try:
            how = signal.Signals(-returncode).name
        except ValueError:
            how = f"signal {-returncode}"
        return f"the scan reader stopped unexpectedly ({how}); nothing was archived"
    return f"the scan reader stopped unexpectedly (exit code {returncode}); nothing was archived"


# --- the answer on the wire: one JSON line, then the raw sections ---------------------------------------------


def encode_parts(analysis: Analysis) -> list[bytes]:
    """The answer as its pieces (the JSON line, then each section): the child writes them one after the other,
    never joined (a record's PDF is as large as the scan)."""
    sections: list[bytes] = []
    records = []
    for record in analysis.records:
        outcome = dataclasses.asdict(record.outcome)
        outcome.pop("record_id")  # the parent chooses record ids, never the child
        records.append(
            {
                "outcome": outcome,
                "blank": record.blank,
                "pdf": len(record.pdf),
                "ocr": len(record.ocr_doc),
                "quality": [dataclasses.asdict(q) for q in record.quality],
            }
        )
        sections += [record.pdf, record.ocr_doc]
    doc = {
        "ok": True,
        "kind": analysis.kind,
        "records": records,
        "blank_pages": analysis.blank_pages,
        "quality": [dataclasses.asdict(q) for q in analysis.quality],
        "verdict": analysis.verdict,
        "ocr_seconds": analysis.ocr_seconds,
        "sandbox": analysis.sandbox,
        "probes": analysis.probes,
    }
    return [json.dumps(doc).encode() + b"\n", *sections]


def encode_error(exc: BaseException) -> bytes:
    if isinstance(exc, ScanarchiveError):
        doc = {"kind": type(exc).__name__, "message": exc.message, "hint": exc.hint, "scanarchive": True}
    else:  # a bug or a library's own exception: its type only (a parser's text can quote the bytes)
        doc = {"kind": type(exc).__name__, "message": "", "hint": "", "scanarchive": False}
    return json.dumps({"ok": False, "error": doc}).encode() + b"\n"


class _Bad(Exception):
    pass


class _Body:
    """The answer after its first line, as the blocks it came in: each section is taken off the front and copied
    once, and the blocks it used are let go as it goes (the answer is never joined whole)."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = collections.deque(chunks)
        self._offset = 0  # into the first block

    @classmethod
    def split(cls, answer: bytes | list[bytes]) -> tuple[bytes, _Body]:
        """(the first line, without its newline; what follows it). A list of blocks is emptied: they are the
        body's now."""
        chunks = collections.deque([answer] if isinstance(answer, bytes) else answer)
        if isinstance(answer, list):
            answer.clear()
        head: list[bytes] = []
        while chunks:
            first = chunks.popleft()
            end = first.find(b"\n")
            if end >= 0:
                head.append(first[:end])
                chunks.appendleft(first[end + 1 :])
                break
            head.append(first)
        return b"".join(head), cls(list(chunks))

    def take(self, size: int) -> bytes:
        """The next `size` bytes (fewer at the end)."""
        parts: list[memoryview] = []
        while size > 0 and self._chunks:
            first = self._chunks[0]
            piece = memoryview(first)[self._offset : self._offset + size]
            parts.append(piece)
            size -= len(piece)
            self._offset += len(piece)
            if self._offset >= len(first):
                self._chunks.popleft()
                self._offset = 0
        return b"".join(parts)

    def empty(self) -> bool:
        return all(len(c) == (self._offset if i == 0 else 0) for i, c in enumerate(self._chunks))


def decode(answer: bytes | list[bytes], settings: IngestSettings, returncode: int | None = 0) -> Analysis:
    """The child's answer (whole, or in the blocks it came in), every field checked; its error raised again as
    the same typed exception."""
    line, body = _Body.split(answer)  # a list is emptied: each block is let go once its section is taken
    try:
        doc = json.loads(line)
        if not isinstance(doc, dict):
            raise _Bad
        if doc.get("ok") is False:
            raise _error(doc.get("error"))
        if doc.get("ok") is not True or returncode not in (0, None):
            raise _Bad
        return _analysis(doc, body, settings)
    except (_Bad, ValueError, KeyError, TypeError, IndexError) as exc:
        if returncode not in (0, None):
            raise ParserCrashed(_death(returncode)) from None
        raise ParserCrashed("the scan reader gave an answer that could not be understood") from exc


#: The errors a child may report, raised again as themselves; any other name is an internal error.
_ERRORS: dict[str, type[ScanarchiveError]] = {
    cls.__name__: cls
    for cls in (
        errors.ScanarchiveError,
        errors.InputRejected,
        errors.TransientError,
        errors.EngineMissing,
        errors.ConfigError,
        errors.IntegrityError,
        errors.UsageError,
        ParserCrashed,
    )
}


class ParserInternalError(Exception):
    """An unexpected exception in the child (a bug): raised here under the child's type name."""


@functools.lru_cache(maxsize=64)
def _internal(name: str) -> type[ParserInternalError]:
    return type(name, (ParserInternalError,), {"__module__": __name__})


def _error(doc: object) -> BaseException:
    if not isinstance(doc, dict):
        raise _Bad
    kind, message, hint = doc.get("kind"), doc.get("message"), doc.get("hint")
    if not all(isinstance(v, str) and len(v) <= MAX_TEXT for v in (kind, message, hint)):
        raise _Bad
    assert isinstance(kind, str) and isinstance(message, str) and isinstance(hint, str)
    if doc.get("scanarchive") is True:
        cls = _ERRORS.get(kind, ScanarchiveError)
        return cls(message, hint=hint)
    name = kind if kind.isidentifier() and len(kind) <= 60 else "ParserInternalError"
    return _internal(name)()


def _analysis(doc: dict[str, Any], body: _Body, settings: IngestSettings) -> Analysis:
    kind = doc["kind"]
    if kind not in ("pdf", "png", "jpeg", "tiff"):
        raise _Bad
    records: list[AnalysedRecord] = []
    seen: set[int] = set()
    for item in _list(doc["records"], dict):
        pdf_len, ocr_len = _int(item["pdf"], 1 << 40), _int(item["ocr"], 1 << 40)
        record_pdf = body.take(pdf_len)
        ocr_doc = body.take(ocr_len)
        if len(record_pdf) != pdf_len or len(ocr_doc) != ocr_len or not record_pdf.startswith(b"%PDF"):
            raise _Bad
        document.from_json(ocr_doc)  # it must be an OCR document (IntegrityError -> not understood)
        outcome = _outcome(item["outcome"], settings)
        if not outcome.source_pages or seen & set(outcome.source_pages):
            raise _Bad
        seen |= set(outcome.source_pages)
        quality = [_qc(q, settings) for q in _list(item["quality"], dict)]
        if [q.page for q in quality] != outcome.source_pages:
            raise _Bad
        records.append(AnalysedRecord(outcome, _int(item["blank"], settings.max_pages), record_pdf, ocr_doc, quality))
    if not records or not body.empty():
        raise _Bad
    probes = doc.get("probes", {})
    if not isinstance(probes, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in probes.items()):
        raise _Bad
    return Analysis(
        kind,
        records,
        [_int(n, settings.max_pages) for n in _list(doc["blank_pages"], int)],
        [_qc(q, settings) for q in _list(doc["quality"], dict)],
        _text(doc["verdict"]),
        float(doc["ocr_seconds"]),
        _text(doc["sandbox"]),
        probes,
    )


def _outcome(doc: dict[str, Any], settings: IngestSettings) -> identify.RecordOutcome:
    client, day, record_class = doc["client_code"], doc["session_date"], doc["record_class"]
    if client is not None and not (isinstance(client, str) and CLIENT_CODE.fullmatch(client)):
        raise _Bad
    if day is not None and not (isinstance(day, str) and date.fromisoformat(day).isoformat() == day):
        raise _Bad
    if record_class not in sheets.CLASS_CODES or doc["identified_by"] not in IDENTIFIED_BY:
        raise _Bad
    pages = [_int(n, settings.max_pages, low=1) for n in _list(doc["source_pages"], int)]
    failed = [_int(n, len(pages), low=1) for n in _list(doc["ocr_failed_pages"], int)]
    return identify.RecordOutcome(
        "", pages, client, day, record_class, doc["identified_by"], failed, _text(doc["note"])
    )


def _qc(doc: dict[str, Any], settings: IngestSettings) -> qc.PageQc:
    dpi, skew = doc["dpi"], doc["skew"]
    if not isinstance(doc["blank"], bool) or (skew is not None and not isinstance(skew, (int, float))):
        raise _Bad
    return qc.PageQc(
        _int(doc["page"], settings.max_pages, low=1),
        None if dpi is None else _int(dpi, load.MAX_DPI),
        doc["blank"],
        _int(doc["contrast"], 255),
        None if skew is None else float(skew),
        [_text(t) for t in _list(doc["problems"], str)],
        [_text(t) for t in _list(doc["warnings"], str)],
    )


def _list(value: object, item: type) -> list[Any]:
    if not isinstance(value, list) or not all(isinstance(v, item) and not isinstance(v, bool) for v in value):
        raise _Bad
    return value


def _int(value: object, high: int, low: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _Bad
    return value


def _text(value: object) -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise _Bad
    return value
