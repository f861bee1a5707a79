"""The one wrapper around Poppler's pdftoppm: render one PDF page for OCR.

The PDF is piped on stdin and the PNG read from stdout, so no page image is
written to disk. A page that cannot be rendered becomes a PageRenderError,
which the OCR stage turns into a flagged page (the record is still archived).
"""

from __future__ import annotations

import os
import shutil

from scanarchive.errors import EngineMissing, ScanarchiveError
from scanarchive.runner import EngineTimeout, run_engine


class PageRenderError(ScanarchiveError):
    """One page could not be rasterised (the page is flagged, not the record lost)."""


def executable() -> str:
    exe = shutil.which("pdftoppm")
    if exe is None:
        raise EngineMissing(
            "pdftoppm (Poppler) is not installed, so PDF pages cannot be read for the search index",
            hint="Install it: apt-get install poppler-utils. The scan was left in place.",
        )
    return exe


def render_page(pdf: bytes, number: int, dpi: int, *, timeout: float, cwd: str | None = None) -> bytes:
    exe = executable()
    cmd = [exe, "-f", str(number), "-l", str(number), "-r", str(dpi), "-gray", "-png", "-singlefile", "-"]
    env = dict(os.environ, TMPDIR=cwd) if cwd else None
    try:
        proc = run_engine(cmd, stdin=pdf, timeout=timeout, cwd=cwd, env=env)
    except EngineTimeout as exc:
        raise PageRenderError(f"page {number} took longer than {timeout:.0f} s to render") from exc
    except OSError as exc:
        raise PageRenderError(f"pdftoppm could not be started ({exc.strerror})") from exc
    if proc.returncode != 0 or not proc.stdout:
        raise PageRenderError(f"page {number} could not be rendered (pdftoppm exit {proc.returncode})")
    return proc.stdout
