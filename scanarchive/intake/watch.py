"""The drop-folder watcher: detect -> settle -> claim -> ingest (or quarantine, or retry later).

Detection uses three sources, because each alone loses files: watchdog
(inotify) events, a scan at start-up, and a periodic rescan. Between events
the loop sleeps on a threading.Event (no busy polling). It holds only the
archive's public recipient: it can add records, never read them.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import signal
import sqlite3
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from scanarchive.archive import accounts, health, quarantine
from scanarchive.archive.layout import Archive
from scanarchive.clock import now_utc
from scanarchive.errors import EngineMissing, InputRejected, IntegrityError, ScanarchiveError, TransientError
from scanarchive.fsio import open_regular, read_fd, write_new_in
from scanarchive.ingest import analyse
from scanarchive.ingest.pipeline import IngestResult, OnStep, Step, ingest_file
from scanarchive.intake import quarantine as intake_quarantine
from scanarchive.intake.claim import Claim, Journal
from scanarchive.intake.lock import WatchLock
from scanarchive.intake.refuse import set_aside
from scanarchive.intake.safety import check_folders, open_failed
from scanarchive.intake.settle import Settler, ignored, list_candidates
from scanarchive.names import printable

log = logging.getLogger(__name__)


class _StopRace(logging.Filter):
    """watchdog logs an ERROR when its inotify thread is asked for events while the observer is being
    stopped (SIGTERM): a harmless race in the library that would read like a failure in the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "called when the thread is inactive" not in record.getMessage()


logging.getLogger("watchdog.observers.inotify").addFilter(_StopRace())

# An error that is not a known kind is retried this many times (it may be the machine), then quarantined.
UNEXPECTED_ATTEMPTS = 3

# A flood of junk (docs/scanners.md): at most NOTE_BUDGET notes in failed/ per NOTE_WINDOW seconds.
# Past that, one summary note and one audit line say so, and each further file is still sealed in
# the quarantine (or put aside unread) and audited, only without a note of its own.
NOTE_BUDGET = 20
NOTE_WINDOW = 600.0

# With -v, a long OCR stage says how far it has got at most this often (seconds).
OCR_PROGRESS_EVERY = 30.0


@dataclass
class Tally:
    archived: int = 0
    duplicates: int = 0
    quarantined: int = 0
    deferred: int = 0
    record_ids: list[str] = field(default_factory=list)


class _Events(FileSystemEventHandler):
    def __init__(self, wake: threading.Event) -> None:
        self.wake = wake
        self.paths: set[Path] = set()
        self.lock = threading.Lock()

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        path = getattr(event, "dest_path", "") or event.src_path
        path = path.decode() if isinstance(path, bytes) else path
        with self.lock:
            self.paths.add(Path(path))
        self.wake.set()

    def drain(self) -> set[Path]:
        with self.lock:
            paths, self.paths = self.paths, set()
        return paths


def _say_parser_sandbox() -> None:
    """Once at start-up: how the process that reads the scans is confined here, and plainly if it is not."""
    how = analyse.sandbox_status()
    if analyse.sandboxed():
        log.info("scans are read in a sandboxed process (%s)", how)
    else:
        log.warning(
            "the process that reads the scans is NOT fully sandboxed on this machine (%s): a hostile scan that "
            "exploits a decoder could do more than it should; see docs/threat-model.md, 'Parser sandbox'",
            how,
        )


def stage_logger(claim_id: str) -> OnStep:
    """For `watch -v`: one INFO line per stage of one claimed scan, with its time. The claim's id, the stage's
    name, seconds and counts only: never the file's name, a client code or a word of the notes."""
    lock = threading.Lock()  # an analysis in this process reports OCR'd pages from several threads
    last = 0.0

    def say(step: Step) -> None:
        nonlocal last
        with lock:
            if step.stage == "ocr":
                if step.done == 0:
                    last = time.monotonic()
                    log.info("claim %s: ocr of %s begins", claim_id, analyse.plural(step.total, "page"))
                elif step.done >= step.total:
                    log.info("claim %s: ocr %.2f s (%s)", claim_id, step.seconds, analyse.plural(step.total, "page"))
                elif time.monotonic() - last >= OCR_PROGRESS_EVERY:
                    last = time.monotonic()
                    log.info("claim %s: ocr %d of %d pages, %.0f s", claim_id, step.done, step.total, step.seconds)
                return
            counts = step.counts()
            log.info("claim %s: %s %.2f s%s", claim_id, step.stage, step.seconds, f" ({counts})" if counts else "")

    return say


class Watcher:
    def __init__(self, archive: Archive, drop: Path, *, stage_times: bool = False) -> None:
        """`stage_times` (watch -v): log each stage of each scan with its time (see :func:`stage_logger`)."""
        self.archive = archive
        self.drop = check_folders(archive.root, drop)
        self.settings = archive.config.drop
        self.max_bytes = archive.config.ingest.max_file_mb * 1024 * 1024
        self.journal = Journal(archive.root, archive.catalog, max_bytes=self.max_bytes, refuse=self._refuse)
        self._notes: deque[float] = deque()  # when the last notes were written (the flood rule)
        self._flood_since: float | None = None
        self._note_problem = ""  # why failed/ is not used, logged once
        self.settler = Settler(self.settings.settle_seconds)
        self.wake = threading.Event()
        # Set by stop() (SIGTERM/SIGINT): a scan still being analysed is abandoned at once (its reader is
        # killed, nothing is written, it stays claimed in journal/ for the next start); one being sealed is
        # finished first (seconds).
        self.stop_event = threading.Event()
        self.stage_times = stage_times
        self.tally = Tally()

    # --- the loop ---------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self.stop_event.is_set()

    def stop(self, *_: object) -> None:
        self.stop_event.set()
        self.wake.set()

    def run(self, *, once: bool = False) -> Tally:
        with WatchLock(self.archive.root):
            for line in accounts.watcher_warnings(self.archive.root):  # once: said, not silently weaker
                log.warning("%s", line)
            _say_parser_sandbox()  # once at start-up: how the scan reader is confined, plainly if it is not
            self._install_signals()
            self.recover()
            if once:
                self._run_once()
            else:
                self._run_forever()
        return self.tally

    def _install_signals(self) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if not self.stopping:
            log.info(
                "stopping (signal %d): a scan being read is left in the journal for the next start, "
                "one being sealed is finished first",
                signum,
            )
        self.stop()

    def _run_once(self) -> None:
        """Take what is in the folder now (waiting for it to settle), process it, and return."""
        self.settler.observe(list_candidates(self.drop))
        deadline = time.monotonic() + 4 * self.settings.settle_seconds + 5
        while not self.stopping:
            self._take_settled()
            self.settler.observe(list_candidates(self.drop))
            if not self.settler.pending or time.monotonic() > deadline:
                break
            self.wake.wait(min(0.5, self.settler.next_due() or 0.5))
            self.wake.clear()
        self._process_due()
        health.beat(self.archive.root)  # `status` shows when the watcher was last seen

    def _run_forever(self) -> None:
        events = _Events(self.wake)
        observer = Observer()
        observer.schedule(events, str(self.drop), recursive=False)
        observer.start()
        log.info(
            "watching the drop folder (settle %.0f s, rescan every %.0f s)",
            self.settings.settle_seconds,
            self.settings.rescan_seconds,
        )
        try:
            self.settler.observe(list_candidates(self.drop))  # start-up scan
            next_rescan = time.monotonic() + self.settings.rescan_seconds
            while not self.stopping:
                try:
                    self.settler.observe(p for p in events.drain() if p.parent == self.drop)
                    if time.monotonic() >= next_rescan:
                        health.beat(self.archive.root)  # `status` shows when the watcher was last seen
                        self.recover()  # e.g. a claim left half-done by a catalog error
                        self.settler.observe(list_candidates(self.drop))
                        next_rescan = time.monotonic() + self.settings.rescan_seconds
                    self._take_settled()
                    self._process_due()
                    pause = self._sleep_for(next_rescan)
                except (ScanarchiveError, OSError, sqlite3.Error) as exc:
                    # The catalog is busy or the disk is full: nothing is lost (the journal holds
                    # every claim); wait and go round again rather than stop watching.
                    text = exc.message if isinstance(exc, ScanarchiveError) else type(exc).__name__
                    log.warning("the watch loop hit a problem (%s); trying again shortly", text)
                    pause = self.settings.retry_base_seconds
                self.wake.wait(pause)
                self.wake.clear()
        finally:
            observer.stop()
            observer.join(timeout=5)

    def _sleep_for(self, next_rescan: float) -> float:
        waits = [next_rescan - time.monotonic()]
        settle = self.settler.next_due()
        if settle is not None:
            waits.append(max(settle, 0.2))
        retry = self.journal.next_due()
        if retry is not None:
            waits.append(retry - time.time())
        return max(0.05, min(waits))

    # --- steps --------------------------------------------------------------------

    def recover(self) -> None:
        todo = self.journal.recover(
            record_exists=lambda sha: self.archive.catalog.by_source(sha) is not None,
            quarantined=lambda sha: quarantine.has_source(self.archive, sha),
        )
        if todo:
            log.info("recovering %d scan(s) from the journal", len(todo))

    def _take_settled(self) -> None:
        for path in self.settler.settled():
            if self.stopping:
                return
            if ignored(path.name) or path.parent != self.drop:
                self.settler.forget(path)
                continue
            expect = self.settler.identity(path)
            self.settler.forget(path)
            try:
                claim = self.journal.claim(path, expect)
            except TransientError as exc:
                log.warning("could not take a scan yet: %s", exc.message)
                continue
            except OSError as exc:
                log.warning("could not take a scan yet (%s)", exc.strerror)
                continue
            except ScanarchiveError as exc:
                log.warning("could not take a scan yet (%s)", printable(exc.message))
                continue
            if claim is not None:
                self.process(claim)

    def _process_due(self) -> None:
        for claim in self.journal.due():
            if self.stopping:
                return
            self.process(claim)

    def process(self, claim: Claim) -> None:
        """One claimed scan to a record, the quarantine, or a later retry. Never raises."""
        path = self.journal.path_of(claim)
        if claim.state == "quarantining":  # last_error holds the rejection reason (see _quarantine)
            self._quarantine(claim, path, claim.last_error or "the scan was being quarantined")
            return
        started = time.perf_counter()
        try:
            result = ingest_file(
                self.archive,
                path,
                retry_if_ocr_timed_out=claim.attempts + 1 < self.settings.ocr_timeout_attempts,
                source_name=claim.source_name,
                announce=lambda done: self._audit("ingest", **done.audit_fields(), item=claim.claim_id),
                on_step=stage_logger(claim.claim_id) if self.stage_times else None,
                stop=self.stop_event,
            )
        except Exception as exc:  # a bug must not stop the watcher or lose the scan
            # Stopping: errors.Interrupted (the stop event), or whatever went wrong may be the stop itself
            # (systemd's SIGTERM reaches the scan reader and its engines too, which then die mid-page). Never
            # counted against the scan, never quarantined for it: it stays claimed as it is, and the next start
            # reads it again.
            if self.stopping:
                self._left_for_next_start(claim)
            else:
                self._failed(claim, path, exc)
            return
        self._archived(claim, result, time.perf_counter() - started)

    def _left_for_next_start(self, claim: Claim) -> None:
        """Stopped before the scan was sealed: nothing of it was written and its journal row is left as it was
        (no attempt counted), so the next start's recovery takes it up again."""
        log.info(
            "claim %s: stopped before it was sealed; it stays in the journal and is archived on the next start",
            claim.claim_id,
        )

    def _failed(self, claim: Claim, path: Path, exc: Exception) -> None:
        """What ingest_file raised: to the quarantine, or a later retry. Never raises."""
        match exc:
            case InputRejected():
                self._quarantine(claim, path, exc.message)
            case analyse.ParserCrashed():  # the file may be what kills the reader: retried, then quarantined
                if claim.attempts + 1 >= UNEXPECTED_ATTEMPTS:
                    self._quarantine(
                        claim,
                        path,
                        f"{exc.message} ({claim.attempts + 1} times); it is kept sealed in the quarantine: try "
                        "'scanarchive failed retry' after an update",
                    )
                else:
                    self._defer(claim, exc.message)
            case TransientError() | EngineMissing() | IntegrityError():
                self._defer(claim, exc.message)
            case OSError() if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                self._defer(claim, "the disk holding the archive is full")
            case OSError():
                self._defer(claim, f"a file error ({exc.strerror})")
            case ScanarchiveError():
                self._defer(claim, exc.message)
            case _:
                # Type only: a library's exception text can quote the bytes it choked on.
                log.error("claim %s: unexpected %s", claim.claim_id, type(exc).__name__)
                log.debug("details of the unexpected error", exc_info=exc)
                if claim.attempts + 1 >= UNEXPECTED_ATTEMPTS:  # not transient: never retried for ever
                    self._quarantine(
                        claim,
                        path,
                        f"scanarchive could not process this file (an internal error, {type(exc).__name__}); it "
                        "is kept sealed in the quarantine: please report it, and try 'scanarchive failed retry' "
                        "after an update",
                    )
                else:
                    self._defer(claim, f"unexpected {type(exc).__name__}")

    def _archived(self, claim: Claim, result: IngestResult, seconds: float) -> None:
        self.journal.finish(claim)
        if result.duplicate:
            self.tally.duplicates += 1
            log.info("claim %s: already archived as record %s; no second record", claim.claim_id, result.record_id)
        else:
            for outcome in result.records:
                self.tally.archived += 1
                self.tally.record_ids.append(outcome.record_id)
                flagged = f", OCR failed on page(s) {outcome.ocr_failed_pages}" if outcome.ocr_failed_pages else ""
                filed = "filed" if outcome.filed else "UNFILED (scanarchive inbox)"  # codes never go in logs
                log.info(
                    "record %s: %s, %d page(s), %.1f s%s",
                    outcome.record_id,
                    filed,
                    len(outcome.source_pages),
                    seconds,
                    flagged,
                )
            log.info("claim %s: %s", claim.claim_id, result.verdict)

    def _audit(self, event: str, **fields: object) -> None:
        """The watcher keeps working if the audit log cannot be appended (it says so loudly)."""
        try:
            self.archive.audit(event, **fields)
        except (ScanarchiveError, ValueError, OSError) as exc:
            log.error("the audit log could not be appended (%s); run 'scanarchive audit verify'", type(exc).__name__)

    def _defer(self, claim: Claim, reason: str) -> None:
        delay = self.settings.retry_delay(claim.attempts + 1)
        self.journal.defer(claim, reason, delay)
        self.tally.deferred += 1
        log.warning("claim %s: %s; the scan is kept safe and retried in %.0f s", claim.claim_id, reason, delay)

    def _quarantine(self, claim: Claim, path: Path, reason: str) -> None:
        try:
            claim = self.journal.mark(claim, "quarantining", reason=reason)
            entry = quarantine.by_source(self.archive, claim.sha256 or "")
            if entry is None:
                try:  # the journal's copy was checked at claim time; checked again, never read past the limit
                    fd, _ = open_regular(path, self.max_bytes)
                except InputRejected as exc:
                    self.journal.put_aside(claim, exc.message)
                    return
                try:
                    data = read_fd(fd, self.max_bytes)
                finally:
                    os.close(fd)
                entry = quarantine.seal_scan(self.archive, data, claim.source_name, claim.sha256 or "", reason)
                del data
            if not entry.note_path:  # also after a crash between sealing and writing the note
                if self._note_allowed():
                    try:
                        intake_quarantine.write_note(self.archive, self.drop, entry)
                    except (ScanarchiveError, OSError) as exc:  # the scan is safe; only the note is missing
                        text = exc.message if isinstance(exc, ScanarchiveError) else str(exc.strerror)
                        self._say_note_problem(f"quarantined {entry.id}, but its note could not be written", text)
                else:
                    log.debug("quarantined %s (no note: many failures just now)", entry.id)
            self.journal.finish(claim)
            self.tally.quarantined += 1
            self._audit("quarantine", item=entry.id, source_sha256=claim.sha256 or "0" * 64)
        except (ScanarchiveError, OSError) as exc:
            message = exc.message if isinstance(exc, ScanarchiveError) else f"a file error ({exc.strerror})"
            delay = self.settings.retry_delay(claim.attempts + 1)
            self.journal.defer(claim, reason, delay)  # keep the rejection reason for the note
            self.tally.deferred += 1
            log.warning("claim %s: could not quarantine yet (%s); retried in %.0f s", claim.claim_id, message, delay)

    # --- refused files, notes and the flood rule ---------------------------------------------------

    def _refuse(self, dir_fd: int, name: str, source: Path, reason: str) -> None:
        """Put a file aside unread (refuse.py), with a note while the flood rule allows; audited. Never raises."""
        try:
            where = set_aside(self.drop, dir_fd, name, source.name, reason, note=self._note_allowed())
        except OSError as exc:
            log.error("a refused file could not be put aside (%s); it stays where it is", exc.strerror)
            return
        self.tally.quarantined += 1
        # The log names no file (a name may hold a client's name): the note in failed/ does.
        folder = str(Path(where).parent) if where else "(it is gone)"
        log.warning("refused a file, unread: %s; put aside in %s with a note", printable(reason), printable(folder))
        self._audit("quarantine", code="refused")

    def _say_note_problem(self, what: str, why: str) -> None:
        why = printable(why)
        if why != self._note_problem:  # once per distinct reason, not once per scan
            self._note_problem = why
            log.warning("%s (%s); the scans are still sealed in the quarantine: 'scanarchive failed list'", what, why)
        else:
            log.debug("%s (%s)", what, why)

    def _note_allowed(self) -> bool:
        """The flood rule: NOTE_BUDGET notes per NOTE_WINDOW seconds, then one summary note."""
        now = time.monotonic()
        while self._notes and now - self._notes[0] > NOTE_WINDOW:
            self._notes.popleft()
        if len(self._notes) < NOTE_BUDGET:
            self._notes.append(now)
            self._flood_since = None
            return True
        if self._flood_since is None:
            self._flood_since = now
            self._write_flood_note()
        return False

    def _write_flood_note(self) -> None:
        minutes = NOTE_WINDOW / 60
        text = (
            f"scanarchive: more than {NOTE_BUDGET} files failed in {minutes:.0f} minutes ({now_utc()}).\n"
            f"\n"
            f"From now on no note is written for each one, until {minutes:.0f} minutes have passed.\n"
            f"None of them is lost: each scan that could be read is sealed (encrypted) in the archive's\n"
            f"quarantine, and each file that could not be read at all is here, unread, as *.refused.\n"
            f"\n"
            f"  All of them:  scanarchive failed list\n"
            f"\n"
            f"If this was not expected, check who can write to the drop folder.\n"
        )
        name = f"scanarchive-many-failures-{now_utc().replace(':', '')}-{secrets.token_hex(2)}.txt"
        try:
            fd = open_failed(self.drop)
            try:
                write_new_in(fd, name, text.encode(), 0o644)
            finally:
                os.close(fd)
        except (ScanarchiveError, OSError) as exc:
            why = exc.message if isinstance(exc, ScanarchiveError) else str(exc.strerror)
            self._say_note_problem("the summary note could not be written", why)
        log.warning(
            "more than %d files failed in %.0f minutes: no more notes for now, each is still kept; see failed/%s",
            NOTE_BUDGET,
            minutes,
            name,
        )
        self._audit("quarantine", code="flood", count=NOTE_BUDGET)
