"""Printed text is not a note: where a note sheet printed something, the OCR must not read it.

A note sheet's code says which sheet it is, so where its labels, headings, code, footer and tick boxes
are printed is known (pages/sheets.py); ingest/identify.py maps them onto the scan. Here they are:

* whitened on the OCR copy before the engines read it (the archived image is never altered), so no
  printed word is indexed and no printed word runs into a handwritten one on the same OCR line;
* and any word the engines still return mostly inside one is dropped (a speck of a printed letter).

Regions are fractions of the upright OCR page's width and height, so they hold whatever resolution
the page is rendered at for OCR.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from PIL import Image, ImageDraw

from scanarchive.ocr.document import Word

Region = tuple[float, float, float, float]  # left, top, right, bottom, as fractions of the page's width and height
INSIDE_SHARE = 0.5  # a word with at least this share of its box in printed regions is printed text


def to_pixels(region: Region, size: tuple[int, int]) -> tuple[int, int, int, int]:
    left, top, right, bottom = region
    width, height = size
    return (
        max(0, math.floor(left * width)),
        max(0, math.floor(top * height)),
        min(width, math.ceil(right * width)),
        min(height, math.ceil(bottom * height)),
    )


def whiten(image: Image.Image, regions: Sequence[Region]) -> Image.Image:
    """A copy of a greyscale page with every region painted paper-white (the page itself if there are none)."""
    if not regions:
        return image
    out = image.copy()
    draw = ImageDraw.Draw(out)
    for region in regions:
        left, top, right, bottom = to_pixels(region, out.size)
        if right > left and bottom > top:
            draw.rectangle((left, top, right - 1, bottom - 1), fill=255)
    return out


def inside_share(box: tuple[int, int, int, int], regions: Sequence[Region], size: tuple[int, int]) -> float:
    """The share of a word's box (left, top, width, height in page px) that lies in printed regions
    (overlapping regions counted once, by sampling a grid over the box)."""
    left, top, width, height = box
    if width <= 0 or height <= 0:
        return 0.0
    rects = [to_pixels(r, size) for r in regions]
    steps = 8
    hits = 0
    for i in range(steps):
        x = left + (i + 0.5) * width / steps
        for j in range(steps):
            y = top + (j + 0.5) * height / steps
            if any(r[0] <= x < r[2] and r[1] <= y < r[3] for r in rects):
                hits += 1
    return hits / (steps * steps)


def outside(words: Sequence[Word], regions: Sequence[Region], size: tuple[int, int]) -> list[Word]:
    """The words that are not printed text: those with less than half their box inside printed regions."""
    if not regions:
        return list(words)
    return [w for w in words if inside_share(w.box, regions, size) < INSIDE_SHARE]


def upright_point(x: float, y: float, size: tuple[float, float], angle: int) -> tuple[float, float]:
    """Where point (x, y) of a `size` page goes when the page is turned `angle` degrees counter-clockwise
    with its canvas grown to fit (pages.load.upright, Pillow's rotate(expand=True)); and the new size is
    :func:`upright_size`."""
    width, height = size
    theta = math.radians(angle % 360)
    cos, sin = math.cos(theta), math.sin(theta)
    dx, dy = x - width / 2, y - height / 2
    new_w, new_h = upright_size(size, angle)
    return (cos * dx + sin * dy + new_w / 2, -sin * dx + cos * dy + new_h / 2)


def upright_size(size: tuple[float, float], angle: int) -> tuple[float, float]:
    width, height = size
    theta = math.radians(angle % 360)
    cos, sin = abs(math.cos(theta)), abs(math.sin(theta))
    return (width * cos + height * sin, width * sin + height * cos)
