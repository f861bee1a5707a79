"""How far an `ingest` has got: a tqdm bar on a terminal, plain lines when stderr is not one, nothing for --json.

What it shows is counts, stage names, seconds and the file names `ingest` prints anyway: never OCR text,
never a client code. With `-v` each stage of each file is also logged (INFO) with its time. The library
reports the stages (ingest/pipeline.STAGES) from its worker threads; everything here takes one lock.
Result lines go through :meth:`IngestProgress.write`, so a bar is cleared and redrawn below them.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from tqdm import tqdm  # type: ignore[import-untyped]
from tqdm.contrib.logging import logging_redirect_tqdm  # type: ignore[import-untyped]

from scanarchive.ingest.analyse import plural
from scanarchive.ingest.pipeline import Step

log = logging.getLogger(__name__)

LINE_EVERY = 10.0  # seconds between two plain OCR lines for one file


@dataclass
class _File:
    name: str
    pages: int = 0  # of the file, once checked
    to_read: int = 0  # pages to OCR
    read: int = 0  # pages OCR'd
    last_line: float = 0.0


class IngestProgress:
    """mode: "bar" (a terminal), "lines" (a log or pipe) or "off" (--json)."""

    def __init__(self, names: list[str], mode: str, *, stream: TextIO | None = None, out: TextIO | None = None):
        self.mode = mode
        self.stream = stream if stream is not None else sys.stderr
        self.out = out if out is not None else sys.stdout
        self.files = [_File(name) for name in names]
        self.total = len(names)
        self.done = 0
        self.started = time.monotonic()
        self._lock = threading.RLock()
        self._files_bar: Any | None = None
        self._pages_bar: Any | None = None
        if mode == "bar" and self.total > 1:
            self._files_bar = self._bar(self.total, "files", "file")

    @classmethod
    def for_command(cls, names: list[str], *, json_mode: bool) -> IngestProgress:
        if json_mode:
            return cls(names, "off")
        return cls(names, "bar" if _is_terminal(sys.stderr) else "lines")

    def _bar(self, total: int, desc: str, unit: str) -> Any:
        return tqdm(
            total=total,
            desc=desc,
            unit=unit,
            file=self.stream,
            leave=False,
            dynamic_ncols=True,
            bar_format="{desc}: {n_fmt}/{total_fmt} |{bar}| {elapsed}, about {remaining} left{postfix}",
        )

    # --- called from the library's worker threads ----------------------------------------------------------

    def step(self, index: int, step: Step) -> None:
        with self._lock:
            f = self.files[index]
            where = f"[{index + 1}/{self.total}] {f.name}" if self.total > 1 else f.name
            if step.stage == "check":
                f.pages = step.total
            self._log(where, f, step)
            if step.stage == "ocr":
                self._ocr(where, f, step)
            elif step.stage == "check" and self.mode == "lines" and (self.total > 1 or f.pages > 1):
                self._line(f"{where}: {plural(f.pages, 'page')}")
            if self._files_bar is not None:
                self._files_bar.set_postfix_str(f"{f.name}: {step.stage}", refresh=True)

    def _ocr(self, where: str, f: _File, step: Step) -> None:
        if step.done == 0:  # the count of pages to read
            f.to_read = step.total
            if self.mode == "bar" and (self.total > 1 or step.total > 1):
                if self._pages_bar is None:
                    self._pages_bar = self._bar(0, "pages OCR'd", "page")
                self._pages_bar.total = sum(x.to_read for x in self.files)
                self._pages_bar.refresh()
            return
        f.read = step.done
        if self._pages_bar is not None:
            self._pages_bar.update(1)
        if self.mode == "lines" and f.to_read > 1:
            now = time.monotonic()
            if step.done >= step.total or now - f.last_line >= LINE_EVERY:
                f.last_line = now
                self._line(f"{where}: OCR {step.done} of {step.total} pages, {step.seconds:.0f} s")

    def _log(self, where: str, f: _File, step: Step) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        if step.stage == "ocr":
            if step.done and step.done >= step.total:
                log.info("%s: ocr %.2f s (%s)", where, step.seconds, plural(step.total, "page"))
            return
        counts = step.counts()
        log.info("%s: %s %.2f s%s", where, step.stage, step.seconds, f" ({counts})" if counts else "")

    # --- called from the command's thread ------------------------------------------------------------------

    def finished(self, index: int, *, stopped: bool = False) -> None:
        """A file's outcome was printed (`stopped`: it was not archived because the batch was interrupted)."""
        with self._lock:
            self.done += 1
            if self._files_bar is not None:
                self._files_bar.update(1)
            if self._pages_bar is not None:  # a file stopped or refused: its pages will not be read
                f = self.files[index]
                self._pages_bar.total = max(self._pages_bar.n, self._pages_bar.total - (f.to_read - f.read))
                f.to_read = f.read
                self._pages_bar.refresh()
            if self.mode == "lines" and self.total > 1 and not stopped:
                elapsed = time.monotonic() - self.started
                left = elapsed / self.done * (self.total - self.done)
                tail = f", about {_duration(left)} left" if self.done < self.total else ""
                self._line(f"{self.done} of {self.total} files done, {_duration(elapsed)} so far{tail}")

    def write(self, text: str) -> None:
        """A result line on stdout, above the bar."""
        with self._lock:
            if self.mode == "bar":
                tqdm.write(text, file=self.out)
            else:
                print(text, file=self.out)
            self.out.flush()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """For a message on stderr (an error): the bar is cleared while it is written, then drawn again."""
        with self._lock:
            if self.mode == "bar":
                with tqdm.external_write_mode(file=self.stream):
                    yield
            else:
                yield

    def _line(self, text: str) -> None:
        print(f"scanarchive: {text}", file=self.stream, flush=True)

    def close(self) -> None:
        with self._lock:
            for bar in (self._pages_bar, self._files_bar):
                if bar is not None:
                    bar.close()
            self._pages_bar = self._files_bar = None

    @contextlib.contextmanager
    def shown(self) -> Iterator[IngestProgress]:
        """While the batch runs: in bar mode, log lines (-v) are written above the bar."""
        try:
            if self.mode == "bar":
                with logging_redirect_tqdm():
                    yield self
            else:
                yield self
        finally:
            self.close()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
