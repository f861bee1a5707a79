"""Hostile and broken scan files, generated on the fly (no fixture of unknown origin)."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pikepdf
from PIL import Image, ImageDraw


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_with_size(width: int, height: int) -> bytes:
    """A PNG whose header claims width×height (the data is one tiny zlib stream)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + _png_chunk(b"IEND", b"")
    )


def _image_bytes(fmt: str, **kwargs: object) -> bytes:
    image = Image.new("L", (600, 400), 255)
    for x in range(0, 600, 7):
        for y in range(0, 400, 5):
            image.putpixel((x, y), (x * y) % 256)
    out = io.BytesIO()
    image.save(out, format=fmt, **kwargs)
    return out.getvalue()


def tiff_multipage() -> bytes:
    pages = [Image.new("L", (500, 300), shade) for shade in (255, 230, 210)]
    for n, page in enumerate(pages):  # some ink on each, so no page counts as blank
        ImageDraw.Draw(page).line((20, 40 + 30 * n, 480, 60 + 30 * n), fill=0, width=6)
    out = io.BytesIO()
    pages[0].save(out, format="TIFF", save_all=True, append_images=pages[1:], compression="tiff_lzw")
    return out.getvalue()


def _password_pdf() -> bytes:
    pdf = pikepdf.new()
    pdf.add_blank_page()
    out = io.BytesIO()
    pdf.save(out, encryption=pikepdf.Encryption(user="secret", owner="secret2"))
    return out.getvalue()


# name -> (file name to use, bytes, words the reason must contain)
BAD_FILES: dict[str, tuple[str, Callable[[], bytes], str]] = {
    "zero-byte": ("empty.png", lambda: b"", "empty"),
    "text renamed png": ("notes.png", lambda: b"These are not pixels.\nJust text.\n" * 20, "text"),
    "truncated png": ("cut.png", lambda: _image_bytes("PNG")[:-400], "damaged"),
    "truncated jpeg": ("cut.jpg", lambda: _image_bytes("JPEG", quality=90)[:600], "damaged"),
    "truncated tiff": ("cut.tif", lambda: tiff_multipage()[: len(tiff_multipage()) // 2], "damaged"),
    "password pdf": ("locked.pdf", _password_pdf, "password"),
    "decompression bomb": ("bomb.png", lambda: png_with_size(60_000, 60_000), "megapixels"),
    "zero-size image": ("empty-image.png", lambda: png_with_size(0, 0), ""),
    "unknown format": ("mystery.png", lambda: b"\x00\x01\x02\x03" + bytes(range(256)) * 8, "format"),
    "broken pdf": ("broken.pdf", lambda: b"%PDF-1.4\n1 0 obj << /Type /Catalog >>\n%%EOF\n" + b"\x00" * 50, "PDF"),
}


def write_bad(dest: Path, name: str) -> Path:
    filename, make, _ = BAD_FILES[name]
    path = dest / filename
    path.write_bytes(make())
    return path
