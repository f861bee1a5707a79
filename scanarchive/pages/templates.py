"""Note-sheet templates with tick boxes: data in scanarchive/data/sheets/<id>@<version>.toml, a fixed
layout computed from the template, and reading the boxes back from a scan.

Handwriting OCR is weak; a filled box is not. The sheet's QR code names the
template and version, so every box's place on the page is known; the code's
four corners (read by zxing) map page coordinates onto the scan, and each box
is then found precisely by its printed border. A box reads as ticked, empty or
unclear — never a guess: marks that could be a stray pen line are unclear.

Two layouts. Layout 1 (the first versions, progress@1 and risk@1) is frozen: sheets printed from it are
read by it for good. Layout 2 (`layout = 2` in the file) puts each box's label close to its right and
the row heading, in bold, well to the left of the first box; every label is fitted to the width left
for it, so the sheet stays inside the 0.5 in margin on letter and A4. Its boxes use the same size,
outline and row pitch as layout 1, so the reader below treats both alike.
"""

from __future__ import annotations

import functools
import math
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from scanarchive import packagedata
from scanarchive.errors import ConfigError

FOLDER = packagedata.SHEETS
DPI = 300
BOX = 66  # px at 300 dpi: 0.22 in
BORDER = 4
FIRST_COLUMN = 380  # px from the margin: group labels end well before the first box's neighbourhood
COLUMN = 720  # px between box columns
ROW = 190  # rows far enough apart that no box's neighbourhood reaches another box
LABEL_GAP = 130  # px from a box to its label: the label never enters the box's neighbourhood
TICKED, EMPTY, UNCLEAR = "ticked", "empty", "unclear"

# Layout 2 (page px at 300 dpi, with the 150 px margin): boxes at x = 580, 1210, 1840. A label starts
# 90 px right of its box (the reader looks 78 px around a box) and is at most 330 px wide, so the third
# ends by x = 2326, inside the margin of A4 (2331); at least 140 px then separate it from the next box.
# The row heading ends by x = 430, 150 px before the first box: further from it than the box's own label.
FIRST_COLUMN_2 = 430
COLUMN_2 = 630
LABEL_GAP_2 = 90
LABEL_WIDTH_2 = 330
HEADING_WIDTH_2 = 280
WRITING_GAP_2 = 100  # below the last row of boxes to the writing space
LINE_PITCH = 96  # ruled writing lines, 0.32 in apart (layout 2 and sheets without a template)
LINE_PITCH_1 = int(0.36 * DPI)  # layout 1's sections
LAYOUTS = (1, 2)


@dataclass(frozen=True)
class BoxSpec:
    key: str
    label: str


@dataclass(frozen=True)
class Section:
    label: str
    lines: int
    fill: bool = False  # layout 2, last section only: ruled down to the bottom of the writing space


@dataclass(frozen=True)
class Template:
    id: str
    version: int
    title: str
    groups: tuple[tuple[str, tuple[BoxSpec, ...]], ...]
    sections: tuple[Section, ...]
    layout: int = 1

    @property
    def token(self) -> str:
        return f"{self.id}@{self.version}"

    @property
    def keys(self) -> list[str]:
        return [b.key for _, boxes in self.groups for b in boxes]


@dataclass(frozen=True)
class Placed:
    key: str
    label: str
    x: int  # top-left of the box, page px at 300 dpi
    y: int


def load_all(folder: Path | None = None) -> dict[str, Template]:
    """Every template version, by token ("progress@1"). Parsed once per set of files: ingest asks
    for every sheet page, and a long-running watcher still sees a template added or changed."""
    files = tuple((path, path.stat().st_mtime_ns) for path in sorted((folder or FOLDER).glob("*@*.toml")))
    return dict(_load(files))


@functools.lru_cache(maxsize=8)
def _load(files: tuple[tuple[Path, int], ...]) -> tuple[tuple[str, Template], ...]:
    found: dict[str, Template] = {}
    for path, _ in files:
        template = _parse(path)
        if template.token != path.stem:
            raise ConfigError(f"{path}: id and version must match the file name ({template.token} vs {path.stem})")
        found[template.token] = template
    return tuple(found.items())


def latest(template_id: str, folder: Path | None = None) -> Template:
    versions = [t for t in load_all(folder).values() if t.id == template_id]
    if not versions:
        known = sorted({t.id for t in load_all(folder).values()})
        raise ConfigError(f"there is no sheet template {template_id!r}", hint=f"Templates: {', '.join(known)}.")
    return max(versions, key=lambda t: t.version)


_TOP_KEYS = {"id", "version", "title", "layout", "groups", "sections"}


def _parse(path: Path) -> Template:
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
        unknown = set(doc) - _TOP_KEYS
        if unknown:
            raise ConfigError(f"the sheet template {path} has unknown key(s): {', '.join(sorted(unknown))}")
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,31}", str(doc.get("id", ""))):
            raise ConfigError(f"the sheet template {path}: id must be 1-32 lower-case letters, digits, '_' or '-'")
        groups = tuple(
            (str(g["label"]), tuple(BoxSpec(str(b["key"]), str(b["label"])) for b in g["boxes"]))
            for g in doc.get("groups", [])
        )
        sections = tuple(_section(s) for s in doc.get("sections", []))
        kind = int(doc.get("layout", 1))
        template = Template(str(doc["id"]), int(doc["version"]), str(doc["title"]), groups, sections, kind)
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"the sheet template {path} is not valid ({exc})") from exc
    keys = template.keys
    if len(set(keys)) != len(keys) or not all(k and " " not in k and "|" not in k for k in keys):
        raise ConfigError(f"the sheet template {path}: box keys must be unique words like 'topic.sleep'")
    if any(len(boxes) > 3 for _, boxes in groups):
        raise ConfigError(f"the sheet template {path}: at most 3 boxes per group (one row)")
    if template.layout not in LAYOUTS:
        raise ConfigError(f"the sheet template {path}: layout must be 1 or 2 (2 for a new template)")
    if any(s.lines < 0 for s in template.sections):
        raise ConfigError(f"the sheet template {path}: a section's lines cannot be negative")
    filling = [n for n, s in enumerate(template.sections) if s.fill]
    if filling and (template.layout == 1 or filling != [len(template.sections) - 1]):
        raise ConfigError(f"the sheet template {path}: only the last section may fill the page, and only in layout 2")
    return template


def _section(doc: dict[str, object]) -> Section:
    fill = doc.get("fill", False)
    if not isinstance(fill, bool):
        raise ValueError("a section's fill must be true or false")
    lines = doc.get("lines", 0) if fill else doc["lines"]
    if isinstance(lines, bool) or not isinstance(lines, (int, float, str)):
        raise ValueError("a section's lines must be a number")
    return Section(str(doc["label"]), int(lines), fill)


def layout(template: Template, top: int, margin: int) -> tuple[list[Placed], int]:
    """Where every box goes (a row per group, below `top`), and the y where writing space starts.
    The reader places the boxes of a scanned sheet with this, by the layout its template names."""
    first, column, after = (
        (FIRST_COLUMN, COLUMN, 20) if template.layout == 1 else (FIRST_COLUMN_2, COLUMN_2, BOX + WRITING_GAP_2 - ROW)
    )
    placed = []
    y = top
    for _label, boxes in template.groups:
        for n, box in enumerate(boxes):
            placed.append(Placed(box.key, box.label, margin + first + n * column, y))
        y += ROW
    if template.layout == 2 and not template.groups:
        return placed, top
    return placed, y + after


Font = ImageFont.FreeTypeFont

_REGULAR = ("DejaVuSans.ttf", "LiberationSans-Regular.ttf", "Arial.ttf", "arial.ttf", "Helvetica.ttc")
_BOLD = ("DejaVuSans-Bold.ttf", "LiberationSans-Bold.ttf", "Arial Bold.ttf", "arialbd.ttf")


@functools.lru_cache(maxsize=64)
def font(px: int, bold: bool = False) -> Font:
    """The sheets' type: DejaVu Sans where installed (Linux), else a common system sans, else Pillow's
    own. Layout-2 text is measured where it is drawn, so another font never moves it out of its place."""
    for name in (_BOLD + _REGULAR) if bold else _REGULAR:
        for path in (Path("/usr/share/fonts/truetype/dejavu") / name, Path(name)):
            try:
                return ImageFont.truetype(str(path), px)
            except OSError:
                continue
    fallback = ImageFont.load_default(px)
    if not isinstance(fallback, ImageFont.FreeTypeFont):  # Pillow built without FreeType
        raise ConfigError(
            "no font to print sheets with", hint="Install Pillow with FreeType support (the pip wheels have it)."
        )
    return fallback


def fitted(text: str, width: int, px: int = 30, bold: bool = False) -> tuple[str, Font]:
    """`text` in a font no wider than `width`: smaller type down to 20 px, then cut short with '…'."""
    for size in range(px, 19, -1):
        face = font(size, bold)
        if face.getlength(text) <= width:
            return text, face
    face = font(20, bold)
    while len(text) > 1 and face.getlength(text + "…") > width:
        text = text[:-1]
    return text.rstrip() + "…", face


Rect = tuple[int, int, int, int]  # left, top, right, bottom: page px at 300 dpi
Printed = list[tuple[str, Rect]]  # what a sheet prints besides its ruled lines: (kind, where), as drawn


def text_at(
    draw_: ImageDraw.ImageDraw,
    xy: tuple[float, float],
    text: str,
    face: Font,
    printed: Printed | None = None,
    kind: str = "text",
    anchor: str | None = None,
) -> None:
    """Printed text, and (with `printed`) where its ink went: masked before OCR, so only handwriting is indexed."""
    draw_.text(xy, text, font=face, fill=0, anchor=anchor)
    if printed is not None and text.strip():
        left, top, right, bottom = draw_.textbbox(xy, text, font=face, anchor=anchor)
        printed.append((kind, (math.floor(left), math.floor(top), math.ceil(right), math.ceil(bottom))))


def draw_text_middle(
    draw_: ImageDraw.ImageDraw,
    x: float,
    middle: float,
    text: str,
    face: Font,
    printed: Printed | None = None,
    kind: str = "text",
) -> None:
    """Text whose lower-case letters are centred on `middle` (labels level with their box's centre)."""
    top, bottom = face.getbbox("x")[1], face.getbbox("x")[3]
    text_at(draw_, (x, middle - (top + bottom) / 2), text, face, printed, kind)


def _box(draw_: ImageDraw.ImageDraw, box: Placed, printed: Printed | None) -> None:
    draw_.rectangle((box.x, box.y, box.x + BOX, box.y + BOX), outline=0, width=BORDER)
    if printed is not None:  # the box and what is in it: a tick is read as a fact, never as a word
        printed.append(("box", (box.x, box.y, box.x + BOX + 1, box.y + BOX + 1)))


def draw(
    page: Image.Image, template: Template, top: int, margin: int, bottom: int, printed: Printed | None = None
) -> None:
    """Boxes, their labels, the row headings, and the sections' ruled writing space; no ruled line
    goes lower than `bottom`. With `printed`, every printed element (not the ruled lines) is recorded."""
    if template.layout == 1:
        _draw_1(page, template, top, margin, printed)
        return
    draw_ = ImageDraw.Draw(page)
    placed, y = layout(template, top, margin)
    for n, (label, _) in enumerate(template.groups):
        text, face = fitted(label, HEADING_WIDTH_2, bold=True)
        draw_text_middle(draw_, margin, top + n * ROW + BOX / 2, text, face, printed, "heading")
    for box in placed:
        _box(draw_, box, printed)
        text, face = fitted(box.label, LABEL_WIDTH_2)
        draw_text_middle(draw_, box.x + BOX + LABEL_GAP_2, box.y + BOX / 2, text, face, printed, "label")
    width = page.size[0]
    heading = font(40, bold=True)
    for section in template.sections:
        text_at(draw_, (margin, y), section.label, heading, printed, "section")
        y += 40
        drawn = 0
        while (section.fill or drawn < section.lines) and y + LINE_PITCH <= bottom:
            y += LINE_PITCH
            draw_.line((margin, y, width - margin - 1, y), fill=0, width=2)
            drawn += 1
        y += 60


def _draw_1(page: Image.Image, template: Template, top: int, margin: int, printed: Printed | None = None) -> None:
    """Layout 1, exactly as its sheets were printed (frozen: these sheets are in drawers)."""
    big, small = font(44), font(30)
    draw_ = ImageDraw.Draw(page)
    placed, y = layout(template, top, margin)
    for n, (label, _) in enumerate(template.groups):
        text_at(draw_, (margin, top + n * ROW + 12), label, small, printed, "heading")
    for box in placed:
        _box(draw_, box, printed)
        text_at(draw_, (box.x + BOX + LABEL_GAP, box.y + 12), box.label, small, printed, "label")
    width, height = page.size
    for section in template.sections:
        text_at(draw_, (margin, y), section.label, big, printed, "section")
        y += 80
        for _ in range(section.lines):
            y += LINE_PITCH_1
            if y > height - margin - 60:
                break
            draw_.line((margin, y, width - margin, y), fill=0, width=2)
        y += 40


# --- reading ----------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """Maps page px (300 dpi) to scan px, from the QR symbol's corners on both."""

    page_origin: tuple[float, float]
    page_size: float
    scan_tl: tuple[float, float]
    scan_tr: tuple[float, float]
    scan_bl: tuple[float, float]

    def to_scan(self, x: float, y: float) -> tuple[float, float]:
        u = (x - self.page_origin[0]) / self.page_size
        v = (y - self.page_origin[1]) / self.page_size
        return (
            self.scan_tl[0] + u * (self.scan_tr[0] - self.scan_tl[0]) + v * (self.scan_bl[0] - self.scan_tl[0]),
            self.scan_tl[1] + u * (self.scan_tr[1] - self.scan_tl[1]) + v * (self.scan_bl[1] - self.scan_tl[1]),
        )


Sampler = Callable[[float, float], int]


@dataclass(frozen=True)
class BoxReading:
    key: str
    state: str
    interior: float  # share of inked samples inside the box
    sectors: int  # inked sectors (of 16) in the ring around the box


def read_boxes(scan: Image.Image, template: Template, frame: Frame, top: int, margin: int) -> list[BoxReading]:
    gray = scan.convert("L")
    pixels = gray.load()
    assert pixels is not None
    width, height = gray.size

    def sample(x: float, y: float) -> int:
        sx, sy = frame.to_scan(x, y)
        ix, iy = round(sx), round(sy)
        if 0 <= ix < width and 0 <= iy < height:
            value = pixels[ix, iy]
            return int(value) if isinstance(value, (int, float)) else 255
        return 255

    placed, _ = layout(template, top, margin)
    return [_read_one(box, sample) for box in placed]


def _read_one(box: Placed, get: Sampler) -> BoxReading:
    """`get(x, y)`: the scan's grey level at page px (x, y)."""
    step = 2

    near_edge, far_edge = BORDER / 2, BOX - BORDER / 2  # the printed lines lie inside the box's outline

    def border_darkness(dx: int, dy: int) -> float:
        total, n = 0, 0
        for t in range(0, BOX + 1, step):
            for x, y in ((t, near_edge), (t, far_edge), (near_edge, t), (far_edge, t)):
                total += 255 - get(box.x + x + dx, box.y + y + dy)
                n += 1
        return total / n

    # find the printed border near where the code says it is (scan skew, paper stretch)
    best = max(((dx, dy) for dx in range(-14, 15, 2) for dy in range(-14, 15, 2)), key=lambda d: border_darkness(*d))
    dx, dy = best
    cx, cy = box.x + dx + BOX / 2, box.y + dy + BOX / 2

    def around(theta: float, distance: float) -> int:
        """The scan's grey level `distance` px outside the printed border, in direction theta."""
        edge = (BOX / 2) / max(abs(math.cos(theta)), abs(math.sin(theta)))
        r = edge + BORDER + distance
        return get(cx + r * math.cos(theta), cy + r * math.sin(theta))

    ring = [around(i * math.pi / 32, d) for d in (10, 30) for i in range(64)]
    paper = sorted(ring)[len(ring) * 3 // 4]
    threshold = paper - 55  # ink
    faint = paper - 25  # anything at all: a box is empty only if nothing reaches even this
    inset = BORDER + 9
    inside = [
        get(box.x + dx + x, box.y + dy + y)
        for x in range(inset, BOX - inset + 1, 2)
        for y in range(inset, BOX - inset + 1, 2)
    ]
    interior = sum(1 for v in inside if v < threshold) / len(inside)
    interior_faint = sum(1 for v in inside if v < faint) / len(inside)
    near: list[bool] = []  # per 16 sectors around the box: ink close outside the border (a circle inks most)
    far: list[bool] = []  # ink further out: a line running on beyond the box (or a wide circle)
    faint_around = 0
    for s in range(16):
        angles = [(s + f / 8) * math.pi / 8 for f in (-3, -2, -1, 0, 1, 2, 3)]
        levels = [around(a, d) for a in angles for d in (4, 10, 16, 22, 28, 34)]
        near.append(sum(1 for v in levels if v < threshold) >= 2)
        faint_around += sum(1 for v in levels[1::6] + levels[2::6] + levels[3::6] if v < faint)
        far.append(any(around(a, d) < threshold for a in angles for d in (50, 62, 74)))
    sectors = sum(near)
    if sum(far) >= 10:
        sectors = max(sectors, sum(far))  # a circle drawn wide around the box
    # a straight stroke leaving the box on two opposite sides, near or far, is not a tick anyone chose
    stray = _opposite_only(far) or (_opposite_only(near) and interior < 0.3)
    state = _classify(interior, sectors, stray)
    if state == EMPTY and (interior_faint > 0.012 or faint_around > 2):
        state = UNCLEAR  # a mark too faint to call: never read as empty
    return BoxReading(box.key, state, interior, sectors)


def _opposite_only(far: list[bool]) -> bool:
    """Ink far out on (about) two opposite sides only: a straight line running through (a stray stroke)."""
    hit = [s for s in range(16) if far[s]]
    return bool(hit) and len(hit) <= 4 and all(any(abs((h - o) % 16 - 8) <= 1 for o in hit) for h in hit)


def _classify(interior: float, sectors: int, stray: bool) -> str:
    if sectors >= 10:
        return TICKED  # a circle drawn around the box
    if stray:
        return UNCLEAR  # a line through the box and far beyond both sides: maybe not meant as a tick
    if interior >= 0.08:
        return TICKED
    if interior <= 0.012 and sectors == 0:
        return EMPTY  # nothing inside and nothing around: only then is a box empty
    return UNCLEAR
