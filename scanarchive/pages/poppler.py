"""The one wrapper around Poppler's pdftoppm: render one PDF page for OCR.

The PDF is piped on stdin and the page read from stdout, so no page image is
written to disk. pdftoppm writes plain greyscale (PGM), which we wrap as a
PNG with the resolution recorded and the fastest compression: pdftoppm's own
PNG output spent 2.6 s of CPU a page at 150 dpi and 9.8 s at 300 dpi on
compression alone (bench/memory.py), the PGM 0.1–0.2 s. A page that cannot be rendered becomes a PageRenderError,
which the OCR stage turns into a flagged page (the record is still archived).
"""

from __future__ import annotations

import io
import os
import shutil

from PIL import Image

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


def render_image(pdf: bytes, number: int, dpi: int, *, timeout: float, cwd: str | None = None) -> Image.Image:
    """One page as a greyscale image (loaded), its resolution recorded as `dpi`."""
    exe = executable()
    cmd = [exe, "-f", str(number), "-l", str(number), "-r", str(dpi), "-gray", "-singlefile", "-"]
    env = dict(os.environ, TMPDIR=cwd) if cwd else None
    try:
        proc = run_engine(cmd, stdin=pdf, timeout=timeout, cwd=cwd, env=env)
    except EngineTimeout as exc:
        raise PageRenderError(f"page {number} took longer than {timeout:.0f} s to render") from exc
    except OSError as exc:
        raise PageRenderError(f"pdftoppm could not be started ({exc.strerror})") from exc
    if proc.returncode != 0 or not proc.stdout:
        raise PageRenderError(f"page {number} could not be rendered (pdftoppm exit {proc.returncode})")
    try:
        page = Image.open(io.BytesIO(proc.stdout), formats=["PPM"])
        page.load()
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise PageRenderError(f"page {number} could not be rendered (unreadable output)") from exc
    page.info["dpi"] = (dpi, dpi)
    return page


def render_page(pdf: bytes, number: int, dpi: int, *, timeout: float, cwd: str | None = None) -> bytes:
    """One page as a PNG (fastest compression), its resolution recorded."""
    out = io.BytesIO()
    render_image(pdf, number, dpi, timeout=timeout, cwd=cwd).save(out, format="PNG", compress_level=1, dpi=(dpi, dpi))
    return out.getvalue()
