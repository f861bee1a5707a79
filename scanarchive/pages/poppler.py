"""The one wrapper around Poppler's pdftoppm: render one PDF page for OCR.

The page is piped on stdin and read back from stdout, so no page image is
written to disk. pdftoppm gets the page alone, copied out of the scan into a
one-page PDF with pikepdf (~0.3 MB for a 300 dpi JPEG page): given the whole
PDF on a pipe it reads all of it into memory first (81 MB of RSS for a 60 MB
200-page scan, against 23 MB for the one page; bench/memory.py), for every
page. A page that cannot be copied out, or whose copy does not render, is
rendered from the whole PDF as before. pdftoppm writes plain greyscale (PGM), which we wrap as a
PNG with the resolution recorded and the fastest compression: pdftoppm's own
PNG output spent 2.6 s of CPU a page at 150 dpi and 9.8 s at 300 dpi on
compression alone (bench/memory.py), the PGM 0.1–0.2 s. A page that cannot be rendered becomes a PageRenderError,
which the OCR stage turns into a flagged page (the record is still archived).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess

import pikepdf
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


def single_page(pdf: bytes, number: int) -> bytes | None:
    """Page `number` (1-based) alone as a PDF, its streams copied as they are; None if it cannot be copied.

    qpdf (pikepdf) pushes attributes the page inherits (MediaBox, Resources, Rotate) down onto the copy.
    A file qpdf had to repair (any warning) is left to Poppler whole: the copy would be qpdf's repair,
    which may render where Poppler cannot render the archived file (pikepdf's cyclic-toc.pdf).
    """
    try:
        with pikepdf.open(io.BytesIO(pdf)) as source:
            if not 1 <= number <= len(source.pages):
                return None
            alone = pikepdf.new()
            alone.pages.append(source.pages[number - 1])
            out = io.BytesIO()
            alone.save(out, stream_decode_level=pikepdf.StreamDecodeLevel.none, compress_streams=False)
            if source.get_warnings() or alone.get_warnings():
                return None
            return out.getvalue()
    except Exception:  # qpdf raises several types on damaged input; pdftoppm then gets the whole PDF
        return None


def render_image(pdf: bytes, number: int, dpi: int, *, timeout: float, cwd: str | None = None) -> Image.Image:
    """One page as a greyscale image (loaded), its resolution recorded as `dpi`."""
    alone = single_page(pdf, number)
    proc = None
    if alone is not None:
        proc = _pdftoppm(alone, 1, number, dpi, timeout, cwd)
    if proc is None or proc.returncode != 0 or not proc.stdout:
        proc = _pdftoppm(pdf, number, number, dpi, timeout, cwd)
    if proc.returncode != 0 or not proc.stdout:
        raise PageRenderError(f"page {number} could not be rendered (pdftoppm exit {proc.returncode})")
    try:
        page = Image.open(io.BytesIO(proc.stdout), formats=["PPM"])
        page.load()
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise PageRenderError(f"page {number} could not be rendered (unreadable output)") from exc
    page.info["dpi"] = (dpi, dpi)
    return page


def _pdftoppm(
    pdf: bytes, page: int, number: int, dpi: int, timeout: float, cwd: str | None
) -> subprocess.CompletedProcess[bytes]:
    """pdftoppm on page `page` of `pdf` (page `number` of the scan, for messages)."""
    cmd = [executable(), "-f", str(page), "-l", str(page), "-r", str(dpi), "-gray", "-singlefile", "-"]
    env = dict(os.environ, TMPDIR=cwd) if cwd else None
    try:
        return run_engine(cmd, stdin=pdf, timeout=timeout, cwd=cwd, env=env)
    except EngineTimeout as exc:
        raise PageRenderError(f"page {number} took longer than {timeout:.0f} s to render") from exc
    except OSError as exc:
        raise PageRenderError(f"pdftoppm could not be started ({exc.strerror})") from exc


def render_page(pdf: bytes, number: int, dpi: int, *, timeout: float, cwd: str | None = None) -> bytes:
    """One page as a PNG (fastest compression), its resolution recorded."""
    out = io.BytesIO()
    render_image(pdf, number, dpi, timeout=timeout, cwd=cwd).save(out, format="PNG", compress_level=1, dpi=(dpi, dpi))
    return out.getvalue()
