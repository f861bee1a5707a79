"""Build the record's PDF without lossy recompression: the scan is the record.

A PDF input is kept byte for byte. Images go through img2pdf, which embeds
JPEG data as-is and PNG/TIFF data losslessly. Where img2pdf refuses an image
(an alpha channel, an odd TIFF), the pages are decoded and stored as PNG —
still lossless — after flattening any transparency onto white paper.
"""

from __future__ import annotations

import io
import logging

import img2pdf
import pikepdf
from PIL import Image

from scanarchive.config import IngestSettings
from scanarchive.errors import InputRejected
from scanarchive.pages.load import Scan, iter_image_pages

log = logging.getLogger(__name__)


def build_pdf(scan: Scan, settings: IngestSettings, pages: list[int] | None = None) -> bytes:
    """The record's PDF: the whole scan, or only `pages` (1-based) when a stack is split."""
    if pages is not None and pages == list(range(1, scan.page_count + 1)):
        pages = None
    if scan.kind == "pdf":
        return scan.data if pages is None else _pdf_pages(scan.data, pages)
    if pages is None:
        try:
            return bytes(img2pdf.convert(scan.data, rotation=img2pdf.Rotation.ifvalid))
        except Exception as exc:  # img2pdf raises many types (AlphaChannelError, ValueError, …)
            log.info("img2pdf refused the image as it is (%s); storing its pages as lossless PNG", type(exc).__name__)
    wanted = set(pages) if pages is not None else None
    pngs = [
        _png(frame)
        for number, frame in enumerate(iter_image_pages(scan.data, settings), start=1)
        if wanted is None or number in wanted
    ]
    try:
        return bytes(img2pdf.convert(pngs, rotation=img2pdf.Rotation.ifvalid))
    except Exception as exc:
        raise InputRejected("the image cannot be stored as a PDF page") from exc


def _pdf_pages(data: bytes, pages: list[int]) -> bytes:
    """Some pages of a PDF, copied object for object (their images are not re-encoded)."""
    with pikepdf.open(io.BytesIO(data)) as source, pikepdf.new() as target:
        for number in pages:
            target.pages.append(source.pages[number - 1])
        out = io.BytesIO()
        target.save(out)
    return out.getvalue()


def _png(frame: Image.Image) -> bytes:
    if frame.mode in ("RGBA", "LA", "PA") or (frame.mode == "P" and "transparency" in frame.info):
        rgba = frame.convert("RGBA")
        flat = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        frame = Image.alpha_composite(flat, rgba).convert("RGB")
    elif frame.mode not in ("1", "L", "RGB", "P"):
        frame = frame.convert("RGB")
        # A 16-bit grey PNG's tRNS value (an int) is not a valid RGB transparency: Pillow's PNG writer
        # refuses it (found by the peer corpora: Pillow's i_trns.png). The page is flattened anyway.
        frame.info.pop("transparency", None)
    out = io.BytesIO()
    dpi = frame.info.get("dpi")
    frame.save(out, format="PNG", dpi=dpi) if dpi else frame.save(out, format="PNG")
    return out.getvalue()
