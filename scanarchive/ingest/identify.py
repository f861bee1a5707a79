"""Look at each page once, split a stack into records, and decide whose each record is.

    look      sheet code, quality and tick boxes of every page        (pages.sheets, pages.qc, pages.templates)
    group     a new sheet starts a record; plain pages continue the one before
    metadata  sheet code > command line > file-name pattern > unfiled

Nothing here touches the archive: the caller hands in the settings, the sheet
key and the archive's id prefix (ingest/analyse.py runs this in the parser child).

Misfiling is the worst outcome, so every doubt leaves a record unfiled: a
damaged or foreign code starts an unfiled record (never appended to the
previous client's note), and a code that disagrees with --client/--date/--class
is never overridden.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import date

from PIL import Image, ImageFilter

from scanarchive.config import IngestSettings
from scanarchive.errors import InputRejected
from scanarchive.names import CLIENT_CODE
from scanarchive.ocr import mask
from scanarchive.pages import load, qc, sheets, templates


@dataclass
class PageLook:
    number: int  # in the scanned file, from 1
    code: sheets.PageCode
    quality: qc.PageQc
    boxes: dict[str, str] = field(default_factory=dict)  # tick boxes of a template sheet (clinical content)
    # where a note sheet printed its text, code and boxes, on the upright OCR copy: masked, never indexed
    printed: tuple[mask.Region, ...] = ()


@dataclass
class RecordOutcome:
    record_id: str
    source_pages: list[int]
    client_code: str | None
    session_date: str | None
    record_class: str
    identified_by: str  # "sheet" | "filename" | "command line" | "" (unfiled)
    ocr_failed_pages: list[int] = field(default_factory=list)  # record-relative
    note: str = ""  # why it is unfiled, if it is

    @property
    def filed(self) -> bool:
        return self.client_code is not None and self.session_date is not None


def look_at_pages(scan: load.Scan, settings: IngestSettings, key: bytes, archive8: str) -> list[PageLook]:
    """Every page once. `key` and `archive8` (the archive's sheet key and id prefix) verify sheet codes; no
    archive is needed, so this runs in the parser sandbox (ingest/parser.py)."""
    looks = []
    for number, image, dpi in load.iter_analysis_pages(scan, settings, settings.ocr_timeout_seconds):
        if image is None:
            quality = qc.PageQc(number, dpi, problems=["could not be rendered for checking"])
            looks.append(PageLook(number, sheets.PageCode(sheets.QrStatus.NONE), quality))
            continue
        code = sheets.read_page_code(image, key, archive8)
        orientation = code.orientation if code.status is sheets.QrStatus.VALID else None
        if dpi is not None and dpi < qc.MIN_DPI:
            # Cameras and some apps write 72 dpi whatever the pixels: trust the pixels when they show
            # at least a letter-width page at that resolution (a true 100 dpi page scan stays refused).
            dpi = max(dpi, round(image.width / 8.5))
        look = PageLook(number, code, qc.check_page(image, number, dpi, orientation))
        if code.status is sheets.QrStatus.VALID and code.sheet is not None and code.sheet.template:
            look.boxes = _read_boxes(image, code, look.quality)
        if code.status is sheets.QrStatus.VALID and code.sheet is not None:
            look.printed = printed_regions(image, code)
        looks.append(look)
        image.close()
    too_coarse = [look for look in looks if look.quality.dpi is not None and look.quality.dpi < qc.MIN_DPI]
    if too_coarse:
        pages = ", ".join(str(look.number) for look in too_coarse)
        raise InputRejected(
            f"scanned at {too_coarse[0].quality.dpi} dpi (page {pages}); at least {qc.MIN_DPI} dpi is needed "
            "to read a handwritten note reliably",
            hint="Scan the note again at 300 dpi; the file was not archived.",
        )
    return looks


def _read_boxes(image: Image.Image, code: sheets.PageCode, quality: qc.PageQc) -> dict[str, str]:
    """Tick boxes by the template and version the code names; unclear ones are reported, never guessed."""
    assert code.sheet is not None and code.sheet.template is not None
    template = templates.load_all().get(code.sheet.template)
    if template is None or len(code.corners) != 3:
        quality.warnings.append("its tick-box template is unknown here, so the boxes were not read")
        return {}
    x, y, side = sheets.qr_geometry(code.text)
    frame = templates.Frame((x, y), side, *code.corners)
    readings = templates.read_boxes(image, template, frame, sheets.content_top(code.text), sheets.MARGIN)
    unclear = sum(1 for r in readings if r.state == templates.UNCLEAR)
    if unclear:  # a count only: which boxes is clinical content
        quality.warnings.append(f"{unclear} tick box(es) unclear — check them on the paper (not guessed)")
    return {r.key: r.state for r in readings}


_PAD = 10  # page px at 300 dpi around each printed part: anti-aliasing and the frame's error near the code
_PAD_PER_PX = 0.006  # and more per px away from the code: the frame is read off a 1.25 in symbol
_INK_DARK = 150  # grey level (0-255) that counts as ink when looking for a part not sure to be printed
_INK_FOUND = 0.6  # share of a part's ink found dark on the scan for it to be taken as printed there
_SEARCH = range(-24, 25, 4)  # page px: how far a part not sure to be printed is looked for around its place


def printed_regions(image: Image.Image, code: sheets.PageCode) -> tuple[mask.Region, ...]:
    """Where the sheet printed text, its code and tick boxes, as regions of the upright OCR copy of this page:
    the OCR masks them, so only handwriting is indexed. A part that depends on the paper size or the fields
    chosen at printing (the code says neither) is masked only where the scan shows its ink. An unknown
    template masks its header and footer only (its boxes are not known here)."""
    if code.sheet is None or len(code.corners) != 3:
        return ()
    template = templates.load_all().get(code.sheet.template) if code.sheet.template else None
    x, y, side = sheets.qr_geometry(code.text)
    frame = templates.Frame((x, y), side, *code.corners)
    gray = image.convert("L")
    dark = gray.filter(ImageFilter.MinFilter(3)).tobytes()  # a stroke a pixel off its place still counts
    size = (float(image.width), float(image.height))
    angle = code.orientation
    turned = mask.upright_size(size, angle)
    regions = []
    for part in sheets.printed_parts(code.sheet, code.text, template):
        shift = (0.0, 0.0)
        if not part.sure:
            found = _found(part, frame, dark, image.size)
            if found is None:
                continue
            shift = found
        left, top, right, bottom = part.box
        pad = _PAD + _PAD_PER_PX * math.dist(((left + right) / 2, (top + bottom) / 2), (x + side / 2, y + side / 2))
        corners = [
            frame.to_scan(px + shift[0], py + shift[1])
            for px in (left - pad, right + pad)
            for py in (top - pad, bottom + pad)
        ]
        points = [mask.upright_point(cx, cy, size, angle) for cx, cy in corners]
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        regions.append(
            (
                max(0.0, min(xs) / turned[0]),
                max(0.0, min(ys) / turned[1]),
                min(1.0, max(xs) / turned[0]),
                min(1.0, max(ys) / turned[1]),
            )
        )
    return tuple(r for r in regions if r[2] > r[0] and r[3] > r[1])


def _found(
    part: sheets.PrintedPart, frame: templates.Frame, dark: bytes, size: tuple[int, int]
) -> tuple[float, float] | None:
    """The offset (page px) at which a part's ink shows on the scan, or None if it is not printed there."""
    width, height = size
    origin = frame.to_scan(0, 0)
    ux, uy = (a - b for a, b in zip(frame.to_scan(1, 0), origin, strict=True))
    vx, vy = (a - b for a, b in zip(frame.to_scan(0, 1), origin, strict=True))
    base = [frame.to_scan(px, py) for px, py in part.ink]

    def share(dx: int, dy: int) -> float:
        ox, oy = dx * ux + dy * vx, dx * uy + dy * vy
        hits = 0
        for sx, sy in base:
            ix, iy = round(sx + ox), round(sy + oy)
            if 0 <= ix < width and 0 <= iy < height and dark[iy * width + ix] < _INK_DARK:
                hits += 1
        return hits / max(1, len(base))

    # coarse, then the best place to the pixel: a thin stroke a few px off its place misses its ink entirely
    coarse = max(((dx, dy) for dx in _SEARCH for dy in _SEARCH), key=lambda d: share(*d))
    near = range(-_SEARCH.step + 1, _SEARCH.step)
    fine = max(((coarse[0] + dx, coarse[1] + dy) for dx in near for dy in near), key=lambda d: share(*d))
    best, where = share(*fine), (float(fine[0]), float(fine[1]))
    return where if best >= _INK_FOUND else None


@dataclass
class Group:
    pages: list[int]
    sheet: sheets.SheetInfo | None = None
    note: str = ""
    blank: int = 0  # blank pages (duplex backs) that followed this record's pages


def group_pages(looks: list[PageLook]) -> list[Group]:
    """Split a stack where a new sheet starts; pages without a code continue the record before them.

    A page whose code is damaged or from another archive starts an *unfiled* record: it is
    clearly the start of some sheet, and appending it to the previous client's note would
    be a misfiling, the worst outcome here.
    """
    groups: list[Group] = []
    current: Group | None = None
    leading_blank = 0
    for look in looks:
        if look.quality.blank:
            if current is None:
                leading_blank += 1
            else:
                current.blank += 1
            continue
        code = look.code
        if code.status is sheets.QrStatus.VALID and code.sheet is not None:
            same = current is not None and current.sheet is not None and _same_session(current.sheet, code.sheet)
            if current is None or code.sheet.sheet == 1 or not same:
                current = Group([], code.sheet)
                groups.append(current)
        elif code.status in (sheets.QrStatus.FOREIGN, sheets.QrStatus.INVALID):
            current = Group([], None, f"page {look.number}: {code.status.value}")
            groups.append(current)
        elif current is None:
            current = Group([])
            groups.append(current)
        current.pages.append(look.number)
    if groups:
        groups[0].blank += leading_blank
    return groups


def _same_session(a: sheets.SheetInfo, b: sheets.SheetInfo) -> bool:
    return (a.client_code, a.session_date, a.record_class) == (b.client_code, b.session_date, b.record_class)


def filename_metadata(pattern: str, name: str) -> tuple[str | None, str | None]:
    """(client, date) from a configured file-name pattern with named groups, or (None, None)."""
    if not pattern:
        return None, None
    match = re.search(pattern, name)
    if match is None:
        return None, None
    found = match.groupdict()
    client, day = found.get("client"), found.get("date")
    if client is not None and not CLIENT_CODE.fullmatch(client):
        client = None  # not a valid code: never file under it
    iso = None
    if day:
        digits = re.sub(r"\D", "", day)
        if len(digits) == 8:
            try:
                iso = date(int(digits[:4]), int(digits[4:6]), int(digits[6:])).isoformat()
            except ValueError:
                iso = None
    return client or None, iso


def metadata(
    group: Group,
    client: str | None,
    session_date: str | None,
    record_class: str | None,
    name_client: str | None,
    name_date: str | None,
) -> RecordOutcome:
    record_id = str(uuid.uuid4())
    if group.sheet is not None:
        info = group.sheet
        given = (client, session_date, record_class)
        printed = (info.client_code, info.session_date, info.record_class)
        # only what the sheet states can conflict; an undated sheet takes --date
        conflict = any(v is not None and w is not None and v != w for v, w in zip(given, printed, strict=True))
        if conflict:
            return RecordOutcome(
                record_id,
                group.pages,
                None,
                None,
                info.record_class,
                "",
                note="the sheet code disagrees with --client/--date/--class; left unfiled",
            )
        day = info.session_date or session_date  # an undated sheet takes --date
        return RecordOutcome(
            record_id,
            group.pages,
            info.client_code,
            day,
            info.record_class,
            "sheet",
            note="" if day else "the sheet was undated",
        )
    if group.note:  # a damaged or foreign sheet code: never filed by a guess
        return RecordOutcome(record_id, group.pages, None, None, record_class or "progress", "", note=group.note)
    if client is not None or session_date is not None:
        return RecordOutcome(record_id, group.pages, client, session_date, record_class or "progress", "command line")
    if name_client is not None or name_date is not None:
        return RecordOutcome(record_id, group.pages, name_client, name_date, record_class or "progress", "filename")
    return RecordOutcome(
        record_id,
        group.pages,
        None,
        None,
        record_class or "progress",
        "",
        note="no sheet code and no client on the command line",
    )
