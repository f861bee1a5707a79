"""Note sheets: printable pages whose QR code says whose note it is, and reading them back.

Handwriting OCR cannot be trusted to find a client or a date, so metadata is
printed in advance. The QR payload is compact, versioned and authenticated:

    SA1:<archive8>|<client>|<yyyymmdd or ->|<P|T>|<sheet>|<template or ->|<check>

archive8 is the first 8 hex digits of the archive id; check is the first 10
base32 characters of HMAC-SHA256(sheet key, everything before "|<check>").
The sheet key is random, kept in the catalog (the watcher can verify, no one
without the archive can print a sheet that files notes). No name ever goes in.
A QR that fails to parse, names another archive, or fails its check never
files a record: the page is treated as an unidentified sheet.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import io
import os
from dataclasses import dataclass
from datetime import date
from enum import Enum

import img2pdf
import segno
import zxingcpp
from PIL import Image, ImageDraw

from scanarchive.pages import templates

PREFIX = "SA1:"
PAPER_INCHES = {"letter": (8.5, 11.0), "a4": (8.27, 11.69)}
CLASS_CODES = {"progress": "P", "psychotherapy": "T"}
_CLASS_NAMES = {v: k for k, v in CLASS_CODES.items()}
DPI = 300
DECODE_LONG_SIDE = 2200  # pixels: QR decoding runs on a copy scaled to this size


@dataclass(frozen=True)
class SheetInfo:
    archive8: str
    client_code: str
    session_date: str | None  # ISO date or None (an undated sheet)
    record_class: str
    sheet: int
    template: str | None = None

    def body(self) -> str:
        day = self.session_date.replace("-", "") if self.session_date else "-"
        fields = [
            self.archive8,
            self.client_code,
            day,
            CLASS_CODES[self.record_class],
            str(self.sheet),
            self.template or "-",
        ]
        return PREFIX + "|".join(fields)


class QrStatus(Enum):
    NONE = "no sheet code"
    VALID = "sheet code read"
    FOREIGN = "sheet code from another archive"
    INVALID = "sheet code damaged or not genuine"


@dataclass(frozen=True)
class PageCode:
    status: QrStatus
    sheet: SheetInfo | None = None
    orientation: int = 0  # degrees the page is turned (0, 90, 180, 270 …)
    corners: tuple[tuple[float, float], ...] = ()  # the symbol's top-left, top-right, bottom-left on the scan
    text: str = ""


def check_value(key: bytes, body: str) -> str:
    digest = hmac.new(key, body.encode("utf-8"), hashlib.sha256).digest()
    return base64.b32encode(digest).decode()[:10]


def encode(info: SheetInfo, key: bytes) -> str:
    body = info.body()
    return f"{body}|{check_value(key, body)}"


def parse(text: str, key: bytes, archive8: str) -> PageCode:
    """What a decoded QR text means for this archive."""
    if not text.startswith(PREFIX):
        return PageCode(QrStatus.INVALID)
    parts = text[len(PREFIX) :].split("|")
    if len(parts) != 7:
        return PageCode(QrStatus.INVALID)
    arch, client, day, cls, sheet, template, check = parts
    if arch != archive8:
        return PageCode(QrStatus.FOREIGN)
    body = text[: text.rfind("|")]
    try:
        expected = check_value(key, body)
    except UnicodeEncodeError:  # a lone surrogate: no printed sheet carries one
        return PageCode(QrStatus.INVALID)
    # A genuine check value is base32 (ASCII); compare_digest raises TypeError on non-ASCII text.
    if not check.isascii() or not hmac.compare_digest(check, expected):
        return PageCode(QrStatus.INVALID)
    try:
        iso = None if day == "-" else date(int(day[:4]), int(day[4:6]), int(day[6:8])).isoformat()
        info = SheetInfo(arch, client, iso, _CLASS_NAMES[cls], int(sheet), None if template == "-" else template)
    except (ValueError, KeyError):
        return PageCode(QrStatus.INVALID)
    return PageCode(QrStatus.VALID, info)


def new_key() -> bytes:
    return os.urandom(32)


# --- reading -------------------------------------------------------------------


def read_page_code(page: Image.Image, key: bytes, archive8: str) -> PageCode:
    """Find the sheet QR on a page (any rotation, 150–600 dpi, JPEG-compressed scans)."""
    gray = page.convert("L")
    scale = DECODE_LONG_SIDE / max(gray.size)
    candidates = [gray.resize((round(gray.width * scale), round(gray.height * scale)))] if scale < 1 else []
    candidates.append(gray)
    for image in candidates:
        found = zxingcpp.read_barcodes(
            image,
            formats=zxingcpp.BarcodeFormat.QRCode,  # type: ignore[arg-type]  # one format converts implicitly
            return_errors=True,
        )
        for barcode in found:
            if not barcode.valid:
                return PageCode(QrStatus.INVALID)  # a QR is there but does not decode: never guess
            code = parse(barcode.text, key, archive8)
            back = 1 / scale if image is not gray else 1.0
            pos = barcode.position
            corners = tuple((p.x * back, p.y * back) for p in (pos.top_left, pos.top_right, pos.bottom_left))
            return PageCode(code.status, code.sheet, int(barcode.orientation) % 360, corners, barcode.text)
    return PageCode(QrStatus.NONE)


# --- printing ------------------------------------------------------------------


MARGIN = int(0.5 * DPI)  # nothing is printed closer to the paper's edge (tests/test_sheet_layout.py measures it)
QR_LEFT = 1850  # px from the left edge, on every paper size, so box positions do not depend on the paper
QR_TARGET = int(1.25 * DPI)
FIELDS = ("time", "length", "signature")  # write-in fields a sheet can carry: all of them unless chosen
_SIGNATURE_UP = 90  # the signature line's baseline, above the bottom margin
_WRITING_CLEAR = (190, 80)  # the lowest ruled line, above the bottom margin: with, without a signature line


def qr_geometry(text: str) -> tuple[float, float, float]:
    """Where the QR symbol (without its quiet zone) sits on the printed page: x, y, side (300 dpi px)."""
    modules = segno.make(text, error="m", micro=False).symbol_size(border=0)[0]
    scale = max(1, QR_TARGET // (modules + 8))
    return QR_LEFT + 4 * scale, MARGIN + 4 * scale, modules * scale


def content_top(text: str) -> int:
    """The first y below the header and code: where boxes or writing lines begin."""
    _, y, side = qr_geometry(text)
    return int(y + side + 100)


def writing_bottom(paper: str, signature: bool) -> int:
    """The lowest y a ruled writing line is drawn at: above the signature line and the footer."""
    height = round(PAPER_INCHES[paper][1] * DPI)
    return height - MARGIN - _WRITING_CLEAR[0 if signature else 1]


def render_sheet(
    info: SheetInfo,
    key: bytes,
    paper: str = "letter",
    template: templates.Template | None = None,
    fields: tuple[str, ...] = FIELDS,
) -> Image.Image:
    """One printable sheet at 300 dpi (1-bit, so the PDF stays small and the code crisp).
    `template` (the one the code names) adds its tick boxes and sections; `fields` are the write-in
    fields: session time and length (on a first sheet) and a signature line (on every sheet)."""
    if (template.token if template else None) != info.template:
        raise ValueError("the sheet's code must name the template whose boxes it prints, and only that one")
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown sheet field(s): {', '.join(sorted(unknown))}")
    return _compose(info, encode(info, key), paper, template, fields, None)


def _compose(
    info: SheetInfo,
    text: str,
    paper: str,
    template: templates.Template | None,
    fields: tuple[str, ...],
    printed: templates.Printed | None,
) -> Image.Image:
    """The sheet whose code reads `text`; with `printed`, where each printed element went (not the ruled lines)."""
    width_in, height_in = PAPER_INCHES[paper]
    width, height = round(width_in * DPI), round(height_in * DPI)
    page = Image.new("1", (width, height), 1)
    draw = ImageDraw.Draw(page)
    margin = MARGIN
    qr = segno.make(text, error="m", micro=False)
    qr_img = _qr_image(qr, target=QR_TARGET)
    page.paste(qr_img, (QR_LEFT, margin))
    if printed is not None:
        printed.append(("code", (QR_LEFT, margin, QR_LEFT + qr_img.width, margin + qr_img.height)))
    big, small = templates.font(44), templates.font(30)
    day = info.session_date or "date: ____________"
    kind = "Psychotherapy note (kept separate)" if info.record_class == "psychotherapy" else "Progress note"
    sheet = "first sheet" if info.sheet == 1 else f"continuation sheet {info.sheet}"
    templates.text_at(draw, (margin, margin), f"Client {info.client_code}", big, printed, "header")
    if info.session_date:
        templates.text_at(draw, (margin, margin + 70), f"Session {day}", big, printed, "header")
    else:  # the blank is where the date is written by hand: only the words are printed text
        draw.text((margin, margin + 70), f"Session {day}", font=big, fill=0)
        templates.text_at(draw, (margin, margin + 70), "Session date:", big, printed, "header")
    templates.text_at(draw, (margin, margin + 140), f"{kind} · {sheet}", small, printed, "header")
    templates.text_at(
        draw, (margin, margin + 190), f"archive {info.archive8} · do not write over the code", small, printed, "header"
    )
    if info.sheet == 1:
        _session_fields(draw, margin + 70 + big.getmetrics()[0], fields, printed)
    top = content_top(text)
    bottom = writing_bottom(paper, "signature" in fields)
    if template is not None:
        title, face = templates.fitted(template.title, QR_LEFT - margin - 40)
        templates.text_at(draw, (margin, margin + 240), title, face, printed, "title")
        templates.draw(page, template, top, margin, bottom, printed)
    else:
        for y in range(top, bottom + 1, templates.LINE_PITCH):
            draw.line((margin, y, width - margin - 1, y), fill=0, width=2)
    if "signature" in fields:
        _write_in(draw, margin, height - margin - _SIGNATURE_UP, "Signature", 1100, small, printed=printed)
    templates.text_at(
        draw,
        (margin, height - margin - 2),
        "scanarchive note sheet · scan the whole page",
        small,
        printed,
        "footer",
        anchor="ld",
    )
    return page


def _session_fields(
    draw: ImageDraw.ImageDraw, baseline: int, fields: tuple[str, ...], printed: templates.Printed | None = None
) -> None:
    """'Time ____  Length ____ min' on the session line, between the date and the code."""
    small = templates.font(30)
    x: float = MARGIN + 800
    for name, label, rule, unit in (("time", "Time", 240, ""), ("length", "Length", 130, "min")):
        if name in fields:
            x = _write_in(draw, x, baseline, label, rule, small, unit, printed, name) + 60


def _write_in(
    draw: ImageDraw.ImageDraw,
    x: float,
    baseline: int,
    label: str,
    rule: int,
    face: templates.Font,
    unit: str = "",
    printed: templates.Printed | None = None,
    kind: str = "signature",
) -> float:
    """A label and a line to write on, at `baseline`; the x where it ends. Only the words are recorded in
    `printed`: the line is where the hand writes."""
    templates.text_at(draw, (x, baseline), label, face, printed, kind, anchor="ls")
    x += face.getlength(label) + 14
    draw.line((x, baseline + 3, x + rule, baseline + 3), fill=0, width=2)
    x += rule
    if unit:
        templates.text_at(draw, (x + 10, baseline), unit, face, printed, kind, anchor="ls")
        x += 10 + face.getlength(unit)
    return x


@dataclass(frozen=True)
class PrintedPart:
    """One printed element of a sheet (text, a tick box, the code), in page px at 300 dpi."""

    kind: (
        str  # "code", "header", "title", "heading", "label", "box", "section", "time", "length", "signature", "footer"
    )
    box: templates.Rect
    sure: bool  # on every sheet this code can be printed on; otherwise only on one paper size or with a field chosen
    ink: tuple[
        tuple[int, int], ...
    ] = ()  # where it inks the paper (a sample): a part not sure is looked for on the scan


UNSURE_KINDS = frozenset({"time", "length"})  # write-in fields the printer may have left out (--fields)
_INK_SAMPLE = 120


@functools.lru_cache(maxsize=32)
def printed_parts(info: SheetInfo, text: str, template: templates.Template | None) -> tuple[PrintedPart, ...]:
    """Everything printed on the sheet whose code reads `text` (ruled lines aside). The code does not say the
    paper size or the fields chosen: a part printed the same on every paper (and not a chosen field) is sure;
    the rest (the footer and signature, which sit by the paper's bottom edge; time and length) carry a sample
    of their ink, so the caller masks one only where the scan shows it."""
    renders = []
    for paper in PAPER_INCHES:
        parts: templates.Printed = []
        image = _compose(info, text, paper, template, FIELDS, parts)
        renders.append((image, parts))
    everywhere = set.intersection(*(set(parts) for _, parts in renders))
    found: list[PrintedPart] = []
    seen: set[tuple[str, templates.Rect]] = set()
    for image, parts in renders:
        for part in parts:
            if part in seen:
                continue
            seen.add(part)
            kind, box = part
            if part in everywhere and kind not in UNSURE_KINDS:
                found.append(PrintedPart(kind, box, True))
            else:
                found.append(PrintedPart(kind, box, False, _ink(image, box)))
    return tuple(found)


def _ink(image: Image.Image, box: templates.Rect) -> tuple[tuple[int, int], ...]:
    crop = image.crop(box).convert("L")
    width = crop.width
    points = [(box[0] + n % width, box[1] + n // width) for n, v in enumerate(crop.tobytes()) if not v]
    step = max(1, len(points) // _INK_SAMPLE)
    return tuple(points[::step])


def note_sheets(
    archive8: str,
    key: bytes,
    client: str,
    dates: list[str | None],
    record_class: str,
    count: int = 1,
    paper: str = "letter",
    template: templates.Template | None = None,
    fields: tuple[str, ...] = FIELDS,
) -> list[Image.Image]:
    """Every sheet of every session: a first sheet (with the template's tick boxes, if any) and
    `count` - 1 continuation sheets. Continuation sheets are plain ruled pages: their code names no
    template, so no box is looked for on them, and they still join the first sheet's note."""
    pages = []
    for day in dates:
        for n in range(1, count + 1):
            printed = template if n == 1 else None
            info = SheetInfo(archive8, client, day, record_class, n, printed.token if printed else None)
            pages.append(render_sheet(info, key, paper, printed, fields))
    return pages


def _qr_image(qr: segno.QRCode, target: int) -> Image.Image:
    out = io.BytesIO()
    qr.save(out, kind="png", scale=1, border=4)
    out.seek(0)
    small = Image.open(out).convert("1")
    scale = max(1, target // small.width)
    return small.resize((small.width * scale, small.height * scale), Image.Resampling.NEAREST)


def sheets_pdf(pages: list[Image.Image]) -> bytes:
    pngs = []
    for page in pages:
        out = io.BytesIO()
        page.save(out, format="PNG", dpi=(DPI, DPI))
        pngs.append(out.getvalue())
    return bytes(img2pdf.convert(pngs))
