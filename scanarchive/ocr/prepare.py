"""Preprocessing for OCR only: the archived image is never altered.

First, on a note sheet, everything the sheet printed (labels, headings, code, footer, tick boxes) is
painted white (scanarchive.ocr.mask): only handwriting is read, and printed words never run into
written ones. Then two steps, both kept because bench/recall.py measured that they help (see the
README's Performance section):

* crop to the written area: the ink's bounding box on a 4×-reduced copy (so
  scanner speckle does not count as writing), plus a margin;
* scale to the engines' best resolution: handwriting scanned at 300 dpi is
  read as well or better at 150 dpi, in about half the time.

Boxes the engines return are mapped back to the page's own pixels with
:meth:`Prepared.to_page`, so stored positions do not depend on preprocessing.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from scanarchive.ocr import mask

OCR_TARGET_DPI = 150
_REDUCE = 4
_INK_LEVEL = 170  # 0-255 after reduction: a 4×4 block this dark holds writing, not speckle
_MARGIN_IN = 0.1


@dataclass(frozen=True)
class Prepared:
    png: bytes
    left: int  # crop offset in page pixels
    top: int
    scale: float  # OCR pixels per page pixel
    empty: bool = False  # no ink at all: nothing to read
    size: tuple[int, int] = (0, 0)  # the page's own width and height (px)

    def to_page(self, box: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
        """(left, top, width, height) in OCR pixels → the same in page pixels."""
        x, y, w, h = box
        s = self.scale
        return (round(self.left + x / s), round(self.top + y / s), round(w / s), round(h / s))


def for_ocr(png: bytes, target_dpi: int = OCR_TARGET_DPI, printed: Sequence[mask.Region] = ()) -> Prepared:
    """The page ready for the engines; `printed`: where a note sheet printed text, whitened first."""
    image = Image.open(io.BytesIO(png))
    image.load()
    dpi = _dpi(image)
    gray = mask.whiten(image.convert("L"), printed)
    small = gray.reduce(_REDUCE) if min(gray.size) >= 8 * _REDUCE else gray
    factor = gray.width / max(1, small.width)
    ink = small.point(lambda v: 255 if v < _INK_LEVEL else 0).getbbox()
    if ink is None:
        return Prepared(png, 0, 0, 1.0, empty=True, size=gray.size)
    margin = round(_MARGIN_IN * dpi)
    left = max(0, round(ink[0] * factor) - margin)
    top = max(0, round(ink[1] * factor) - margin)
    right = min(gray.width, round(ink[2] * factor) + margin)
    bottom = min(gray.height, round(ink[3] * factor) + margin)
    cropped = gray.crop((left, top, right, bottom))
    scale = min(1.0, target_dpi / dpi)
    if scale < 0.95:
        size = (max(1, round(cropped.width * scale)), max(1, round(cropped.height * scale)))
        scale = size[0] / cropped.width
        cropped = cropped.resize(size, Image.Resampling.LANCZOS)
    else:
        scale = 1.0
    out = io.BytesIO()
    effective = round(dpi * scale)
    cropped.save(out, format="PNG", compress_level=1, dpi=(effective, effective))
    return Prepared(out.getvalue(), left, top, scale, size=gray.size)


def _dpi(image: Image.Image) -> float:
    value = image.info.get("dpi")
    try:
        dpi = float(value[0]) if isinstance(value, tuple) else 300.0
    except (TypeError, ValueError, IndexError):
        dpi = 300.0
    return float(round(dpi)) if 50 <= dpi <= 2400 else 300.0  # PNG stores dots per metre: 299.9994 is 300
